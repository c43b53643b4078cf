"""A prepared set of fixed-effect dimensions, reusable across calls.

``FixedEffects(ids)`` factorises each id array once and caches the structure the kernels need
(group permutations, counts, the balanced flag). Pass it as ``ids`` to :func:`fastpanel.within`
to skip factorisation when the same panel is transformed repeatedly (estimators, bootstraps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastpanel.factor import Factor, factorize

__all__ = ["FixedEffects"]


def _split_ids(ids: Any) -> list[Any]:
    """One-way ids (a 1-D array) or multi-way ids (a sequence of arrays, a 2-D array, a DataFrame)."""
    if hasattr(ids, "columns") and hasattr(ids, "__getitem__"):  # pandas / polars DataFrame
        return [ids[c] for c in ids.columns]
    if isinstance(ids, (list, tuple)):
        if len(ids) == 0:
            raise ValueError("ids is empty: pass one id array per fixed-effect dimension")
        if all(np.ndim(item) == 0 and not isinstance(item, Factor) for item in ids):
            return [np.asarray(ids)]
        return list(ids)
    if isinstance(ids, Factor):
        return [ids]
    if isinstance(ids, np.ndarray) and ids.ndim == 2:
        return [ids[:, k] for k in range(ids.shape[1])]
    return [ids]


class FixedEffects:
    """Factorised fixed-effect dimensions.

    Parameters
    ----------
    ids : array-like or sequence of array-like
        One id array (one-way) or several (multi-way): a list/tuple of 1-D arrays, a 2-D array
        with one column per dimension, or a DataFrame.

    Attributes
    ----------
    factors : list of Factor
        One per dimension, in the order given.
    """

    def __init__(self, ids: Any) -> None:
        if isinstance(ids, FixedEffects):
            self.factors: list[Factor] = list(ids.factors)
        else:
            parts = _split_ids(ids)
            self.factors = [
                factorize(p, "ids" if len(parts) == 1 else f"ids[{k}]") for k, p in enumerate(parts)
            ]
        n = self.factors[0].n_obs
        for f in self.factors[1:]:
            if f.n_obs != n:
                raise ValueError(
                    f"{f.name} has {f.n_obs} rows but {self.factors[0].name} has {n}; "
                    "all id arrays must have the same length"
                )
        self._balanced_pair: bool | None = None

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return self.factors[0].n_obs

    @property
    def n_ways(self) -> int:
        """Number of fixed-effect dimensions."""
        return len(self.factors)

    @property
    def missing_rows(self) -> np.ndarray:
        """Rows with a missing id in any dimension."""
        bad = np.zeros(self.n_obs, dtype=bool)
        for f in self.factors:
            if f.has_missing:
                bad |= f.codes < 0
        return bad

    def subset(self, keep: np.ndarray) -> "FixedEffects":
        """Restrict to rows ``keep``, re-coding levels densely."""
        new = FixedEffects.__new__(FixedEffects)
        new.factors = [f.subset(keep) for f in self.factors]
        new._balanced_pair = None
        return new

    def is_balanced_pair(self) -> bool:
        """Two dimensions that cross completely: every (a, b) cell exactly once."""
        if self._balanced_pair is None:
            a, b = self.factors[0], self.factors[1]
            cells = a.n_levels * b.n_levels
            ok = self.n_ways == 2 and cells == self.n_obs
            if ok:
                ok = bool((a.counts == b.n_levels).all() and (b.counts == a.n_levels).all())
            if ok:
                key = a.codes * b.n_levels + b.codes
                ok = bool((np.bincount(key, minlength=cells) == 1).all())
            self._balanced_pair = ok
        return self._balanced_pair

    def __repr__(self) -> str:
        dims = ", ".join(f"{f.name}: {f.n_levels} levels" for f in self.factors)
        return f"FixedEffects(n_obs={self.n_obs}, {dims})"
