"""Numba (CPU, parallel) assembly of the k-way Schur complement; mirrors ``csrc/kway.cpp``.

Algorithm (see ``fastpanel.kway``): ``bipartite`` builds the A x B weight table M (CSR, one row
per group of the eliminated dimension A, columns sorted) and the group weights W_A in one pass
over the rows grouped by A, O(n m). ``schur`` builds the upper triangle (b2 >= b) of the
symmetric S = D_B' W D_B - M' W_A^{-1} M row by row (Gustavson): row b of D_B' W D_B from the
data rows that carry level b, minus (M[a, b] / W_a) M[a, b:] over the groups a of b.
O(n m^2 + sum_a nnz(M[a])^2 / 2). Numba's prange
cannot append to lists, so ``schur`` makes two passes (pattern count, then values); each row's
arithmetic is in the same fixed order as the C++ kernel, so both give the same numbers.

Naming: ``codes`` is the (n * m,) C-ordered stacked B level of row i, dimension d at i * m + d;
``order``/``starts`` group the rows by A (empty ``order``: rows already sorted); ``weights`` is
float64 (n,) or empty. Compiled on first call and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["bipartite", "schur"]


@njit(parallel=True, cache=True)
def _bipartite(order, starts, codes, m, n_b, w, permuted, weighted):  # pragma: no cover - compiled
    n_groups = starts.shape[0] - 1
    n = starts[n_groups]
    slot_col = np.empty(n * m, np.int64)
    slot_val = np.empty(n * m, np.float64)
    count = np.zeros(n_groups, np.int64)
    W_A = np.zeros(n_groups, np.float64)
    chunk = 1024
    n_chunks = (n_groups + chunk - 1) // chunk
    for c in prange(n_chunks):
        where = np.full(n_b, -1, np.int64)
        for a in range(c * chunk, min(n_groups, (c + 1) * chunk)):
            base = m * starts[a]
            cnt = 0
            total = 0.0
            for k in range(starts[a], starts[a + 1]):
                i = order[k] if permuted else k
                wi = w[i] if weighted else 1.0
                total += wi
                for d in range(m):
                    b = codes[i * m + d]
                    if where[b] < 0:
                        where[b] = base + cnt
                        slot_col[base + cnt] = b
                        slot_val[base + cnt] = 0.0
                        cnt += 1
                    slot_val[where[b]] += wi
            for s in range(base, base + cnt):
                where[slot_col[s]] = -1
            perm = np.argsort(slot_col[base:base + cnt])
            cols = slot_col[base:base + cnt][perm]
            vals = slot_val[base:base + cnt][perm]
            slot_col[base:base + cnt] = cols
            slot_val[base:base + cnt] = vals
            count[a] = cnt
            W_A[a] = total
    indptr = np.zeros(n_groups + 1, np.int64)
    for a in range(n_groups):
        indptr[a + 1] = indptr[a] + count[a]
    indices = np.empty(indptr[n_groups], np.int64)
    data = np.empty(indptr[n_groups], np.float64)
    for a in prange(n_groups):
        base = m * starts[a]
        for s in range(count[a]):
            indices[indptr[a] + s] = slot_col[base + s]
            data[indptr[a] + s] = slot_val[base + s]
    return indptr, indices, data, W_A


@njit(cache=True)
def _level_ptr(keys, count, n_b):  # pragma: no cover - compiled
    """Start of each level's run when ``keys[:count]`` are sorted by level (counting sort)."""
    ptr = np.zeros(n_b + 1, np.int64)
    for k in range(count):
        ptr[keys[k] + 1] += 1
    for b in range(n_b):
        ptr[b + 1] += ptr[b]
    return ptr


@njit(cache=True)
def _by_level(codes, nm, n_b, mp, mi, mv, W_A):  # pragma: no cover - compiled
    """Counting sorts by B level: the data rows of each level (flat positions i * m + d), and
    the groups of each level as streams (position in M, M[a,b] / W_a, end of the group's row;
    a group of zero weight ends where it starts: it has no equation)."""
    row_ptr = _level_ptr(codes, nm, n_b)
    nxt = row_ptr[:-1].copy()
    row_pos = np.empty(nm, np.int64)
    for k in range(nm):
        row_pos[nxt[codes[k]]] = k
        nxt[codes[k]] += 1
    n_groups = mp.shape[0] - 1
    nnz_m = mp[n_groups]
    grp_ptr = _level_ptr(mi, nnz_m, n_b)
    nxt = grp_ptr[:-1].copy()
    grp_pos = np.empty(nnz_m, np.int64)
    grp_end = np.empty(nnz_m, np.int64)
    grp_coef = np.empty(nnz_m, np.float64)
    for a in range(n_groups):
        live = W_A[a] > 0.0
        inv = 1.0 / W_A[a] if live else 0.0
        for k in range(mp[a], mp[a + 1]):
            at = nxt[mi[k]]
            nxt[mi[k]] += 1
            grp_pos[at] = k
            grp_coef[at] = mv[k] * inv
            grp_end[at] = mp[a + 1] if live else k
    return row_ptr, row_pos, grp_ptr, grp_pos, grp_coef, grp_end


@njit(cache=True, inline="always")
def _row(b, m, codes, w, weighted, row_ptr, row_pos, grp_ptr, grp_pos, grp_coef, grp_end, mi, mv,
         acc, seen, cols):  # pragma: no cover - compiled
    """Accumulate the upper part (b2 >= b) of row b of S into acc; returns how many columns it
    touches (listed in cols)."""
    nc = 0
    for k in range(row_ptr[b], row_ptr[b + 1]):
        i = row_pos[k] // m
        wi = w[i] if weighted else 1.0
        for e in range(row_pos[k] % m, m):  # later dimensions: larger stacked levels (b2 >= b)
            b2 = codes[i * m + e]
            if not seen[b2]:
                seen[b2] = True
                cols[nc] = b2
                nc += 1
            acc[b2] += wi
    for k in range(grp_ptr[b], grp_ptr[b + 1]):
        coef = grp_coef[k]
        for q in range(grp_pos[k], grp_end[k]):  # sorted columns: b2 >= b
            b2 = mi[q]
            if not seen[b2]:
                seen[b2] = True
                cols[nc] = b2
                nc += 1
            acc[b2] -= coef * mv[q]
    return nc


@njit(parallel=True, cache=True)
def _schur(mp, mi, mv, W_A, codes, m, n_b, w, weighted):  # pragma: no cover - compiled
    row_ptr, row_pos, grp_ptr, grp_pos, grp_coef, grp_end = _by_level(codes, codes.shape[0], n_b, mp, mi, mv, W_A)
    chunk = 64
    n_chunks = (n_b + chunk - 1) // chunk
    lengths = np.zeros(n_b, np.int64)
    for c in prange(n_chunks):  # pass 1: pattern sizes
        acc = np.zeros(n_b, np.float64)
        seen = np.zeros(n_b, np.bool_)
        cols = np.empty(n_b, np.int64)
        for b in range(c * chunk, min(n_b, (c + 1) * chunk)):
            nc = _row(b, m, codes, w, weighted, row_ptr, row_pos, grp_ptr, grp_pos, grp_coef, grp_end, mi, mv,
                      acc, seen, cols)
            lengths[b] = nc
            for t in range(nc):
                acc[cols[t]] = 0.0
                seen[cols[t]] = False
    indptr = np.zeros(n_b + 1, np.int64)
    for b in range(n_b):
        indptr[b + 1] = indptr[b] + lengths[b]
    indices = np.empty(indptr[n_b], np.int64)
    data = np.empty(indptr[n_b], np.float64)
    for c in prange(n_chunks):  # pass 2: values, columns sorted
        acc = np.zeros(n_b, np.float64)
        seen = np.zeros(n_b, np.bool_)
        cols = np.empty(n_b, np.int64)
        for b in range(c * chunk, min(n_b, (c + 1) * chunk)):
            nc = _row(b, m, codes, w, weighted, row_ptr, row_pos, grp_ptr, grp_pos, grp_coef, grp_end, mi, mv,
                      acc, seen, cols)
            srt = np.sort(cols[:nc])
            at = indptr[b]
            for t in range(nc):
                indices[at + t] = srt[t]
                data[at + t] = acc[srt[t]]
                acc[srt[t]] = 0.0
                seen[srt[t]] = False
    return indptr, indices, data


def bipartite(order: np.ndarray, starts: np.ndarray, codes: np.ndarray, m: int, n_b: int,
              weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A x B weight table M as CSR ``(indptr, indices, data)`` with sorted columns, and W_A."""
    return _bipartite(order, starts, codes, int(m), int(n_b), weights, order.shape[0] > 0, weights.shape[0] > 0)


def schur(m_indptr: np.ndarray, m_indices: np.ndarray, m_data: np.ndarray, w_a: np.ndarray, codes: np.ndarray,
          m: int, n_b: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper triangle of S = D_B' W D_B - M' W_A^{-1} M as CSR ``(indptr, indices, data)``."""
    return _schur(m_indptr, m_indices, m_data, w_a, codes, int(m), int(n_b), weights, weights.shape[0] > 0)
