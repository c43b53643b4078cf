"""The panel index: who is observed when, and in what order.

:class:`PanelIndex` factorises entity and (optional) time ids of any dtype, checks that every
(entity, time) pair occurs once, records balance, singletons and the entity grouping, and
handles rows with missing values: they raise unless ``drop_missing=True``, in which case they
are removed listwise and counted (``n_dropped``), never silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastpanel._validation import as_float_matrix
from fastpanel.factor import Factor, factorize

__all__ = ["PanelIndex"]


def _data_columns(data: Any) -> list[tuple[str, np.ndarray]]:
    if data is None:
        return []
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):
        return [(str(c), np.asarray(data[c])) for c in data.columns]
    if isinstance(data, (list, tuple)):
        return [(f"data[{k}]", np.asarray(col)) for k, col in enumerate(data)]
    mat, _ = as_float_matrix(data, "data")
    return [(f"data[:, {j}]", mat[:, j]) for j in range(mat.shape[1])]


class PanelIndex:
    """Entity/time structure of a panel.

    Parameters
    ----------
    entity : array-like, shape (n,)
        Entity ids (int of any width, float, string, categorical).
    time : array-like, shape (n,), optional
        Period ids. When given, each (entity, time) pair must be unique.
    data : array-like or DataFrame, optional
        Variables whose missing values (NaN, inf) make a row incomplete.
    drop_missing : bool, default False
        Remove incomplete rows (missing ids or data) listwise and count them in
        ``n_dropped``. When False, incomplete rows raise ``ValueError``.

    Attributes
    ----------
    keep : ndarray of bool, shape (n_input,)
        Rows of the input that are used.
    n_dropped : int
        Rows removed because of missing values.
    entity, time : Factor
        Dense codes of the kept rows.
    """

    def __init__(
        self,
        entity: Any,
        time: Any = None,
        *,
        data: Any = None,
        drop_missing: bool = False,
    ) -> None:
        ent = factorize(entity, "entity")
        n = ent.n_obs
        if n == 0:
            raise ValueError("entity is empty: a panel needs at least one row")
        tim = factorize(time, "time") if time is not None else None
        if tim is not None and tim.n_obs != n:
            raise ValueError(f"time has {tim.n_obs} rows but entity has {n}; ids must have equal lengths")
        bad = np.zeros(n, dtype=bool)
        reasons: list[str] = []
        for fac in (ent, tim):
            if fac is not None and fac.has_missing:
                miss = fac.codes < 0
                reasons.append(f"{fac.name}: {int(miss.sum())} missing ids")
                bad |= miss
        for col_name, col in _data_columns(data):
            if col.shape[0] != n:
                raise ValueError(f"{col_name} has {col.shape[0]} rows but entity has {n}")
            if col.dtype == object or not np.issubdtype(col.dtype, np.number):
                continue
            miss = ~np.isfinite(col.astype(np.float64, copy=False))
            if miss.any():
                reasons.append(f"{col_name}: {int(miss.sum())} NaN/inf")
                bad |= miss
        self.n_input = n
        self.n_dropped = int(bad.sum())
        if self.n_dropped and not drop_missing:
            raise ValueError(
                f"{self.n_dropped} rows have missing values ({'; '.join(reasons)}); pass "
                "drop_missing=True to delete them listwise (they are counted in n_dropped)"
            )
        self.keep = ~bad
        self.missing_reasons = reasons
        if self.n_dropped:
            if self.n_dropped == n:
                raise ValueError("every row has a missing value: nothing is left to estimate")
            ent = ent.subset(self.keep)
            tim = tim.subset(self.keep) if tim is not None else None
        self.entity: Factor = ent
        self.time: Factor | None = tim
        if tim is not None:
            self._check_duplicates()

    # -- structure -----------------------------------------------------------------------
    @property
    def n_obs(self) -> int:
        """Rows used (after any listwise deletion)."""
        return self.entity.n_obs

    @property
    def n_entities(self) -> int:
        """Number of distinct entities."""
        return self.entity.n_levels

    @property
    def n_periods(self) -> int:
        """Number of distinct periods (1 without time ids)."""
        return self.time.n_levels if self.time is not None else 1

    @property
    def group_counts(self) -> np.ndarray:
        """Rows per entity."""
        return self.entity.counts

    @property
    def group_starts(self) -> np.ndarray:
        """Offsets of each entity's rows in :attr:`order` (length ``n_entities + 1``)."""
        return self.entity.group_starts

    @property
    def order(self) -> np.ndarray | None:
        """Permutation listing rows entity by entity (None when already in that order)."""
        return self.entity.order

    @property
    def is_balanced(self) -> bool:
        """Every entity observed in every period exactly once."""
        if self.time is None:
            return bool((self.group_counts == self.group_counts[0]).all())
        return self.n_obs == self.n_entities * self.n_periods

    @property
    def n_singletons(self) -> int:
        """Entities observed once (their fixed effect absorbs the row completely)."""
        return int((self.group_counts == 1).sum())

    def select(self, values: Any) -> np.ndarray:
        """Restrict an input-length array to the rows kept (after listwise deletion)."""
        arr = np.asarray(values)
        if arr.shape[0] != self.n_input:
            raise ValueError(f"array has {arr.shape[0]} rows, the panel input had {self.n_input}")
        return arr if self.n_dropped == 0 else arr[self.keep]

    def _check_duplicates(self) -> None:
        assert self.time is not None
        n_t = self.n_periods
        key = self.entity.codes * n_t + self.time.codes
        cells = self.n_entities * n_t
        if cells <= 8 * self.n_obs + 1024:
            counts = np.bincount(key, minlength=cells)
            dup_cells = np.flatnonzero(counts > 1)
            if dup_cells.size == 0:
                return
            first = int(dup_cells[0])
            n_dup = int((counts[dup_cells] - 1).sum())
        else:
            import pandas as pd

            dup = pd.Series(key).duplicated().to_numpy()
            if not dup.any():
                return
            first = int(key[np.flatnonzero(dup)[0]])
            n_dup = int(dup.sum())
        e_label = self.entity.levels[first // n_t]
        t_label = self.time.levels[first % n_t]
        raise ValueError(
            f"{n_dup} duplicate (entity, time) rows, e.g. entity={e_label!r}, time={t_label!r}; "
            "each entity may appear once per period: aggregate or fix the ids"
        )

    def __repr__(self) -> str:
        return (
            f"PanelIndex(n_obs={self.n_obs}, n_entities={self.n_entities}, "
            f"n_periods={self.n_periods}, balanced={self.is_balanced}, n_dropped={self.n_dropped})"
        )


