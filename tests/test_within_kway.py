"""Exact within transformation for three or more fixed effects (fastpanel.kway; issue 9).

Oracle: least squares on the explicit dummy matrix (NumPy ``lstsq``), on the fixest benchmarks'
"difficult" and "simple" designs, on random sparse bipartite designs with several connected
sets, weights and rows in random order, and on a design whose two smaller dimensions are
collinear beyond the connected sets (firm = row mod 22, year = row mod 10 share their parity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.fixed_effects import FixedEffects
from fastpanel.kway import build_structure, kway_within


def fixest_design(n: int, difficult: bool, seed: int = 0):
    """The public fixest benchmark: n/10 individuals x 10 years, firms cyclic (difficult) or random."""
    rng = np.random.default_rng(seed)
    nb_indiv = n // 10
    nb_firm = round(nb_indiv / 23)
    indiv = np.repeat(np.arange(nb_indiv), 10)
    year = np.tile(np.arange(10), nb_indiv)
    firm = np.arange(n) % nb_firm if difficult else rng.integers(0, nb_firm, n)
    x1 = rng.normal(size=n)
    y = (x1 + 0.05 * x1**2 + rng.normal(size=nb_firm)[firm] + rng.normal(size=nb_indiv)[indiv]
         + rng.normal(size=10)[year] + rng.normal(size=n))
    return [indiv, firm, year], np.column_stack([y, x1])


def bipartite_design(n: int, seed: int):
    """Three sparse dimensions with several connected sets (blocks that never meet)."""
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 3, n)
    a = block * 1000 + rng.integers(0, n // 8, n)
    b = block * 1000 + rng.integers(0, 40, n)
    c = block * 1000 + rng.integers(0, 7, n)
    X = rng.normal(size=(n, 2)) + np.column_stack([a % 5, b % 3])
    return [a, b, c], X


def dummy_residuals(X, ids, w=None):
    cols = []
    for g in ids:
        codes = pd.factorize(g)[0]
        D = np.zeros((len(codes), codes.max() + 1))
        D[np.arange(len(codes)), codes] = 1.0
        cols.append(D)
    D = np.hstack(cols)
    s = np.ones(len(X)) if w is None else np.sqrt(w)
    coef = np.linalg.lstsq(D * s[:, None], X * s[:, None], rcond=None)[0]
    return X - D @ coef, np.linalg.matrix_rank(D)


@pytest.mark.parametrize(
    ("make", "n"),
    [
        (lambda n: fixest_design(n, True), 3000),
        (lambda n: fixest_design(n, True), 5000),   # firm and year share their parity
        (lambda n: fixest_design(n, False), 4000),
        (lambda n: bipartite_design(n, 1), 2500),
        (lambda n: bipartite_design(n, 2), 4000),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_kway_equals_dummy_least_squares(make, n, weighted) -> None:
    ids, X = make(n)
    rng = np.random.default_rng(n)
    perm = rng.permutation(n)  # rows in random order
    ids = [g[perm] for g in ids]
    X = X[perm]
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    expected, rank = dummy_residuals(X, ids, w)
    fe = FixedEffects(ids)
    st = build_structure(fe.factors, w)
    got, _ = kway_within(np.asfortranarray(X), st, w)
    scale = np.abs(X).max()
    np.testing.assert_allclose(got, expected, atol=1e-10 * scale, rtol=0)
    # slope of the first column on the second: the statistic users read
    b_got = (got[:, 1] * (1 if w is None else w)) @ got[:, 0] / ((got[:, 1] * (1 if w is None else w)) @ got[:, 1])
    b_exp = (expected[:, 1] * (1 if w is None else w)) @ expected[:, 0] / (
        (expected[:, 1] * (1 if w is None else w)) @ expected[:, 1])
    assert abs(b_got - b_exp) <= 1e-10 * abs(b_exp)


@pytest.mark.parametrize("make", [lambda: bipartite_design(3000, 5), lambda: fixest_design(3000, True)])
def test_identified_effects_equal_the_dummy_rank(make) -> None:
    ids, X = make()
    fe = FixedEffects(ids)
    st = build_structure(fe.factors, None)
    _, rank = dummy_residuals(X, ids)
    assert st.n_identified == rank


def test_within_uses_the_exact_solver_and_ignores_row_order() -> None:
    ids, X = bipartite_design(3000, 7)
    out, info = fastpanel.within(X, ids, return_info=True)
    assert info.method.startswith("kway") and info.converged
    perm = np.random.default_rng(0).permutation(len(X))
    out2 = fastpanel.within(X[perm], [g[perm] for g in ids])
    np.testing.assert_allclose(out2, out[perm], atol=1e-12 * np.abs(X).max(), rtol=0)


def test_feols_three_way_equals_dummy_ols_and_row_order_free() -> None:
    """repro_rowperm_3way: bse changed at 1e-7 with the order of the rows."""
    rng = np.random.default_rng(0)
    n = 400
    d = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n) * 1e4})
    d["y"] = d.x0 + d.x1 + rng.normal(size=n)
    for j in range(3):
        d[f"f{j}"] = rng.integers(0, 40, n)
    fml = "y ~ x0 + x1 | f0 + f1 + f2"
    a = fastpanel.feols(fml, d, vcov={"CRV1": "f0"})
    b = fastpanel.feols(fml, d.sample(frac=1, random_state=0).reset_index(drop=True), vcov={"CRV1": "f0"})
    np.testing.assert_allclose(b.params, a.params, rtol=1e-12)
    np.testing.assert_allclose(b.bse, a.bse, rtol=1e-10)
    resid, _ = dummy_residuals(d[["y", "x0", "x1"]].to_numpy(), [d.f0, d.f1, d.f2])
    beta = np.linalg.lstsq(resid[:, 1:], resid[:, 0], rcond=None)[0]
    np.testing.assert_allclose(a.params.to_numpy(), beta, rtol=1e-10)
