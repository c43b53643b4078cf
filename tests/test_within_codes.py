"""The within transform straight from the codes (``csrc/within_codes.cpp``, ``WithinCodes``):
the cpp backend's path for unweighted panels in any row order.

Checked against a dummy-variable least-squares oracle, against the sorted-rows kernels (an
independent implementation of r and S), against a long-double reference for data with offsets
of 1e8, for bitwise thread independence with several fixed row splits, and for its refusals:
a repeated (A, B) cell (the caller then uses the general kernels) and codes out of range (an
error, never a write outside the tables).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_within_rows import dummy_oracle, panel

import fastpanel
from fastpanel import _core
from fastpanel.factor import factorize
from fastpanel.within import twoway_gamma

EMPTY = np.empty(0, dtype=np.int64)


def codes_within(X: np.ndarray, a: np.ndarray, b: np.ndarray | None, out: np.ndarray | None = None):
    """The kernel as within() drives it: (result, kernel); result None when it declines."""
    fa = factorize(a)
    fb = None if b is None else factorize(b)
    part = _core.WithinCodes(X, fa.codes, fa.n_levels, EMPTY if fb is None else fb.codes,
                             0 if fb is None else fb.n_levels)
    if not part.ok:
        return None, part
    out = np.empty_like(X, order="F") if out is None else out
    if fb is None:
        part.pass2(np.empty((0, 0), order="F"), out)
    else:
        r, S = part.pass1(True)
        gamma, _ = twoway_gamma(S, r, X.shape[0], fa.n_levels)
        part.pass2(gamma, out)
    return out, part


@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(1, 60), n_b=st.sampled_from([1, 2, 3, 7, 12, 13, 30, 64]),
       p=st.integers(1, 11), fill=st.floats(0.2, 1.0), offset=st.sampled_from([0.0, 1e3]))
def test_two_way_equals_dummy_regression(seed, n_a, n_b, p, fill, offset) -> None:
    """Rows shuffled, gaps anywhere, p on both sides of the unrolled kernels (1..8), B level sets
    counted densely (n_b <= 12) and in a hash map (n_b > 12), up to bit 63."""
    rng = np.random.default_rng(seed)
    X, a, b = panel(rng, n_a, n_b, fill, p, offset)
    if a.size < 2:
        return
    got, part = codes_within(X, a, b)
    assert part.ok
    want = dummy_oracle(X, [a, b])
    np.testing.assert_allclose(got, want, atol=1e-10 * max(1.0, np.abs(X).max()), rtol=0)


@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(1, 80), p=st.integers(1, 11))
def test_one_way_equals_group_means(seed, n_a, p) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    a = rng.integers(0, n_a, n)
    X = np.asfortranarray(rng.normal(size=(n, p)) + rng.normal(size=n_a)[a, None] * 1e3)
    got, part = codes_within(X, a, None)
    want = np.empty_like(X)
    for g in np.unique(a):  # plain NumPy group means
        m = a == g
        want[m] = X[m] - X[m].mean(axis=0)
    np.testing.assert_allclose(got, want, atol=1e-10 * np.abs(X).max(), rtol=0)
    assert part.n_nonfinite == 0


@pytest.mark.parametrize("n_b", [10, 40])
def test_r_and_schur_equal_the_sorted_kernels(n_b) -> None:
    """r and S from the codes (P_B minus the sums of means, S from the level sets) against the
    sorted-rows kernel (sums of deviations row by row, S group by group) on the same rows."""
    rng = np.random.default_rng(4)
    X, a, b = panel(rng, 30_000, n_b, 0.7, 3, offset=50.0)
    fa, fb = factorize(a), factorize(b)
    part = _core.WithinCodes(X, fa.codes, fa.n_levels, fb.codes, fb.n_levels)
    r, S = part.pass1(True)
    s = np.lexsort((b, a))
    fa_s = factorize(a[s])
    r_ref, S_ref = _core.within_twoway_pass1(np.asfortranarray(X[s]), EMPTY, fa_s.group_starts, fb.codes[s],
                                             fb.n_levels, np.empty(0), True)
    np.testing.assert_allclose(r, r_ref, rtol=0, atol=1e-9 * np.abs(r_ref).max())
    np.testing.assert_allclose(S, S_ref, rtol=0, atol=1e-12 * np.abs(S_ref).max())


def test_offsets_of_1e8_keep_the_accuracy_of_summing_deviations() -> None:
    """Entity offsets of 1e8: r is a difference of sums of size 1e13, yet its error stays within
    a few times that of the row-by-row sum of deviations (a long-double reference), and the
    transformed data are as accurate as the data's own rounding allows."""
    rng = np.random.default_rng(3)
    n_a, n_b = 20_000, 12
    cells = np.flatnonzero(rng.uniform(size=n_a * n_b) < 0.8)
    a, b = cells // n_b, cells % n_b
    perm = rng.permutation(a.size)
    a, b = a[perm], b[perm]
    X = np.asfortranarray(rng.normal(size=(a.size, 2)) + 1e8 * (1.0 + rng.normal(size=n_a)[a, None])
                          + rng.normal(size=n_b)[b, None])
    XL = X.astype(np.longdouble)
    means = np.zeros((n_a, 2), np.longdouble)
    np.add.at(means, a, XL)
    means /= np.bincount(a, minlength=n_a)[:, None]
    dev = XL - means[a]
    r_true = np.zeros((n_b, 2), np.longdouble)
    np.add.at(r_true, b, dev)

    fa, fb = factorize(a), factorize(b)
    part = _core.WithinCodes(X, fa.codes, fa.n_levels, fb.codes, fb.n_levels)
    r, S = part.pass1(True)
    rows = _core.WithinRows(X, fa.codes, fa.group_starts, fb.codes, fb.n_levels, np.empty(0))
    r_rows, _ = rows.pass1(True)
    err = float(np.abs(r - r_true).max())
    err_rows = float(np.abs(r_rows - r_true).max())
    scale = np.finfo(float).eps * float(np.abs(X).max()) * np.sqrt(a.size / n_b)
    assert err <= 8 * max(err_rows, scale), (err, err_rows, scale)

    # the transformed data against the long-double two-way residual (gamma from the exact r)
    gamma_true = np.linalg.lstsq(S, np.asarray(r_true, dtype=float), rcond=None)[0]
    got, _ = codes_within(X, a, b)
    set_mean = np.zeros((n_a, 2), np.longdouble)
    np.add.at(set_mean, a, gamma_true[b].astype(np.longdouble))
    set_mean /= np.bincount(a, minlength=n_a)[:, None]
    want = dev - (gamma_true[b] - set_mean[a])
    assert float(np.abs(got - want).max()) <= 16 * np.finfo(float).eps * float(np.abs(X).max())


@pytest.mark.parametrize("ways", [1, 2])
def test_same_bits_for_any_thread_count_with_several_splits(ways) -> None:
    """18 rows per A level: four fixed row splits (each with its own table) and 20 B levels (the
    hash map of level sets); the bits do not depend on the threads."""
    rng = np.random.default_rng(8)
    X, a, b = panel(rng, 20_000, 20, 0.9, 3, offset=1e6)
    fa = factorize(a)
    assert _core.WithinCodes(X, fa.codes, fa.n_levels, factorize(b).codes, 20).n_split == 4
    ids = [a, b] if ways == 2 else a
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        one = fastpanel.within(X, ids, backend="cpp")
        for k in (2, 3):
            fastpanel.set_num_threads(k)
            assert np.array_equal(fastpanel.within(X, ids, backend="cpp"), one)
    finally:
        fastpanel.set_num_threads(before)


def test_within_uses_the_codes_path_and_agrees_with_the_partition() -> None:
    rng = np.random.default_rng(6)
    X, a, b = panel(rng, 50_000, 9, 0.85, 6, offset=1e4)
    got, info = fastpanel.within(X, [a, b], backend="cpp", return_info=True)
    assert info.method == "twoway-direct"
    fa, fb = factorize(a), factorize(b)
    rows = _core.WithinRows(X, fa.codes, fa.group_starts, fb.codes, fb.n_levels, np.empty(0))
    r, S = rows.pass1(True)
    gamma, _ = twoway_gamma(S, r, X.shape[0], fa.n_levels)
    want = np.empty_like(X, order="F")
    rows.pass2(gamma, want)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(X).max())


def test_in_place_output() -> None:
    """out may be X itself (each row is read before it is written)."""
    rng = np.random.default_rng(2)
    X, a, b = panel(rng, 5_000, 6, 0.8, 9)
    want, _ = codes_within(X, a, b)
    Y = X.copy(order="F")
    got, _ = codes_within(Y, a, b, out=Y)
    assert got is Y
    np.testing.assert_array_equal(Y, want)


def test_repeated_cell_declines_and_within_falls_back() -> None:
    rng = np.random.default_rng(1)
    X, a, b = panel(rng, 3_000, 5, 0.9, 2)
    a2, b2 = np.concatenate([a, a[:1]]), np.concatenate([b, b[:1]])  # one (A, B) cell twice
    X2 = np.asfortranarray(np.vstack([X, X[:1] + 1.0]))
    out, part = codes_within(X2, a2, b2)
    assert out is None and not part.ok
    with pytest.raises(RuntimeError, match="several rows"):
        part.pass1(True)
    got = fastpanel.within(X2, [a2, b2], backend="cpp")
    np.testing.assert_allclose(got, dummy_oracle(X2, [a2, b2]), atol=1e-10 * np.abs(X2).max(), rtol=0)


@pytest.mark.parametrize("bad", ["a_negative", "a_too_large", "b_too_large", "b_negative"])
def test_codes_out_of_range_raise_before_any_write(bad) -> None:
    rng = np.random.default_rng(0)
    n = 300_000  # parallel splits
    a = rng.integers(0, 1000, n)
    b = rng.integers(0, 8, n)
    X = np.asfortranarray(rng.normal(size=(n, 2)))
    i = int(rng.integers(0, n))
    if bad == "a_negative":
        a[i] = -1
    elif bad == "a_too_large":
        a[i] = 10**12
    elif bad == "b_too_large":
        b[i] = 64
    else:
        b[i] = -5
    with pytest.raises(ValueError, match="outside"):
        _core.WithinCodes(X, a, 1000, b, 8)


def test_nonfinite_means_are_counted_one_way() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 50, 2_000)
    X = np.asfortranarray(rng.normal(size=(2_000, 3)))
    X[7, 2] = np.inf
    _, part = codes_within(X, a, None)
    assert part.n_nonfinite == 1
