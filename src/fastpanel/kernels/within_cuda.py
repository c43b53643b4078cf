"""CUDA (numba.cuda) implementation of the within kernels.

Same algorithm, signatures and conventions as ``within_cpp`` (see ``csrc/within.cpp``). One
GPU thread handles one group (its rows reached through ``order``/``group_starts``), so the
one-way and second two-way passes need no atomics; the first two-way pass accumulates the
n_B-sized right-hand side and the n_B x n_B Schur matrix with ``cuda.atomic.add``. Inputs are
host NumPy arrays: each call copies them to the device and the result back (the transfers
dominate for one call; keeping data resident is future work). CI runs these kernels on the
CPU under ``NUMBA_ENABLE_CUDASIM=1``.

Naming: ``X``/``out`` (n, p) Fortran-ordered float64; ``order`` int64 (n,) or empty;
``group_starts`` int64 (n_groups + 1,); ``weights`` float64 (n,) or empty (unit weights).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

__all__ = ["oneway", "twoway_pass1", "twoway_pass2"]

_THREADS = 128


@cuda.jit(device=True, inline=True)
def _row(order, k, permuted):  # pragma: no cover - device code
    return order[k] if permuted else k


@cuda.jit(device=True, inline=True)
def _group_weight(order, w, s, e, permuted, weighted):  # pragma: no cover
    if not weighted:
        return float(e - s)
    total = 0.0
    for k in range(s, e):
        total += w[_row(order, k, permuted)]
    return total


@cuda.jit
def _oneway_kernel(X, out, order, starts, w, permuted, weighted, n_bad):  # pragma: no cover
    g = cuda.grid(1)
    if g >= starts.shape[0] - 1:
        return
    s = starts[g]
    e = starts[g + 1]
    wsum = _group_weight(order, w, s, e, permuted, weighted)
    for j in range(X.shape[1]):
        total = 0.0
        for k in range(s, e):
            i = _row(order, k, permuted)
            total += (w[i] * X[i, j]) if weighted else X[i, j]
        if not math.isfinite(total):
            cuda.atomic.add(n_bad, 0, 1)
        mean = total / wsum if wsum > 0.0 else 0.0
        for k in range(s, e):
            i = _row(order, k, permuted)
            out[i, j] = X[i, j] - mean


@cuda.jit
def _pass1_kernel(X, order, starts, codes_b, w, permuted, weighted, want_schur, r, schur):  # pragma: no cover
    g = cuda.grid(1)
    if g >= starts.shape[0] - 1:
        return
    s = starts[g]
    e = starts[g + 1]
    wsum = _group_weight(order, w, s, e, permuted, weighted)
    if want_schur:
        inv_w = 1.0 / wsum if wsum > 0.0 else 0.0
        for k1 in range(s, e):
            i1 = _row(order, k1, permuted)
            b1 = codes_b[i1]
            w1 = w[i1] if weighted else 1.0
            cuda.atomic.add(schur, (b1, b1), w1)
            for k2 in range(s, e):
                i2 = _row(order, k2, permuted)
                w2 = w[i2] if weighted else 1.0
                cuda.atomic.add(schur, (b1, codes_b[i2]), -w1 * w2 * inv_w)
    for j in range(X.shape[1]):
        total = 0.0
        for k in range(s, e):
            i = _row(order, k, permuted)
            total += (w[i] * X[i, j]) if weighted else X[i, j]
        mean = total / wsum if wsum > 0.0 else 0.0
        for k in range(s, e):
            i = _row(order, k, permuted)
            wi = w[i] if weighted else 1.0
            cuda.atomic.add(r, (codes_b[i], j), wi * (X[i, j] - mean))


@cuda.jit
def _pass2_kernel(X, out, order, starts, codes_b, gamma, w, permuted, weighted):  # pragma: no cover
    g = cuda.grid(1)
    if g >= starts.shape[0] - 1:
        return
    s = starts[g]
    e = starts[g + 1]
    wsum = _group_weight(order, w, s, e, permuted, weighted)
    inv_w = 1.0 / wsum if wsum > 0.0 else 0.0
    for j in range(X.shape[1]):
        total = 0.0
        for k in range(s, e):
            i = _row(order, k, permuted)
            wi = w[i] if weighted else 1.0
            total += wi * (X[i, j] - gamma[codes_b[i], j])
        alpha = total * inv_w
        for k in range(s, e):
            i = _row(order, k, permuted)
            out[i, j] = X[i, j] - alpha - gamma[codes_b[i], j]


def _device(a: np.ndarray, dtype: type) -> object:
    # Zero-length arrays stand for "not used" (identity order, unit weights); the kernels never
    # read them then, but the device needs a real allocation to pass.
    return cuda.to_device(a if a.shape[0] > 0 else np.zeros(1, dtype=dtype))


def _blocks(n_groups: int) -> int:
    return max(1, (n_groups + _THREADS - 1) // _THREADS)


def oneway(X: np.ndarray, out: np.ndarray, order: np.ndarray, group_starts: np.ndarray, weights: np.ndarray) -> int:
    """Write ``X`` minus weighted group means into ``out`` (``out`` may be ``X``).

    Returns the number of (group, column) totals that are not finite (0 unless X has NaN/inf).
    """
    d_x = cuda.to_device(X)
    d_out = d_x if out is X else cuda.device_array_like(out)
    n_groups = group_starts.shape[0] - 1
    d_bad = cuda.to_device(np.zeros(1, dtype=np.int64))
    _oneway_kernel[_blocks(n_groups), _THREADS](
        d_x, d_out, _device(order, np.int64), cuda.to_device(group_starts), _device(weights, np.float64),
        order.shape[0] > 0, weights.shape[0] > 0, d_bad,
    )
    d_out.copy_to_host(out)
    return int(d_bad.copy_to_host()[0])


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
    n_b = int(n_b)
    d_r = cuda.to_device(np.zeros((n_b, X.shape[1]), order="F"))
    s_dim = n_b if want_schur else 1
    d_s = cuda.to_device(np.zeros((s_dim, s_dim)))
    n_groups = group_starts.shape[0] - 1
    _pass1_kernel[_blocks(n_groups), _THREADS](
        cuda.to_device(X), _device(order, np.int64), cuda.to_device(group_starts), cuda.to_device(codes_b),
        _device(weights, np.float64), order.shape[0] > 0, weights.shape[0] > 0, bool(want_schur), d_r, d_s,
    )
    r = np.asfortranarray(d_r.copy_to_host())
    schur = d_s.copy_to_host() if want_schur else np.empty((0, 0))
    return r, schur


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
    d_out = cuda.device_array(out.shape, dtype=np.float64, order="F")
    n_groups = group_starts.shape[0] - 1
    _pass2_kernel[_blocks(n_groups), _THREADS](
        cuda.to_device(X), d_out, _device(order, np.int64), cuda.to_device(group_starts), cuda.to_device(codes_b),
        cuda.to_device(np.ascontiguousarray(gamma)), _device(weights, np.float64),
        order.shape[0] > 0, weights.shape[0] > 0,
    )
    d_out.copy_to_host(out)
