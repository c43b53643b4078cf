"""Fixed-effects OLS: fastpanel vs pyfixest feols vs linearmodels PanelOLS (same group per size).

Model: y on k regressors with entity and time effects, standard errors clustered by entity.
Small sizes run by default; the 10M-row case (1M entities x 10 periods) is marked ``large``.
Run: ``pytest benchmarks/test_bench_ols.py --benchmark-only [-m large]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel

SIZES = [
    pytest.param((1_000, 10, 5), id="10k"),
    pytest.param((10_000, 10, 5), id="100k"),
    pytest.param((336, 6, 9), id="city-336x6"),
    pytest.param((1_000_000, 10, 5), id="10M", marks=pytest.mark.large),
]


def _panel(n_entities: int, n_periods: int, k: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_entities * n_periods
    df = pd.DataFrame(rng.normal(size=(n, k)), columns=[f"x{j}" for j in range(k)])
    df["entity"] = np.repeat(np.arange(n_entities, dtype=np.int64), n_periods)
    df["year"] = np.tile(np.arange(n_periods, dtype=np.int64), n_entities)
    df["y"] = df[[f"x{j}" for j in range(k)]].to_numpy() @ np.linspace(0.5, 1.5, k) + rng.normal(size=n)
    return df


@pytest.fixture(scope="module", params=SIZES)
def case(request):
    n_entities, n_periods, k = request.param
    return request.param, _panel(n_entities, n_periods, k)


def _fml(k: int) -> str:
    return "y ~ " + " + ".join(f"x{j}" for j in range(k)) + " | entity + year"


def test_fastpanel_panelols(benchmark, case):
    (ne, nt, k), df = case
    benchmark.group = f"ols-{ne}x{nt}x{k}"
    X = df[[f"x{j}" for j in range(k)]].to_numpy()
    y, e, t = df.y.to_numpy(), df.entity.to_numpy(), df.year.to_numpy()
    model = fastpanel.PanelOLS(y, X, e, t, time_effects=True)
    model.fit(vcov={"CRV1": "entity"})  # warm (JIT, caches)
    res = benchmark(model.fit, vcov={"CRV1": "entity"})
    assert res.nobs == len(df)


def test_fastpanel_feols(benchmark, case):
    (ne, nt, k), df = case
    benchmark.group = f"ols-{ne}x{nt}x{k}"
    fastpanel.feols(_fml(k), df, vcov={"CRV1": "entity"})
    res = benchmark(fastpanel.feols, _fml(k), df, vcov={"CRV1": "entity"})
    assert res.nobs == len(df)


def test_pyfixest_feols(benchmark, case):
    pf = pytest.importorskip("pyfixest")
    (ne, nt, k), df = case
    benchmark.group = f"ols-{ne}x{nt}x{k}"
    res = benchmark.pedantic(pf.feols, args=(_fml(k), df), kwargs={"vcov": {"CRV1": "entity"}}, rounds=3, warmup_rounds=1)
    assert res._N == len(df)


def test_linearmodels_panelols(benchmark, case):
    lm = pytest.importorskip("linearmodels")
    (ne, nt, k), df = case
    benchmark.group = f"ols-{ne}x{nt}x{k}"
    d = df.set_index(["entity", "year"])
    xs = [f"x{j}" for j in range(k)]

    def run():
        return lm.PanelOLS(d.y, d[xs], entity_effects=True, time_effects=True).fit(cov_type="clustered", cluster_entity=True)

    res = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert res.nobs == len(df)
