"""Numba (CPU, parallel) kernels of the panel threshold scan (Hansen 1999).

Algorithm (see docs/ARCHITECTURE "Why the threshold engine can be fast")
    The data enter already transformed: ``A`` is the fixed linear transform of the model (the
    within operator, optionally followed by deleting the last period of each entity). Base
    regressors ``B~ = A B`` are partialled out once: ``e0 = M_B A y`` and ``u = A' e0``. A
    candidate threshold ``g`` adds the block ``W(g) = A (Z * 1[lower regime])``; with the
    observations sorted by the threshold variable, the lower regime is a prefix of length
    ``cut(g)``. With inner product ``<a, b> = a' A' M_B A b``:

        r_c(g)  = Z_g' u                         prefix sum of z * u
        K_cc(g) = Q(Z_g, Z_g) - P(g)' B^-1 P(g)  (y-free: precomputed once)
        K_cf(g) = Q(Z_g, Z_f) - P(g)' B^-1 P(f)  (cross term with a fixed threshold f)

    where ``P(g) = sum_{j < cut} (A'B~)_j z_j'`` and ``Q(a, b) = a' A'A b`` splits as

        Q(a, b) = sum_j h_j a_j b_j + sum_groups sum_{al,be} C[grp, al, be] s_al(a) s_be(b)

    with ``s_al(a) = sum_{j in grp} cw[j, al] a_j`` (per-entity, per-period, global groups).
    Every term is a running sum updated in O(1) as one observation crosses the threshold, so
    one sweep gives S(g) for every candidate:

        S(g) = S_F - d' E^-1 d,   d = r_c - K_cf K_ff^-1 r_f,  E = K_cc - K_cf K_ff^-1 K_fc,
        S_F  = e0'e0 - r_f' K_ff^-1 r_f   (fit with the fixed thresholds only).

    Cost per replicate: O(n pz (1 + m n_gr nc^2 pz)) for the sweep plus O(G (k + m pz) m pz^2)
    for the small solves; replicates are independent (the parallel dimension).

    ``scan_batch`` is two halves: ``scan_sums`` (the running sums ``r_c(g)`` and the group part
    of ``Q(Z_g, Z_f)``: additive over observations and groups, so partitions holding whole
    groups compute them apart and add them) and ``scan_combine`` (``S(g)`` from the sums). The
    distributed engine (``fastpanel.distributed.threshold``) calls them apart, with
    ``period_prefix`` for the period weights of the two-way form.

Naming: ``n`` observations in threshold order (``_sorted`` arrays), ``G`` candidates with
increasing ``cuts`` (lower-regime sizes), ``m`` fixed thresholds given as candidate indices
(``fixed_idx``, one row per replicate), ``pz`` regime variables, ``k`` base regressors,
``n_gr`` groupings (entity, period, global), ``nc`` weight vectors per grouping.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["period_prefix", "precompute", "residualize", "scan_batch", "scan_combine", "scan_sums"]


@njit(cache=True)
def precompute(zs, h, grp, cw, C, As, cuts):  # pragma: no cover - compiled
    """y-free sweep: ``H`` (diagonal part of Q(Z_g, Z_g)), ``Q0 = Q(Z_g, Z_g)`` and ``P(g)``.

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
    n, pz = zs.shape
    n_gr = grp.shape[1]
    nc = cw.shape[2]
    k = As.shape[1]
    G = cuts.shape[0]
    n_groups = C.shape[0]
    H = np.zeros((G, pz, pz))
    Q0 = np.zeros((G, pz, pz))
    P = np.zeros((G, k, pz))
    s = np.zeros((n_groups, nc, pz))
    hrun = np.zeros((pz, pz))
    grun = np.zeros((pz, pz))
    prun = np.zeros((k, pz))
    pos = 0
    for gi in range(G):
        c = cuts[gi]
        while pos < c:
            j = pos
            for p in range(pz):
                zp = zs[j, p]
                for q in range(pz):
                    hrun[p, q] += h[j] * zp * zs[j, q]
                for a in range(k):
                    prun[a, p] += As[j, a] * zp
            for t in range(n_gr):
                gid = grp[j, t]
                # change of sum_ab C_ab s_a s_b' when s_a += cw_a z:
                #   sum_ab C_ab (cw_a z s_b' + s_a cw_b z' + cw_a cw_b z z')
                for al in range(nc):
                    for be in range(nc):
                        cab = C[gid, al, be]
                        if cab == 0.0:
                            continue
                        wa = cw[j, t, al]
                        wb = cw[j, t, be]
                        for p in range(pz):
                            for q in range(pz):
                                grun[p, q] += cab * (
                                    wa * zs[j, p] * s[gid, be, q]
                                    + s[gid, al, p] * wb * zs[j, q]
                                    + wa * wb * zs[j, p] * zs[j, q]
                                )
                for al in range(nc):
                    for p in range(pz):
                        s[gid, al, p] += cw[j, t, al] * zs[j, p]
            pos += 1
        H[gi] = hrun
        Q0[gi] = hrun + grun
        P[gi] = prun
    return H, Q0, P


@njit(cache=True, inline="always")
def _solve_psd(E, d, out, scale, v):  # pragma: no cover - compiled
    """d' E^+ d for the small positive semi-definite pz x pz matrix E (pivoted-out Cholesky).

    A pivot below 1e-10 of ``scale`` (the diagonal of K_cc, the size E would have without the
    fixed thresholds) is a direction the candidate does not add (an empty regime, a candidate
    equal to a fixed threshold, a regime with fewer observations than regime variables): it is
    dropped, which gives the pseudo-inverse, i.e. the least-squares fit of a rank-deficient
    design. ``d`` lies in the range of ``E`` (both are cross-products with W(g)).
    """
    pz = E.shape[0]
    L = out
    total = 0.0
    for i in range(pz):
        for j in range(i + 1):
            acc = E[i, j]
            for t in range(j):
                acc -= L[i, t] * L[j, t]
            if i == j:
                L[i, i] = np.sqrt(acc) if acc > 1e-10 * scale[i] else 0.0
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


@njit(cache=True)
def _sums_one(u, cuts, fidx, zs, grp, cw, C, RC, CROSS):  # pragma: no cover - compiled
    """The additive part of the sweep for one replicate: ``RC[g] = Z_g' u`` and ``CROSS[g, a]``,
    the group part of ``Q(Z_g, Z_f)`` for each fixed threshold ``f = cuts[fidx[a]]``.

    Both are sums over observations (and over the groups they touch), so partitions that hold
    whole groups can compute them separately and add them (the distributed sweep).
    """
    n_gr = grp.shape[1]
    nc = cw.shape[2]
    n_groups = C.shape[0]
    m = fidx.shape[0]
    pz = zs.shape[1]
    G = cuts.shape[0]
    # group sums of Z_f for each fixed threshold: s_f[a, grp, al, p]
    sf = np.zeros((m, n_groups, nc, pz))
    for a in range(m):
        cf = cuts[fidx[a]]
        for j in range(cf):
            for t in range(n_gr):
                gid = grp[j, t]
                for al in range(nc):
                    for p in range(pz):
                        sf[a, gid, al, p] += cw[j, t, al] * zs[j, p]
    rc = np.zeros(pz)
    cross = np.zeros((m, pz, pz))
    pos = 0
    for gi in range(G):
        c = cuts[gi]
        while pos < c:
            j = pos
            uj = u[j]
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
                                    cross[a, p, q] += coef * zs[j, p] * sf[a, gid, be, q]
            pos += 1
        RC[gi] = rc
        CROSS[gi] = cross


@njit(cache=True)
def _combine_one(RC, CROSS, ee_r, fidx, H, Kcc, P, Binv, S_r):  # pragma: no cover - compiled
    """S(g) for one replicate from its sums (:func:`_sums_one`, added over partitions); returns S_F."""
    G, m = CROSS.shape[0], CROSS.shape[1]
    pz = Kcc.shape[1]
    k = P.shape[1]
    mp = m * pz
    QCF = np.empty((G, m, pz, pz))
    for gi in range(G):
        for a in range(m):
            hi = gi if gi < fidx[a] else fidx[a]
            for p in range(pz):
                for q in range(pz):
                    QCF[gi, a, p, q] = CROSS[gi, a, p, q] + H[hi, p, q]
    # B^-1 P(f) for the fixed thresholds
    BPf = np.zeros((m, k, pz))
    for a in range(m):
        fa = fidx[a]
        for i1 in range(k):
            for i2 in range(k):
                for p in range(pz):
                    BPf[a, i1, p] += Binv[i1, i2] * P[fa, i2, p]
    # K_ff (mp x mp) and r_f
    Kff = np.empty((mp, mp))
    rf = np.empty(mp)
    for a in range(m):
        fa = fidx[a]
        for p in range(pz):
            rf[a * pz + p] = RC[fa, p]
        for b in range(m):
            for p in range(pz):
                for q in range(pz):
                    acc = QCF[fa, b, p, q]
                    for i1 in range(k):
                        acc -= P[fa, i1, p] * BPf[b, i1, q]
                    Kff[a * pz + p, b * pz + q] = acc
    Kffinv = np.linalg.inv(Kff) if m > 0 else np.zeros((0, 0))
    wf = np.zeros(mp)
    sF = ee_r
    for s1 in range(mp):
        for s2 in range(mp):
            wf[s1] += Kffinv[s1, s2] * rf[s2]
        sF -= rf[s1] * wf[s1]
    Kcf = np.empty((pz, mp))
    E = np.empty((pz, pz))
    d = np.empty(pz)
    L = np.zeros((pz, pz))
    scale = np.empty(pz)
    vbuf = np.empty(pz)
    for gi in range(G):
        for p in range(pz):
            scale[p] = max(Kcc[gi, p, p], 1e-300)
        for a in range(m):
            for p in range(pz):
                for q in range(pz):
                    acc = QCF[gi, a, p, q]
                    for i1 in range(k):
                        acc -= P[gi, i1, p] * BPf[a, i1, q]
                    Kcf[p, a * pz + q] = acc
        for p in range(pz):
            acc = RC[gi, p]
            for t in range(mp):
                acc -= Kcf[p, t] * wf[t]
            d[p] = acc
        for p in range(pz):
            for q in range(pz):
                acc = Kcc[gi, p, q]
                for s1 in range(mp):
                    for s2 in range(mp):
                        acc -= Kcf[p, s1] * Kffinv[s1, s2] * Kcf[q, s2]
                E[p, q] = acc
        gain = _solve_psd(E, d, L, scale, vbuf)
        S_r[gi] = sF - gain
    return sF


@njit(parallel=True, cache=True)
def scan_batch(U, ee, cuts, fixed_idx, zs, h, grp, cw, C, H, Kcc, P, Binv):  # pragma: no cover
    """S(g) for every candidate and every replicate given its fixed thresholds.

    Parameters
    ----------
    U : (R, n) ``u = A' e0`` per replicate (one row each), threshold order.
    ee : (R,) ``e0' e0`` per replicate.
    cuts : (G,) lower-regime sizes of the candidates.
    fixed_idx : (R, m) int64 candidate indices of the thresholds held fixed.
    zs, h, grp, cw, C : see :func:`precompute`.
    H : (G, pz, pz) diagonal part of Q(Z_g, Z_g) from :func:`precompute`.
    Kcc : (G, pz, pz) ``Q0 - P' B^-1 P``.
    P : (G, k, pz).
    Binv : (k, k) ``(B~'B~)^-1``.

    Returns
    -------
    S : (R, G) residual sums of squares (``S_F`` where the candidate adds nothing).
    SF : (R,) residual sum of squares with the fixed thresholds only.
    """
    R = U.shape[0]
    G = cuts.shape[0]
    m = fixed_idx.shape[1]
    pz = zs.shape[1]
    S = np.empty((R, G))
    SF = np.empty(R)
    for r in prange(R):
        RC = np.empty((G, pz))
        CROSS = np.empty((G, m, pz, pz))
        _sums_one(U[r], cuts, fixed_idx[r], zs, grp, cw, C, RC, CROSS)
        SF[r] = _combine_one(RC, CROSS, ee[r], fixed_idx[r], H, Kcc, P, Binv, S[r])
    return S, SF


@njit(parallel=True, cache=True)
def scan_sums(U, cuts, fixed_idx, zs, grp, cw, C):  # pragma: no cover - compiled
    """The additive sums of :func:`scan_batch` for every replicate (one partition's share).

    Returns
    -------
    RC : (R, G, pz) ``Z_g' u``; CROSS : (R, G, m, pz, pz) group part of ``Q(Z_g, Z_f)``.
    """
    R = U.shape[0]
    G = cuts.shape[0]
    m = fixed_idx.shape[1]
    pz = zs.shape[1]
    RC = np.empty((R, G, pz))
    CROSS = np.empty((R, G, m, pz, pz))
    for r in prange(R):
        _sums_one(U[r], cuts, fixed_idx[r], zs, grp, cw, C, RC[r], CROSS[r])
    return RC, CROSS


@njit(parallel=True, cache=True)
def scan_combine(RC, CROSS, ee, fixed_idx, H, Kcc, P, Binv):  # pragma: no cover - compiled
    """S(g) and S_F of :func:`scan_batch` from the sums of :func:`scan_sums` (added over partitions)."""
    R, G = RC.shape[0], RC.shape[1]
    S = np.empty((R, G))
    SF = np.empty(R)
    for r in prange(R):
        SF[r] = _combine_one(RC[r], CROSS[r], ee[r], fixed_idx[r], H, Kcc, P, Binv, S[r])
    return S, SF


@njit(parallel=True, cache=True)
def residualize(Qb, Y):  # pragma: no cover - compiled
    """``E = Y - Qb Qb' Y`` and the column sums of squares, parallel over replicates.

    Small-k projection written out instead of BLAS: a (n, k) x (k, R) product is too thin for
    BLAS threads to pay off, and on a busy machine their spin-waiting costs more than the work.
    """
    n, k = Qb.shape
    R = Y.shape[1]
    E = np.empty((n, R))
    ee = np.empty(R)
    for r in prange(R):
        c = np.zeros(k)
        for i in range(n):
            yi = Y[i, r]
            for a in range(k):
                c[a] += Qb[i, a] * yi
        acc = 0.0
        for i in range(n):
            v = Y[i, r]
            for a in range(k):
                v -= Qb[i, a] * c[a]
            E[i, r] = v
            acc += v * v
        ee[r] = acc
    return E, ee


@njit(cache=True)
def period_prefix(zs, per_q, ent_q, starts, per_e, cuts, n_periods):  # pragma: no cover - compiled
    """Running sums ``s(g) = sum_{j < cut(g)} (O_j - c_{e_j} / T_{e_j}) z_j'`` (G, T, pz): the
    period weights of the two-way quadratic form (``PanelTransform._other_effects_form``,
    ``O`` the period dummies, ``c_e`` the entity's period counts) summed over the lower regime.

    Parameters
    ----------
    zs : (n, pz) regime variables in threshold order.
    per_q, ent_q : (n,) period and entity codes in threshold order.
    starts : (N + 1,) row offsets of each entity in (entity, period) order; per_e : (n,) the
        periods in that order (an entity's rows list its periods once each).
    cuts : (G,) increasing lower-regime sizes.
    n_periods : T, the number of period codes.
    """
    n, pz = zs.shape
    G = cuts.shape[0]
    T = n_periods
    out = np.zeros((G, T, pz))
    run = np.zeros((T, pz))
    pos = 0
    for gi in range(G):
        c = cuts[gi]
        while pos < c:
            e = ent_q[pos]
            lo, hi = starts[e], starts[e + 1]
            inv = 1.0 / (hi - lo)
            for p in range(pz):
                zp = zs[pos, p]
                run[per_q[pos], p] += zp
                for r in range(lo, hi):
                    run[per_e[r], p] -= zp * inv
            pos += 1
        out[gi] = run
    return out
