"""A prepared set of fixed-effect dimensions, reusable across calls.

``FixedEffects(ids)`` factorises each id array once and caches the structure the kernels need
(group permutations, counts, the balanced flag). Pass it as ``ids`` to :func:`fastpanel.within`
to skip factorisation when the same panel is transformed repeatedly (estimators, bootstraps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastpanel.factor import Factor, _level_counts, factorize

#: zero-weight patterns whose rank FixedEffects.n_identified keeps
_RANK_CACHE_SIZE = 8

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

    @classmethod
    def from_codes(cls, codes: Any, *, assume_dense: bool = False) -> "FixedEffects":
        """Build the fixed effects from integer codes, with no pandas and no hashing.

        Parameters
        ----------
        codes : array-like of integers, shape (n,) or (n, k)
            One column per fixed-effect dimension, any integer dtype (signed or unsigned, any
            width), C or Fortran order. Codes must be non-negative; they need not be dense.
        assume_dense : bool, default False
            With False, each column is coded densely (its distinct values, in increasing
            order, become levels 0, 1, ...; the cost is two passes over the column). With
            True the caller promises codes ``0 .. L-1``: the coding is skipped and only a
            histogram is taken (it is needed anyway). The promise is checked, never trusted
            blindly: levels without rows are removed (so they do not count as effects) and
            the result is the same as with False.

        Returns
        -------
        FixedEffects
            Reusable: pass it as ``ids`` to :func:`fastpanel.within` or
            :func:`fastpanel.lowlevel.demean`; the group permutations and, for three or more
            dimensions, the factorised Schur complement (per weight vector) are computed on
            first use and kept.

        Raises
        ------
        TypeError
            ``codes`` is not an integer array.
        ValueError
            ``codes`` has a negative value, or is not 1-D or 2-D, or has no columns.

        Examples
        --------
        >>> import numpy as np, fastpanel
        >>> fe = fastpanel.FixedEffects.from_codes(np.array([[0, 1], [0, 0], [1, 1]], dtype=np.uint32))
        >>> fe
        FixedEffects(n_obs=3, codes[0]: 2 levels, codes[1]: 2 levels)
        """
        arr = np.asarray(codes)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"codes must be an integer array, got dtype {arr.dtype}; "
                "use fastpanel.FixedEffects(ids) for ids of other types"
            )
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise ValueError(f"codes must have shape (n,) or (n, k) with k >= 1, got {np.shape(codes)}")
        factors = []
        for k in range(arr.shape[1]):
            col = np.ascontiguousarray(arr[:, k])
            name = f"codes[{k}]"
            if col.size and (col.min() < 0 if np.issubdtype(col.dtype, np.signedinteger) else False):
                bad = int(np.flatnonzero(col < 0)[0])
                raise ValueError(f"{name} has a negative code ({int(col[bad])} at row {bad}); codes must be >= 0")
            if col.dtype == np.uint64 and col.size and int(col.max()) > np.iinfo(np.int64).max:
                raise ValueError(f"{name} has codes beyond 2**63 - 1; recode them (e.g. fastpanel.factorize)")
            if assume_dense:
                c64 = np.array(col, dtype=np.int64, copy=True)
                n_levels = int(c64.max()) + 1 if c64.size else 0
                counts = _level_counts(c64, n_levels)
                if (counts > 0).all():
                    c64.flags.writeable = False
                    factors.append(Factor(c64, np.arange(n_levels, dtype=np.int64), name, _counts=counts,
                                          _missing=False, _trusted=True))
                    continue
            factors.append(factorize(col.astype(np.int64, copy=False), name))
        return cls(factors)

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

    def cached_solver(self, key: str, weights: np.ndarray | None) -> Any:
        """The solver stored under ``key`` for exactly these weights, or None.

        The weights are compared element by element with a stored copy (O(n), cheap next to
        any transform), so a changed weight vector is never served a stale factorisation.
        """
        entry = self.__dict__.setdefault("_solvers", {}).get(key)
        if entry is None:
            return None
        stored, solver = entry
        if stored is None and weights is None:
            return solver
        if stored is not None and weights is not None and stored.shape == weights.shape \
                and np.array_equal(stored, weights):
            return solver
        return None

    def store_solver(self, key: str, weights: np.ndarray | None, solver: Any) -> Any:
        """Keep ``solver`` for ``key`` and a copy of ``weights`` (one entry per key); return it."""
        self.__dict__.setdefault("_solvers", {})[key] = (None if weights is None else np.array(weights, copy=True),
                                                         solver)
        return solver

    def n_identified(self, weights: Any = None) -> int:
        """Rank of the stacked dummy matrix of all dimensions (identified effects), cached.

        One way: the number of levels. Two ways: ``n_A + n_B`` minus the connected sets of the
        bipartite graph of levels (one constant moves between the dimensions in each set).
        Three or more ways: from the exact k-way solver's structure (connected sets and the
        null directions of the reduced Schur complement, see :mod:`fastpanel.kway`).
        Rows with zero weight do not identify anything, so ``weights`` can matter.
        """
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        # The rank depends on the weights only through which are zero (positive weights scale
        # rows), so the cache is keyed by that pattern (None: no zero weight), a short digest,
        # and holds a few entries: an IRLS loop passing new weights each iteration neither
        # recomputes the rank nor keeps an n-byte key per iteration.
        zero = None if w is None else (w == 0)
        key = None
        if zero is not None and zero.any():
            import hashlib

            key = hashlib.blake2b(np.packbits(zero).tobytes() + str(zero.size).encode(), digest_size=16).digest()
        cache = self.__dict__.setdefault("_rank_cache", {})
        if key in cache:
            return cache[key]
        fs = self.factors
        if key is not None:
            fs = [f.subset(~zero) for f in fs]
        if len(fs) == 1:
            rank = fs[0].n_levels
        elif len(fs) == 2:
            import scipy.sparse as sp
            from scipy.sparse.csgraph import connected_components

            a, b = fs
            n_a, n_b = a.n_levels, b.n_levels
            adj = sp.csr_matrix((np.ones(a.n_obs, dtype=np.int8), (a.codes, n_a + b.codes)),
                                shape=(n_a + n_b, n_a + n_b))
            n_comp = connected_components(adj, directed=True, connection="weak")[0]
            rank = n_a + n_b - n_comp
        else:
            from fastpanel.kway import build_structure

            rank = build_structure(fs, None).n_identified  # on the rows with positive weight
        while len(cache) >= _RANK_CACHE_SIZE:
            cache.pop(next(iter(cache)))  # the oldest pattern
        cache[key] = int(rank)
        return int(rank)

    def __repr__(self) -> str:
        dims = ", ".join(f"{f.name}: {f.n_levels} levels" for f in self.factors)
        return f"FixedEffects(n_obs={self.n_obs}, {dims})"
