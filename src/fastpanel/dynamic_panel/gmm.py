"""Grid search, two-step GMM, covariance and the sup-Wald bootstrap of the dynamic panel
threshold model (Seo and Shin 2016; kink variant and fast bootstrap: Seo, Kim and Kim 2019).

Algorithm (the prefix-sum idea of the static engine, for moments)
-----------------------------------------------------------------
With the pulled-back instruments zeta_r of design.py, the sample moments at (theta, g) are

    gbar(theta, g) = g1 - [Gb, Gd(g)] theta,   g1 = zeta'y / N,  Gb = zeta'X / N,
    Gd(g) = (1/N) sum_{r: q_r > g} zeta_r R_r',   R_r = (1, x_r)  (kink: q_r - g and 1)

Gd(g) is a suffix sum over level rows ordered by q. Each row is put in the bin of the number
of grid points below its q (one sparse product, O(nnz(zeta) * m)), and a reverse cumulative
sum over the bins gives Gd at every grid point: O(nnz(zeta) m + G L m) for the whole grid
instead of O(G nnz(zeta) m) point by point. Given a weight W = Omega^-1 with whitening
P (P'P = W), theta(g) is the least-squares solution of P Gbar(g) theta = P g1 and the GMM
objective J(g) = |P gbar(theta(g), g)|^2: one batched QR of G (L x p) matrices.

Per-entity moments g_i(g) = sum_{r in i} zeta_r e_r(g) (for the second-step weight, the
covariance and the sup-Wald statistic) are one sparse product K E with K[(i, l), r] = zeta_rl
and E the residuals at a block of grid points.

Cost: fit O(nnz(zeta) m + G L p^2); sup-Wald O(G (nnz(zeta) + N L^2 + L^3)), the N L^2 and
L^3 / 3 by BLAS syrk and LAPACK potrf per grid point (no inverse); fast bootstrap
O(G L p B) with no re-estimation per draw.

Naming: ``G`` grid points, ``L`` instruments, ``p`` slope parameters, ``d`` regime
parameters (the last d of theta), ``N`` entities, ``B`` bootstrap draws.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import blas, lapack

from fastpanel.dynamic_panel.design import GMMDesign

__all__ = ["GMMEngine", "InstrumentWarning", "centred_cov", "whitener", "whiten_moments"]


class InstrumentWarning(UserWarning):
    """The moment covariance is singular (often: more instruments than entities)."""


def whitener(S: np.ndarray) -> np.ndarray:
    """P with P'P = S^+ (the inverse, or the pseudo-inverse of a singular S), for a stack of
    symmetric matrices S (..., L, L). Cholesky where S is positive definite, else eigh."""
    S = np.asarray(S)
    single = S.ndim == 2
    St = S[None] if single else S
    St = 0.5 * (St + St.transpose(0, 2, 1))
    out = np.empty_like(St)
    todo = np.ones(St.shape[0], dtype=bool)
    try:
        c = np.linalg.cholesky(St)
        dg = np.abs(np.diagonal(c, axis1=1, axis2=2))
        # a factor whose pivots span more than 1e6 (condition 1e12) is numerically singular: eigh
        todo = dg.min(axis=1) <= 1e-6 * dg.max(axis=1)
        good = ~todo
        if good.any():
            out[good] = np.linalg.inv(c[good])
    except np.linalg.LinAlgError:
        pass
    for i in np.flatnonzero(todo):
        lam, V = np.linalg.eigh(St[i])
        keep = lam > lam.max() * 1e-12
        inv_sqrt = np.zeros_like(lam)
        inv_sqrt[keep] = 1.0 / np.sqrt(lam[keep])
        out[i] = (V * inv_sqrt).T
    return out[0] if single else out


def centred_cov(Mi: np.ndarray) -> np.ndarray:
    """(1/N) sum_i (g_i - gbar)(g_i - gbar)' for each stack of ``Mi`` (c, N, L) (Seo and Shin
    2016, eq. 11), centred before the product: E[g g'] - gbar gbar' cancels catastrophically when
    the moments' mean is large against their spread."""
    D = Mi - Mi.mean(axis=1, keepdims=True)
    return np.matmul(D.transpose(0, 2, 1), D) / Mi.shape[1]


# crossover of whiten_moments' per-matrix LAPACK loop and the batched numpy path (measured)
_LOOP_MIN_L = 128


def whiten_moments(Mi: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``P B`` with ``P'P = Omega^+`` and ``Omega = (1/N) sum_i (g_i - gbar)(g_i - gbar)'`` (Seo and
    Shin 2016, eq. 11) for stacks ``Mi`` (c, N, L) of per-entity moments and ``B`` (c, L, q).

    Per matrix: the centred moments' cross-product by BLAS syrk, its Cholesky factor by LAPACK
    potrf and ``c^-1 B`` by trtrs, all on Fortran arrays (numpy's stacked ``matmul`` /
    ``cholesky`` / ``inv`` path cost 2.5x as much at L = 377; the inverse is never formed). A
    numerically singular Omega (pivots spanning over 1e6) goes to :func:`whitener`'s eigh.

    Below ``L = 128`` the per-matrix LAPACK calls cost more than they save (at N = 2000, L = 60
    the loop took 2-3x numpy's batched ``matmul`` + ``whitener``), so small problems take the
    batched path; both give a P with the same P'P, hence the same GMM estimates."""
    c, N, L = Mi.shape
    if L < _LOOP_MIN_L:
        return np.matmul(whitener(centred_cov(Mi)), B)
    out = np.empty(B.shape, dtype=np.float64)
    for i in range(c):
        Mc = np.asfortranarray(Mi[i] - Mi[i].mean(axis=0))
        S = blas.dsyrk(1.0 / N, Mc, trans=1, lower=1)
        chol, info = lapack.dpotrf(S, lower=1, clean=1, overwrite_a=0)
        dg = np.abs(np.diag(chol)) if info == 0 else None
        if dg is not None and dg.min() > 1e-6 * dg.max():
            x, info2 = lapack.dtrtrs(chol, np.asfortranarray(B[i]), lower=1)
            if info2 == 0:
                out[i] = x
                continue
        full = np.tril(S) + np.tril(S, -1).T
        out[i] = whitener(full) @ B[i]
    return out


class GMMEngine:
    """Threshold-invariant moments and the grid of regime moments of one design."""

    def __init__(self, d: GMMDesign, grid: np.ndarray, kink: bool, kink_test: str = "kink"):
        self.d = d
        self.kink = kink
        self.grid = np.asarray(grid, dtype=np.float64)
        self.N = N = d.n_entities
        self.L = L = d.zeta.shape[1]
        self.k = d.X.shape[1]
        self.m = 1 if kink else self.k + 1
        self.p = self.k + self.m
        # Coefficients the linearity test restricts to zero: the regime parameters, or with
        # kink_test="xthenreg" (kink model only) xthenreg's last two coefficients, the last slope
        # and the kink, whose covariance xthenreg forms with the kink column of the Jacobian
        # signed opposite to the slopes' (its cov_con_kink_b): the pair's covariance changes sign.
        if kink and kink_test == "xthenreg":
            self.test_idx = np.array([self.p - 2, self.p - 1])
            self.test_sign = np.array([1.0, -1.0])
        else:
            self.test_idx = np.arange(self.k, self.p)
            self.test_sign = np.ones(self.m)
        zt = d.zeta.T.tocsr()
        self.g1 = zt @ d.y / N
        self.Gb = np.asarray(zt @ d.X) / N
        self.S1 = np.asarray((zt @ d.zeta).todense()) / N
        # centre for the kink's (q - g): keeps sum zeta (q - g) free of cancellation at offsets
        self.centre = float(np.median(self.grid)) if self.grid.size else 0.0
        self.pos = np.searchsorted(self.grid, d.q, side="left")  # grid points strictly below q_r
        coo = d.zeta.tocoo()
        G = self.grid.size
        if kink:
            R = np.column_stack([d.q - self.centre, np.ones_like(d.q)])
        else:
            R = np.column_stack([np.ones_like(d.q), d.X])
        P = sp.csr_matrix((coo.data, (self.pos[coo.row] * L + coo.col, coo.row)), shape=((G + 1) * L, d.y.size))
        acc = np.asarray(P @ R).reshape(G + 1, L, R.shape[1])
        suffix = np.cumsum(acc[::-1], axis=0)[::-1]  # suffix[b] = sum of bins b, b+1, ..
        S = suffix[1:]  # rows with pos_r > g, i.e. q_r > grid[g]
        if kink:
            self.Gd = (S[:, :, :1] - (self.grid - self.centre)[:, None, None] * S[:, :, 1:]) / N
        else:
            self.Gd = S / N
        # K[(i, l), r] = zeta_rl: per-entity moments of a block of residual vectors in one product
        self.K = sp.csr_matrix((coo.data, (d.entity[coo.row] * L + coo.col, coo.row)), shape=(N * L, d.y.size))
        if L < self.p + 1:
            raise ValueError(f"{L} instruments for {self.p} slopes and a threshold: the model is not identified; "
                             "add instruments (instruments=, deeper lags, collapse=False)")

    # ----- building blocks -------------------------------------------------------------
    def regime_columns(self, g: float) -> np.ndarray:
        """Level-row regime regressors at threshold g, computed directly (no prefix sum)."""
        up = (self.d.q > g).astype(np.float64)
        if self.kink:
            return ((self.d.q - g) * up)[:, None]
        return np.column_stack([np.ones_like(self.d.q), self.d.X]) * up[:, None]

    def jacobian_at(self, g: float) -> np.ndarray:
        """[Gb, Gd(g)] at one threshold, computed directly from the rows."""
        Gd = np.asarray(self.d.zeta.T @ self.regime_columns(g)) / self.N
        return np.column_stack([self.Gb, Gd])

    def grid_jacobians(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        Gd = self.Gd[idx]
        return np.concatenate([np.broadcast_to(self.Gb, (Gd.shape[0], *self.Gb.shape)), Gd], axis=2)

    def residuals(self, theta: np.ndarray, gs: np.ndarray) -> np.ndarray:
        """Level residuals e_r (without the entity effect) at each (theta[:, c], gs[c])."""
        k = self.k
        theta = np.atleast_2d(theta)
        E = self.d.y[:, None] - self.d.X @ theta[:, :k].T
        up = self.d.q[:, None] > gs[None, :]
        if self.kink:
            E -= (self.d.q[:, None] - gs[None, :]) * up * theta[:, k][None, :]
        else:
            E -= (theta[:, k][None, :] + self.d.X @ theta[:, k + 1:].T) * up
        return E

    def entity_moments(self, E: np.ndarray) -> np.ndarray:
        """g_i for each residual column: (c, N, L)."""
        M = np.asarray(self.K @ np.asfortranarray(E))  # (N L, c)
        return np.ascontiguousarray(M.reshape(self.N, self.L, -1).transpose(2, 0, 1))

    def omega(self, Mi: np.ndarray) -> np.ndarray:
        """(1/N) sum_i g_i g_i' - gbar gbar' (Seo and Shin 2016, eq. 11), for each column."""
        return centred_cov(Mi)

    def chunk(self) -> int:
        return max(1, min(self.grid.size, int(2e6 // max(1, self.N * self.L))))

    # ----- estimation ------------------------------------------------------------------
    @staticmethod
    def solve(Pw: np.ndarray, Gj: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """theta and J for stacks of whitened problems. Pw: (L, L) or (c, L, L)."""
        Gw = np.matmul(Pw, Gj)
        gw = np.matmul(Pw, g1) if Pw.ndim == 3 else (Pw @ g1)
        return GMMEngine.solve_whitened(Gw, np.broadcast_to(gw, (Gj.shape[0], gw.shape[-1])))

    @staticmethod
    def solve_whitened(Gw: np.ndarray, gw: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """theta and J of the least-squares problems ``Gw theta ~ gw`` (already whitened)."""
        Q, R = np.linalg.qr(Gw)
        rhs = np.einsum("clp,cl->cp", Q, gw)
        dg = np.abs(np.diagonal(R, axis1=1, axis2=2))
        ok = dg.min(axis=1) > 1e-10 * np.maximum(dg.max(axis=1), 1e-300)
        theta = np.full((Gw.shape[0], Gw.shape[2]), np.nan)
        if ok.any():
            theta[ok] = np.linalg.solve(R[ok], rhs[ok][:, :, None])[:, :, 0]
        r = gw - np.einsum("clp,cp->cl", Gw, np.nan_to_num(theta))
        J = np.where(ok, np.einsum("cl,cl->c", r, r), np.inf)
        return theta, J, (Q, R, ok)

    def grid_search(self, Pw: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """theta(g) and J(g) at every grid point, for one weight matrix."""
        return self.solve(Pw, self.grid_jacobians(), self.g1)

    def at(self, Pw: np.ndarray, g: float) -> tuple[np.ndarray, float]:
        """theta and J at one threshold, computed directly (the reported numbers)."""
        theta, J, _ = self.solve(Pw[None] if Pw.ndim == 2 else Pw, self.jacobian_at(g)[None], self.g1)
        return theta[0], float(J[0])

    def threshold_gradient(self, theta: np.ndarray, g: float, h: float) -> np.ndarray:
        """d gbar / d g at (theta, g): Seo and Shin (2016, p. 173) kernel estimate for the jump
        model, the exact derivative for the kink model (Seo, Kim and Kim 2019)."""
        k = self.k
        if self.kink:
            up = (self.d.q > g).astype(np.float64)
            return theta[k] * np.asarray(self.d.zeta.T @ up) / self.N
        jump = theta[k] + self.d.X @ theta[k + 1:]
        dens = np.exp(-0.5 * ((g - self.d.q) / h) ** 2) / np.sqrt(2 * np.pi)
        return np.asarray(self.d.zeta.T @ (jump * dens)) / (self.N * h)

    def covariance(self, theta: np.ndarray, g: float, Omega: np.ndarray, h: float) -> np.ndarray:
        """(D' Omega^-1 D)^-1 / N with D = d gbar / d (theta, g)."""
        D = np.column_stack([-self.jacobian_at(g), self.threshold_gradient(theta, g, h)])
        Pw = whitener(Omega)
        Dw = Pw @ D
        return np.linalg.pinv(Dw.T @ Dw) / self.N

    def sup_wald(self, Pw1: np.ndarray, theta1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Wald statistic of d = 0 (the coefficients ``test_idx``) at each grid point with
        two-step GMM at that point.

        Returns the statistics (G,), the Cholesky factors of the Wald covariances (G, d, d)
        and the second-step thetas (G, p)."""
        G = self.grid.size
        idx_t, sgn = self.test_idx, np.outer(self.test_sign, self.test_sign)
        dlen = idx_t.size
        wald = np.full(G, np.nan)
        chol = np.zeros((G, dlen, dlen))
        theta2 = np.full((G, self.p), np.nan)
        step = self.chunk()
        for a in range(0, G, step):
            idx = np.arange(a, min(G, a + step))
            Gj = self.grid_jacobians(idx)
            good = np.isfinite(theta1[idx]).all(axis=1)
            th1 = np.nan_to_num(theta1[idx])
            M1 = self.entity_moments(self.residuals(th1, self.grid[idx]))
            # second step at each point: [Gj, g1] whitened by Omega(first step)'s Cholesky factor
            Wb = whiten_moments(M1, np.concatenate(
                [Gj, np.broadcast_to(self.g1[None, :, None], (idx.size, self.L, 1))], axis=2))
            th2, _, _ = self.solve_whitened(Wb[:, :, :-1], Wb[:, :, -1])
            good &= np.isfinite(th2).all(axis=1)
            th2z = np.nan_to_num(th2)
            Gw = whiten_moments(self.entity_moments(self.residuals(th2z, self.grid[idx])), Gj)
            V = np.linalg.pinv(np.matmul(Gw.transpose(0, 2, 1), Gw))
            Vd = V[:, idx_t][:, :, idx_t] * sgn
            for c, i in enumerate(idx):
                if not good[c]:
                    continue
                try:
                    ch = np.linalg.cholesky(0.5 * (Vd[c] + Vd[c].T))
                except np.linalg.LinAlgError:
                    continue
                z = sla.solve_triangular(ch, th2z[c, idx_t], lower=True)
                wald[i] = self.N * float(z @ z)
                chol[i] = ch
                theta2[i] = th2z[c]
        return wald, chol, theta2

    def fast_bootstrap(self, Pw2: np.ndarray, qr2: tuple, chol: np.ndarray, Mhat: np.ndarray,
                       eta: np.ndarray) -> np.ndarray:
        """sup-Wald draws of Seo, Kim and Kim's (2019) fast bootstrap.

        Each draw perturbs the moments by gbar* = (1/N) sum_i eta_i g_i(theta_hat, g_hat) and
        maps them through each grid point's linear GMM representation with the second-step
        weight (no re-estimation); the Wald covariance of each point is the sample's.
        """
        Q, R, ok = qr2
        gstar = Mhat.T @ eta / self.N  # (L, B)
        gw = Pw2 @ gstar
        B = eta.shape[1]
        out = np.full(B, -np.inf)
        step = max(1, int(4e7 // max(1, self.L * B)))
        for a in range(0, self.grid.size, step):
            sl = slice(a, min(self.grid.size, a + step))
            use = ok[sl] & (np.abs(np.diagonal(chol[sl], axis1=1, axis2=2)).min(axis=1) > 0)
            if not use.any():
                continue
            rhs = np.einsum("clp,lb->cpb", Q[sl][use], gw)
            th = np.linalg.solve(R[sl][use], rhs)
            dstar = th[:, self.test_idx, :]
            z = np.linalg.solve(chol[sl][use], dstar)  # triangular, small
            w = self.N * np.einsum("cdb,cdb->cb", z, z)
            out = np.maximum(out, w.max(axis=0))
        return out
