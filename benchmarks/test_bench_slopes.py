"""Varying slopes: fastpanel ``| city + prov[[year]]`` vs pyfixest with the slopes as ``i(prov, year)``
regressors (pyfixest 0.60 has no ``g[x]`` syntax), same group per size.

Design: the issue's case, a trend that differs by province: cities nested in 30 provinces,
20 years, two regressors, CRV1 by city; rows in random order. Both fits give the same
coefficients and standard errors (checked after timing, to 1e-8).
Run: ``pytest benchmarks/test_bench_slopes.py --benchmark-only [-m large]``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fastpanel

SIZES = [
    pytest.param(100_000, id="100k"),
    pytest.param(1_000_000, id="1M", marks=pytest.mark.large),
]
FML_FP = "y ~ x1 + x2 | city + prov[[year]]"
FML_PF = "y ~ x1 + x2 + i(prov, year) | city"


@pytest.fixture(scope="module", params=SIZES)
def data(request) -> pd.DataFrame:
    n = request.param
    rng = np.random.default_rng(7)
    city = rng.integers(0, max(n // 50, 60), n)
    prov = city % 30
    year = rng.integers(2000, 2020, n).astype(float)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = 0.5 * x1 - x2 + 0.1 * np.sin(prov) * (year - 2010) + np.cos(city) + rng.normal(size=n)
    return pd.DataFrame(dict(y=y, x1=x1, x2=x2, city=city, prov=prov, year=year))


def _pyfixest(df):
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(FML_PF, df, vcov={"CRV1": "city"})


def test_fastpanel_slopes(benchmark, data):
    benchmark.group = f"slopes-{len(data)}"
    fastpanel.feols(FML_FP, data, vcov={"CRV1": "city"})  # warm
    res = benchmark(fastpanel.feols, FML_FP, data, vcov={"CRV1": "city"})
    ref = _pyfixest(data)
    np.testing.assert_allclose(res.params.to_numpy(), ref.coef()[["x1", "x2"]].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(res.bse.to_numpy(), ref.se()[["x1", "x2"]].to_numpy(), rtol=1e-6)


def test_pyfixest_interactions(benchmark, data):
    pytest.importorskip("pyfixest")
    benchmark.group = f"slopes-{len(data)}"
    _pyfixest(data)  # warm (numba)
    res = benchmark.pedantic(_pyfixest, args=(data,), rounds=3, iterations=1)
    assert res._N == len(data)
