"""Dynamic panel threshold (Seo and Shin 2016): fastpanel vs a naive per-point GMM loop.

The issue's case: N = 2000 entities, T = 10, one lag of y, two exogenous regressors, 400 grid
points, 300 bootstrap draws; a smoke size (N = 200, 50 points, 50 draws) runs by default.

The peer is the textbook computation as xthenreg (Seo, Kim and Kim 2019) does it, vectorised
with NumPy/BLAS per grid point: at each threshold it rebuilds the differenced regime
regressors, recomputes Z'X(g) / N and solves the GMM problem; the sup-Wald statistic runs the
two-step estimator at each point; each bootstrap draw re-solves every grid point. Both sides
use the same instruments (lagged levels of y from t-2, a constant and the differenced x per
period), so the thresholds must agree.

Groups: ``dynamic-estimate-*`` (two-step estimate, both grid searches), ``dynamic-supwald-*``
(the sample's sup-Wald), ``dynamic-draw-*`` (one bootstrap draw of the naive loop vs the whole
fastpanel fit with all draws divided by the draw count in ``extra_info``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel as fp

SIZES = {"N200": (200, 50, 50), "N2000": (2000, 400, 300)}


def _panel(N: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    T, burn = 10, 30
    a = rng.normal(size=N)
    y = np.zeros(N)
    out = []
    for t in range(T + burn):
        x1, x2, q, e = (rng.normal(size=N) for _ in range(4))
        up = q > 0
        yn = np.where(up, 1.0 + 0.3 * y + 0.5 * x1 + 0.2 * x2, 0.6 * y + 1.0 * x1 - 0.2 * x2) + a + e
        if t >= burn:
            out.append(pd.DataFrame({"id": np.arange(N), "t": t - burn, "y": yn, "x1": x1, "x2": x2, "q": q}))
        y = yn
    return pd.concat(out, ignore_index=True)


class NaiveGMM:
    """Balanced first-differenced GMM, one grid point at a time (the peer)."""

    def __init__(self, df: pd.DataFrame):
        N, T = df.id.nunique(), df.t.nunique()
        Y = df.pivot(index="id", columns="t", values="y").to_numpy()
        Xs = [df.pivot(index="id", columns="t", values=c).to_numpy() for c in ("x1", "x2")]
        Q = df.pivot(index="id", columns="t", values="q").to_numpy()
        self.N = N
        dy, dX, cur, prev, qc, qp, Zb, ent = [], [], [], [], [], [], [], []
        L_total = sum(t - 1 for t in range(2, T)) + 3 * (T - 2)
        col = 0
        for t in range(2, T):
            zt = np.zeros((N, L_total))
            zt[:, col:col + t - 1] = Y[:, :t - 1]
            col += t - 1
            zt[:, col] = 1.0
            zt[:, col + 1] = Xs[0][:, t] - Xs[0][:, t - 1]
            zt[:, col + 2] = Xs[1][:, t] - Xs[1][:, t - 1]
            col += 3
            Zb.append(zt)
            dy.append(Y[:, t] - Y[:, t - 1])
            xc = np.column_stack([Y[:, t - 1], Xs[0][:, t], Xs[1][:, t]])
            xp = np.column_stack([Y[:, t - 2], Xs[0][:, t - 1], Xs[1][:, t - 1]])
            dX.append(xc - xp)
            cur.append(np.column_stack([np.ones(N), xc]))
            prev.append(np.column_stack([np.ones(N), xp]))
            qc.append(Q[:, t])
            qp.append(Q[:, t - 1])
            ent.append(np.arange(N))
        self.Z = np.vstack(Zb)
        self.dy, self.dX = np.concatenate(dy), np.vstack(dX)
        self.cur, self.prev = np.vstack(cur), np.vstack(prev)
        self.qc, self.qp, self.ent = np.concatenate(qc), np.concatenate(qp), np.concatenate(ent)
        # H = first-difference covariance: 2 on the diagonal, -1 between consecutive periods
        S = 2 * sum(z.T @ z for z in Zb) - sum(Zb[i].T @ Zb[i + 1] + Zb[i + 1].T @ Zb[i] for i in range(len(Zb) - 1))
        self.W1 = np.linalg.inv(S / N)
        self.g1 = self.Z.T @ self.dy / N
        self.k = self.dX.shape[1]

    def design(self, g):
        return np.column_stack([self.dX, self.cur * (self.qc > g)[:, None] - self.prev * (self.qp > g)[:, None]])

    def gmm(self, W, g, gbar1=None):
        X = self.design(g)
        G = self.Z.T @ X / self.N
        g1 = self.g1 if gbar1 is None else gbar1
        th = np.linalg.solve(G.T @ W @ G, G.T @ W @ g1)
        r = g1 - G @ th
        return th, float(r @ W @ r), self.dy - X @ th, G

    def omega(self, u):
        gi = np.zeros((self.N, self.Z.shape[1]))
        np.add.at(gi, self.ent, self.Z * u[:, None])
        m = gi.mean(axis=0)
        return gi.T @ gi / self.N - np.outer(m, m), gi

    def estimate(self, grid):
        J1 = [self.gmm(self.W1, g)[1] for g in grid]
        g1 = grid[int(np.argmin(J1))]
        W2 = np.linalg.inv(self.omega(self.gmm(self.W1, g1)[2])[0])
        J2 = [self.gmm(W2, g)[1] for g in grid]
        g2 = grid[int(np.argmin(J2))]
        th, _, u, _ = self.gmm(W2, g2)
        return g2, th, W2, self.omega(u)[1]

    def sup_wald(self, grid):
        out = []
        for g in grid:
            u1 = self.gmm(self.W1, g)[2]
            th, _, u2, G = self.gmm(np.linalg.inv(self.omega(u1)[0]), g)
            V = np.linalg.inv(G.T @ np.linalg.inv(self.omega(u2)[0]) @ G)
            d = th[self.k:]
            out.append(self.N * d @ np.linalg.solve(V[self.k:, self.k:], d))
        return max(out)

    def one_draw(self, grid, W2, moments, eta):
        gstar = moments.T @ eta / self.N
        return [self.gmm(W2, g, gstar)[0] for g in grid]


@pytest.fixture(scope="module", params=[pytest.param("N200", id="N200"),
                                        pytest.param("N2000", id="N2000", marks=pytest.mark.large)])
def case(request):
    N, G, B = SIZES[request.param]
    df = _panel(N)
    grid = np.linspace(*np.quantile(df.q, [0.2, 0.8]), G)
    return request.param, df, grid, B


def _fit(df, grid, B):
    return fp.dynamic_threshold("y ~ x1 + x2", df, entity="id", time="t", threshold_var="q", grid=grid, n_boot=B,
                                seed=1)


def test_fastpanel_full_fit(benchmark, case):
    name, df, grid, B = case
    benchmark.group = f"dynamic-draw-{name}"
    res = benchmark.pedantic(_fit, args=(df, grid, B), rounds=3, iterations=1)
    benchmark.extra_info.update(library="fastpanel", draws=B, grid=len(grid))
    if benchmark.stats is not None:
        benchmark.extra_info["seconds_per_draw_all_in"] = benchmark.stats.stats.min / B
    assert res.linearity_test.n_boot == B


def test_fastpanel_estimate(benchmark, case):
    name, df, grid, _ = case
    benchmark.group = f"dynamic-estimate-{name}"
    res = benchmark.pedantic(_fit, args=(df, grid, 0), rounds=3, iterations=1)
    benchmark.extra_info["library"] = "fastpanel"
    naive = NaiveGMM(df)
    g2, th, _, _ = naive.estimate(grid)
    assert res.threshold == g2
    np.testing.assert_allclose(res.params.to_numpy()[:-1], th, rtol=1e-7, atol=1e-9)


def test_naive_estimate(benchmark, case):
    name, df, grid, _ = case
    benchmark.group = f"dynamic-estimate-{name}"
    naive = NaiveGMM(df)
    benchmark.pedantic(naive.estimate, args=(grid,), rounds=1, iterations=1)
    benchmark.extra_info["library"] = "naive per-point GMM (NumPy/BLAS)"


def test_naive_sup_wald(benchmark, case):
    name, df, grid, _ = case
    benchmark.group = f"dynamic-supwald-{name}"
    naive = NaiveGMM(df)
    stat = benchmark.pedantic(naive.sup_wald, args=(grid,), rounds=1, iterations=1)
    res = _fit(df, grid, 1)
    assert stat == pytest.approx(res.linearity_test.statistic, rel=1e-6)
    benchmark.extra_info["library"] = "naive per-point GMM (NumPy/BLAS)"


def test_naive_one_bootstrap_draw(benchmark, case):
    name, df, grid, _ = case
    benchmark.group = f"dynamic-draw-{name}"
    naive = NaiveGMM(df)
    _, _, W2, moments = naive.estimate(grid)
    eta = np.random.default_rng(0).standard_normal(naive.N)
    benchmark.pedantic(naive.one_draw, args=(grid, W2, moments, eta), rounds=1, iterations=1)
    benchmark.extra_info["library"] = "naive per-point GMM (NumPy/BLAS), one draw"
