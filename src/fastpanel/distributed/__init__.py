"""Fits on Dask DataFrames (optional: ``pip install "fastpanel[dask]"``).

``within_dask``: the exact one- and two-way within transform, with the rows shuffled once on
the entity column and the period system reduced once (see :mod:`fastpanel.distributed.within`).
``feols_dask`` (also reached by ``fastpanel.feols(formula, dask_frame)``): fixed-effects OLS
from per-partition sufficient statistics (see :mod:`fastpanel.distributed.ols`).
"""

from fastpanel.distributed.ols import feols_dask
from fastpanel.distributed.within import within_dask

__all__ = ["feols_dask", "within_dask"]
