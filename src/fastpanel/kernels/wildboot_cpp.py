"""C++/OpenMP kernel of the wild cluster bootstrap statistics (``fastpanel._core``).

Same function, arguments and results as ``wildboot_numba`` (see that module,
``wildboot_reference`` and ``csrc/wildboot.cpp`` for the algorithm, cost and naming). Blocks of
draws run in parallel (OpenMP, ``fastpanel.set_num_threads``) with the GIL released.
"""

from __future__ import annotations

import numpy as np

from fastpanel import _core

__all__ = ["wild_stats", "wild_stats_lr"]


def wild_stats(num: np.ndarray, K: np.ndarray, scale: np.ndarray, ent: np.ndarray, kind: int,
               start: int, count: int) -> np.ndarray:
    """Bootstrap statistics of draws ``start .. start + count - 1``.

    Parameters
    ----------
    num : (q, G) float64 numerator matrix ``N``.
    K : (H q, G) float64 score matrix (rows of error cluster h at ``h q .. h q + q - 1``).
    scale : (H,) float64 factor of each error cluster (small-sample factor and sign).
    ent : (G,) uint64 keys of the bootstrap clusters.
    kind : 0 Rademacher, 1 Mammen, 2 Webb, 3 normal, 4 full enumeration.
    start, count : the draws (0-based).

    Returns
    -------
    (count,) float64 t (q = 1) or Wald (q > 1) statistics; NaN where the bootstrap variance is
    not positive (definite).
    """
    return _core.wild_stats(num, K, scale, np.ascontiguousarray(ent, dtype=np.uint64), int(kind),
                            int(start), int(count))


def wild_stats_lr(num: np.ndarray, indptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, U: np.ndarray,
                  V: np.ndarray, scale: np.ndarray, ent: np.ndarray, kind: int, start: int, count: int) -> np.ndarray:
    """:func:`wild_stats` with ``K = P + U V'``: P in CSR form (``indptr`` (H q + 1,) int64, ``cols``
    int64, ``vals``), U (H q, r), V (G, r); O(nnz(P) + (H q + G) r) per draw."""
    return _core.wild_stats_lr(num, indptr, cols, vals, U, V, scale, np.ascontiguousarray(ent, dtype=np.uint64),
                               int(kind), int(start), int(count))
