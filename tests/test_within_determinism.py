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
