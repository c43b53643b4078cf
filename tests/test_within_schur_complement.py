"""Two-way within on dense unweighted panels with many periods: the Schur matrix from the pairs
of missing cells (csrc/schur_dense.cpp, schur_complement) equals the dense rank-k assembly to
rounding and the transform equals a least-squares projection on the explicit dummies; a cell
with two rows falls back to the dense assembly; the bits do not depend on the thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpanel
from fastpanel.within import _complement_schur_pays, _order_arg

_core = pytest.importorskip("fastpanel._core")


def _panel(rng, N, T, missing, shuffle=True):
    keep = rng.random(N * T) >= missing
    keep[rng.integers(0, N) * T:][:T // 2] = True  # an entity seen in most periods, whatever the draw
    rows = np.flatnonzero(keep)
    if shuffle:
        rows = rng.permutation(rows)
    return rows // T, rows % T


def _dummy_projection(X, e, t):
    D = np.column_stack([(np.unique(e, return_inverse=True)[1][:, None] == np.arange(np.unique(e).size)),
                         (np.unique(t, return_inverse=True)[1][:, None] == np.arange(np.unique(t).size))]).astype(float)
    beta = np.linalg.lstsq(D, X, rcond=None)[0]
    return X - D @ beta


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(65, 140), missing=st.sampled_from([0.02, 0.1, 0.3]))
def test_complement_schur_equals_dense_and_the_transform_equals_dummies(seed, T, missing):
    rng = np.random.default_rng(seed)
    e, t = _panel(rng, 90, T, missing)
    fe = fastpanel.FixedEffects([e, t])
    a, b = sorted(fe.factors, key=lambda f: f.n_levels, reverse=True)
    Sc = _core.within_schur_complement(a.codes, a.n_levels, b.codes, b.n_levels)
    Sd = _core.within_schur_dense(_order_arg(a), a.group_starts, b.codes, b.n_levels, np.empty(0))
    # both sum the same n_A rank-one terms: rounding of sums of about n_A terms of size <= 1
    assert np.abs(Sc - Sd).max() <= 64 * np.finfo(float).eps * a.n_levels
    X = rng.normal(size=(e.size, 3)) * np.array([1.0, 1e3, 1e-3]) + 1e8 * np.array([0, 1, 0])
    if missing <= 0.1:  # dense enough that within() takes this path (at 30% missing the rank-k one)
        assert _complement_schur_pays(a, b)
    got, info = fastpanel.within(X, [e, t], backend="cpp", return_info=True)
    assert info.method == "twoway-direct"
    want = _dummy_projection(X, e, t)
    scale = np.abs(X).max(axis=0)
    assert (np.abs(got - want).max(axis=0) <= 1e-9 * scale).all()


def test_a_cell_with_two_rows_falls_back_to_the_dense_assembly():
    rng = np.random.default_rng(5)
    e, t = _panel(rng, 80, 100, 0.05)
    e, t = np.r_[e, e[:1]], np.r_[t, t[:1]]  # one (entity, period) cell twice
    fe = fastpanel.FixedEffects([e, t])
    a, b = sorted(fe.factors, key=lambda f: f.n_levels, reverse=True)
    assert _core.within_schur_complement(a.codes, a.n_levels, b.codes, b.n_levels) is None
    X = rng.normal(size=(e.size, 2))
    got = fastpanel.within(X, [e, t], backend="cpp")
    assert np.abs(got - _dummy_projection(X, e, t)).max() <= 1e-10
    with pytest.raises(ValueError, match="out of range"):
        _core.within_schur_complement(a.codes, 1, b.codes, b.n_levels)


def test_complement_schur_same_bits_for_any_thread_count():
    rng = np.random.default_rng(9)
    e, t = _panel(rng, 3000, 120, 0.1)
    fe = fastpanel.FixedEffects([e, t])
    a, b = sorted(fe.factors, key=lambda f: f.n_levels, reverse=True)
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        one = _core.within_schur_complement(a.codes, a.n_levels, b.codes, b.n_levels)
        for k in (2, 3):
            fastpanel.set_num_threads(k)
            assert np.array_equal(_core.within_schur_complement(a.codes, a.n_levels, b.codes, b.n_levels), one)
    finally:
        fastpanel.set_num_threads(before)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), density=st.sampled_from([0.0, 0.02, 0.08, 0.3]))
def test_dense_components_equal_scipys_connected_components(seed, n, density):
    """The breadth-first connected sets of S's pattern (small n_B) are scipy's, as partitions."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from fastpanel.within import _dense_components

    rng = np.random.default_rng(seed)
    adj = rng.random((n, n)) < density
    adj = adj | adj.T
    np.fill_diagonal(adj, True)  # S's diagonal is positive
    ours = _dense_components(adj)
    theirs = connected_components(sp.csr_matrix(adj), directed=False)[1]

    def canonical(lab):  # relabel by first appearance
        first = {}
        return np.array([first.setdefault(x, len(first)) for x in lab])

    assert np.array_equal(canonical(ours), canonical(theirs))
