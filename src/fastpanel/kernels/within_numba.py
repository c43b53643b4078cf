"""Numba (CPU, parallel) implementation of the within kernels.

Same algorithm, signatures and conventions as ``within_cpp`` (see ``csrc/within.cpp``):
groups are visited through ``order``/``group_starts``; one-way costs one read of X and one
write, O(n p); the two-way passes accumulate the n_B x n_B Schur system (O(sum_a k_a^2)) and the
right-hand side r in per-chunk buffers (Numba's prange cannot reduce into arrays), then sum.

Naming: ``X``/``out`` (n, p) Fortran-ordered float64; ``order`` int64 (n,) or empty (rows
sorted by group); ``group_starts`` int64 (n_groups + 1,); ``weights`` float64 (n,) or empty.
Compiled on first call and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["oneway", "twoway_pass1", "twoway_pass2"]


@njit(cache=True, inline="always")
def _row(order, k, permuted):
    return order[k] if permuted else k


@njit(cache=True, inline="always")
def _group_weight(order, w, s, e, permuted, weighted):
    if not weighted:
        return float(e - s)
    total = 0.0
    for k in range(s, e):
        total += w[_row(order, k, permuted)]
    return total


@njit(parallel=True, cache=True)
def _oneway(X, out, order, starts, w, permuted, weighted):  # pragma: no cover - compiled
    p = X.shape[1]
    bad = 0
    for g in prange(starts.shape[0] - 1):
        s, e = starts[g], starts[g + 1]
        wsum = _group_weight(order, w, s, e, permuted, weighted)
        for j in range(p):
            total = 0.0
            for k in range(s, e):
                i = _row(order, k, permuted)
                total += (w[i] * X[i, j]) if weighted else X[i, j]
            if not np.isfinite(total):
                bad += 1
            mean = total / wsum if wsum > 0.0 else 0.0
            for k in range(s, e):
                i = _row(order, k, permuted)
                out[i, j] = X[i, j] - mean
    return bad


@njit(parallel=True, cache=True)
def _pass1(X, order, starts, codes_b, n_b, w, permuted, weighted, want_schur, n_chunks):  # pragma: no cover
    p = X.shape[1]
    n_groups = starts.shape[0] - 1
    r_loc = np.zeros((n_chunks, n_b, p))
    s_loc = np.zeros((n_chunks if want_schur else 0, n_b, n_b))
    for c in prange(n_chunks):
        for g in range(c * n_groups // n_chunks, (c + 1) * n_groups // n_chunks):
            s, e = starts[g], starts[g + 1]
            wsum = _group_weight(order, w, s, e, permuted, weighted)
            if want_schur:
                inv_w = 1.0 / wsum if wsum > 0.0 else 0.0
                for k1 in range(s, e):
                    i1 = _row(order, k1, permuted)
                    b1 = codes_b[i1]
                    w1 = w[i1] if weighted else 1.0
                    s_loc[c, b1, b1] += w1
                    for k2 in range(s, e):
                        i2 = _row(order, k2, permuted)
                        w2 = w[i2] if weighted else 1.0
                        s_loc[c, b1, codes_b[i2]] -= w1 * w2 * inv_w
            for j in range(p):
                total = 0.0
                for k in range(s, e):
                    i = _row(order, k, permuted)
                    total += (w[i] * X[i, j]) if weighted else X[i, j]
                mean = total / wsum if wsum > 0.0 else 0.0
                for k in range(s, e):
                    i = _row(order, k, permuted)
                    wi = w[i] if weighted else 1.0
                    r_loc[c, codes_b[i], j] += wi * (X[i, j] - mean)
    r = np.zeros((n_b, p))
    schur = np.zeros((n_b if want_schur else 0, n_b if want_schur else 0))
    for c in range(n_chunks):
        r += r_loc[c]
        if want_schur:
            schur += s_loc[c]
    return r, schur


@njit(parallel=True, cache=True)
def _pass2(X, out, order, starts, codes_b, gamma, w, permuted, weighted):  # pragma: no cover
    p = X.shape[1]
    for g in prange(starts.shape[0] - 1):
        s, e = starts[g], starts[g + 1]
        wsum = _group_weight(order, w, s, e, permuted, weighted)
        inv_w = 1.0 / wsum if wsum > 0.0 else 0.0
        for j in range(p):
            total = 0.0
            for k in range(s, e):
                i = _row(order, k, permuted)
                wi = w[i] if weighted else 1.0
                total += wi * (X[i, j] - gamma[codes_b[i], j])
            alpha = total * inv_w
            for k in range(s, e):
                i = _row(order, k, permuted)
                out[i, j] = X[i, j] - alpha - gamma[codes_b[i], j]


def oneway(X: np.ndarray, out: np.ndarray, order: np.ndarray, group_starts: np.ndarray, weights: np.ndarray) -> int:
    """Write ``X`` minus weighted group means into ``out`` (``out`` may be ``X``).

    Returns the number of (group, column) totals that are not finite (0 unless X has NaN/inf).
    """
    return _oneway(X, out, order, group_starts, weights, order.shape[0] > 0, weights.shape[0] > 0)


def twoway_pass1(
    X: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    n_b: int,
    weights: np.ndarray,
    want_schur: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``r`` (n_b, p) and the Schur matrix (n_b, n_b; empty unless ``want_schur``)."""
    n_chunks = max(1, min(numba.get_num_threads(), group_starts.shape[0] - 1))
    r, schur = _pass1(
        X, order, group_starts, codes_b, int(n_b), weights, order.shape[0] > 0, weights.shape[0] > 0,
        bool(want_schur), n_chunks,
    )
    return np.asfortranarray(r), schur


def twoway_pass2(
    X: np.ndarray,
    out: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    gamma: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Write ``X - alpha_A - gamma_B`` into ``out`` given the B effects ``gamma`` (n_b, p)."""
    _pass2(X, out, order, group_starts, codes_b, gamma, weights, order.shape[0] > 0, weights.shape[0] > 0)
