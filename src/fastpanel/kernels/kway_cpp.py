"""C++/OpenMP assembly of the k-way Schur complement (``fastpanel._core``; ``csrc/kway.cpp``).

Same signatures and numbers as ``kway_numba``: ``bipartite`` returns the A x B weight table M
(CSR, sorted columns) and the A-group weights; ``schur`` returns the upper triangle (b2 >= b) of
the symmetric S = D_B' W D_B - M' W_A^{-1} M (CSR, sorted columns). ``codes`` is the (n * m,) C-ordered stacked B level of each row and
dimension; ``order``/``starts`` group the rows by A; ``weights`` is float64 (n,) or empty.
"""

from __future__ import annotations

import numpy as np

from fastpanel import _core

__all__ = ["bipartite", "schur"]


def bipartite(order: np.ndarray, starts: np.ndarray, codes: np.ndarray, m: int, n_b: int,
              weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A x B weight table M as CSR ``(indptr, indices, data)`` with sorted columns, and W_A."""
    return _core.kway_bipartite(order, starts, codes, int(m), int(n_b), weights)


def schur(m_indptr: np.ndarray, m_indices: np.ndarray, m_data: np.ndarray, w_a: np.ndarray, codes: np.ndarray,
          m: int, n_b: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper triangle of S = D_B' W D_B - M' W_A^{-1} M as CSR ``(indptr, indices, data)``."""
    return _core.kway_schur(m_indptr, m_indices, m_data, w_a, codes, int(m), int(n_b), weights)
