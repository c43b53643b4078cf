"""Candidate thresholds.

* Quantile grid (Hansen 1999): the distinct values of ``q`` sorted, and the quantiles at levels
  ``j / n_quantiles`` (j = 1 .. n_quantiles - 1) that lie inside ``[trim, 1 - trim]``, taken as
  ``distinct[floor(level * n_distinct) - 1]`` (Hansen's GAUSS indexing, 1-based). With 400
  quantiles and 1% trimming this is 393 points.
* ``"exact"``: every distinct value whose lower regime holds a share of the observations
  inside ``[trim, 1 - trim]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["candidate_grid", "exclusion_window", "grid_positions", "quantile_positions"]


def grid_positions(counts: np.ndarray, trim: float, grid: int | str) -> np.ndarray:
    """Increasing positions, among the sorted distinct values of ``q``, of the candidates.

    Parameters
    ----------
    counts : (n_distinct,) rows per distinct value, in increasing order of the values; with a
        quantile grid only its length is used.
    trim : float
        Share trimmed at each end, in [0, 0.5).
    grid : int or "exact"
        Number of quantiles, or every distinct value.
    """
    nd = counts.shape[0]
    if isinstance(grid, str):
        if grid != "exact":
            raise ValueError(f"grid={grid!r}: pass a number of quantiles (e.g. 400) or 'exact'")
        share = np.cumsum(counts) / counts.sum()  # share of rows with q <= each distinct value
        return np.flatnonzero((share >= trim) & (share <= 1.0 - trim))
    return quantile_positions(nd, trim, grid)


def quantile_positions(nd: int, trim: float, grid: int) -> np.ndarray:
    """Positions ``floor(level * nd) - 1`` of the quantile grid (Hansen's GAUSS indexing),
    unique and increasing, for ``nd`` distinct values."""
    if isinstance(grid, bool) or int(grid) != grid or grid < 2:
        raise ValueError(f"grid={grid!r} must be an integer >= 2 (number of quantiles) or 'exact'")
    levels = np.arange(1, int(grid)) / int(grid)
    levels = levels[(levels >= trim - 1e-12) & (levels <= 1.0 - trim + 1e-12)]
    pos = np.floor(levels * nd + 1e-9).astype(np.int64) - 1
    return np.unique(np.clip(pos, 0, nd - 1))


def candidate_grid(q: np.ndarray, trim: float, grid: int | str) -> np.ndarray:
    """Increasing candidate thresholds for the threshold variable ``q``.

    Parameters
    ----------
    q : (n,) finite threshold variable.
    trim : float
        Share trimmed at each end, in [0, 0.5).
    grid : int or "exact"
        Number of quantiles, or every distinct value.

    Returns
    -------
    ndarray of unique increasing candidates.
    """
    distinct, counts = np.unique(q, return_counts=True)
    return distinct[grid_positions(counts, trim, grid)]


def exclusion_window(trim: float, grid: int | str, n_candidates: int) -> int:
    """Half-width, in candidate indices, of the window excluded around a fixed threshold.

    Hansen's code removes the grid points within ``n_quantiles * trim`` of a threshold already
    estimated; with ``grid="exact"`` the same share of the candidates is used.
    """
    size = n_candidates if isinstance(grid, str) else int(grid)
    return max(int(np.floor(size * trim + 1e-9)), 0)
