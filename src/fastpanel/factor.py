"""Factorising identifiers of any dtype into dense integer codes, with group structure.

A :class:`Factor` holds, for one grouping dimension (entity, period, any fixed effect), the
dense codes ``0 .. n_levels-1`` of every observation, the original labels, the number of rows
per level, and (computed on first use and cached) a counting-sort permutation that lists the
rows of each level together (``order``, ``None`` when the rows are already sorted by level)
with ``group_starts``. Kernels consume those arrays; nothing here runs per observation in
Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Factor", "factorize"]

# Integer ids whose range is at most this many times the number of rows are coded with a
# bincount (O(n), no hashing); wider ranges go through pandas' hash factorisation.
_DENSE_RANGE_FACTOR = 4


@dataclass(eq=False)
class Factor:
    """Dense integer coding of one grouping variable.

    Attributes
    ----------
    codes : ndarray of int64, shape (n,)
        Level of each row, in ``0 .. n_levels - 1``; ``-1`` marks a missing id.
    levels : ndarray
        Original label of each level (``levels[codes[i]]`` is row i's id).
    name : str
        Name used in messages.
    """

    codes: np.ndarray
    levels: np.ndarray
    name: str = "ids"
    _counts: np.ndarray | None = field(default=None, repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)
    _starts: np.ndarray | None = field(default=None, repr=False)
    _sorted: bool | None = field(default=None, repr=False)
    _missing: bool | None = field(default=None, repr=False)
    _trusted: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        # A Factor built by a user is checked once here, and its codes are copied into a
        # read-only array: kernels index with them unchecked, so an out-of-range code (or a
        # caller who edits the array later) must never reach them.
        if self._trusted:
            return
        codes = np.array(self.codes, copy=True)
        if codes.ndim != 1:
            raise ValueError(f"Factor codes must be 1-D, got shape {codes.shape}")
        if codes.size and not (np.issubdtype(codes.dtype, np.integer) or codes.dtype == np.bool_):
            raise TypeError(f"Factor codes must be integers, got dtype {codes.dtype}; use fastpanel.factorize(ids)")
        codes = codes.astype(np.int64, copy=False)
        levels = np.asarray(self.levels)
        if levels.ndim != 1:
            raise ValueError(f"Factor levels must be 1-D, got shape {levels.shape}")
        if codes.size:
            lo, hi = int(codes.min()), int(codes.max())
            if lo < -1 or hi >= len(levels):
                raise ValueError(
                    f"Factor {self.name!r}: codes must lie in -1 .. {len(levels) - 1} (one level per code, -1 "
                    f"for missing), got values in {lo} .. {hi}; use fastpanel.factorize(ids) to build codes"
                )
        codes.flags.writeable = False
        self.codes, self.levels = codes, levels
        self._counts = self._order = self._starts = self._sorted = self._missing = None
        self._trusted = True

    @property
    def n_levels(self) -> int:
        """Number of distinct levels."""
        return int(len(self.levels))

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return int(self.codes.shape[0])

    @property
    def has_missing(self) -> bool:
        """Whether any row has a missing id (code -1)."""
        if self._missing is None:
            self._missing = bool(self.n_obs) and bool((self.codes < 0).any())
        return self._missing

    @property
    def counts(self) -> np.ndarray:
        """Rows per level (int64, length ``n_levels``)."""
        if self._counts is None:
            self._counts = _level_counts(self.codes, self.n_levels)
        return self._counts

    @property
    def is_sorted(self) -> bool:
        """Whether the rows of each level are contiguous and levels appear in code order."""
        if self._sorted is None:
            c = self.codes
            self._sorted = bool(c.shape[0] < 2 or (c[1:] >= c[:-1]).all())
        return self._sorted

    @property
    def group_starts(self) -> np.ndarray:
        """``n_levels + 1`` offsets: level g occupies positions ``starts[g]:starts[g+1]`` of ``order``."""
        if self._starts is None:
            starts = np.zeros(self.n_levels + 1, dtype=np.int64)
            np.cumsum(self.counts, out=starts[1:])
            self._starts = starts
        return self._starts

    @property
    def order(self) -> np.ndarray | None:
        """Row permutation grouping rows by level (stable), or ``None`` if already sorted."""
        if self.is_sorted:
            return None
        if self._order is None:
            self._order = _group_order(self.codes, self.group_starts)
        return self._order

    @property
    def singletons(self) -> np.ndarray:
        """Boolean mask over rows: the row is the only one of its level."""
        return self.counts[self.codes] == 1

    def subset(self, keep: np.ndarray) -> "Factor":
        """Return the factor restricted to rows ``keep`` (levels re-coded densely)."""
        codes = self.codes[keep]
        present = np.zeros(self.n_levels, dtype=bool)
        present[codes] = True
        remap = np.cumsum(present) - 1
        return Factor(remap[codes].astype(np.int64), self.levels[present], self.name, _trusted=True)


def _level_counts(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """Rows per level (the compiled histogram: parallel, prefetched; NumPy's bincount without it)."""
    try:
        from fastpanel import _core
    except ImportError:  # pure-Python install
        return np.bincount(codes, minlength=n_levels).astype(np.int64)
    return _core.level_counts(np.ascontiguousarray(codes, dtype=np.int64), int(n_levels))


def _group_order(codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Stable permutation grouping rows by code (rows of a level keep their input order)."""
    try:
        from fastpanel import _core
    except ImportError:  # pure-Python install: same permutation through NumPy's stable sort
        return np.argsort(codes, kind="stable").astype(np.int64, copy=False)
    return _core.group_order(np.ascontiguousarray(codes, dtype=np.int64), starts)


def _int_factor(arr: np.ndarray, name: str) -> "Factor | None":
    """Dense-range int64 ids through the compiled summary (min, max, sortedness and presence in
    two passes); None when the compiled module is absent or the range is wide."""
    if arr.dtype != np.int64:
        return None
    try:
        from fastpanel import _core
    except ImportError:  # pragma: no cover - pure-Python install
        return None
    arr = np.ascontiguousarray(arr)
    lo, hi, is_sorted, seen, shifted = _core.int_summary(arr, _DENSE_RANGE_FACTOR * arr.size + 1025)
    if seen.shape[0] == 0:
        return None
    present = seen.view(bool)
    levels = np.flatnonzero(present).astype(np.int64) + lo
    if present.all():  # the ids are dense already: codes = ids - lo
        # shifted is the kernel's own array, never a view of the caller's (a view would change,
        # or crash, later fits when the caller edits it)
        shifted.flags.writeable = False
        return Factor(shifted, levels, name, _sorted=bool(is_sorted), _missing=False, _trusted=True)
    remap = np.cumsum(present, dtype=np.int64) - 1
    codes = remap[shifted]
    codes.flags.writeable = False  # kernels index with the codes unchecked
    # remapping is monotone, so sortedness carries over
    return Factor(codes, levels, name, _sorted=bool(is_sorted), _missing=False, _trusted=True)


def factorize(values: Any, name: str = "ids") -> Factor:
    """Factorise identifiers into a :class:`Factor`.

    Parameters
    ----------
    values : array-like, shape (n,)
        Integer (any width, beyond 2**31 too), float, string, object or pandas categorical ids.
        NaN, inf, None and missing categories become code -1 (missing).
    name : str
        Argument name used in error messages.

    Returns
    -------
    Factor
    """
    if isinstance(values, Factor):
        return values
    import pandas as pd

    if isinstance(values, (pd.Series, pd.Index)) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        # Unused categories are not levels: they have no rows, and counting them would inflate
        # the fixed-effect degrees of freedom.
        cat = values.remove_unused_categories()
        return Factor(np.array(cat.codes, dtype=np.int64), np.asarray(cat.categories), name, _trusted=True)
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        arr = arr.astype(np.int64, copy=False) if arr.dtype != np.uint64 else arr
        if arr.size == 0:
            return Factor(np.empty(0, dtype=np.int64), arr[:0], name, _trusted=True)
        fast = _int_factor(arr, name)
        if fast is not None:
            return fast
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo <= _DENSE_RANGE_FACTOR * arr.size + 1024:
            shifted = arr if lo == 0 else arr - lo
            counts = np.bincount(shifted, minlength=hi - lo + 1)
            present = counts > 0
            levels = np.flatnonzero(present).astype(np.int64) + lo
            if present.all():  # already dense codes 0..L-1 (shifted): a read-only copy
                codes = np.array(shifted, dtype=np.int64, copy=True)
                codes.flags.writeable = False
                return Factor(codes, levels, name, _counts=counts.astype(np.int64), _missing=False, _trusted=True)
            remap = np.cumsum(present, dtype=np.int64) - 1
            return Factor(remap[shifted], levels, name, _missing=False, _trusted=True)
    if np.issubdtype(arr.dtype, np.floating):
        # inf is no more an identifier than NaN: both become missing (code -1).
        finite = np.isfinite(arr)
        if not finite.all():
            arr = np.where(finite, arr, np.nan)
    codes, uniques = pd.factorize(arr, sort=True, use_na_sentinel=True)
    return Factor(np.asarray(codes, dtype=np.int64), np.asarray(uniques), name, _trusted=True)
