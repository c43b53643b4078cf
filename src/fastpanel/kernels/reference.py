"""Plain NumPy reference implementations, used as test oracles.

Deliberately naive: the within transform is computed as the residual of a weighted
least-squares regression on explicit dummy columns, solved with ``numpy.linalg.lstsq``.
O(n * L^2) memory and time for L total levels: only for small panels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["within_reference", "dummy_matrix"]


def dummy_matrix(ids: Sequence[np.ndarray]) -> np.ndarray:
    """Stack one indicator column per level of every id array."""
    cols = []
    for g in ids:
        _, codes = np.unique(np.asarray(g), return_inverse=True)
        cols.append(np.eye(codes.max() + 1)[codes])
    return np.hstack(cols)


def within_reference(X: np.ndarray, ids: Sequence[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """Residual of weighted least squares of each column of X on all fixed-effect dummies."""
    X = np.asarray(X, dtype=np.float64)
    was_1d = X.ndim == 1
    X2 = X.reshape(len(X), -1)
    D = dummy_matrix(ids)
    sw = np.ones(len(X2)) if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64))
    coef, *_ = np.linalg.lstsq(D * sw[:, None], X2 * sw[:, None], rcond=None)
    resid = X2 - D @ coef
    return resid[:, 0] if was_1d else resid
