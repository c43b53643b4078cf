"""Synthetic province panel: 31 provinces of mainland China, quarterly 2016Q1-2020Q4.

The data are SYNTHETIC. Province names and regions are real; every number comes from the
data-generating process (DGP) below.

Data-generating process (province i, quarter s = 0, ..., 19; natural logs)
-------------------------------------------------------------------------
Economic size        b_i = 8.9 + region_r + N(0, 0.6^2)  (quarterly GDP scale, 1e8 yuan)
Capital (1e8 yuan)   log capital_it = b_i + log 12 + N(0, 0.1^2)_i + 0.025 s + N(0, 0.01^2)_it
Labor (10k persons)  log labor_it   = b_i - log 3 + region adj. + N(0, 0.2^2)_i + 0.003 s + N(0, 0.01^2)_it
Cloud firms (count)  log cloud_firms_it = 4.5 + 0.8 (b_i - 8.9) + 0.05 s + N(0, 0.1^2)_it
Cloud (1e8 yuan)     log cloud_spend_it = log 3 + 1.0 leader_i + N(0, 0.7^2)_i + 0.04 s + N(0, 0.1^2)_it
Storage (PB)         leaders (Guizhou, Inner Mongolia, Hebei, Guangdong), crossing quarter c_i
                     in (2, 5, 8, 11): log storage_it = log gamma + 0.06 (s - c_i + 0.5);
                     the 27 others: log storage_it = log gamma - U(0.3, 2.0)_i + 0.04 (s - 19)
                     + N(0, 0.02^2)_it, so they stay below gamma throughout.
GDP (1e8 yuan)       log gdp_it = alpha + mu_i + 0.35 log capital_it + 0.55 log labor_it
                                  + 0.02 log cloud_firms_it
                                  + (0.045 + 0.033 1[storage_it > gamma]) log cloud_spend_it + e_it,
                     mu_i ~ N(0, 0.05^2), e_it ~ N(0, 0.01^2), gamma = 50 PB.

Four provinces are above the storage threshold by 2020Q4; the cloud-spending elasticity rises
from 0.045 to 0.078 above it. There are no separate period effects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastpanel.datasets._geography import PROVINCES

__all__ = ["province_quarterly", "province_quarterly_params"]

_REGION_SIZE = {"east": 0.6, "central": 0.0, "west": -0.7}
_LABOR_ADJ = {"east": -0.2, "central": 0.0, "west": 0.25}
_LEADERS = {"Guizhou": 2, "Inner Mongolia": 5, "Hebei": 8, "Guangdong": 11}
_GAMMA = 50.0
_BETA = {"log_capital": 0.35, "log_labor": 0.55, "log_cloud_firms": 0.02}
_DELTA_LOW, _DELTA_HIGH = 0.045, 0.078
_ALPHA = 0.48
_SIGMA_E, _SIGMA_MU = 0.01, 0.05
_N_QUARTERS = 20


def province_quarterly_params() -> dict[str, Any]:
    """True parameters of :func:`province_quarterly`'s data-generating process.

    Returns
    -------
    dict
        ``beta`` (coefficients of log capital, log labor, log cloud_firms), ``alpha``,
        ``threshold`` (gamma on ``storage``, PB), ``log_threshold``, ``cloud_elasticity``
        ``(low, high)``, ``provinces_above_at_end`` (the four provinces above gamma in 2020Q4),
        ``sigma_e``, ``sigma_mu`` and ``synthetic`` (always True).
    """
    return {
        "synthetic": True,
        "alpha": _ALPHA,
        "beta": dict(_BETA),
        "threshold": _GAMMA,
        "log_threshold": float(np.log(_GAMMA)),
        "threshold_var": "storage",
        "regime_var": "log_cloud_spend",
        "cloud_elasticity": (_DELTA_LOW, _DELTA_HIGH),
        "provinces_above_at_end": tuple(sorted(_LEADERS)),
        "sigma_e": _SIGMA_E,
        "sigma_mu": _SIGMA_MU,
        "period_effects": 0.0,
    }


def province_quarterly(seed: int = 0) -> pd.DataFrame:
    """Synthetic quarterly panel of the 31 provinces, 2016Q1-2020Q4 (620 rows). SYNTHETIC DATA.

    Parameters
    ----------
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed always gives the same data.

    Returns
    -------
    pandas.DataFrame
        Columns ``province, region, year, quarter, period, gdp, cloud_spend, cloud_firms,
        storage, labor, capital``, sorted by province then period. ``period`` is a string such
        as ``"2016Q1"``. Units: gdp, capital, cloud_spend in 1e8 yuan (gdp per quarter),
        labor in 10k persons, storage in PB, cloud_firms a count. ``.attrs`` holds
        ``synthetic=True``, a ``description``, the ``dgp`` text and ``true_params`` (see
        :func:`province_quarterly_params`).

    Notes
    -----
    The data-generating process is documented in the module docstring
    (``fastpanel.datasets.province``): the cloud-spending elasticity rises from 0.045 to 0.078
    once storage exceeds 50 PB, which four provinces pass during the sample.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    rng = np.random.default_rng(seed)
    names = [p for p, _, _ in PROVINCES]
    regions = np.array([r for _, r, _ in PROVINCES])
    n, n_q = len(names), _N_QUARTERS
    s = np.arange(n_q, dtype=np.float64)[None, :]
    leader = np.array([p in _LEADERS for p in names], dtype=np.float64)

    size = 8.9 + np.array([_REGION_SIZE[r] for r in regions]) + rng.normal(0.0, 0.6, n)
    log_capital = (size + np.log(12.0) + rng.normal(0.0, 0.1, n))[:, None] + 0.025 * s \
        + rng.normal(0.0, 0.01, (n, n_q))
    log_labor = (size - np.log(3.0) + np.array([_LABOR_ADJ[r] for r in regions])
                 + rng.normal(0.0, 0.2, n))[:, None] + 0.003 * s + rng.normal(0.0, 0.01, (n, n_q))
    # Firms are a count: the DGP uses the log of the rounded, observed count.
    firms = np.rint(np.exp((4.5 + 0.8 * (size - 8.9))[:, None] + 0.05 * s
                           + rng.normal(0.0, 0.1, (n, n_q))))
    log_firms = np.log(firms)
    log_cloud = (np.log(3.0) + 1.0 * leader + rng.normal(0.0, 0.7, n))[:, None] + 0.04 * s \
        + rng.normal(0.0, 0.1, (n, n_q))
    offsets = rng.uniform(0.3, 2.0, n)
    log_storage = (np.log(_GAMMA) - offsets)[:, None] + 0.04 * (s - (n_q - 1)) \
        + rng.normal(0.0, 0.02, (n, n_q))
    for i, name in enumerate(names):
        if name in _LEADERS:
            log_storage[i] = np.log(_GAMMA) + 0.06 * (s[0] - _LEADERS[name] + 0.5)

    above = log_storage > np.log(_GAMMA)
    log_gdp = (_ALPHA + rng.normal(0.0, _SIGMA_MU, n)[:, None]
               + _BETA["log_capital"] * log_capital + _BETA["log_labor"] * log_labor
               + _BETA["log_cloud_firms"] * log_firms
               + np.where(above, _DELTA_HIGH, _DELTA_LOW) * log_cloud
               + rng.normal(0.0, _SIGMA_E, (n, n_q)))

    years = 2016 + np.arange(n_q) // 4
    quarters = 1 + np.arange(n_q) % 4
    frame = pd.DataFrame({
        "province": np.repeat(names, n_q),
        "region": np.repeat(regions, n_q),
        "year": np.tile(years.astype(np.int64), n),
        "quarter": np.tile(quarters.astype(np.int64), n),
        "period": np.tile([f"{y}Q{q}" for y, q in zip(years, quarters)], n),
        "gdp": np.exp(log_gdp).ravel(),
        "cloud_spend": np.exp(log_cloud).ravel(),
        "cloud_firms": firms.ravel().astype(np.int64),
        "storage": np.exp(log_storage).ravel(),
        "labor": np.exp(log_labor).ravel(),
        "capital": np.exp(log_capital).ravel(),
    })
    frame.attrs.update({
        "synthetic": True,
        "name": "province_quarterly",
        "seed": int(seed),
        "description": ("SYNTHETIC data generated by fastpanel.datasets.province_quarterly "
                        f"(seed={seed}): 31 Chinese provinces x 2016Q1-2020Q4; real province "
                        "names, simulated numbers with known true parameters."),
        "dgp": __doc__,
        "true_params": province_quarterly_params(),
    })
    return frame
