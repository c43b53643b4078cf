"""Identified fixed effects with three or more dimensions: the exact solver's rank of the dummy
matrix (connected sets plus the null directions of the reduced Schur complement) equals
NumPy's ``matrix_rank`` of the explicit dummies, including designs with collinearity beyond the
connected sets (a dimension nested in another, two dimensions tied by parity); and feols'
degrees of freedom and standard errors under ``ssc="statsmodels"`` equal statsmodels' OLS on
the explicit dummies, whose df use that rank."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastpanel
from fastpanel.kway import build_structure

sm = pytest.importorskip("statsmodels.api")


def dummies(ids: list[np.ndarray]) -> np.ndarray:
    return np.hstack([(np.unique(c, return_inverse=True)[1][:, None] == np.arange(np.unique(c).size)).astype(float)
                      for c in ids])


def design(rng: np.random.Generator, n: int, kind: str) -> list[np.ndarray]:
    """Three or four dimensions; ``kind`` adds collinearity beyond the connected sets."""
    a = rng.integers(0, max(2, n // 4), n)  # workers: the largest dimension
    b = rng.integers(0, 6, n)  # firms
    c = rng.integers(0, 4, n)  # years
    if kind == "nested":  # region: a function of the firm
        c = b % 3
    elif kind == "parity":  # year parity tied to the firm's parity
        c = 2 * rng.integers(0, 3, n) + (b % 2)
    elif kind == "sparse":  # weakly connected: firms seen by few workers
        b = (a + rng.integers(0, 2, n)) % max(2, n // 8)
    ids = [a, b, c]
    if kind == "fourway":
        ids.append(rng.integers(0, 3, n))
    return ids


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 150),
       kind=st.sampled_from(["random", "nested", "parity", "sparse", "fourway"]), weighted=st.booleans())
def test_identified_effects_equal_dummy_rank(seed, n, kind, weighted) -> None:
    rng = np.random.default_rng(seed)
    ids = design(rng, n, kind)
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    fe = fastpanel.FixedEffects(ids)
    st_ = build_structure(list(fe.factors), w)
    assert st_.rank_exact
    assert st_.n_identified == np.linalg.matrix_rank(dummies(ids))
    X = rng.normal(size=(n, 2))
    _, info = fastpanel.within(X, ids, weights=w, return_info=True)
    if info.method.startswith("kway"):
        assert info.n_identified == st_.n_identified


@pytest.mark.parametrize("kind", ["nested", "parity", "random"])
def test_feols_statsmodels_df_and_bse_with_collinear_effects(kind) -> None:
    rng = np.random.default_rng(7)
    n = 400
    a, b, c = design(rng, n, kind)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = x1 - 0.5 * x2 + rng.normal(size=max(a) + 1)[a] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x1": x1, "x2": x2, "a": a, "b": b, "c": c})
    ours = fastpanel.feols("y ~ x1 + x2 | a + b + c", df, ssc="statsmodels")
    X = np.column_stack([x1, x2, dummies([a, b, c])])
    with warnings.catch_warnings():  # every level of every dimension: rank-deficient by design
        warnings.simplefilter("ignore")
        ref = sm.OLS(y, X).fit()  # pinv: df_resid = n - rank
    assert ours.df_resid == ref.df_resid
    np.testing.assert_allclose(ours.params.to_numpy(), ref.params[:2], rtol=1e-9)
    np.testing.assert_allclose(ours.bse.to_numpy(), ref.bse[:2], rtol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["random", "nested", "parity", "sparse"]),
       ways=st.sampled_from([1, 2, 3]))
def test_n_identified_depends_on_which_weights_are_zero_and_its_cache_stays_small(seed, kind, ways) -> None:
    """An IRLS-style loop: new positive weights each call give the unweighted rank from the cache;
    zero weights give the rank of the dummies of the other rows; the cache holds at most 8
    zero patterns however many weight vectors it has seen."""
    from fastpanel.fixed_effects import _RANK_CACHE_SIZE

    rng = np.random.default_rng(seed)
    n = 120
    ids = design(rng, n, kind)[:ways]
    fe = fastpanel.FixedEffects(ids)
    full = np.linalg.matrix_rank(dummies(ids))
    assert fe.n_identified() == full
    for _ in range(12):
        assert fe.n_identified(rng.uniform(0.1, 5.0, n)) == full
    assert len(fe._rank_cache) == 1  # every positive weight vector shares the unweighted entry
    for _ in range(12):
        w = rng.uniform(0.1, 5.0, n)
        w[rng.random(n) < 0.3] = 0.0
        keep = w > 0
        want = np.linalg.matrix_rank(dummies([c[keep] for c in ids]))
        assert fe.n_identified(w) == want
        assert fe.n_identified(w * 3.0) == want  # the same zero pattern: the cached rank
        assert len(fe._rank_cache) <= _RANK_CACHE_SIZE
