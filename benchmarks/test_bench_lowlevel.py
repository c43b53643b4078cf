"""fastpanel.lowlevel: what a prepared FixedEffects saves, and the import cost.

Groups:

* ``lowlevel-irls-<design>``: ten weighted demeans of a (n, 4) matrix, the inner loop of an IRLS
  fit (Poisson, GLM: the weights change every iteration), fastpanel from the codes every call
  (``codes``) against one ``FixedEffects.from_codes`` reused (``prepared``), and pyfixest's
  ``demean`` (its codes are given, not timed) as the peer.
* ``lowlevel-rhs-<design>``: ten unweighted demeans of one column each with the same fixed
  effects (many right-hand sides): ``prepared`` also reuses the Schur factorisation.
* ``lowlevel-import``: ``import fastpanel.lowlevel`` in a fresh interpreter that has NumPy
  loaded already (the state of a library importing it), against ``import numpy`` itself.

Designs: ``twoway`` 20k entities x 50 periods (20% of cells missing, rows shuffled), ``threeway``
the same plus a 50-level third dimension. Small enough for the CI smoke run.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastpanel import FixedEffects
from fastpanel.lowlevel import demean

N_CALLS = 10


def _codes(design: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    e = np.repeat(np.arange(20_000), 50)
    t = np.tile(np.arange(50), 20_000)
    keep = rng.random(e.size) > 0.2
    cols = [e[keep], t[keep]]
    if design == "threeway":
        cols.append(rng.integers(0, 50, keep.sum()))
    codes = np.column_stack(cols)
    return codes[rng.permutation(len(codes))]


@pytest.fixture(scope="module", params=["twoway", "threeway"])
def data(request):
    codes = _codes(request.param)
    rng = np.random.default_rng(8)
    X = np.asfortranarray(rng.normal(size=(len(codes), 4)))
    weights = [rng.uniform(0.5, 2.0, len(codes)) for _ in range(N_CALLS)]
    return request.param, codes, X, weights


@pytest.mark.parametrize("how", ["codes", "prepared", "pyfixest"])
def test_irls_loop(benchmark, data, how: str) -> None:
    design, codes, X, weights = data
    benchmark.group = f"lowlevel-irls-{design}"
    benchmark.extra_info.update(n=len(codes), calls=N_CALLS)
    if how == "pyfixest":
        from pyfixest.core import demean as pf_demean

        flist = codes.astype(np.uint64)

        def run():
            for w in weights:
                pf_demean(X, flist, w, 1e-8, 100_000)
    elif how == "codes":
        def run():
            for w in weights:
                demean(X, codes, w)
    else:
        def run():
            fe = FixedEffects.from_codes(codes)  # the factorisation, once per loop (timed)
            for w in weights:
                demean(X, fe, w)
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("how", ["codes", "prepared", "pyfixest"])
def test_many_right_hand_sides(benchmark, data, how: str) -> None:
    design, codes, X, _ = data
    benchmark.group = f"lowlevel-rhs-{design}"
    benchmark.extra_info.update(n=len(codes), calls=N_CALLS)
    cols = [np.ascontiguousarray(X[:, j % X.shape[1]]) for j in range(N_CALLS)]
    if how == "pyfixest":
        from pyfixest.core import demean as pf_demean

        flist = codes.astype(np.uint64)
        ones = np.ones(len(codes))

        def run():
            for c in cols:
                pf_demean(c[:, None], flist, ones, 1e-8, 100_000)
    elif how == "codes":
        def run():
            for c in cols:
                demean(c, codes)
    else:
        def run():
            fe = FixedEffects.from_codes(codes)
            for c in cols:
                demean(c, fe)
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("module", ["fastpanel.lowlevel", "numpy"])
def test_import_time(benchmark, module: str) -> None:
    """Wall time of the import in a fresh interpreter, measured inside it (NumPy preloaded for
    fastpanel.lowlevel); the benchmark's own time includes interpreter start-up and means nothing."""
    benchmark.group = "lowlevel-import"
    pre = "import numpy; " if module != "numpy" else ""
    code = f"{pre}import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []

    def run():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        times.append(float(out))

    benchmark.pedantic(run, rounds=5, iterations=1)
    benchmark.extra_info["import_s_min"] = min(times)
    benchmark.extra_info["import_s_median"] = float(np.median(times))
