"""Plain NumPy reference of the dynamic panel threshold GMM, point by point (test oracle and
benchmark peer; not used by the estimator).

Everything is built the textbook way and independently of design.py / gmm.py: per entity, a
dict of periods; the transformed equations (first differences, or forward orthogonal
deviations written out); a dense instrument matrix Z with one row per equation; at each
threshold the transformed regressors are rebuilt from the rows and the moments
Z'X(g) / N recomputed, as in Seo and Shin (2016, section 3) and xthenreg's loop.
Cost: O(G n_eq L p) per objective curve.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NaivePanelGMM"]


class NaivePanelGMM:
    """Dense per-equation representation of the model at every threshold."""

    def __init__(self, y, X, q, entity, period, *, lags=1, endog=None, transform="fd", collapse=False,
                 max_lag=None, kink=False):
        y = np.asarray(y, float)
        X = np.asarray(X, float).reshape(y.size, -1)
        kx = X.shape[1]
        endog = np.zeros(kx, bool) if endog is None else np.asarray(endog, bool)
        self.kink = kink
        panels: dict = {}
        for r in range(y.size):
            panels.setdefault(int(entity[r]), {})[int(period[r])] = r
        first = 2 if transform == "fd" else 1
        eqs = []  # (entity, [(coef, row-level tuple)], period, level row)
        self.level = []  # per entity: list of (period, y, x_full, q)
        rows_y, rows_x, rows_q, rows_ent = [], [], [], []
        ent_ids = sorted(panels)
        entity_levels = {}
        for e in ent_ids:
            per = panels[e]
            lv = []
            for t in sorted(per):
                if all((t - l) in per for l in range(1, lags + 1)):
                    r = per[t]
                    xfull = [y[per[t - l]] for l in range(1, lags + 1)] + list(X[r])
                    lv.append((t, y[r], np.array(xfull), q[r], r))
            entity_levels[e] = lv
        instr_rows = []
        for e in ent_ids:
            lv = entity_levels[e]
            per = panels[e]
            trans = []
            if transform == "fd":
                pos = {t: i for i, (t, *_rest) in enumerate(lv)}
                for i, (t, *_rest) in enumerate(lv):
                    if (t - 1) in pos:
                        trans.append((t, {i: 1.0, pos[t - 1]: -1.0}))
            else:
                m_all = len(lv)
                for i, (t, *_rest) in enumerate(lv):
                    m = m_all - i - 1
                    if m > 0:
                        c = np.sqrt(m / (m + 1.0))
                        w = {i: c}
                        for s in range(i + 1, m_all):
                            w[s] = -c / m
                        trans.append((t, w))
            for t, w in trans:
                inst = {}
                deepest = t if max_lag is None else min(t, max_lag)
                for l in range(first, deepest + 1):
                    if (t - l) in per:
                        lab = ("y", l) if collapse else ("y", t, l)
                        inst[lab] = y[per[t - l]]
                        for c in np.flatnonzero(endog):
                            lab = (f"x{c}", l) if collapse else (f"x{c}", t, l)
                            inst[lab] = X[per[t - l], c]
                for c in np.flatnonzero(~endog):
                    lab = (f"dx{c}",) if collapse else (f"dx{c}", t)
                    inst[lab] = sum(wv * X[lv[i][4], c] for i, wv in w.items())
                inst[("const",) if collapse else ("const", t)] = 1.0
                instr_rows.append(inst)
                eqs.append((e, w, lv))
        labels = sorted({k for d in instr_rows for k in d}, key=lambda t: (str(t[0]), *t[1:]))
        col = {k: i for i, k in enumerate(labels)}
        Z = np.zeros((len(eqs), len(labels)))
        for j, d in enumerate(instr_rows):
            for k, v in d.items():
                Z[j, col[k]] = v
        keep = np.abs(Z).sum(axis=0) > 0
        self.Z = Z[:, keep]
        self.eqs = eqs
        self.ent_of_eq = np.array([e for e, _, _ in eqs])
        ents = np.unique(self.ent_of_eq)
        self.N = ents.size
        self.eq_ent_code = np.searchsorted(ents, self.ent_of_eq)
        self.dy = np.array([sum(wv * lv[i][1] for i, wv in w.items()) for _, w, lv in eqs])
        self.dX = np.array([sum(wv * lv[i][2] for i, wv in w.items()) for _, w, lv in eqs])
        # H_i = A_i A_i' written out per entity: Z' H Z = sum_i (A_i' Z_i)' (A_i' Z_i)
        S = np.zeros((self.Z.shape[1],) * 2)
        for e in ents:
            js = np.flatnonzero(self.ent_of_eq == e)
            lv = eqs[js[0]][2]
            A = np.zeros((js.size, len(lv)))
            for a, j in enumerate(js):
                for i, wv in eqs[j][1].items():
                    A[a, i] = wv
            ZA = A.T @ self.Z[js]
            S += ZA.T @ ZA
        self.S1 = S / self.N

    def regressors(self, g: float) -> np.ndarray:
        """Transformed [X, regime(g)] per equation, rebuilt from the level rows."""
        out = []
        for (_, w, lv), dx in zip(self.eqs, self.dX):
            if self.kink:
                reg = sum(wv * ((lv[i][3] - g) * (lv[i][3] > g)) for i, wv in w.items())
                out.append(np.r_[dx, reg])
            else:
                reg = sum(wv * np.r_[1.0, lv[i][2]] * (lv[i][3] > g) for i, wv in w.items())
                out.append(np.r_[dx, reg])
        return np.array(out)

    def gmm(self, W: np.ndarray, g: float) -> tuple[np.ndarray, float, np.ndarray]:
        """theta, J and the per-equation residuals at threshold g with weight W."""
        Xg = self.regressors(g)
        G = self.Z.T @ Xg / self.N
        g1 = self.Z.T @ self.dy / self.N
        theta = np.linalg.solve(G.T @ W @ G, G.T @ W @ g1)
        gbar = g1 - G @ theta
        return theta, float(gbar @ W @ gbar), self.dy - Xg @ theta

    def omega(self, u: np.ndarray) -> np.ndarray:
        gi = np.zeros((self.N, self.Z.shape[1]))
        np.add.at(gi, self.eq_ent_code, self.Z * u[:, None])
        gbar = gi.mean(axis=0)
        return gi.T @ gi / self.N - np.outer(gbar, gbar)

    def entity_moments(self, u: np.ndarray) -> np.ndarray:
        gi = np.zeros((self.N, self.Z.shape[1]))
        np.add.at(gi, self.eq_ent_code, self.Z * u[:, None])
        return gi

    def two_step(self, grid: np.ndarray) -> dict:
        """The whole two-step procedure, every grid point estimated from scratch."""
        W1 = np.linalg.inv(self.S1)
        J1 = np.array([self.gmm(W1, g)[1] for g in grid])
        g1 = grid[int(np.argmin(J1))]
        _, _, u1 = self.gmm(W1, g1)
        W2 = np.linalg.inv(self.omega(u1))
        J2 = np.array([self.gmm(W2, g)[1] for g in grid])
        g2 = grid[int(np.argmin(J2))]
        theta, J, u2 = self.gmm(W2, g2)
        return {"J1": J1, "J2": J2, "g1": g1, "g2": g2, "theta": theta, "W1": W1, "W2": W2,
                "Omega": self.omega(u2), "moments": self.entity_moments(u2)}

    def wald(self, grid: np.ndarray) -> np.ndarray:
        """Wald statistic of no regime effect at each grid point, two-step GMM per point."""
        W1 = np.linalg.inv(self.S1)
        out = []
        for g in grid:
            _, _, u1 = self.gmm(W1, g)
            W2 = np.linalg.inv(self.omega(u1))
            th, _, u2 = self.gmm(W2, g)
            Om = self.omega(u2)
            G = self.Z.T @ self.regressors(g) / self.N
            V = np.linalg.inv(G.T @ np.linalg.inv(Om) @ G)
            k = self.dX.shape[1]
            dv = th[k:]
            out.append(self.N * dv @ np.linalg.solve(V[k:, k:], dv))
        return np.array(out)
