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
fastpanel fit with all draws divided by the draw count in ``extra_info``); ``dynamic-hansen-377iv``
(Seo and Shin's section-7 specification on Hansen's data, 377 instruments; see below; the naive
entry is marked ``large``).
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


# -- Seo and Shin (2016, section 7) on Hansen's data: 377 instruments ---------------------------
# invest on its lag, cash flow, Tobin's q and debt, every slope shifting at a debt threshold,
# cash flow, q and debt endogenous (instrumented by their lagged levels), firms 137, 391, 407,
# 488 and 538 excluded: N = 560, T = 15, L = 377. One fit with 100 grid points and 199 draws.
# The peer is the per-point textbook loop (class NaiveDesignGMM) on the same level rows and
# pulled-back instruments (fastpanel.dynamic_panel.design.build_design): at every grid point it
# rebuilds the regime regressors, forms Z'X(g) / N and solves the GMM problem with an explicit
# weight matrix W = Omega^-1; the sup-Wald statistic runs two-step GMM at each point, and each
# bootstrap draw re-solves every grid point with the second-step weight (Seo, Kim and Kim's
# fast bootstrap, point by point). Group ``dynamic-hansen-377iv``.

HANSEN = "../shared/data/hansen1999/invest.dat"


def _hansen_frame() -> pd.DataFrame:
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", HANSEN)
    if not os.path.exists(path):
        pytest.skip(f"Hansen (1999) data not found at {path} (shared reference data)")
    raw = np.loadtxt(path)
    df = pd.DataFrame(raw, columns=["inva", "vala", "cfa", "debta"])
    df["firm"] = np.arange(len(df)) // 15 + 1
    df["year"] = 1973 + np.arange(len(df)) % 15
    return df[~df.firm.isin([137, 391, 407, 488, 538])].reset_index(drop=True)


class NaiveDesignGMM(NaiveGMM):
    """The per-point GMM loop (NaiveGMM's gmm, omega, estimate) on a
    :class:`~fastpanel.dynamic_panel.design.GMMDesign` (dense): level rows whose regime
    regressors are [1, x] times 1(q > g), instruments pulled back to them."""

    def __init__(self, d):
        self.Z = d.zeta.toarray()
        self.dy, self.dX, self.q, self.ent = d.y, d.X, d.q, d.entity
        self.N, self.k = d.n_entities, d.X.shape[1]
        self.g1 = self.Z.T @ self.dy / self.N
        self.W1 = np.linalg.inv(self.Z.T @ self.Z / self.N)

    def design(self, g):
        up = (self.q > g)[:, None]
        return np.column_stack([self.dX, np.column_stack([np.ones_like(self.q), self.dX]) * up])

    def fit(self, grid, eta):
        g2, _, W2, moments = self.estimate(grid)
        wald, Vd = [], []
        for g in grid:  # sup-Wald: two-step GMM at each point
            u1 = self.gmm(self.W1, g)[2]
            th, _, u2, G = self.gmm(np.linalg.inv(self.omega(u1)[0]), g)
            V = np.linalg.inv(G.T @ np.linalg.inv(self.omega(u2)[0]) @ G)
            Vd.append(V[self.k:, self.k:])
            d = th[self.k:]
            wald.append(self.N * d @ np.linalg.solve(Vd[-1], d))
        boot = np.empty(eta.shape[1])
        for b in range(eta.shape[1]):  # each draw re-solves every grid point
            gstar = moments.T @ eta[:, b] / self.N
            w = [self.N * (d := self.gmm(W2, g, gstar)[0][self.k:]) @ np.linalg.solve(V, d) for g, V in zip(grid, Vd)]
            boot[b] = max(w)
        return g2, max(wald), boot


@pytest.fixture(scope="module")
def hansen():
    from fastpanel.dynamic_panel.design import build_design
    from fastpanel.factor import factorize

    df = _hansen_frame()
    xs = ["cfa", "vala", "debta"]
    y, X = df.inva.to_numpy(float), df[xs].to_numpy(float)
    ent = factorize(df.firm.to_numpy(), "firm").codes
    # fit_arrays' location convention: y and X centred at their means
    d = build_design(y - y.mean(), X - X.mean(axis=0), df.debta.to_numpy(float), ent,
                     (df.year - 1973).to_numpy(), lags=1, endog=np.ones(3, bool), extra_iv=np.empty((len(df), 0)),
                     transform="fd", collapse=False, max_lag=None, y_name="inva", x_names=xs, iv_names=[])
    grid = np.linspace(*np.quantile(d.q, [0.2, 0.8]), 100)
    return df, d, grid


def _hansen_fit(df, grid, B):
    return fp.dynamic_threshold("inva ~ cfa + vala + debta", df, entity="firm", time="year", threshold_var="debta",
                                lags=1, endog=["cfa", "vala", "debta"], grid=grid, n_boot=B, seed=1)


def test_fastpanel_hansen_377_instruments(benchmark, hansen):
    df, d, grid = hansen
    benchmark.group = "dynamic-hansen-377iv"
    res = benchmark.pedantic(_hansen_fit, args=(df, grid, 199), rounds=3, iterations=1)
    benchmark.extra_info.update(library="fastpanel", draws=199, grid=len(grid), instruments=res.n_instruments)
    assert res.n_instruments == 377 and res.n_entities == 560


@pytest.mark.large  # about 110 s
def test_naive_hansen_377_instruments(benchmark, hansen):
    df, d, grid = hansen
    benchmark.group = "dynamic-hansen-377iv"
    naive = NaiveDesignGMM(d)
    eta = np.random.default_rng(1).standard_normal((d.n_entities, 199))  # fastpanel's draws (seed=1)
    g2, sup, boot = benchmark.pedantic(naive.fit, args=(grid, eta), rounds=1, iterations=1)
    benchmark.extra_info["library"] = "naive per-point GMM (NumPy/BLAS)"
    res = _hansen_fit(df, grid, 199)
    assert res.threshold == g2
    assert sup == pytest.approx(res.linearity_test.statistic, rel=1e-6)
    np.testing.assert_allclose(np.sort(boot), np.sort(res.linearity_test.boot_stats), rtol=1e-6)
