"""CR2 (Bell-McCaffrey) cluster-robust covariance of the fixed-effects OLS slopes, and the
Satterthwaite degrees of freedom of each slope's t test, with the fixed effects absorbed.

What is computed
----------------
The model is the full regression ``y = X b + D a + e``: ``D`` holds the dummy columns of every
fixed-effect dimension, ``w`` are the analytic weights (ones without weights), ``Z = [X, D]``,
``Omega = diag(w / mean(w))`` and ``H = Z (Z' Omega Z)^+ Z' Omega`` is the hat matrix of the
whole design, dummies included. R's clubSandwich, ``vcovCR(lm(y ~ x + factor(fe), weights = w),
cluster = g, type = "CR2")`` with its defaults (working model ``Phi = I``; for ``lm`` without
weights ``inverse_var = TRUE``, which is the same thing there), restricted to the slopes, is::

    V   = B [sum_g X~_g' W_g A_g e_g e_g' A_g W_g X~_g] B                              (1)
    A_g = G_g^{+1/2},   G_g = [(I - H)(I - H)']_gg                                      (2)

``X~`` are the weighted within-transformed regressors, ``B = (X~' W X~)^{-1}``, ``e`` the
residuals, ``[.]_gg`` the rows and columns of cluster g and ``^{+1/2}`` the Moore-Penrose
inverse square root (symmetric; eigenvalues at rounding level are dropped, see below). Without
weights ``G_g = I - H_gg``: Bell and McCaffrey's (2002) adjustment. With weights, ``G_g`` is
clubSandwich's ``(I - H) Phi (I - H)'`` block with ``Phi = I``, not ``I - H_gg``. No
small-sample factor multiplies ``V`` (clubSandwich has none for CR2).

The degrees of freedom of slope j are clubSandwich's ``coef_test(..., test = "Satterthwaite")``
(Bell and McCaffrey 2002; Pustejovsky and Tipton 2018, section 3), for the working model
``y ~ N(Z b, I)``: ``V_jj = sum_g (zeta_g' y)^2`` with the n-vectors
``zeta_g = (I - H)' E_g A_g W_g X~_g B e_j`` (``E_g`` the columns of the identity for the rows
of cluster g), so, with ``P_gh = zeta_g' zeta_h``::

    df_j = 2 E[V_jj]^2 / Var[V_jj] = (tr P)^2 / ||P||_F^2.                             (3)

How (no n x n matrix)
---------------------
Everything is computed on the sqrt(w)-scaled data of the fit: ``Xs = W^{1/2} X~`` and
``us = W^{1/2} e``. Then ``H = W^{-1/2} Hs W^{1/2}`` with the symmetric projection
``Hs = Xs B Xs' + P_D``, ``P_D`` the projection on the sqrt(w)-scaled dummies. In these terms::

    G_g = Omega_g^{-1/2} K_g Omega_g^{-1/2},   K_g = [(I - Hs) Omega (I - Hs)]_gg        (2')
    V   = B [sum_g s_g s_g'] B,   s_g = Xs_g' Omega_g^{1/2} A_g Omega_g^{-1/2} us_g        (1')

(``K_g = I - Hs_gg`` without weights). The dimension with the most levels, ``a``, is eliminated
in closed form (Frisch-Waugh-Lovell on the dummies)::

    P_D = P_a + V V',   P_a[i, j] = sqrt(w_i w_j) / W_a(i)  if a(i) = a(j), else 0
    v_i = sqrt(w_i) (c_a(i) / W_a(i) - sum_f e_f(i))' S^{+1/2}

``W_a`` is the weight of level a, ``c_a`` (length ``L_r``, the levels of all other dimensions)
the weight of level a's rows in each other level, ``e_f(i)`` the indicator of row i's level in
other dimension f, and ``S = D_r' W D_r - C' W_a^{-1} C`` the ``L_r x L_r`` Schur complement
(``C = D_a' W D_r``), pseudo-inverted on its exact rank (``fe_df_exact - L_a``: the connected
sets of the levels). With ``U = [Xs L, V]`` (``L L' = B``) the columns of ``U`` are orthonormal
and ``Hs = P_a + U U'``: block-diagonal (by level of a) plus rank ``m = k + rank S``. So for the
rows of cluster g, of ``n_g`` rows::

    K_g = I - P_a,gg - U_g U_g'                                           (no weights)
    K_g = [M_a Omega M_a]_gg - U_g Ut_g' - Ut_g U_g' + U_g (U' Omega U) U_g'    (weights)

with ``M_a = I - P_a`` (entries for rows of the same level of a only) and ``Ut = M_a Omega U``,
whose rows need only per-level sums. ``G_g`` is the identity plus an update of rank
``r_g = e_g + m`` (weights: ``2 (e_g + m)``), ``e_g`` the levels of a present in cluster g
(``P_a,gg = E diag(1/W_a) E'`` with E their sqrt(w)-scaled indicators). A cluster of at least
96 rows with ``r_g <= 2 n_g / 3`` (a cluster of whole entities, e.g. states clustered by region)
is handled through that update: with ``G_g = I + F S F'`` and ``F = Q R``, the eigenvalues are
``1 + eig(R S R')`` on span(F) and 1 elsewhere, so ``A_g = I + Y diag(mu^{+-1/2} - 1) Y'``
at ``O(n_g r_g^2)``. Any other cluster's ``G_g`` (n_g x n_g) is formed and eigendecomposed,
batched over clusters of equal size. ``A_g`` is applied, never stored.

For (3): with ``pi_g = Omega_g^{-1/2} A_g Omega_g^{1/2} Xs_g B e_j``,
``P = T - Y' Ut_Y - Ut_Y' Y + Y' (U' Omega U) Y`` where column g of ``Y`` is ``U_g' pi_g``, of
``Ut_Y`` it is ``Ut_g' pi_g``, and ``T_gh = pi_g' [M_a Omega M_a]_gh pi_h`` is sparse: non-zero
only for clusters that share a level of a (``T = diag(pi'pi) - M W_a^{-1} M'`` without weights,
``M[g, a]`` the sum of ``sqrt(w) pi`` over the rows of cluster g in level a). ``P`` is formed
when there are at most ``DENSE_DF_MAX_CLUSTERS`` clusters; beyond, ``tr P`` and ``||P||_F^2``
come from ``||T + L||^2 = ||T||^2 + 2 <T, L> + ||L||^2`` with the low-rank part ``L`` handled
through its ``2m x 2m`` Gram matrix.

Singular ``G_g``
----------------
A fixed-effect level (or combination of levels) whose rows all lie in cluster g makes ``G_g``
singular: always so for effects nested in the clusters (cluster by entity with entity effects).
The residuals and the within-transformed regressors are orthogonal to those directions, so the
Moore-Penrose inverse square root gives the covariance that ignores the nested effects
(Pustejovsky and Tipton 2018, Theorem 2), which is also what clubSandwich's eigenvalue cutoff
does. A null direction of ``G_g`` that the fixed effects do not explain (an observation, or a
combination, fitted exactly through the regressors: leverage 1) makes CR2 undefined, and
:func:`cr2_vcov` raises ``ValueError``. Eigenvalues are null at or below
``max(1e-12, 64 n_g eps) max(1, lambda_max)``; a null direction "belongs to the regressors"
when more than ``1e-6`` of its length lies in their column space.

Cost
----
``O(sum_g n_g^3 + sum_g n_g^2 (k + r))`` for the dense blocks (r = rank of S) and
``O(n_g r_g^2)`` for a low-rank one, ``O(L_r^3)`` for S,
``O(n (k + r))`` memory besides one batch of blocks, and for the df ``O(G^2 (k + r) k)``
(dense ``P``) or ``O(G (k + r)^2 k + nnz(T) (k + r) k)``. Limits: ``MAX_CLUSTER_ROWS`` rows in
a cluster that needs the dense block, ``MAX_SCHUR_LEVELS`` levels outside the largest
fixed-effect dimension.

References
----------
Bell, R. M. and McCaffrey, D. F. (2002). Bias reduction in standard errors for linear regression
with multi-stage samples. Survey Methodology 28(2), 169-181.
Pustejovsky, J. E. and Tipton, E. (2018). Small-sample methods for cluster-robust variance
estimation and hypothesis testing in fixed effects models. Journal of Business & Economic
Statistics 36(4), 672-683.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "DENSE_DF_MAX_CLUSTERS",
    "MAX_CLUSTER_ROWS",
    "MAX_SCHUR_LEVELS",
    "cr2_vcov",
]

#: Largest cluster (rows) whose n_g x n_g block is formed and eigendecomposed (at 10,000 rows
#: about 0.8 GB per matrix and tens of seconds). Clusters made of few levels of the largest fixed
#: effect take the low-rank path instead and have no such limit.
MAX_CLUSTER_ROWS = 10_000

#: Largest number of levels outside the fixed-effect dimension with the most levels: the dense
#: Schur complement S of the dummies is L_r x L_r.
MAX_SCHUR_LEVELS = 2_000

#: Up to this many clusters the Satterthwaite matrix P (G x G) is formed; beyond, its trace and
#: Frobenius norm come from the sparse-plus-low-rank identity.
DENSE_DF_MAX_CLUSTERS = 2_048

_EPS = np.finfo(float).eps
_NULL_REL = 1e-12  # eigenvalue cutoff relative to max(1, lambda_max) (clubSandwich: 1e-12)
_REGRESSOR_CONTENT = 1e-6  # a null direction with more of its length in span(Xs) is leverage 1
_BATCH_ELEMENTS = 1 << 21  # entries of one stacked (clusters x n_g x n_g) batch
_LOW_RANK_MIN_ROWS = 96  # clusters this large are tried as identity + low-rank update


class _DummyProjection:
    """``P_D = P_a + V V'`` for the sqrt(w)-scaled dummies of the fixed effects (see the
    module docstring): dimension ``a`` (most levels) in closed form, the others through the
    pseudo-inverse square root of their Schur complement, of rank ``rank - L_a``.

    Parameters
    ----------
    factors : sequence of Factor
        The fixed-effect dimensions (cleaned rows).
    w : ndarray or None
        Analytic weights (raw; the projection does not depend on their scale).
    rank : int
        Rank of the dummy matrix (``fe_df_exact``).
    """

    def __init__(self, factors: Sequence[Any], w: np.ndarray | None, rank: int) -> None:
        self.a = None
        self.r = 0
        self.sw = None if w is None else np.sqrt(w)
        if not factors:
            return
        ia = int(np.argmax([f.n_levels for f in factors]))
        a = factors[ia]
        rest = [f for i, f in enumerate(factors) if i != ia]
        n = a.n_obs
        wv = np.ones(n) if w is None else w
        self.n = n
        self.a = a
        self.a_codes = a.codes
        self.La = a.n_levels
        self.Wa = np.bincount(a.codes, weights=wv, minlength=self.La)
        self.Lr = sum(f.n_levels for f in rest)
        if not rest:
            return
        if self.Lr > MAX_SCHUR_LEVELS:
            raise ValueError(
                f"vcov={{'CR2': ...}}: the fixed effects other than {a.name!r} have {self.Lr:,} levels; CR2's "
                f"leverage of the dummies needs a dense Schur complement of at most {MAX_SCHUR_LEVELS:,} levels "
                "(the dimension with the most levels is eliminated in closed form); absorb fewer effects, or "
                "use CRV1/CRV3"
            )
        offsets = np.cumsum([0] + [f.n_levels for f in rest[:-1]])
        self.rest_codes = [f.codes + np.int64(off) for f, off in zip(rest, offsets)]
        rows = np.tile(np.arange(n), len(rest))
        cols = np.concatenate(self.rest_codes)
        self.Dr = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, self.Lr))
        Da_w = sp.csr_matrix((wv, (np.arange(n), a.codes)), shape=(n, self.La))
        C = (Da_w.T @ self.Dr).tocsr()  # weight of level a's rows in each other level
        self.Rmat = (sp.diags(1.0 / self.Wa) @ C).tocsr()  # rows c_a / W_a
        S = (self.Dr.T @ sp.diags(wv) @ self.Dr - C.T @ self.Rmat).toarray()
        S = 0.5 * (S + S.T)
        r = int(rank) - self.La
        lam, Q = np.linalg.eigh(S)
        if r > 0:
            top = lam[-r:]
            # The rank comes from the level graph (connected sets), not from a cutoff: the kept
            # eigenvalues must stand clear of the dropped ones, which are rounding errors.
            floor = 64 * self.Lr * _EPS * max(lam[-1], 0.0)
            if top[0] <= floor:
                raise ValueError(
                    "vcov={'CR2': ...}: the Schur complement of the fixed-effect dummies is numerically "
                    "singular beyond its structural rank (weights spanning too many orders of magnitude?); "
                    "the leverage of the fixed effects cannot be computed reliably"
                )
            self.LS = Q[:, -r:] / np.sqrt(top)
        else:
            self.LS = np.zeros((self.Lr, 0))
        self.r = max(r, 0)

    def v_rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``v_i`` (shape ``idx.shape + (r,)``) of the Schur part of ``P_D``."""
        ea = self.a_codes[idx]
        uniq, inv = np.unique(ea, return_inverse=True)
        out = np.asarray(self.Rmat[uniq] @ self.LS)[inv.reshape(ea.shape)]
        for codes in self.rest_codes:
            out -= self.LS[codes[idx]]
        if self.sw is not None:
            out *= self.sw[idx][..., None]
        return out

    def level_rows(self, sparse_rows: sp.csr_matrix, idx: np.ndarray) -> np.ndarray:
        """``(sparse_rows[a(i)] @ LS)`` for the rows ``idx`` (shape ``idx.shape + (r,)``)."""
        ea = self.a_codes[idx]
        uniq, inv = np.unique(ea, return_inverse=True)
        return np.asarray(sparse_rows[uniq] @ self.LS)[inv.reshape(ea.shape)]


def _group_sums(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group column sums (n_groups x p) of ``values`` (n x p)."""
    return np.column_stack(
        [np.bincount(codes, weights=values[:, j], minlength=n_groups) for j in range(values.shape[1])]
    ) if values.shape[1] else np.zeros((n_groups, 0))


class _Weighted:
    """The parts of (2') that only weights need: ``Omega``, per-level sums for
    ``Ut = M_a Omega U`` and ``Phi = U' Omega U``."""

    def __init__(self, w: np.ndarray, dp: _DummyProjection, Xo: np.ndarray) -> None:
        self.omega = w / w.mean()  # clubSandwich's normalised weights
        self.sqrt_omega = np.sqrt(self.omega)
        wo = w * self.omega
        XoO = Xo * self.omega[:, None]
        if dp.a is None:
            self.Phi = Xo.T @ XoO
            return
        sw = dp.sw
        # mean of omega in each level of a, weighted by w: [P_a Omega P_a]_ij = P_a,ij * this
        Wwo = np.bincount(dp.a_codes, weights=wo, minlength=dp.La)
        self.omega_bar = Wwo / dp.Wa
        # per-level sums of sqrt(w) omega U: the correction of Ut = Omega U - P_a Omega U
        self.XaO = _group_sums(XoO * sw[:, None], dp.a_codes, dp.La)
        Phi_xx = Xo.T @ XoO
        if dp.r == 0:
            self.Lam = None
            self.Phi = Phi_xx
            return
        Da_wo = sp.csr_matrix((wo, (np.arange(dp.n), dp.a_codes)), shape=(dp.n, dp.La))
        C_wo = (Da_wo.T @ dp.Dr).tocsr()
        # Sum over the rows of level a of w omega (c_a / W_a - e_f): the Schur columns' sums
        self.Lam = (sp.diags(Wwo) @ dp.Rmat - C_wo).tocsr()
        # U' Omega U, with v_i = sqrt(w_i) (R[a(i)] - e(i)) LS:
        #   Xo' Omega V = (XaO' R - (Dr' (sqrt(w) omega Xo))') LS
        #   V' Omega V  = LS' (R' diag(Wwo) R - R' C_wo - C_wo' R + Dr' diag(w omega) Dr) LS
        R = dp.Rmat
        xv = (R.T @ self.XaO).T - (dp.Dr.T @ (XoO * sw[:, None])).T
        vv = (R.T @ sp.diags(Wwo) @ R - R.T @ C_wo - C_wo.T @ R + dp.Dr.T @ sp.diags(wo) @ dp.Dr).toarray()
        Phi_xv = np.asarray(xv) @ dp.LS
        Phi_vv = dp.LS.T @ vv @ dp.LS
        self.Phi = np.block([[Phi_xx, Phi_xv], [Phi_xv.T, 0.5 * (Phi_vv + Phi_vv.T)]])


def _batches(factor: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row-index matrices (clusters x n_g) of clusters of equal size, in chunks that keep a
    stacked block batch near ``_BATCH_ELEMENTS`` entries."""
    counts = factor.counts
    starts = factor.group_starts
    order = np.arange(factor.n_obs) if factor.order is None else factor.order
    out = []
    for size in np.unique(counts):
        clusters = np.flatnonzero(counts == size)
        # clusters of _LOW_RANK_MIN_ROWS rows or more go one by one (the low-rank path)
        chunk = 1 if size >= _LOW_RANK_MIN_ROWS else max(1, _BATCH_ELEMENTS // int(size * size))
        for lo in range(0, clusters.size, chunk):
            cl = clusters[lo:lo + chunk]
            out.append((cl, order[starts[cl][:, None] + np.arange(size)[None, :]]))
    return out


def _batched_gram(A: np.ndarray, Bm: np.ndarray) -> np.ndarray:
    """``A_c @ B_c'`` for stacked (c, s, m) arrays."""
    return np.matmul(A, np.swapaxes(Bm, 1, 2))


def cr2_vcov(state: Any, cluster: Any) -> tuple[np.ndarray, np.ndarray]:
    """CR2 covariance of the slopes and the Satterthwaite degrees of freedom of each.

    Parameters
    ----------
    state : fastpanel.ols.model.FitState
        The fit: ``X`` (sqrt(w)-scaled within-transformed regressors), ``resid()``, ``bread``,
        ``fe_factors``, ``weights`` and ``fe_df_exact``.
    cluster : fastpanel.factor.Factor
        The cluster variable on the rows used (at least two clusters).

    Returns
    -------
    V : ndarray, shape (k, k)
        Equations (1)-(2) of the module docstring; no small-sample factor.
    df : ndarray, shape (k,)
        Satterthwaite degrees of freedom, equation (3).

    Raises
    ------
    ValueError
        A cluster larger than ``MAX_CLUSTER_ROWS`` that needs the dense block, more than
        ``MAX_SCHUR_LEVELS`` levels outside the largest fixed-effect dimension, or a cluster in
        which ``I - H_gg`` is singular in a direction of the regressors (leverage 1).
    """
    Xs, B = state.X, state.bread
    n, k = Xs.shape
    if k == 0:
        return np.zeros((0, 0)), np.zeros(0)
    us = state.resid()
    w = state.weights
    dp = _DummyProjection(state.fe_factors, w, state.fe_df_exact if state.fe_factors else 0)
    L = np.linalg.cholesky(0.5 * (B + B.T))
    Xo = Xs @ L  # orthonormal columns: Xs B Xs' = Xo Xo'
    wt = None if w is None else _Weighted(w, dp, Xo)
    m = k + dp.r
    G = cluster.n_levels

    meat = np.zeros((k, k))
    Pi = np.empty((n, k))  # pi_g of every slope, row by row
    Yu = np.empty((G, m, k))  # U_g' pi_g
    Yt = np.empty((G, m, k)) if wt is not None else None  # Ut_g' pi_g
    tdiag = np.empty((G, k))  # pi_g' Omega_g pi_g
    for cl, idx in _batches(cluster):
        c, s = idx.shape
        Xs_b = Xs[idx]
        U_b = Xo[idx] if dp.r == 0 else np.concatenate([Xo[idx], dp.v_rows(idx)], axis=2)
        ea = dp.a_codes[idx] if dp.a is not None else None
        sw_b = dp.sw[idx] if dp.sw is not None else None
        om = Ut = None
        if wt is not None:
            om = wt.omega[idx]
            if dp.a is None:
                Ut = U_b * om[:, :, None]
            else:
                # Ut = M_a Omega U: Omega U less each row's share of its level's sum
                corr = wt.XaO[ea] if dp.r == 0 else np.concatenate(
                    [wt.XaO[ea], dp.level_rows(wt.Lam, idx)], axis=2)
                Ut = U_b * om[:, :, None] - (sw_b / dp.Wa[ea])[:, :, None] * corr
        low = _low_rank_update(idx[0], U_b[0], None if Ut is None else Ut[0], dp, wt) if c == 1 else None
        if low is not None:
            # G_g = I + F S F' (rank r <= 2 n_g / 3): eigenvalues 1 + eig(R S R') on span(F), 1 elsewhere
            Qf, Rf = np.linalg.qr(low[0])
            lam_r, E = np.linalg.eigh(_sym(Rf @ low[1] @ Rf.T))
            Y = (Qf @ E)[None]
            mu = 1.0 + lam_r[None]
            tol = max(_NULL_REL, 64 * s * _EPS) * np.maximum(1.0, mu.max(axis=1))
            null = mu <= tol[:, None]
            if null.any():
                _check_null_directions(Y, null, None if wt is None else wt.sqrt_omega[idx], Xo[idx], cl, cluster)
            cy = np.where(null, 0.0, 1.0 / np.sqrt(np.where(null, 1.0, mu))) - 1.0

            def apply_A(z: np.ndarray, Y: np.ndarray = Y, cy: np.ndarray = cy) -> np.ndarray:
                # A_g z = z + Y diag(mu^{+-1/2} - 1) Y' z
                return z + np.matmul(Y, cy[:, :, None] * np.matmul(np.swapaxes(Y, 1, 2), z))
        else:
            if s > MAX_CLUSTER_ROWS:
                raise ValueError(
                    f"vcov={{'CR2': ...}}: cluster {_label(cluster, cl[0])!r} has {s:,} rows; CR2 eigendecomposes "
                    f"its n_g x n_g block of the hat matrix (it is not a few whole levels of the largest fixed "
                    f"effect, whose low-rank form would avoid that), at most {MAX_CLUSTER_ROWS:,} rows "
                    "(fastpanel.ols.cr2.MAX_CLUSTER_ROWS); use CRV1 or CRV3 for clusters this large"
                )
            if dp.a is not None:
                Pa = (ea[:, :, None] == ea[:, None, :]) / dp.Wa[ea][:, :, None]
                if sw_b is not None:
                    Pa *= sw_b[:, :, None] * sw_b[:, None, :]
            if wt is None:
                # (2'), no weights: G_g = I - P_a,gg - U_g U_g'
                Gm = -_batched_gram(U_b, U_b)
                if dp.a is not None:
                    Gm -= Pa
                Gm[:, np.arange(s), np.arange(s)] += 1.0
            else:
                # [M_a Omega M_a]_ij = omega_i delta_ij + P_a,ij (omega_bar_a - omega_i - omega_j)
                K = np.zeros((c, s, s)) if dp.a is None else \
                    Pa * (wt.omega_bar[ea][:, :, None] - om[:, :, None] - om[:, None, :])
                K[:, np.arange(s), np.arange(s)] += om
                UtU = _batched_gram(Ut, U_b)
                K -= UtU + np.swapaxes(UtU, 1, 2)
                K += _batched_gram(np.matmul(U_b, wt.Phi), U_b)
                rs = 1.0 / np.sqrt(om)
                Gm = K * rs[:, :, None] * rs[:, None, :]
            lam, Q = np.linalg.eigh(0.5 * (Gm + np.swapaxes(Gm, 1, 2)))
            del Gm
            tol = max(_NULL_REL, 64 * s * _EPS) * np.maximum(1.0, lam[:, -1])
            null = lam <= tol[:, None]
            if null.any():
                _check_null_directions(Q, null, None if wt is None else wt.sqrt_omega[idx], Xo[idx], cl, cluster)
            d = np.where(null, 0.0, 1.0 / np.sqrt(np.where(null, 1.0, lam)))

            def apply_A(z: np.ndarray, Q: np.ndarray = Q, d: np.ndarray = d) -> np.ndarray:
                # A_g z = Q diag(d) Q' z for stacked (c, s, p) right-hand sides
                return np.matmul(Q, d[:, :, None] * np.matmul(np.swapaxes(Q, 1, 2), z))

        # (1'): s_g = Xs_g' Omega^{1/2} A_g Omega^{-1/2} us_g
        z = us[idx][:, :, None]
        if wt is not None:
            so = wt.sqrt_omega[idx][:, :, None]
            z = so * apply_A(z / so)
        else:
            z = apply_A(z)
        scores = np.matmul(np.swapaxes(Xs_b, 1, 2), z)[:, :, 0]
        meat += scores.T @ scores
        # (3): pi_g = Omega^{-1/2} A_g Omega^{1/2} Xs_g B, one column per slope
        XB = np.matmul(Xs_b, B)
        P_b = apply_A(XB * so) / so if wt is not None else apply_A(XB)
        Pi[idx] = P_b
        Yu[cl] = np.matmul(np.swapaxes(U_b, 1, 2), P_b)
        if wt is None:
            tdiag[cl] = np.einsum("csk,csk->ck", P_b, P_b)
        else:
            Yt[cl] = np.matmul(np.swapaxes(Ut, 1, 2), P_b)
            tdiag[cl] = np.einsum("cs,csk,csk->ck", om, P_b, P_b)

    V = B @ meat @ B
    V = 0.5 * (V + V.T)
    df = _satterthwaite(Pi, Yu, Yt, tdiag, cluster, dp, wt)
    return V, df


def _label(factor: Any, code: int) -> Any:
    """The original id of a level, as a plain Python value for messages."""
    value = factor.levels[code]
    return value.item() if isinstance(value, np.generic) else value


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + M.T)


def _low_rank_update(idx: np.ndarray, U: np.ndarray, Ut: np.ndarray | None, dp: _DummyProjection,
                     wt: _Weighted | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(F, S)`` with ``G_g = I + F S F'`` for one cluster, or None when the rank ``r`` of the
    update exceeds two thirds of the cluster's rows (then the dense block is cheaper).

    ``P_a,gg = E diag(1 / W_a) E'`` with ``E`` the sqrt(w)-scaled indicators of the levels of a
    present in the cluster, so without weights ``G_g = I - [E, U] diag(1/W_a, 1) [E, U]'``
    (``r = levels + m``). With weights, ``[P_a (omega_bar - omega_i - omega_j)]`` is
    ``[E, E_omega] [[omega_bar / W_a, -1 / W_a], [-1 / W_a, 0]] [E, E_omega]'`` per level and
    the U terms are ``[U, Ut] [[Phi, -I], [-I, 0]] [U, Ut]'``, all scaled by ``Omega^{-1/2}``
    on both sides (``r = 2 levels + 2m``). This is exact, and costs ``O(n_g r^2)``.
    """
    s, m = U.shape
    if s < _LOW_RANK_MIN_ROWS:
        return None
    if dp.a is not None:
        uniq, inv = np.unique(dp.a_codes[idx], return_inverse=True)
        e = uniq.size
    else:
        e = 0
    r = (e + m) if wt is None else 2 * (e + m)
    # dense: eigh ~ 9 n_g^3 flops; low rank: QR, Q and Q E ~ 6 n_g r^2, eigh ~ 9 r^3 (even at r = 2/3 n_g
    # about 4 n_g^3)
    if 3 * r > 2 * s:
        return None
    blocks, diag_parts = [], []
    if wt is None:
        if e:
            E = np.zeros((s, e))
            E[np.arange(s), inv] = 1.0 if dp.sw is None else dp.sw[idx]
            blocks.append(E)
            diag_parts.append(-1.0 / dp.Wa[uniq])
        blocks.append(U)
        diag_parts.append(-np.ones(m))
        return np.hstack(blocks), np.diag(np.concatenate(diag_parts))
    om = wt.omega[idx]
    S = np.zeros((r, r))
    if e:
        E = np.zeros((s, e))
        E[np.arange(s), inv] = dp.sw[idx]
        blocks += [E, E * om[:, None]]
        inv_w = 1.0 / dp.Wa[uniq]
        ii = np.arange(e)
        S[ii, ii] = wt.omega_bar[uniq] * inv_w
        S[ii, e + ii] = S[e + ii, ii] = -inv_w
    o = 2 * e
    blocks += [U, Ut]
    S[o:o + m, o:o + m] = wt.Phi
    S[o + np.arange(m), o + m + np.arange(m)] = -1.0
    S[o + m + np.arange(m), o + np.arange(m)] = -1.0
    F = np.hstack(blocks) / np.sqrt(om)[:, None]
    return F, S


def _check_null_directions(Q: np.ndarray, null: np.ndarray, sqrt_omega: np.ndarray | None,
                           Xo: np.ndarray, cl: np.ndarray, cluster: Any) -> None:
    """Raise unless every null direction of G_g lies in the span of the fixed-effect dummies.

    A null vector z of ``G_g`` is ``Omega^{1/2} v`` with ``v`` (sqrt(w) scale) supported in
    cluster g and in the column space of the whole design. When ``v`` is a combination of
    dummies only, the regressors and residuals are orthogonal to it and dropping it is exact;
    otherwise part of ``v`` lies in span(Xs) (``||Xo' v|| / ||v||`` is that part) and an
    observation or combination is fitted exactly through the regressors: CR2 is undefined.
    """
    Vn = Q if sqrt_omega is None else Q / sqrt_omega[:, :, None]
    Vn = Vn / np.linalg.norm(Vn, axis=1, keepdims=True)
    content = np.linalg.norm(np.matmul(np.swapaxes(Xo, 1, 2), Vn), axis=1)
    bad = null & (content > _REGRESSOR_CONTENT)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=1))[0])
        label = _label(cluster, cl[j])
        raise ValueError(
            f"vcov={{'CR2': ...}}: in cluster {label!r}, I - H_gg is singular (leverage 1): "
            f"{int(bad[j].sum())} direction(s) of its rows are fitted exactly through the regressors (e.g. a "
            "regressor that is non-zero in a single observation), so the CR2 adjustment (I - H_gg)^(-1/2) is "
            "undefined; remove that regressor or use CRV1/CRV3"
        )


def _satterthwaite(Pi: np.ndarray, Yu: np.ndarray, Yt: np.ndarray | None, tdiag: np.ndarray,
                   cluster: Any, dp: _DummyProjection, wt: _Weighted | None) -> np.ndarray:
    """Equation (3) for every slope: ``(tr P)^2 / ||P||_F^2`` with ``P = T + Y' C Y``."""
    G, m, k = Yu.shape
    if wt is None:
        Cq = -np.eye(m)
    else:
        Cq = np.block([[wt.Phi, -np.eye(m)], [-np.eye(m), np.zeros((m, m))]])
    # Clusters x levels of a (sparse), for T's off-diagonal part.
    if dp.a is not None:
        key = cluster.codes * np.int64(dp.La) + dp.a_codes
        pairs, pid = np.unique(key, return_inverse=True)
        pg, pa = pairs // dp.La, pairs % dp.La
        sw = np.ones(Pi.shape[0]) if dp.sw is None else dp.sw
    df = np.empty(k)
    for j in range(k):
        Y = Yu[:, :, j] if wt is None else np.hstack([Yu[:, :, j], Yt[:, :, j]])
        T = sp.diags(tdiag[:, j]).tocsr()
        if dp.a is not None:
            mv = np.bincount(pid, weights=sw * Pi[:, j], minlength=pairs.size)
            Mm = sp.csr_matrix((mv, (pg, pa)), shape=(G, dp.La))
            if wt is None:
                T = T - Mm @ sp.diags(1.0 / dp.Wa) @ Mm.T
            else:
                nv = np.bincount(pid, weights=sw * wt.omega * Pi[:, j], minlength=pairs.size)
                Nn = sp.csr_matrix((nv, (pg, pa)), shape=(G, dp.La))
                cross = Nn @ sp.diags(1.0 / dp.Wa) @ Mm.T
                T = T - cross - cross.T + Mm @ sp.diags(wt.omega_bar / dp.Wa) @ Mm.T
        if G <= DENSE_DF_MAX_CLUSTERS:
            P = T.toarray() + Y @ Cq @ Y.T
            trace, frob = np.trace(P), float(np.sum(P * P))
        else:
            trace, frob = _trace_and_frobenius(T.tocoo(), Y, Cq)
        df[j] = trace * trace / frob if frob > 0 else np.nan
    return df


def _trace_and_frobenius(T: sp.coo_matrix, Y: np.ndarray, Cq: np.ndarray,
                         chunk: int = 1 << 16) -> tuple[float, float]:
    """``tr P`` and ``||P||_F^2`` of ``P = T + Y Cq Y'`` (T sparse G x G, Y G x q) without
    forming P: ``||P||^2 = ||T||^2 + 2 sum_{(g,h) in T} T_gh y_g' Cq y_h + tr((Cq Y'Y)^2)``."""
    T.sum_duplicates()
    YC = Y @ Cq
    trace = float(T.diagonal().sum() + np.einsum("gi,gi->", YC, Y))
    cross = 0.0
    for lo in range(0, T.nnz, chunk):
        r, c, v = T.row[lo:lo + chunk], T.col[lo:lo + chunk], T.data[lo:lo + chunk]
        cross += float(v @ np.einsum("ni,ni->n", YC[r], Y[c]))
    F = Cq @ (Y.T @ Y)
    low = float(np.sum(F * F.T))
    return trace, float(T.data @ T.data) + 2.0 * cross + low
