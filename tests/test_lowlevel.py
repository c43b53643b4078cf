"""fastpanel.lowlevel (issue 22): integer codes in, float arrays out.

Oracle: least squares on the explicit dummy matrix (NumPy ``lstsq``), and the rank of that
matrix for ``n_identified``. Data: rows in random order, unbalanced, weights, 1e8 offsets,
codes with gaps and of every integer width and memory order.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpanel
from fastpanel import FixedEffects
from fastpanel.lowlevel import API_VERSION, DemeanResult, demean, threads


def dummies(codes: np.ndarray) -> np.ndarray:
    cols = []
    for k in range(codes.shape[1]):
        _, inv = np.unique(codes[:, k], return_inverse=True)
        cols.append(np.eye(inv.max() + 1)[inv])
    return np.hstack(cols)


def oracle(x: np.ndarray, codes: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    D = dummies(codes)
    s = np.ones(len(x)) if w is None else np.sqrt(w)
    x2 = x.reshape(len(x), -1)
    coef = np.linalg.lstsq(D * s[:, None], x2 * s[:, None], rcond=None)[0]
    return (x2 - D @ coef).reshape(x.shape)


def panel(n_ent: int, n_per: int, k: int, seed: int, shuffle: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = np.repeat(np.arange(n_ent), n_per)
    t = np.tile(np.arange(n_per), n_ent)
    keep = rng.random(e.size) > 0.2
    cols = [e[keep], t[keep]]
    for _ in range(k - 2):
        cols.append(rng.integers(0, 7, keep.sum()))
    codes = np.column_stack(cols)
    if shuffle:
        codes = codes[rng.permutation(len(codes))]
    return codes


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.int64, np.uint64])
def test_demean_equals_dummy_least_squares(k: int, weighted: bool, dtype) -> None:
    codes = panel(30, 8, max(k, 2), seed=k)[:, :k].astype(dtype)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(len(codes), 3)) + 1e8 * (k == 2)
    w = rng.uniform(0.2, 3.0, len(codes)) if weighted else None
    res = demean(x, codes, w)
    assert isinstance(res, DemeanResult) and res.out.dtype == np.float64 and res.out.shape == x.shape
    scale = np.abs(x).max()
    np.testing.assert_allclose(res.out, oracle(x, codes.astype(np.int64), w), rtol=0, atol=1e-11 * scale)
    assert res.converged
    assert res.residual < 1e-13
    assert res.n_identified == np.linalg.matrix_rank(dummies(codes.astype(np.int64)))


def test_codes_order_and_x_order_do_not_matter() -> None:
    codes = panel(40, 6, 2, seed=3)
    x = np.random.default_rng(2).normal(size=(len(codes), 4))
    ref = demean(x, codes).out
    for c in (np.asfortranarray(codes), np.ascontiguousarray(codes), codes.astype(np.int32)):
        for xx in (np.asfortranarray(x), np.ascontiguousarray(x)):
            np.testing.assert_array_equal(demean(xx, c).out, ref)


def test_one_dimensional_and_float32_and_integer_x() -> None:
    codes = panel(20, 5, 2, seed=4)
    rng = np.random.default_rng(3)
    x = rng.normal(size=len(codes))
    r1 = demean(x, codes)
    assert r1.out.shape == x.shape
    np.testing.assert_allclose(r1.out, oracle(x, codes), atol=1e-12)
    x32 = x.astype(np.float32)
    r32 = demean(x32, codes)  # computed in float64 from the float32 values
    assert r32.out.dtype == np.float64
    np.testing.assert_allclose(r32.out, oracle(x32.astype(np.float64), codes), atol=1e-12)
    xi = rng.integers(-5, 5, len(codes))
    np.testing.assert_allclose(demean(xi, codes).out, oracle(xi.astype(float), codes), atol=1e-12)


@pytest.mark.parametrize("order", ["F", "C"])
def test_out_and_in_place(order: str) -> None:
    codes = panel(25, 6, 2, seed=5)
    x = np.array(np.random.default_rng(4).normal(size=(len(codes), 3)), order=order)
    expected = oracle(x, codes)
    out = np.empty(x.shape, order=order)
    res = demean(x, codes, out=out)
    assert res.out is out
    np.testing.assert_allclose(out, expected, atol=1e-12)
    x_copy = x.copy(order=order)
    res = demean(x_copy, codes, out=x_copy)
    assert res.out is x_copy
    np.testing.assert_allclose(x_copy, expected, atol=1e-12)
    assert res.residual < 1e-13  # measured against |out| (the input is gone)


def test_x_is_not_modified_without_out() -> None:
    codes = panel(10, 5, 2, seed=6)
    x = np.random.default_rng(5).normal(size=(len(codes), 2))
    before = x.copy()
    demean(x, codes)
    np.testing.assert_array_equal(x, before)


def test_bad_arguments_name_the_argument() -> None:
    codes = panel(10, 5, 2, seed=7)
    x = np.ones((len(codes), 2))
    with pytest.raises(ValueError, match="out must be"):
        demean(x, codes, out=np.empty(x.shape, dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        demean(x, codes, out=np.empty((len(codes), 3)))
    with pytest.raises(TypeError, match="codes must be an integer array"):
        demean(x, codes.astype(float))
    with pytest.raises(ValueError, match="negative code"):
        demean(x, np.where(np.arange(len(codes))[:, None] == 3, -1, codes))
    with pytest.raises(ValueError, match="ids have"):
        demean(x[:-1], codes)
    with pytest.raises(TypeError, match="x must be a numeric array"):
        demean(np.array(["a"] * len(codes)), codes)
    with pytest.raises(ValueError, match="NaN"):
        demean(np.where(np.arange(len(codes))[:, None] == 2, np.nan, x), codes)


def test_from_codes_assume_dense_is_checked_not_trusted() -> None:
    rng = np.random.default_rng(8)
    codes = panel(20, 5, 2, seed=8) * 3  # gaps: every third code used
    x = rng.normal(size=(len(codes), 2))
    fe_dense = FixedEffects.from_codes(codes, assume_dense=True)
    fe = FixedEffects.from_codes(codes)
    assert [f.n_levels for f in fe_dense.factors] == [f.n_levels for f in fe.factors] == [20, 5]
    np.testing.assert_array_equal(demean(x, fe_dense).out, demean(x, fe).out)
    np.testing.assert_allclose(demean(x, fe).out, oracle(x, codes), atol=1e-12)


def test_prepared_fixed_effects_reuse_the_factorisation_and_never_serve_stale_weights() -> None:
    rng = np.random.default_rng(9)
    codes = panel(60, 8, 3, seed=9)
    fe = FixedEffects.from_codes(codes)
    x = rng.normal(size=(len(codes), 2))
    w1 = rng.uniform(0.5, 2.0, len(codes))
    w2 = w1.copy()
    w2[7] *= 3.0
    r1 = demean(x, fe, w1)
    solver = next(iter(fe.__dict__["_solvers"].values()))[1]
    r1b = demean(x, fe, w1)
    assert next(iter(fe.__dict__["_solvers"].values()))[1] is solver  # reused
    np.testing.assert_array_equal(r1.out, r1b.out)
    r2 = demean(x, fe, w2)  # changed weights: a fresh factorisation
    np.testing.assert_allclose(r2.out, oracle(x, codes, w2), atol=1e-11)
    w1[0] = 100.0  # the caller edits the array in place: detected by content, not identity
    r3 = demean(x, fe, w1)
    np.testing.assert_allclose(r3.out, oracle(x, codes, w1), atol=1e-10)


def test_two_way_cache_for_many_right_hand_sides() -> None:
    codes = panel(200, 90, 2, seed=10)  # 90 periods: the dense Schur assembly
    fe = FixedEffects.from_codes(codes)
    rng = np.random.default_rng(10)
    for _ in range(3):
        x = rng.normal(size=(len(codes), 1))
        np.testing.assert_allclose(demean(x, fe).out, oracle(x, codes), atol=1e-11)
    assert len(fe.__dict__["_solvers"]) == 1


def test_certificate_detects_a_wrong_output() -> None:
    codes = panel(15, 6, 2, seed=11)
    x = np.random.default_rng(11).normal(size=(len(codes), 2)) + 3.0
    res = demean(x, codes)
    res.out[:] = x  # not demeaned at all
    res._residual = None
    assert res.residual > 0.1


def test_n_identified_counts_connected_sets() -> None:
    # two blocks of entities that never share a period: one more unidentified direction
    e = np.repeat(np.arange(6), 4)
    t = np.tile(np.arange(4), 6) + 4 * (e >= 3)
    codes = np.column_stack([e, t])
    res = demean(np.arange(len(e), dtype=float), codes)
    assert res.n_identified == np.linalg.matrix_rank(dummies(codes)) == 6 + 8 - 2


@settings(max_examples=25, deadline=None)
@given(
    n_ent=st.integers(2, 40),
    n_per=st.integers(2, 12),
    k=st.integers(1, 3),
    weighted=st.booleans(),
    offset=st.sampled_from([0.0, 1e8]),
    seed=st.integers(0, 10_000),
)
def test_property_demean_against_the_dummy_oracle(n_ent, n_per, k, weighted, offset, seed) -> None:
    codes = panel(n_ent, n_per, max(k, 2), seed)[:, :k]
    if len(codes) < 2:
        return
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(codes), 2)) + offset
    w = rng.uniform(0.1, 5.0, len(codes)) if weighted else None
    res = demean(x, codes, w)
    np.testing.assert_allclose(res.out, oracle(x, codes, w), rtol=0, atol=1e-10 * max(1.0, offset))
    assert res.residual < 1e-12


def _omp_threads() -> int:
    from fastpanel import _core

    return int(_core.get_num_threads())


def test_threads_restores_and_does_not_leak_to_other_threads() -> None:
    before = _omp_threads()
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker() -> None:
        with threads(1):
            seen["inside"] = (_omp_threads(), fastpanel.get_num_threads())
            inside.set()
            release.wait(10)

    th = threading.Thread(target=worker)
    th.start()
    assert inside.wait(10)
    seen["other"] = (_omp_threads(), fastpanel.get_num_threads())  # this thread, meanwhile
    release.set()
    th.join()
    assert seen["inside"] == (1, 1)
    assert seen["other"][0] == before
    assert _omp_threads() == before
    with pytest.raises(RuntimeError):
        with threads(1):
            assert _omp_threads() == 1
            raise RuntimeError("inside the block")
    assert _omp_threads() == before
    with pytest.raises(ValueError, match="positive integer"):
        with threads(0):
            pass


def test_threads_give_the_same_bits() -> None:
    codes = panel(300, 90, 2, seed=12)
    x = np.random.default_rng(12).normal(size=(len(codes), 3))
    with threads(1):
        one = demean(x, codes).out
    two = demean(x, codes).out
    np.testing.assert_array_equal(one, two)


def test_import_loads_no_heavy_module_and_the_api_is_versioned() -> None:
    code = ("import sys, fastpanel.lowlevel as ll; "
            "print(sorted(m for m in ('numba', 'pandas', 'scipy', 'formulaic', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert API_VERSION[0] == 1 and len(API_VERSION) == 2
    assert fastpanel.lowlevel.demean is demean
