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


def _row_order_bounds(Z: np.ndarray, ids, beta: np.ndarray) -> tuple[np.ndarray, float]:
    """First-order bounds on how much rounding can move the params and the bse of a k-way fit.

    The transform solves the normal equations D'D theta = D'z of the dummy regression; its
    only row-order dependent step is the summation of the group sums D'z (and D'(z - fit),
    the same kind of sums). A group sum of n_l terms carries a rounding error at most
    gamma_l = n_l u sum_l |z| (u = 2^-53, Higham's recursive-summation bound). A perturbation
    delta of D'z moves the transformed column by -D (D'D)^+ delta, so row i moves by at most
    Delta_i(z) = sum_l |[D (D'D)^+]_il| gamma_l(z). The params of the regression of y~ on X~
    then move by at most |pinv(X~)| (Delta(y) + sum_k |beta_k| Delta(x_k)). Two row orders each
    sit within that of the exact fit, so they differ by at most twice it; a factor 4 more
    covers the second-order terms, the solver's refinement (stopped at a 1e-13 residual) and
    the OLS step's own rounding (n u cond(X~), added explicitly). The bse bound is the norm-wise
    first-order one: relative change at most 2 (cond(X~ scaled) max_k ||dx~_k|| / ||x~_k|| +
    ||de|| / ||e||), with the same factor 4.
    """
    u = 2.0 ** -53
    D = np.hstack([np.eye(int(c.max()) + 1)[c] for c in (pd.factorize(g)[0] for g in ids)])
    H = np.abs(D @ np.linalg.pinv(D.T @ D))  # |D (D'D)^+|, n x levels
    counts = D.sum(axis=0)
    Delta = H @ ((counts[:, None] * u) * (D.T @ np.abs(Z)))  # (n, 1 + k): rows' movement per column
    resid, _ = dummy_residuals(Z, ids)
    Xt, yt = resid[:, 1:], resid[:, 0]
    n = Z.shape[0]
    cond = np.linalg.cond(Xt / np.linalg.norm(Xt, axis=0))  # relative errors ignore column scales
    move = Delta[:, 0] + Delta[:, 1:] @ np.abs(beta)
    dbeta = np.abs(np.linalg.pinv(Xt)) @ move + n * u * cond * np.abs(beta)
    params_bound = 8.0 * dbeta / np.abs(beta)
    e = yt - Xt @ beta
    de = move + np.abs(Xt) @ dbeta
    col_move = float(np.max(np.linalg.norm(Delta[:, 1:], axis=0) / np.linalg.norm(Xt, axis=0)))
    bse_bound = 8.0 * (cond * col_move + np.linalg.norm(de) / np.linalg.norm(e))
    return params_bound, float(bse_bound)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_feols_three_way_equals_dummy_ols_and_row_order_free(seed: int) -> None:
    """repro_rowperm_3way: bse changed at 1e-7 with the order of the rows. Now the fits of any
    two row orders differ by no more than the derived rounding bound (see _row_order_bounds;
    measured: params up to 1.6e-12 relative, which a fixed 1e-12 tolerance did not cover)."""
    rng = np.random.default_rng(0)
    n = 400
    d = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n) * 1e4})
    d["y"] = d.x0 + d.x1 + rng.normal(size=n)
    for j in range(3):
        d[f"f{j}"] = rng.integers(0, 40, n)
    fml = "y ~ x0 + x1 | f0 + f1 + f2"
    a = fastpanel.feols(fml, d, vcov={"CRV1": "f0"})
    b = fastpanel.feols(fml, d.sample(frac=1, random_state=seed).reset_index(drop=True), vcov={"CRV1": "f0"})
    Z = d[["y", "x0", "x1"]].to_numpy()
    resid, _ = dummy_residuals(Z, [d.f0, d.f1, d.f2])
    beta = np.linalg.lstsq(resid[:, 1:], resid[:, 0], rcond=None)[0]
    params_bound, bse_bound = _row_order_bounds(Z, [d.f0, d.f1, d.f2], beta)
    rel_params = np.abs(b.params.to_numpy() - a.params.to_numpy()) / np.abs(a.params.to_numpy())
    assert (rel_params <= params_bound).all(), (rel_params, params_bound)
    assert params_bound.max() < 1e-8  # the bound is informative: rounding, not a loose tolerance
    rel_bse = np.abs(b.bse.to_numpy() - a.bse.to_numpy()) / a.bse.to_numpy()
    assert rel_bse.max() <= bse_bound, (rel_bse, bse_bound)
    assert bse_bound < 1e-7
    np.testing.assert_allclose(a.params.to_numpy(), beta, rtol=1e-10)
