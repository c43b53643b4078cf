"""Synthetic city panel: 336 Chinese prefecture-level cities, 2017-2022.

The data are SYNTHETIC. Province names, macro-regions and the 13 national computing-hub cities
are real; every number is drawn from the data-generating process (DGP) below, so each of the
three standard analyses run on it has a known answer.

Data-generating process (city i, year t, s = t - 2017; logs are natural logs)
----------------------------------------------------------------------------
Economic size      b_i   = 7.6 + region_r + province_p + N(0, 0.6^2)  (+1.8 for municipalities)
                   b_it  = b_i + (0.07 + N(0, 0.01^2)) s
Controls           log X_k,it = b_it + r_k + region adj._k + u_ik + N(0, 0.05^2),  u_ik ~ N(0, s_k^2)
                   X_k in peo, fin, fou, invest, retail, agri, indus, inex
Computing (PFLOPS) log computing_it = 2.0 + 0.9 (b_i - 7.6) + 1.0 pivot_i + 0.22 s + N(0, 0.5^2)_i
                                      + N(0, 0.2^2)_it
Storage (PB)       log storage_it   = log 15 + N(0, 0.9^2)_i + (0.20 + N(0, 0.08^2)_i) s + N(0, 0.05^2)_it
Cloud (1e8 yuan)   log cloud_spend_it = log 2 + N(0, 0.8^2)_i + 0.18 s + N(0, 0.15^2)_it
GDP (1e8 yuan)     log gdp_it = alpha + mu_i + sum_k beta_k log X_k,it + beta_c log computing_it
                                + beta_pc pivot_i log computing_it + beta_p pivot_i
                                + (delta_1 + (delta_2 - delta_1) 1[storage_it > gamma]) log cloud_spend_it
                                + e_it,   mu_i ~ N(0, 0.03^2),  e_it ~ N(0, 0.02^2)

with beta_c = 0.04 (the GDP elasticity of computing outside the hubs), beta_pc = 0.05 (extra
elasticity in hub cities), beta_p = 0.02, delta_1 = 0.045, delta_2 = 0.078 and gamma = 40 PB.
There are no separate year effects: common growth enters through the regressors.

Storage and cloud spending are drawn independently of city size, of the controls and of the
hub dummy. That is what makes every analysis exactly specified: the two-way fixed-effects
regression (which leaves out the threshold term) and the per-year cross-sections (which leave
out the city effect mu_i and the threshold term) have omitted terms independent of their
regressors, so their slopes are unbiased for the beta above; the threshold model with city
effects is the DGP itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastpanel.datasets._geography import HUB_CITIES, PROVINCES

__all__ = ["city_panel", "city_panel_params", "CITY_CONTROLS"]

YEARS = tuple(range(2017, 2023))
CITY_CONTROLS = ("peo", "fin", "fou", "invest", "retail", "agri", "indus", "inex")

_REGION_SIZE = {"east": 0.5, "central": 0.0, "west": -0.5}
_MUNICIPALITIES = {"Beijing", "Tianjin", "Shanghai", "Chongqing"}
# control: (elasticity beta_k, log ratio to GDP r_k, {region: adjustment}, city spread s_k)
_CONTROLS: dict[str, tuple[float, float, dict[str, float], float]] = {
    "peo": (0.20, float(np.log(1 / 6)), {"east": -0.2, "west": 0.3}, 0.20),  # 10k persons
    "fin": (0.08, float(np.log(0.15)), {"west": 0.3}, 0.25),  # 1e8 yuan
    "fou": (0.02, float(np.log(0.003)), {"east": 0.8, "west": -1.0}, 0.80),  # 1e8 USD
    "invest": (0.25, float(np.log(0.7)), {}, 0.25),  # 1e8 yuan
    "retail": (0.20, float(np.log(0.4)), {}, 0.20),  # 1e8 yuan
    "agri": (0.05, float(np.log(0.08)), {"east": -0.4, "west": 0.5}, 0.40),  # 1e8 yuan
    "indus": (0.15, float(np.log(0.33)), {"west": -0.2}, 0.25),  # 1e8 yuan
    "inex": (0.03, float(np.log(0.02)), {"east": 1.0, "west": -1.2}, 0.70),  # 1e8 USD
}
_BETA_COMPUTING = 0.04
_BETA_PIVOT_X_COMPUTING = 0.05
_BETA_PIVOT = 0.02
_DELTA_LOW, _DELTA_HIGH = 0.045, 0.078
_GAMMA_STORAGE = 40.0
_SIGMA_E, _SIGMA_MU = 0.02, 0.03
# Intercept chosen so that log GDP is close to the size index b_it (about 7.9 on average).
_ALPHA = round(
    7.9 * (1 - sum(v[0] for v in _CONTROLS.values()))
    - sum(v[0] * v[1] for v in _CONTROLS.values())
    - _BETA_COMPUTING * 2.5
    - _DELTA_LOW * float(np.log(2.0)),
    4,
)


def city_panel_params() -> dict[str, Any]:
    """True parameters of :func:`city_panel`'s data-generating process.

    Returns
    -------
    dict
        ``beta`` (coefficients of the log-GDP equation by regressor name: ``log_computing``,
        ``log_computing:pivot``, ``pivot`` and ``log_<control>``), ``alpha`` (intercept),
        ``threshold`` (gamma on ``storage``, in PB; the log is ``log_threshold``),
        ``cloud_elasticity`` (``(low, high)``: below / above the threshold), ``sigma_e``,
        ``sigma_mu`` and ``synthetic`` (always True).
    """
    beta = {"log_computing": _BETA_COMPUTING, "log_computing:pivot": _BETA_PIVOT_X_COMPUTING,
            "pivot": _BETA_PIVOT}
    beta.update({f"log_{k}": v[0] for k, v in _CONTROLS.items()})
    return {
        "synthetic": True,
        "alpha": _ALPHA,
        "beta": beta,
        "threshold": _GAMMA_STORAGE,
        "log_threshold": float(np.log(_GAMMA_STORAGE)),
        "threshold_var": "storage",
        "regime_var": "log_cloud_spend",
        "cloud_elasticity": (_DELTA_LOW, _DELTA_HIGH),
        "sigma_e": _SIGMA_E,
        "sigma_mu": _SIGMA_MU,
        "year_effects": 0.0,
    }


def _city_frame() -> pd.DataFrame:
    rows = []
    for province, region, n_cities in PROVINCES:
        hubs = HUB_CITIES.get(province, ())
        for j in range(n_cities):
            if j < len(hubs):
                name = hubs[j]
            elif n_cities == 1:
                name = province
            else:
                name = f"{province}-{j + 1:02d}"
            rows.append((name, province, region, int(j < len(hubs))))
    return pd.DataFrame(rows, columns=["city", "province", "region", "pivot"])


def city_panel(seed: int = 0) -> pd.DataFrame:
    """Synthetic panel of 336 Chinese cities, 2017-2022 (2,016 rows). SYNTHETIC DATA.

    Parameters
    ----------
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed always gives the same data.

    Returns
    -------
    pandas.DataFrame
        Columns ``city, province, region, year, gdp, computing, peo, fin, fou, invest, retail,
        agri, indus, inex, storage, cloud_spend, pivot``, sorted by city then year. Units:
        gdp, fin, invest, retail, agri, indus, cloud_spend in 1e8 yuan; fou, inex in 1e8 USD;
        peo in 10k persons; computing in PFLOPS; storage in PB; pivot is 1 for the 13
        national computing-hub cities. ``.attrs`` holds ``synthetic=True``, a ``description``,
        the ``dgp`` text and ``true_params`` (see :func:`city_panel_params`).

    Notes
    -----
    The data-generating process is documented in this module's docstring
    (``fastpanel.datasets.city``). Its three known answers: a GDP elasticity of computing of
    0.04 (0.09 in hub cities), a cloud-spending elasticity that rises from 0.045 to 0.078 once
    storage exceeds 40 PB, and a hub interaction of 0.05 on log computing.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    rng = np.random.default_rng(seed)
    cities = _city_frame()
    n, n_years = len(cities), len(YEARS)
    region = cities["region"].to_numpy()
    pivot = cities["pivot"].to_numpy().astype(np.float64)
    s = np.arange(n_years, dtype=np.float64)[None, :]  # years since 2017, (1, T)

    province_codes, province_names = pd.factorize(cities["province"])
    province_effect = rng.normal(0.0, 0.25, len(province_names))[province_codes]
    size = (7.6 + np.array([_REGION_SIZE[r] for r in region]) + province_effect
            + rng.normal(0.0, 0.6, n) + 1.8 * cities["province"].isin(_MUNICIPALITIES).to_numpy())
    growth = 0.07 + rng.normal(0.0, 0.01, n)
    size_t = size[:, None] + growth[:, None] * s  # (N, T)

    logs: dict[str, np.ndarray] = {}
    for name, (_, ratio, adjust, spread) in _CONTROLS.items():
        adj = np.array([adjust.get(r, 0.0) for r in region])
        logs[name] = (size_t + ratio + adj[:, None] + rng.normal(0.0, spread, n)[:, None]
                      + rng.normal(0.0, 0.05, (n, n_years)))
    logs["computing"] = (2.0 + 0.9 * (size - 7.6) + 1.0 * pivot + rng.normal(0.0, 0.5, n))[:, None] \
        + 0.22 * s + rng.normal(0.0, 0.2, (n, n_years))
    logs["storage"] = (np.log(15.0) + rng.normal(0.0, 0.9, n))[:, None] \
        + (0.20 + rng.normal(0.0, 0.08, n))[:, None] * s + rng.normal(0.0, 0.05, (n, n_years))
    logs["cloud_spend"] = (np.log(2.0) + rng.normal(0.0, 0.8, n))[:, None] + 0.18 * s \
        + rng.normal(0.0, 0.15, (n, n_years))

    above = logs["storage"] > np.log(_GAMMA_STORAGE)
    cloud_elasticity = np.where(above, _DELTA_HIGH, _DELTA_LOW)
    log_gdp = (_ALPHA + rng.normal(0.0, _SIGMA_MU, n)[:, None]
               + sum(_CONTROLS[k][0] * logs[k] for k in CITY_CONTROLS)
               + (_BETA_COMPUTING + _BETA_PIVOT_X_COMPUTING * pivot[:, None]) * logs["computing"]
               + _BETA_PIVOT * pivot[:, None]
               + cloud_elasticity * logs["cloud_spend"]
               + rng.normal(0.0, _SIGMA_E, (n, n_years)))

    frame = pd.DataFrame({
        "city": np.repeat(cities["city"].to_numpy(), n_years),
        "province": np.repeat(cities["province"].to_numpy(), n_years),
        "region": np.repeat(region, n_years),
        "year": np.tile(np.array(YEARS, dtype=np.int64), n),
        "gdp": np.exp(log_gdp).ravel(),
        "computing": np.exp(logs["computing"]).ravel(),
        **{k: np.exp(logs[k]).ravel() for k in CITY_CONTROLS},
        "storage": np.exp(logs["storage"]).ravel(),
        "cloud_spend": np.exp(logs["cloud_spend"]).ravel(),
        "pivot": np.repeat(cities["pivot"].to_numpy().astype(np.int64), n_years),
    })
    frame.attrs.update({
        "synthetic": True,
        "name": "city_panel",
        "seed": int(seed),
        "description": ("SYNTHETIC data generated by fastpanel.datasets.city_panel "
                        f"(seed={seed}): 336 Chinese cities x 2017-2022; real province and "
                        "hub-city names, simulated numbers with known true parameters."),
        "dgp": __doc__,
        "true_params": city_panel_params(),
    })
    return frame
