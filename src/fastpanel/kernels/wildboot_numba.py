"""Numba (CPU, parallel) kernel of the wild cluster bootstrap statistics.

Algorithm and naming: see :mod:`fastpanel.kernels.wildboot_reference` (the NumPy oracle).
Draws are processed in blocks of ``_BLOCK``: the block's weights are generated in place from
the counter-based generator, then ``n = N v`` and ``z_h = K_h v`` are accumulated with the
draws innermost (contiguous, vectorised), in the order g = 0 .. G-1 for every draw, so the
result of a draw does not depend on the block it falls in or on the thread count. Cost per
draw O((q + H q) G); memory O(G * _BLOCK) per thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

__all__ = ["wild_stats", "wild_stats_lr"]

_BLOCK = 64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT = np.uint64(0xD1B54A32D192ED03)


@njit(cache=True, inline="always")
def _mix(x):  # pragma: no cover - compiled
    x = (x ^ (x >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> uint64(27))) * uint64(0x94D049BB133111EB)
    return x ^ (x >> uint64(31))


@njit(cache=True)
def _weight(e, kind, d, G, g):  # pragma: no cover - compiled
    """Weight of draw ``d`` (0-based) for bootstrap cluster ``g`` with key ``e``."""
    if kind == 4:
        return 2.0 * float((d >> (G - 1 - g)) & 1) - 1.0
    bits = _mix(_mix(e + uint64(d + 1) * _GOLDEN) + e)
    if kind == 0:
        return 2.0 * float(bits >> uint64(63)) - 1.0
    u = float(bits >> uint64(11)) * 1.1102230246251565e-16  # 2^-53
    if kind == 1:
        s5 = np.sqrt(5.0)
        return -(s5 - 1.0) / 2.0 if u < (s5 + 1.0) / (2.0 * s5) else (s5 + 1.0) / 2.0
    if kind == 2:
        j = min(int(u * 6.0), 5)
        if j == 0:
            return -np.sqrt(1.5)
        if j == 1:
            return -1.0
        if j == 2:
            return -np.sqrt(0.5)
        if j == 3:
            return np.sqrt(0.5)
        if j == 4:
            return 1.0
        return np.sqrt(1.5)
    u2 = float(_mix(bits ^ _SALT) >> uint64(11)) * 1.1102230246251565e-16
    return np.sqrt(-2.0 * np.log1p(-u)) * np.cos(2.0 * np.pi * u2)


@njit(cache=True)
def _fill_weights(V, ent, kind, first, nb, G):  # pragma: no cover - compiled
    """Weights of draws ``first .. first + nb - 1`` into the columns of ``V`` (G, _BLOCK)."""
    for g in range(G):
        for j in range(nb):
            V[g, j] = _weight(ent[g], kind, first + j, G, g)


@njit(cache=True)
def _numerators(num, V, nb):  # pragma: no cover - compiled
    """``N v`` of the block's draws: (q, _BLOCK)."""
    q, G = num.shape
    N = np.zeros((q, _BLOCK))
    for a in range(q):
        for g in range(G):
            c = num[a, g]
            for j in range(nb):
                N[a, j] += c * V[g, j]
    return N


@njit(cache=True)
def _accumulate(D, Z, s, q, nb):  # pragma: no cover - compiled
    """D += s Z Z' (lower triangle) for each draw of the block."""
    for a in range(q):
        for a2 in range(a + 1):
            for j in range(nb):
                D[a, a2, j] += s * Z[a, j] * Z[a2, j]


@njit(cache=True, parallel=True)
def wild_stats(num, K, scale, ent, kind, start, count):  # pragma: no cover - compiled
    """Bootstrap statistics of draws ``start .. start + count - 1``.

    Parameters
    ----------
    num : (q, G) float64, C order; K : (H q, G) float64, C order; scale : (H,) float64;
    ent : (G,) uint64 cluster keys; kind : int (0 Rademacher, 1 Mammen, 2 Webb, 3 normal,
    4 enumeration); start, count : the draws.

    Returns
    -------
    (count,) float64: t statistics (q = 1) or Wald statistics (q > 1); NaN where the
    bootstrap variance is not positive (definite).
    """
    q, G = num.shape
    H = scale.shape[0]
    out = np.empty(count)
    n_blocks = (count + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        b0 = blk * _BLOCK
        nb = min(_BLOCK, count - b0)
        V = np.empty((G, _BLOCK))
        _fill_weights(V, ent, kind, start + b0, nb, G)
        N = _numerators(num, V, nb)
        D = np.zeros((q, q, _BLOCK))
        Z = np.empty((q, _BLOCK))
        for h in range(H):
            Z[:, :] = 0.0
            for a in range(q):
                row = h * q + a
                for g in range(G):
                    c = K[row, g]
                    for j in range(nb):
                        Z[a, j] += c * V[g, j]
            _accumulate(D, Z, scale[h], q, nb)
        for j in range(nb):
            out[b0 + j] = _finish(N[:, j], D[:, :, j], q)
    return out


@njit(cache=True, parallel=True)
def wild_stats_lr(num, indptr, cols, vals, U, V, scale, ent, kind, start, count):  # pragma: no cover - compiled
    """:func:`wild_stats` with ``K = P + U V'``: P in CSR form (``indptr`` (H q + 1,), ``cols``,
    ``vals``), U (H q, r), V (G, r); O(nnz(P) + (H q + G) r) per draw."""
    q, G = num.shape
    H = scale.shape[0]
    r = U.shape[1]
    out = np.empty(count)
    n_blocks = (count + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        b0 = blk * _BLOCK
        nb = min(_BLOCK, count - b0)
        Vw = np.empty((G, _BLOCK))
        _fill_weights(Vw, ent, kind, start + b0, nb, G)
        N = _numerators(num, Vw, nb)
        T = np.zeros((r, _BLOCK))  # V' v
        for g in range(G):
            for c in range(r):
                vc = V[g, c]
                for j in range(nb):
                    T[c, j] += vc * Vw[g, j]
        D = np.zeros((q, q, _BLOCK))
        Z = np.empty((q, _BLOCK))
        for h in range(H):
            Z[:, :] = 0.0
            for a in range(q):
                row = h * q + a
                for e in range(indptr[row], indptr[row + 1]):
                    c = vals[e]
                    g = cols[e]
                    for j in range(nb):
                        Z[a, j] += c * Vw[g, j]
                for c2 in range(r):
                    u = U[row, c2]
                    for j in range(nb):
                        Z[a, j] += u * T[c2, j]
            _accumulate(D, Z, scale[h], q, nb)
        for j in range(nb):
            out[b0 + j] = _finish(N[:, j], D[:, :, j], q)
    return out


@njit(cache=True)
def _finish(n, D, q):  # pragma: no cover - compiled
    """t = n / sqrt(D) (q = 1) or n' D^-1 n (Cholesky); NaN when D is not positive definite."""
    if q == 1:
        return n[0] / np.sqrt(D[0, 0]) if D[0, 0] > 0 else np.nan
    L = np.zeros((q, q))
    for a in range(q):
        for a2 in range(a + 1):
            acc = D[a, a2]
            for t in range(a2):
                acc -= L[a, t] * L[a2, t]
            if a == a2:
                if acc <= 0.0:
                    return np.nan
                L[a, a] = np.sqrt(acc)
            else:
                L[a, a2] = acc / L[a2, a2]
    w = 0.0
    y = np.empty(q)
    for a in range(q):
        acc = n[a]
        for t in range(a):
            acc -= L[a, t] * y[t]
        y[a] = acc / L[a, a]
        w += y[a] * y[a]
    return w
