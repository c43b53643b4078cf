"""Hansen (1999) threshold analysis: fastpanel's one-sweep engine vs per-grid-point OLS.

Both sides run the same sequential estimation (three thresholds, 393-point grid) on Hansen's
data; the naive peer rebuilds and re-solves the regression at every grid point, as xthreg,
pdR and Hansen's GAUSS code do. Per-draw ratio = naive time of one sequential estimation /
fastpanel time per bootstrap draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastpanel
from fastpanel.kernels.threshold_reference import sequence_naive
from fastpanel.panel_threshold.grid import candidate_grid
from fastpanel.panel_threshold.transform import PanelTransform

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hansen1999" / "invest.dat"


@pytest.fixture(scope="module")
def hansen():
    if not DATA.exists():
        pytest.skip(f"Hansen (1999) data not found at {DATA}")
    d = np.loadtxt(DATA).reshape(565, 15, 4)
    y = d[:, 1:, 0].ravel()
    Q, CF, D = (d[:, :-1, j].ravel() for j in (1, 2, 3))
    X = np.column_stack([Q, Q**2 / 1e3, Q**3 / 1e6, D, Q * D])
    ent = np.repeat(np.arange(565), 14)
    year = np.tile(np.arange(1974, 1988), 565)
    model = fastpanel.ThresholdPanel(y, X, CF, D, ent, year, conventions="hansen1999")
    model.fit(3, n_boot=2, trim=(0.01, 0.01, 0.05), seed=0, progress=False)  # JIT, caches
    return model


@pytest.mark.benchmark(group="threshold-hansen1999-per-draw")
def test_fastpanel_full_analysis_300(benchmark, hansen):
    """Full analysis: 3 thresholds, 300 draws per test (900 sequential estimations)."""
    res = benchmark.pedantic(hansen.fit, args=(3,), kwargs=dict(
        n_boot=300, trim=(0.01, 0.01, 0.05), seed=1, progress=False),
        rounds=3, iterations=1)
    benchmark.extra_info["library"] = "fastpanel"
    benchmark.extra_info["backend"] = res.backend
    benchmark.extra_info["draws"] = 900
    if benchmark.stats is not None:  # absent under --benchmark-disable
        benchmark.extra_info["seconds_per_draw"] = benchmark.stats.stats.min / 900
    assert res.tests["F"].round(1).tolist() == [32.6, 25.8, 4.2]


@pytest.mark.benchmark(group="threshold-hansen1999-per-draw")
def test_naive_one_sequential_estimation(benchmark, hansen):
    """One draw of the naive peer: the 3-threshold sequence with per-grid-point OLS."""
    tr = PanelTransform(hansen.entity_codes, hansen.time_codes, drop_last=True, time_effects=False)
    cand = candidate_grid(hansen.q, 0.01, 400)
    B = np.column_stack([hansen.X, hansen.Z])
    yt = tr.apply(hansen.y)
    out = benchmark.pedantic(sequence_naive, args=(tr.apply, yt, B, hansen.Z, hansen.q, cand, 3, (0, 4, 20)),
                             kwargs=dict(strict=True), rounds=1, iterations=1)
    # One naive draw = one sequential estimation: its time is the naive per-draw time.
    benchmark.extra_info["library"] = "naive"
    benchmark.extra_info["draws"] = 1
    assert out["1"][0] == int(np.searchsorted(cand, 0.0157))


@pytest.mark.large
@pytest.mark.benchmark(group="threshold-1M-exact-wild300")
def test_fastpanel_1m_exact_grid_wild_300(benchmark):
    """100,000 entities x 10 periods, 5 regressors, one threshold, exact grid, 300 wild draws."""
    rng = np.random.default_rng(0)
    n_entities, n_periods, k = 100_000, 10, 5
    n = n_entities * n_periods
    entity = np.repeat(np.arange(n_entities), n_periods)
    time = np.tile(np.arange(n_periods), n_entities)
    X = rng.normal(size=(n, k))
    z, q = rng.normal(size=n), rng.uniform(size=n)
    y = X @ np.linspace(0.5, 1.5, k) + z * (0.5 + 0.3 * (q > 0.5)) + rng.normal(size=n_entities)[entity] + rng.normal(size=n)
    model = fastpanel.ThresholdPanel(y, X, z, q, entity, time)
    res = benchmark.pedantic(model.fit, args=(1,), kwargs=dict(
        n_boot=300, grid="exact", bootstrap="wild", seed=1, progress=False), rounds=1, iterations=1)
    benchmark.extra_info["library"] = "fastpanel"
    benchmark.extra_info["backend"] = res.backend
    benchmark.extra_info["candidates"] = int(res.lr_curve(1)[0].shape[0])
    assert abs(float(res.thresholds[0]) - 0.5) < 0.01
