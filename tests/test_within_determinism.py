"""Two-way within is bitwise reproducible: the same bits for any thread count and under
concurrent calls (fixed chunks of groups, combined in a fixed order; repro_threads_bitwise)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastpanel


@pytest.mark.parametrize("weighted", [False, True])
def test_two_way_within_same_bits_for_any_thread_count(weighted) -> None:
    rng = np.random.default_rng(3)
    N, T = 40_000, 8  # above the kernels' parallel threshold
    f = np.repeat(np.arange(N), T)
    t = np.tile(np.arange(T), N)
    keep = rng.uniform(size=N * T) > 0.15
    f, t = f[keep], t[keep]
    X = rng.normal(size=(f.size, 3)) * 1e3 + 5.0
    w = rng.uniform(0.5, 2.0, f.size) if weighted else None
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        one = fastpanel.within(X, [f, t], weights=w, backend="cpp")
        for k in (2, 3, 4):
            fastpanel.set_num_threads(k)
            assert np.array_equal(fastpanel.within(X, [f, t], weights=w, backend="cpp"), one)
        fastpanel.set_num_threads(2)
        with ThreadPoolExecutor(4) as ex:
            outs = list(ex.map(lambda _: fastpanel.within(X, [f, t], weights=w, backend="cpp"), range(8)))
        assert all(np.array_equal(o, one) for o in outs)
    finally:
        fastpanel.set_num_threads(before)


def test_ols_gram_same_bits_for_any_thread_count_and_matches_numpy() -> None:
    """The fused column-sum / Z'Z kernel behind every OLS fit: fixed row chunks added in a fixed
    order, so the bits do not depend on the threads; against NumPy's sums within the bound of
    a sum of n products, |error| <= n * eps * sum_i |z_ia z_ib| (no tolerance tuned by hand)."""
    _core = pytest.importorskip("fastpanel._core")
    rng = np.random.default_rng(7)
    n, m = 300_001, 6  # not a multiple of the kernel's 512-row blocks or its 8 lanes
    Z = np.asfortranarray(rng.normal(size=(n, m)) * np.array([1.0, 1e3, 1e-3, 1.0, 5.0, 1e8]) + 3.0)
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        s1, c1 = _core.ols_gram(Z)
        for k in (2, 3, 4):
            fastpanel.set_num_threads(k)
            s, c = _core.ols_gram(Z)
            assert np.array_equal(s, s1) and np.array_equal(c, c1)
    finally:
        fastpanel.set_num_threads(before)
    assert np.array_equal(c1, c1.T)
    eps = np.finfo(float).eps
    A = np.abs(Z)
    assert (np.abs(c1 - Z.T @ Z) <= n * eps * (A.T @ A)).all()
    assert (np.abs(s1 - Z.sum(axis=0)) <= n * eps * A.sum(axis=0)).all()
    # empty and tiny inputs take the same path
    s0, c0 = _core.ols_gram(np.zeros((0, 3), order="F"))
    assert np.array_equal(s0, np.zeros(3)) and np.array_equal(c0, np.zeros((3, 3)))
    z = np.asfortranarray(rng.normal(size=(5, 2)))
    s5, c5 = _core.ols_gram(z)
    assert (np.abs(c5 - z.T @ z) <= 5 * eps * (np.abs(z).T @ np.abs(z))).all()
    assert (np.abs(s5 - z.sum(axis=0)) <= 5 * eps * np.abs(z).sum(axis=0)).all()
