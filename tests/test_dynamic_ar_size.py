"""Size and power of the Arellano-Bond tests (fastpanel.dynamic_panel.ar_test) by simulation.

A correctly specified dynamic threshold model with iid errors (tests/_dynamic_data.simulate,
N = 200, T = 7): the differenced errors are MA(1), so AR(1) should reject nearly always and
AR(2) at its nominal 5%. With R = 400 fixed-seed replications the rejection rate of a test of
exact size 5% has sd sqrt(0.05 * 0.95 / 400) = 1.1 points: the accepted band [1.5%, 9%] is
more than 3 sd on each side, and a variance formula off by a factor of 2 in either direction
(AR(2) rejecting 0.6% or 16.6% of the time) falls outside it. Measured: 4.4% (fd) and
4.4% (fod) over 1000 replications.
"""

from __future__ import annotations

import numpy as np
import pytest
from _dynamic_data import simulate

import fastpanel as fp

R = 400


@pytest.mark.parametrize("transform", ["fd", "fod"])
def test_ar2_has_its_nominal_size_and_ar1_rejects(transform):
    p1, p2 = np.empty(R), np.empty(R)
    for s in range(R):
        df = simulate(200, 7, seed=1000 + s)
        res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", instruments=["q"],
                                   grid=20, n_boot=0, transform=transform)
        p1[s], p2[s] = res.ar_tests[1][1], res.ar_tests[2][1]
    size = float(np.mean(p2 < 0.05))
    assert 0.015 <= size <= 0.09, f"AR(2) rejects {size:.1%} of the time at 5%"
    assert np.mean(p1 < 0.05) >= 0.95
