"""Monte Carlo properties of the threshold test and estimator (slow: run with ``-m slow``).

* Size: data generated without a threshold; the bootstrap F1 test at 5% must reject in
  3%..7% of the samples (Hansen 1999, Theorem 2: the bootstrap p-value is asymptotically
  uniform under the null).
* Consistency: with a real threshold the estimate's error shrinks as the panel grows
  (Hansen 1999, Theorem 1).

The data-generating processes are written here, independently of the package.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastpanel

pytestmark = pytest.mark.slow


def _panel(rng: np.random.Generator, n_entities: int, n_periods: int, jump: float, gamma: float = 0.0):
    n = n_entities * n_periods
    entity = np.repeat(np.arange(n_entities), n_periods)
    time = np.tile(np.arange(n_periods), n_entities)
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    q = rng.normal(size=n)
    alpha = rng.normal(size=n_entities)[entity]
    y = alpha + 0.5 * x + z * (1.0 + jump * (q > gamma)) + rng.normal(size=n)
    return y, x, z, q, entity, time


def test_bootstrap_size_under_no_threshold():
    rng = np.random.default_rng(20261122)
    n_mc, rejections = 600, 0
    for rep in range(n_mc):
        y, x, z, q, entity, time = _panel(rng, 40, 5, jump=0.0)
        res = fastpanel.ThresholdPanel(y, x, z, q, entity, time).fit(
            1, n_boot=199, grid=50, trim=0.1, bootstrap="wild", seed=rep, progress=False
        )
        rejections += bool(res.tests["pvalue"].iloc[0] < 0.05)
    rate = rejections / n_mc
    assert 0.03 <= rate <= 0.07, f"rejection rate {rate:.3f} outside [0.03, 0.07]"


def test_threshold_estimate_is_consistent():
    rng = np.random.default_rng(7)
    errors = {}
    for n_entities in (25, 100, 400):
        errs = []
        for _ in range(40):
            y, x, z, q, entity, time = _panel(rng, n_entities, 5, jump=1.0, gamma=0.3)
            res = fastpanel.ThresholdPanel(y, x, z, q, entity, time).fit(
                1, n_boot=0, grid="exact", trim=0.05, progress=False
            )
            errs.append(abs(float(res.thresholds[0]) - 0.3))
        errors[n_entities] = float(np.median(errs))
    # Hansen's rate is n^-1: quadrupling n should shrink the error clearly at each step.
    assert errors[100] < 0.6 * errors[25], errors
    assert errors[400] < 0.6 * errors[100], errors
    assert errors[400] < 0.01, errors
