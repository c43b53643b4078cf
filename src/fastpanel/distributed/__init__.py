"""Fits on Dask DataFrames (optional: ``pip install "fastpanel[dask]"``).

``within_dask``: the exact one- and two-way within transform, with the rows shuffled once on
the entity column and the period system reduced once (see :mod:`fastpanel.distributed.within`).
``feols_dask`` (also reached by ``fastpanel.feols(formula, dask_frame)``): fixed-effects OLS
from per-partition sufficient statistics (see :mod:`fastpanel.distributed.ols`).
``threshold_dask`` (also reached by ``fastpanel.threshold(formula, dask_frame, ...)``): Hansen's
panel threshold regression from per-partition sums of the sweep (see
:mod:`fastpanel.distributed.threshold`).
"""

from fastpanel.distributed.ols import feols_dask
from fastpanel.distributed.threshold import threshold_dask
from fastpanel.distributed.within import within_dask

__all__ = ["feols_dask", "threshold_dask", "within_dask"]
