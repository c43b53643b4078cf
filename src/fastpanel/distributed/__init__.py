"""Fits on Dask DataFrames (optional: ``pip install "fastpanel[dask]"``).

``within_dask``: the exact one- and two-way within transform, with the rows shuffled once on
the entity column and the period system reduced once (see :mod:`fastpanel.distributed.within`).
"""

from fastpanel.distributed.within import within_dask

__all__ = ["within_dask"]
