"""Arellano and Bond's (1991) test of serial correlation in the differenced residuals, for the
dynamic panel threshold model at its estimate.

Algorithm
---------
With level residuals e_r (entity effects removed by differencing), first differences
de_t = e_t - e_(t-1) on consecutive periods of an entity and their order-j lags w_t = de_(t-j)
(zero where missing), the statistic is (Arellano and Bond 1991, eq. 8)

    m_j = sum_i s_i / sqrt(v),    s_i = sum_t w_it de_it,

where v accounts for the estimation of theta: to first order sum_i s_i(theta_hat) =
sum_i [s_i - D M g_i / N] with D = d(sum w'de)/d theta (w held fixed), M = (G'WG)^-1 G'W
the estimator's influence (G = d gbar / d theta, W its weight) and g_i the entity moments, so

    v = sum_i (s_i - D M g_i / N)^2.

Expanding the square gives Arellano and Bond's three terms. Everything is conditional on the
estimated threshold (its regime regressors are treated as given). m_j is asymptotically N(0, 1)
under no order-j serial correlation of the differenced errors: AR(1) is expected to reject
(de_t and de_(t-1) share e_(t-1)), AR(2) tests the instruments' validity. No Windmeijer (2005)
correction enters M's variance (xtabond2 applies one to two-step robust estimates), so its
numbers can differ from xtabond2's for the same model.

Cost: O(n_r p + N L p) once per order.

Naming: ``_r`` level rows (sorted by entity, period), ``p`` parameters, ``L`` instruments.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from fastpanel.dynamic_panel.gmm import GMMEngine

__all__ = ["arellano_bond"]


def arellano_bond(eng: GMMEngine, theta: np.ndarray, g: float, Pw: np.ndarray,
                  orders: tuple[int, ...] = (1, 2)) -> dict[int, tuple[float, float]]:
    """``{j: (m_j, two-sided normal p-value)}`` at the estimate ``(theta, g)`` of weight
    ``Pw'Pw`` (NaN where no entity has an order-j pair of differenced residuals)."""
    d = eng.d
    e = eng.residuals(theta[None], np.array([g]))[:, 0]
    J = -np.column_stack([d.X, eng.regime_columns(g)])  # d e_r / d theta
    ent, per = d.entity, d.period
    same = np.r_[False, (ent[1:] == ent[:-1]) & (per[1:] == per[:-1] + 1)]  # row has its predecessor
    eq = np.flatnonzero(same)
    de = e[eq] - e[eq - 1]
    dJ = J[eq] - J[eq - 1]
    # position of each equation by (entity, period) for the lag lookups
    key = ent[eq].astype(np.int64) * (int(per.max()) + 2) + per[eq]
    Mi = eng.entity_moments(e[:, None])[0]  # (N, L) g_i at the estimate
    Gw = Pw @ -eng.jacobian_at(g)
    infl = np.linalg.lstsq(Gw.T @ Gw, Gw.T, rcond=None)[0] @ Pw  # M = (G'WG)^-1 G'W
    out: dict[int, tuple[float, float]] = {}
    for j in orders:
        pos = np.searchsorted(key, key - j)
        pos = np.minimum(pos, key.size - 1)
        has = key[pos] == key - j
        w = np.where(has, de[pos], 0.0)
        s = np.bincount(ent[eq], weights=w * de, minlength=eng.N)
        if not has.any():
            out[j] = (float("nan"), float("nan"))
            continue
        D = w @ dJ
        adj = Mi @ (infl.T @ D) / eng.N  # (D M g_i / N) per entity
        v = float(np.sum((s - adj) ** 2))
        m = float(s.sum() / np.sqrt(v)) if v > 0 else float("nan")
        out[j] = (m, float(2 * stats.norm.sf(abs(m))) if np.isfinite(m) else float("nan"))
    return out
