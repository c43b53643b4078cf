"""CUDA (numba.cuda) implementation of the panel threshold kernels.

Same functions, arguments, results and algorithm as ``threshold_numba`` (see its banner for the
sweep and ``csrc/threshold.cpp`` for the C++ twin):

* ``precompute`` is y-free and runs once per data set: it runs on the host through the Numba
  CPU kernel (``threshold_numba.precompute``), whose results are what the GPU kernels consume.
* ``residualize``: one GPU thread per replicate (column of ``Y``) computes ``c = Qb' y`` and
  then ``e = y - Qb c``; adjacent threads read adjacent columns of the row-major ``Y``, so the
  loads of a warp are coalesced.
* ``scan_batch``: one GPU thread per replicate runs the whole sweep and the small solves of that
  replicate (the parallel dimension of the algorithm). Arrays whose size depends on the data
  (group sums of the fixed thresholds, r_c and Q(Z_g, Z_f) at every candidate, B^-1 P(f),
  K_ff and its inverse) are global scratch with one slice per replicate; the pz- and m-sized
  working arrays are thread-local with compile-time bounds ``PZ_MAX`` and ``M_MAX`` (the host
  wrapper raises ``ValueError`` beyond them).

Cost per replicate as in the Numba kernel: O(n pz (1 + m n_gr nc^2 pz)) + O(G (k + m pz) m pz^2).
Inputs and outputs are host NumPy arrays; each call copies them to the device and the results
back. CI runs these kernels on the CPU under ``NUMBA_ENABLE_CUDASIM=1`` (small data only).

Naming: ``n`` observations in threshold order, ``G`` candidates (``cuts``), ``R`` replicates,
``m`` fixed thresholds (``fixed_idx``), ``pz`` regime variables, ``k`` base regressors,
``n_gr`` groupings, ``nc`` weight vectors per grouping, ``mp = m * pz``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from fastpanel.kernels import threshold_numba

__all__ = ["M_MAX", "PZ_MAX", "precompute", "residualize", "scan_batch"]

#: Largest number of regime variables the CUDA scan supports (size of thread-local arrays).
PZ_MAX = 4
#: Largest number of fixed thresholds the CUDA scan supports.
M_MAX = 3
_MP_MAX = PZ_MAX * M_MAX
_THREADS = 64


def precompute(zs: np.ndarray, h: np.ndarray, grp: np.ndarray, cw: np.ndarray, C: np.ndarray,
               As: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y-free sweep: ``H``, ``Q0 = Q(Z_g, Z_g)`` and ``P(g)`` (host Numba kernel; done once).

    Parameters
    ----------
    zs : (n, pz) regime variables in threshold order.
    h : (n,) diagonal weights of A'A.
    grp : (n, n_gr) int64 group ids (one global id space over all groupings).
    cw : (n, n_gr, nc) weights of the group terms.
    C : (n_groups, nc, nc) group coefficient matrices.
    As : (n, k) rows of ``A' B~`` in threshold order.
    cuts : (G,) increasing lower-regime sizes.

    Returns
    -------
    H, Q0 : (G, pz, pz); P : (G, k, pz).
    """
    return threshold_numba.precompute(zs, h, grp, cw, C, As, cuts)


@cuda.jit
def _residualize_kernel(Qb, Y, coef, E, ee):  # pragma: no cover - device code
    r = cuda.grid(1)
    if r >= Y.shape[1]:
        return
    n, k = Qb.shape
    for a in range(k):
        coef[r, a] = 0.0
    for i in range(n):
        yi = Y[i, r]
        for a in range(k):
            coef[r, a] += Qb[i, a] * yi
    acc = 0.0
    for i in range(n):
        v = Y[i, r]
        for a in range(k):
            v -= Qb[i, a] * coef[r, a]
        E[i, r] = v
        acc += v * v
    ee[r] = acc


def _blocks(R: int) -> int:
    return max(1, math.ceil(R / _THREADS))


def residualize(Qb: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E = Y - Qb Qb' Y`` and the column sums of squares, one GPU thread per replicate.

    Parameters
    ----------
    Qb : (n, k) orthonormal basis of the transformed base regressors.
    Y : (n, R) transformed responses, one column per replicate.

    Returns
    -------
    E : (n, R); ee : (R,).
    """
    Qb = np.ascontiguousarray(Qb, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    if Qb.ndim != 2 or Y.ndim != 2 or Y.shape[0] != Qb.shape[0]:
        raise ValueError(f"residualize: Qb (n, k) and Y (n, R) must share n; got {Qb.shape} and {Y.shape}")
    n, k = Qb.shape
    R = Y.shape[1]
    if R == 0:
        return np.empty((n, 0)), np.empty(0)
    d_Y = cuda.to_device(Y)
    d_E = cuda.device_array((n, R))
    d_ee = cuda.device_array(R)
    d_coef = cuda.device_array((R, max(k, 1)))
    _residualize_kernel[_blocks(R), _THREADS](cuda.to_device(Qb), d_Y, d_coef, d_E, d_ee)
    return d_E.copy_to_host(), d_ee.copy_to_host()


@cuda.jit(device=True)
def _solve_psd(E, d, L, scale, v, pz):  # pragma: no cover - device code
    """d' E^+ d with pivots below 1e-10 scale dropped (as ``threshold_numba._solve_psd``)."""
    total = 0.0
    for i in range(pz):
        for j in range(i + 1):
            acc = E[i, j]
            for t in range(j):
                acc -= L[i, t] * L[j, t]
            if i == j:
                L[i, i] = math.sqrt(acc) if acc > 1e-10 * scale[i] else 0.0
            else:
                L[i, j] = acc / L[j, j] if L[j, j] > 0.0 else 0.0
    for i in range(pz):
        if L[i, i] == 0.0:
            v[i] = 0.0
            continue
        acc = d[i]
        for t in range(i):
            acc -= L[i, t] * v[t]
        v[i] = acc / L[i, i]
        total += v[i] * v[i]
    return total


@cuda.jit(device=True)
def _invert(K, Kinv, mp):  # pragma: no cover - device code
    """Gauss-Jordan inverse with partial pivoting (K overwritten); False if a pivot is zero."""
    for i in range(mp):
        for j in range(mp):
            Kinv[i, j] = 1.0 if i == j else 0.0
    for col in range(mp):
        piv = col
        for i in range(col + 1, mp):
            if abs(K[i, col]) > abs(K[piv, col]):
                piv = i
        if K[piv, col] == 0.0:
            return False
        if piv != col:
            for j in range(mp):
                t = K[piv, j]
                K[piv, j] = K[col, j]
                K[col, j] = t
                t = Kinv[piv, j]
                Kinv[piv, j] = Kinv[col, j]
                Kinv[col, j] = t
        inv = 1.0 / K[col, col]
        for j in range(mp):
            K[col, j] *= inv
            Kinv[col, j] *= inv
        for i in range(mp):
            if i != col:
                fct = K[i, col]
                if fct != 0.0:
                    for j in range(mp):
                        K[i, j] -= fct * K[col, j]
                        Kinv[i, j] -= fct * Kinv[col, j]
    return True


@cuda.jit
def _scan_kernel(U, ee, cuts, fixed_idx, zs, grp, cw, C, H, Kcc, P, Binv,
                 sf, RC, QCF, BPf, Kff, Kffinv, S, SF, bad):  # pragma: no cover - device code
    r = cuda.grid(1)
    R = U.shape[0]
    if r >= R:
        return
    G = cuts.shape[0]
    m = fixed_idx.shape[1]
    pz = zs.shape[1]
    k = P.shape[1]
    n_gr = grp.shape[1]
    nc = cw.shape[2]
    n_groups = C.shape[0]
    mp = m * pz
    rc = cuda.local.array(PZ_MAX, np.float64)
    cross = cuda.local.array((M_MAX, PZ_MAX, PZ_MAX), np.float64)
    rf = cuda.local.array(_MP_MAX, np.float64)
    wf = cuda.local.array(_MP_MAX, np.float64)
    Kcf = cuda.local.array((PZ_MAX, _MP_MAX), np.float64)
    E = cuda.local.array((PZ_MAX, PZ_MAX), np.float64)
    L = cuda.local.array((PZ_MAX, PZ_MAX), np.float64)
    d = cuda.local.array(PZ_MAX, np.float64)
    scale = cuda.local.array(PZ_MAX, np.float64)
    vbuf = cuda.local.array(PZ_MAX, np.float64)
    # group sums of Z_f for each fixed threshold: sf[r, a, grp, al, p]
    for a in range(m):
        for g in range(n_groups):
            for al in range(nc):
                for p in range(pz):
                    sf[r, a, g, al, p] = 0.0
        cf = cuts[fixed_idx[r, a]]
        for j in range(cf):
            for t in range(n_gr):
                gid = grp[j, t]
                for al in range(nc):
                    for p in range(pz):
                        sf[r, a, gid, al, p] += cw[j, t, al] * zs[j, p]
    for p in range(pz):
        rc[p] = 0.0
    for a in range(m):
        for p in range(pz):
            for q in range(pz):
                cross[a, p, q] = 0.0
    pos = 0
    for gi in range(G):
        c = cuts[gi]
        while pos < c:
            j = pos
            uj = U[r, j]
            for p in range(pz):
                rc[p] += zs[j, p] * uj
            for a in range(m):
                for t in range(n_gr):
                    gid = grp[j, t]
                    for al in range(nc):
                        for be in range(nc):
                            cab = C[gid, al, be]
                            if cab == 0.0:
                                continue
                            coef = cab * cw[j, t, al]
                            for p in range(pz):
                                for q in range(pz):
                                    cross[a, p, q] += coef * zs[j, p] * sf[r, a, gid, be, q]
            pos += 1
        for p in range(pz):
            RC[r, gi, p] = rc[p]
        for a in range(m):
            fa = fixed_idx[r, a]
            hi = gi if gi < fa else fa
            for p in range(pz):
                for q in range(pz):
                    QCF[r, gi, a, p, q] = cross[a, p, q] + H[hi, p, q]
    # B^-1 P(f), K_ff, r_f
    for a in range(m):
        fa = fixed_idx[r, a]
        for i1 in range(k):
            for p in range(pz):
                acc = 0.0
                for i2 in range(k):
                    acc += Binv[i1, i2] * P[fa, i2, p]
                BPf[r, a, i1, p] = acc
    for a in range(m):
        fa = fixed_idx[r, a]
        for p in range(pz):
            rf[a * pz + p] = RC[r, fa, p]
        for b in range(m):
            for p in range(pz):
                for q in range(pz):
                    acc = QCF[r, fa, b, p, q]
                    for i1 in range(k):
                        acc -= P[fa, i1, p] * BPf[r, b, i1, q]
                    Kff[r, a * pz + p, b * pz + q] = acc
    if mp > 0:
        if not _invert(Kff[r], Kffinv[r], mp):
            bad[r] = 1
            return
    sF = ee[r]
    for s1 in range(mp):
        acc = 0.0
        for s2 in range(mp):
            acc += Kffinv[r, s1, s2] * rf[s2]
        wf[s1] = acc
        sF -= rf[s1] * acc
    SF[r] = sF
    for gi in range(G):
        for p in range(pz):
            scale[p] = max(Kcc[gi, p, p], 1e-300)
        for a in range(m):
            for p in range(pz):
                for q in range(pz):
                    acc = QCF[r, gi, a, p, q]
                    for i1 in range(k):
                        acc -= P[gi, i1, p] * BPf[r, a, i1, q]
                    Kcf[p, a * pz + q] = acc
        for p in range(pz):
            acc = RC[r, gi, p]
            for t in range(mp):
                acc -= Kcf[p, t] * wf[t]
            d[p] = acc
        for p in range(pz):
            for q in range(pz):
                acc = Kcc[gi, p, q]
                for s1 in range(mp):
                    for s2 in range(mp):
                        acc -= Kcf[p, s1] * Kffinv[r, s1, s2] * Kcf[q, s2]
                E[p, q] = acc
        S[r, gi] = sF - _solve_psd(E, d, L, scale, vbuf, pz)


def scan_batch(U: np.ndarray, ee: np.ndarray, cuts: np.ndarray, fixed_idx: np.ndarray, zs: np.ndarray,
               h: np.ndarray, grp: np.ndarray, cw: np.ndarray, C: np.ndarray, H: np.ndarray,
               Kcc: np.ndarray, P: np.ndarray, Binv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S(g) for every candidate and every replicate given its fixed thresholds (one thread each).

    Parameters
    ----------
    U : (R, n) ``u = A' e0`` per replicate (one row each), threshold order.
    ee : (R,) ``e0' e0`` per replicate.
    cuts : (G,) lower-regime sizes of the candidates.
    fixed_idx : (R, m) int64 candidate indices of the thresholds held fixed (m <= ``M_MAX``).
    zs, h, grp, cw, C : see :func:`precompute` (pz <= ``PZ_MAX``).
    H : (G, pz, pz) diagonal part of Q(Z_g, Z_g) from :func:`precompute`.
    Kcc : (G, pz, pz) ``Q0 - P' B^-1 P``.
    P : (G, k, pz).
    Binv : (k, k) ``(B~'B~)^-1``.

    Returns
    -------
    S : (R, G) residual sums of squares (``S_F`` where the candidate adds nothing).
    SF : (R,) residual sum of squares with the fixed thresholds only.
    """
    R, n = U.shape
    G = cuts.shape[0]
    m = fixed_idx.shape[1]
    pz = zs.shape[1]
    k = P.shape[1]
    nc = cw.shape[2]
    n_groups = C.shape[0]
    if pz > PZ_MAX:
        raise ValueError(f"the CUDA threshold scan supports at most {PZ_MAX} regime variables, got "
                         f"{pz}; use backend='cpp' or 'numba'")
    if m > M_MAX:
        raise ValueError(f"the CUDA threshold scan supports at most {M_MAX} fixed thresholds, got "
                         f"{m}; use backend='cpp' or 'numba'")
    if fixed_idx.shape[0] != R or zs.shape[0] != n or ee.shape[0] != R:
        raise ValueError("scan_batch: U (R, n), ee (R,), fixed_idx (R, m) and zs (n, pz) must agree")
    if R == 0:
        return np.empty((0, G)), np.empty(0)
    dev = cuda.to_device
    # global scratch, one slice per replicate (sizes depend on the data)
    sf = cuda.device_array((R, max(m, 1), n_groups, nc, pz))
    RC = cuda.device_array((R, G, pz))
    QCF = cuda.device_array((R, G, max(m, 1), pz, pz))
    BPf = cuda.device_array((R, max(m, 1), k, pz))
    mp = max(m * pz, 1)
    Kff = cuda.device_array((R, mp, mp))
    Kffinv = cuda.device_array((R, mp, mp))
    d_S = cuda.device_array((R, G))
    d_SF = cuda.device_array(R)
    d_bad = cuda.to_device(np.zeros(R, dtype=np.int64))
    _scan_kernel[_blocks(R), _THREADS](
        dev(np.ascontiguousarray(U, dtype=np.float64)), dev(np.ascontiguousarray(ee, dtype=np.float64)),
        dev(np.ascontiguousarray(cuts, dtype=np.int64)), dev(np.ascontiguousarray(fixed_idx, dtype=np.int64)),
        dev(np.ascontiguousarray(zs)), dev(np.ascontiguousarray(grp, dtype=np.int64)),
        dev(np.ascontiguousarray(cw)), dev(np.ascontiguousarray(C)), dev(np.ascontiguousarray(H)),
        dev(np.ascontiguousarray(Kcc)), dev(np.ascontiguousarray(P)), dev(np.ascontiguousarray(Binv)),
        sf, RC, QCF, BPf, Kff, Kffinv, d_S, d_SF, d_bad)
    if d_bad.copy_to_host().any():
        raise RuntimeError(
            "K_ff, the cross-product of the fixed thresholds' regime variables, is singular: a "
            "fixed threshold leaves a regime without identifying variation")
    return d_S.copy_to_host(), d_SF.copy_to_host()
