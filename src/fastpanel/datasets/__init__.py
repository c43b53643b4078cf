"""Embedded SYNTHETIC data sets with documented data-generating processes and known answers.

Nothing is downloaded: each generator builds its data from a seed with
``numpy.random.default_rng``. Province names, regions and the national computing-hub cities
are real; all numbers are simulated. The true parameters are in ``frame.attrs["true_params"]``
and returned by the companion ``*_params()`` functions.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from fastpanel.datasets.city import CITY_CONTROLS, city_panel, city_panel_params
from fastpanel.datasets.province import province_quarterly, province_quarterly_params

__all__ = [
    "CITY_CONTROLS",
    "city_panel",
    "city_panel_params",
    "province_quarterly",
    "province_quarterly_params",
    "load",
    "true_params",
    "DATASETS",
]

DATASETS: dict[str, tuple[Callable[..., pd.DataFrame], Callable[[], dict[str, Any]]]] = {
    "city_panel": (city_panel, city_panel_params),
    "province_quarterly": (province_quarterly, province_quarterly_params),
}


def _lookup(name: str) -> tuple[Callable[..., pd.DataFrame], Callable[[], dict[str, Any]]]:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def load(name: str, seed: int = 0) -> pd.DataFrame:
    """Generate the SYNTHETIC data set ``name`` (``"city_panel"`` or ``"province_quarterly"``).

    Parameters
    ----------
    name : str
        Data set name.
    seed : int, default 0
        Seed passed to the generator.

    Returns
    -------
    pandas.DataFrame
    """
    return _lookup(name)[0](seed=seed)


def true_params(name: str) -> dict[str, Any]:
    """True parameters of the data set ``name``'s data-generating process.

    Parameters
    ----------
    name : str
        Data set name.

    Returns
    -------
    dict
    """
    return _lookup(name)[1]()
