"""Exact one- and two-way within transform of a Dask DataFrame.

Algorithm
---------
The rows are shuffled once on the entity column, so that every partition holds whole
entities (``DataFrame.shuffle(on=entity)``); the entity effects are then local to a
partition. The period effects are global but small (n_T levels): the two-way transform is the
in-memory algorithm (``fastpanel.within``, two-way direct) split at its one global step,

1. per partition, the entity-eliminated Schur pieces ``S_p = D_T' D_T - C_p' D_E^{-1} C_p`` and
   ``r_p = D_T' (x - xbar_E)`` (n_T x n_T and n_T x p, the same kernel as in memory);
2. one reduction: ``S = sum_p S_p``, ``r = sum_p r_p`` in partition order, and the period
   effects ``gamma = S^+ r`` on the client (``fastpanel.within.twoway_gamma``);
3. per partition, ``x - alpha_E - gamma_T`` (the in-memory second pass).

What crosses the network: the shuffle (each row once), then per partition n_T^2 + n_T p
float64 values up and n_T p down. Results equal the in-memory transform of the same rows up to
rounding (the partition sums are added in another order): the tests hold them to 1e-10.
The entity column defines the partitioning; periods may number at most
``fastpanel.within.DIRECT_MAX_LEVELS`` (the dense Schur system).

Naming: ``ddf`` a Dask DataFrame, ``part`` one of its partitions (a pandas DataFrame).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from fastpanel.factor import factorize
from fastpanel.within import DIRECT_MAX_LEVELS, _order_arg, twoway_gamma, within

_EMPTY_F64 = np.empty(0, dtype=np.float64)

__all__ = ["within_dask"]


def _require_dask() -> Any:
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - dask is a test dependency
        raise ImportError('the distributed transform needs Dask: pip install "fastpanel[dask]"') from exc
    return dask, dd


def _check_columns(ddf: Any, names: Sequence[str]) -> None:
    missing = [c for c in names if c not in ddf.columns]
    if missing:
        raise ValueError(f"column(s) {missing} are not in the Dask DataFrame (its columns: {list(ddf.columns)})")


def _part_arrays(part: pd.DataFrame, columns: list[str], entity: str, weights: str | None):
    X = np.asfortranarray(part[columns].to_numpy(dtype=np.float64, na_value=np.nan))
    ent = factorize(part[entity].to_numpy(), entity)
    w = None if weights is None else part[weights].to_numpy(dtype=np.float64, na_value=np.nan)
    return X, ent, w


def _bad_rows(X: np.ndarray, ent: Any, per_codes: np.ndarray | None, w: np.ndarray | None) -> int:
    bad = ~np.isfinite(X).all(axis=1) | (ent.codes < 0)
    if per_codes is not None:
        bad |= per_codes < 0
    if w is not None:
        bad |= ~np.isfinite(w) | (w < 0)
    return int(bad.sum())


def _period_codes(part: pd.DataFrame, time: str, periods: np.ndarray) -> np.ndarray:
    """Global period codes (position in the sorted period levels; -1 for missing)."""
    return np.ascontiguousarray(pd.Index(periods).get_indexer(part[time]), dtype=np.int64)


def _count_bad(part: pd.DataFrame, columns: list[str], entity: str, weights: str | None) -> pd.Series:
    X, ent, w = _part_arrays(part, columns, entity, weights)
    return pd.Series([_bad_rows(X, ent, None, w)])


def within_kernels() -> tuple[str, Any]:
    """The within kernel module of the backend in force (on a worker: its default)."""
    from fastpanel._backend import kernel_module, resolve_backend

    name = resolve_backend(None, "within")
    return name, kernel_module(name, "within")


def period_schur(X: np.ndarray, ent: Any, per: np.ndarray, n_t: int, w: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 on one partition's rows: ``(r_p, S_p)`` of the period Schur system, entities
    eliminated (the in-memory first pass; ``ent`` a Factor of the partition's entities)."""
    _, kern = within_kernels()
    return kern.twoway_pass1(X, _order_arg(ent), ent.group_starts, per, n_t, _EMPTY_F64 if w is None else w, True)


def period_apply(X: np.ndarray, ent: Any, per: np.ndarray, gamma: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Step 3 on one partition's rows: ``x - alpha_E - gamma_T`` (the in-memory second pass)."""
    _, kern = within_kernels()
    out = np.empty_like(X, order="F")
    kern.twoway_pass2(X, out, _order_arg(ent), ent.group_starts, per, gamma, _EMPTY_F64 if w is None else w)
    return out


def _partials(part: pd.DataFrame, columns: list[str], entity: str, time: str, weights: str | None,
              periods: np.ndarray) -> dict:
    """Step 1 on one partition: S_p, r_p, the row and entity counts, and the bad rows."""
    X, ent, w = _part_arrays(part, columns, entity, weights)
    t = _period_codes(part, time, periods)
    n_t = periods.size
    bad = _bad_rows(X, ent, t, w)
    if bad or X.shape[0] == 0:
        return {"bad": bad, "n": X.shape[0], "n_entities": ent.n_levels, "r": np.zeros((n_t, len(columns))),
                "S": np.zeros((n_t, n_t))}
    r, S = period_schur(X, ent, t, n_t, w)
    return {"bad": 0, "n": X.shape[0], "n_entities": ent.n_levels, "r": r, "S": S}


def _apply(part: pd.DataFrame, columns: list[str], entity: str, time: str | None, weights: str | None,
           periods: np.ndarray | None, gamma: np.ndarray | None) -> pd.DataFrame:
    """Step 3 (two-way) or the whole transform (one-way) on one partition."""
    X, ent, w = _part_arrays(part, columns, entity, weights)
    if X.shape[0] == 0:
        return pd.DataFrame(np.empty((0, len(columns))), columns=columns, index=part.index)
    if time is None:
        out = within(X, ent.codes, weights=w)
    else:
        out = period_apply(X, ent, _period_codes(part, time, periods), gamma, w)
    return pd.DataFrame(out, columns=columns, index=part.index)


def within_dask(ddf: Any, columns: Sequence[str], entity: str, time: str | None = None, *,
                weights: str | None = None) -> Any:
    """Exact within transform of ``columns`` of a Dask DataFrame: entity effects, and period
    effects when ``time`` is given.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Any partitioning and row order; it is shuffled once on ``entity``.
    columns : sequence of str
        Numeric columns to transform.
    entity : str
        Entity id column (the effects eliminated inside each partition).
    time : str, optional
        Period id column: two-way effects. At most ``DIRECT_MAX_LEVELS`` (2000) periods.
    weights : str, optional
        Column of non-negative weights (weighted least-squares projection).

    Returns
    -------
    dask.dataframe.DataFrame
        The transformed columns, partitioned by entity, indexed like the input rows. The
        period system is solved when this is called (one reduction, computed on the current
        Dask client or scheduler); the transform itself is lazy.

    Raises
    ------
    ValueError
        A missing column, rows with NaN/inf values or missing ids (counted; drop them first),
        or more than 2000 periods.
    """
    dask, dd = _require_dask()
    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(f"ddf must be a dask.dataframe.DataFrame, got {type(ddf).__name__}; for a pandas frame "
                        "use fastpanel.within")
    columns = [str(c) for c in columns]
    if not columns:
        raise ValueError("columns is empty: name the numeric columns to transform")
    _check_columns(ddf, columns + [entity] + ([time] if time else []) + ([weights] if weights else []))
    keep = list(dict.fromkeys(columns + [entity] + ([time] if time else []) + ([weights] if weights else [])))
    ddf = ddf[keep].shuffle(on=entity).persist()  # read and shuffled once for both passes
    meta = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns})
    if time is None:
        bad = int(ddf.map_partitions(_count_bad, columns, entity, weights, meta=pd.Series(dtype=np.int64))
                  .sum().compute())
        if bad:
            raise ValueError(f"{bad} rows have NaN/inf values, missing ids or negative weights; drop them first "
                             "(ddf.dropna(subset=...))")
        return ddf.map_partitions(_apply, columns, entity, None, weights, None, None, meta=meta)
    periods = np.sort(ddf[time].dropna().unique().compute().to_numpy())
    if periods.size > DIRECT_MAX_LEVELS:
        raise ValueError(f"time column {time!r} has {periods.size} levels; the distributed two-way transform "
                         f"supports at most {DIRECT_MAX_LEVELS} periods (a dense Schur system); "
                         "supported layouts: entity effects, or entity and period effects")
    parts = [dask.delayed(_partials)(p, columns, entity, time, weights, periods) for p in ddf.to_delayed()]
    results = dask.compute(*parts)
    bad = sum(res["bad"] for res in results)
    if bad:
        raise ValueError(f"{bad} rows have NaN/inf values, missing ids or negative weights; drop them first "
                         "(ddf.dropna(subset=...))")
    S = np.zeros((periods.size, periods.size))
    r = np.zeros((periods.size, len(columns)))
    for res in results:  # partition order: the same sums for any worker count
        S += res["S"]
        r += res["r"]
    n_rows = sum(res["n"] for res in results)
    n_entities = sum(res["n_entities"] for res in results)
    if not np.isfinite(r).all():
        raise FloatingPointError("the period sums overflow to inf; rescale the columns")
    gamma, _ = twoway_gamma(S, r, n_rows, n_entities)
    return ddf.map_partitions(_apply, columns, entity, time, weights, periods, gamma, meta=meta)
