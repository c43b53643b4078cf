"""Within transform on rows in any order (the cpp backend's radix-partition path,
``csrc/within_rows.cpp``), checked against a dummy-variable least-squares oracle written here,
against the sorted-rows path, and for bitwise thread independence.

The partition path runs when the rows of the eliminated dimension are not sorted; buckets of
levels hold at most 2^19 bytes of totals, so designs with more than ~10^4 levels span several
buckets (the tests below go up to 50k levels) and n * p > 200,000 makes the scatter parallel.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st

import fastpanel


def dummy_oracle(X: np.ndarray, ids: list[np.ndarray], w: np.ndarray | None = None) -> np.ndarray:
    """X minus its weighted least-squares fit on the fixed-effect dummies (dense lstsq)."""
    n = X.shape[0]
    D = np.hstack([(np.unique(c, return_inverse=True)[1][:, None] == np.arange(np.unique(c).size)).astype(float)
                   for c in ids])
    sw = np.ones(n) if w is None else np.sqrt(w)
    coef = np.linalg.lstsq(D * sw[:, None], X * sw[:, None], rcond=None)[0]
    return X - D @ coef


def sparse_oracle(X: np.ndarray, ids: list[np.ndarray]) -> np.ndarray:
    """Same, for designs too large for dense lstsq: LSQR on the sparse dummy matrix."""
    n = X.shape[0]
    blocks = [sp.csr_matrix((np.ones(n), (np.arange(n), np.unique(c, return_inverse=True)[1]))) for c in ids]
    D = sp.hstack(blocks).tocsr()
    cols = []
    for j in range(X.shape[1]):
        coef = spla.lsqr(D, X[:, j], atol=1e-15, btol=1e-15, iter_lim=100_000)[0]
        cols.append(X[:, j] - D @ coef)
    return np.column_stack(cols)


def panel(rng: np.random.Generator, n_a: int, n_b: int, fill: float, p: int, offset: float = 0.0):
    """Unbalanced panel with gaps anywhere, rows shuffled, effects and an offset in X."""
    cells = rng.uniform(size=n_a * n_b) < fill
    rows = np.flatnonzero(cells)
    a, b = rows // n_b, rows % n_b
    perm = rng.permutation(rows.size)
    a, b = a[perm], b[perm]
    X = rng.normal(size=(a.size, p)) + rng.normal(size=n_a)[a, None] * 3 + rng.normal(size=n_b)[b, None] + offset
    return np.asfortranarray(X), a, b


@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(2, 60), n_b=st.integers(2, 9),
       p=st.integers(1, 10), weighted=st.booleans(), dup=st.booleans())
def test_two_way_any_order_equals_dummy_regression(seed, n_a, n_b, p, weighted, dup) -> None:
    rng = np.random.default_rng(seed)
    X, a, b = panel(rng, n_a, n_b, 0.7, p)
    if a.size < 3:
        return
    if dup:  # a B level repeated within an A level (the pair-by-pair Schur path)
        extra = rng.integers(0, a.size, size=max(1, a.size // 5))
        X = np.asfortranarray(np.vstack([X, X[extra] + rng.normal(size=(extra.size, p))]))
        a, b = np.concatenate([a, a[extra]]), np.concatenate([b, b[extra]])
        perm = rng.permutation(a.size)
        X, a, b = np.asfortranarray(X[perm]), a[perm], b[perm]
    w = rng.uniform(0.0, 2.0, a.size) if weighted else None
    if w is not None:
        w[rng.uniform(size=a.size) < 0.1] = 0.0  # zero weights, maybe a whole level
    got = fastpanel.within(X, [a, b], weights=w, backend="cpp")
    want = dummy_oracle(X, [a, b], w)
    if w is not None:  # rows of weight zero are not determined by the weighted fit
        got, want = got[w > 0], want[w > 0]
    np.testing.assert_allclose(got, want, atol=1e-10 * max(1.0, np.abs(X).max()), rtol=0)


@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(1, 80), p=st.integers(1, 9), weighted=st.booleans())
def test_one_way_any_order_equals_group_means(seed, n_a, p, weighted) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    a = rng.integers(0, n_a, n) * 7919 - 10**12  # odd, huge, unsorted ids
    X = np.asfortranarray(rng.normal(size=(n, p)) + 1e3)
    w = rng.uniform(0.1, 2.0, n) if weighted else None
    got = fastpanel.within(X, a, weights=w, backend="cpp")
    want = np.empty_like(X)
    ww = np.ones(n) if w is None else w
    for g in np.unique(a):  # plain NumPy: weighted group means
        m = a == g
        want[m] = X[m] - (ww[m, None] * X[m]).sum(axis=0) / ww[m].sum()
    np.testing.assert_allclose(got, want, atol=1e-10 * np.abs(X).max(), rtol=0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("p", [1, 6])
def test_many_buckets_shuffled_equals_sorted(weighted, p) -> None:
    """50k levels (several buckets), parallel scatter; the shuffled rows give the sorted rows'
    answer, row for row, also with an offset of 1e8 in X."""
    rng = np.random.default_rng(11)
    X, a, b = panel(rng, 50_000, 7, 0.8, p, offset=1e8)
    w = rng.uniform(0.2, 3.0, a.size) if weighted else None
    s = np.lexsort((b, a))  # the same rows sorted by (a, b): the gather-free sorted path
    got, info = fastpanel.within(X, [a, b], weights=w, backend="cpp", return_info=True)
    ref = fastpanel.within(np.asfortranarray(X[s]), [a[s], b[s]], weights=None if w is None else w[s], backend="cpp")
    assert info.method == "twoway-direct"
    # the offset cancels: errors of 1e8 * eps are rounding, not method
    np.testing.assert_allclose(got[s], ref, atol=64 * np.finfo(float).eps * 1e8, rtol=0)
    got1 = fastpanel.within(X, a, weights=w, backend="cpp")
    ref1 = fastpanel.within(np.asfortranarray(X[s]), a[s], weights=None if w is None else w[s], backend="cpp")
    np.testing.assert_allclose(got1[s], ref1, atol=64 * np.finfo(float).eps * 1e8, rtol=0)


def test_many_b_levels_shuffled_equals_oracle() -> None:
    """More than 64 B levels (no bit sets) and a direct Schur solve, rows shuffled."""
    rng = np.random.default_rng(5)
    X, a, b = panel(rng, 3_000, 150, 0.05, 3)
    got, info = fastpanel.within(X, [a, b], backend="cpp", return_info=True)
    assert info.method == "twoway-direct"
    np.testing.assert_allclose(got, sparse_oracle(X, [a, b]), atol=1e-9, rtol=0)


def test_conjugate_gradients_with_large_offset() -> None:
    """Both dimensions large (conjugate gradients on S) and a column 1e8 + noise: r must be
    projected onto the range of S, or CG stalls at a relative residual of 0.2 (it did)."""
    rng = np.random.default_rng(0)
    n = 50_000
    a, b = rng.integers(0, 3_000, n), rng.integers(0, 2_500, n)
    X = np.asfortranarray(rng.normal(size=(n, 2)) + np.array([0.0, 1e8]))
    got, info = fastpanel.within(X, [a, b], backend="cpp", return_info=True)
    assert info.method == "twoway-cg" and info.converged
    want = sparse_oracle(X - np.array([0.0, 1e8]), [a, b])  # the offset is absorbed exactly
    np.testing.assert_allclose(got, want, atol=1e-7, rtol=0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ways", [1, 2])
def test_partition_same_bits_for_any_thread_count(weighted, ways) -> None:
    rng = np.random.default_rng(9)
    X, a, b = panel(rng, 40_000, 8, 0.85, 3, offset=5.0)
    w = rng.uniform(0.5, 2.0, a.size) if weighted else None
    ids = [a, b] if ways == 2 else a
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        one = fastpanel.within(X, ids, weights=w, backend="cpp")
        for k in (2, 3):
            fastpanel.set_num_threads(k)
            assert np.array_equal(fastpanel.within(X, ids, weights=w, backend="cpp"), one)
    finally:
        fastpanel.set_num_threads(before)


def test_partition_reports_nonfinite_rows_and_keeps_input() -> None:
    rng = np.random.default_rng(2)
    X, a, b = panel(rng, 30_000, 6, 0.9, 2)
    X[123, 1] = np.nan
    before = X.copy()
    with pytest.raises(ValueError, match="1 rows have missing values"):
        fastpanel.within(X, [a, b], backend="cpp")
    with pytest.raises(ValueError, match="1 rows have missing values"):
        fastpanel.within(X, a, backend="cpp")
    np.testing.assert_array_equal(np.isnan(X), np.isnan(before))
    out, info = fastpanel.within(X, [a, b], backend="cpp", drop_missing=True, return_info=True)
    assert info.n_dropped == 1 and np.isnan(out[123]).all() and np.isfinite(np.delete(out, 123, axis=0)).all()
