"""Monte Carlo properties of the dynamic panel threshold estimator (slow: ``-m slow``).

Design (after Seo and Shin 2016, section 5, and Seo, Kim and Kim 2019's simulation): T = 10
observed periods after a burn-in, entity effects a_i ~ N(0, 1), x_it and q_it ~ N(0, 1), e ~ N(0, 1),

    y_it = (0.6 y_i,t-1 + 1.0 x_it) 1{q_it <= 0} + (2 + 0.2 y_i,t-1 - 0.5 x_it) 1{q_it > 0} + a_i + e_it,

estimated by first-differenced two-step GMM with lagged levels of y (t-2 back), a constant and
the differenced x per period, and the (exogenous) threshold variable in levels as instruments.
The exact parameter tables of the paper were not available here, so the design follows its
structure (a dynamic panel with an intercept and slope change) rather than its numbers.
With q independent of everything else, linear instruments identify the regime terms weakly:
E[y_i,t-2 (1{q_it > g} - 1{q_i,t-1 > g})] = 0, and Dx is proportional in its moments for the
common and the regime slope of x. The exogenous q and x*q are therefore added as
instruments (levels); the regime slope of y_t-1 stays the least well identified (its RMSE
falls slowest, and the threshold's with it).

* Consistency: bias and RMSE of the threshold and of every slope shrink from N = 200 to 800
  to 3200 (Seo and Shin 2016, Theorems 1-2: sqrt(N) rates).
* Size: without a regime effect (the same design, second regime equal to the first), N = 200,
  level instruments limited to lags 2-3 (max_lag=3: 39 instruments; with every lag the 54
  instruments for 200 entities make the two-step Wald over-reject, Windmeijer 2005), the
  fast-bootstrap sup-Wald test at 5% rejects in 3%..8% of the samples.
"""

from __future__ import annotations

import numpy as np
import pytest
from _dynamic_data import simulate

import fastpanel as fp

pytestmark = pytest.mark.slow

TRUTH = {"L1.y": 0.6, "x": 1.0, "shift:const": 2.0, "shift:L1.y": -0.4, "shift:x": -1.5, "threshold": 0.0}


def test_bias_and_rmse_shrink_as_n_grows():
    reps = {200: 60, 800: 40, 3200: 25}
    rmse, bias = {}, {}
    for N, R in reps.items():
        est = []
        for r in range(R):
            df = simulate(N, 10, seed=1000 * N + r, shift=2.0, upper=(0.2, -0.5))
            df["xq"] = df.x * df.q
            res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q",
                                       instruments=["q", "xq"], max_lag=3, grid=np.linspace(-0.8, 0.8, 81), n_boot=0)
            est.append([res.params[k] for k in TRUTH])
        err = np.array(est) - np.array(list(TRUTH.values()))
        rmse[N] = np.sqrt((err ** 2).mean(axis=0))
        bias[N] = np.abs(err.mean(axis=0))
    print({N: dict(zip(TRUTH, np.round(v, 3))) for N, v in rmse.items()})
    print({N: dict(zip(TRUTH, np.round(v, 3))) for N, v in bias.items()})
    # every parameter: smaller RMSE at 3200 than at 200, and the average RMSE falls at each step
    assert np.all(rmse[3200] < rmse[200])
    assert rmse[800].mean() < rmse[200].mean()
    assert rmse[3200].mean() < rmse[800].mean()
    assert np.all(bias[3200] < rmse[200])


def test_linearity_test_size():
    rejections, R = 0, 300
    for r in range(R):
        df = simulate(200, 10, seed=77_000 + r, linear=True)
        res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", instruments=["q"],
                                   max_lag=3, grid=np.linspace(-0.8, 0.8, 41), n_boot=199, seed=r)
        rejections += res.linearity_test.pvalue < 0.05
    share = rejections / R
    print("rejection rate at 5%:", share)
    assert 0.03 <= share <= 0.08
