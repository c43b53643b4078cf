"""Self-checks of the xthenreg NumPy oracle (tests/_xthenreg_reference.py) against independent facts
(numpy's quantile, instrument counts, explicit per-entity GMM algebra, a simulated design).

Nothing here imports fastpanel: the oracle is checked on its own.
"""

from __future__ import annotations

import numpy as np
import pytest

from _xthenreg_reference import mm_quantile2, xthenreg

# --------------------------------------------------------------------------------------------
# design: y_it = (0.6 y_{t-1} + 1.0 x) 1{q <= 0} + (2.0 + 0.3 y_{t-1} + 0.5 x) 1{q > 0} + a_i + e
# in xthenreg's parametrisation (beta_lag, beta_x, delta_0, delta_lag, delta_x):
# beta = (0.6, 1.0), delta = (2.0, -0.3, -0.5), r = 0
# --------------------------------------------------------------------------------------------
TRUE_R = 0.0
TRUE_EST = np.array([0.6, 1.0, 2.0, -0.3, -0.5])


def _simulate(N, T, seed, *, kink=False, burn=30, n_x=1, extra=0, rho=(0.6, 0.3)):
    """Entity-then-period arrays y, q, X (N*T, n_x) and extra N(0,1) columns (N*T, extra).

    Threshold design: y = (rho[0] y_{t-1} + 1.0 x) 1{q <= 0} + (2.0 + rho[1] y_{t-1} + 0.5 x) 1{q > 0}
    (+ further x's with slope 1) + a_i + e_it.  Kink design: y = 0.5 y_{t-1} + x + 1.5 (q - 0)_+ + a_i + e.
    q, x, e, a are iid N(0, 1).
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=N)
    yprev = np.zeros(N)
    ys, qs, xs, zs = [], [], [], []
    for t in range(T + burn):
        e = rng.normal(size=N)
        x = rng.normal(size=(N, n_x))
        z = rng.normal(size=(N, extra))
        q = rng.normal(size=N)
        up = q > TRUE_R
        if kink:
            yn = 0.5 * yprev + x.sum(axis=1) + 1.5 * (q - TRUE_R) * up + a + e
        else:
            yn = np.where(up, 2.0 + rho[1] * yprev + 0.5 * x[:, 0], rho[0] * yprev + 1.0 * x[:, 0])
            yn = yn + x[:, 1:].sum(axis=1) + a + e
        if t >= burn:
            ys.append(yn)
            qs.append(q)
            xs.append(x)
            zs.append(z)
        yprev = yn
    # entity-then-period order
    y = np.stack(ys, axis=1).ravel()
    q = np.stack(qs, axis=1).ravel()
    X = np.stack(xs, axis=1).reshape(N * T, n_x)
    Zx = np.stack(zs, axis=1).reshape(N * T, extra)
    return y, q, X, Zx


def _q_instruments(y, q, X, N, T, *, dynamic=True):
    """Extra instruments (levels at period t): q_t, q_t^2, x_t q_t and (dynamic) y_{t-2} q_t.

    With iid q, instruments that do not involve q leave the threshold unidentified (every moment
    involving 1{q_t > r} only scales with P(q > r)), so the design supplies exogenous nonlinear
    functions of q: q_t and q_t^2 identify r and delta_0, x_t q_t and y_{t-2} q_t the regime slopes.
    """
    Q = q.reshape(N, T)
    cols = [q, q ** 2, (X[:, 0].reshape(N, T) * Q).ravel()]
    if dynamic:
        y2 = np.zeros((N, T))
        y2[:, 2:] = y.reshape(N, T)[:, :-2]
        cols.append((y2 * Q).ravel())
    return np.column_stack(cols)


@pytest.fixture(scope="module")
def sim():
    N, T = 300, 6
    y, q, X, _ = _simulate(N, T, seed=11)
    Iv = _q_instruments(y, q, X, N, T)
    res = xthenreg(y, q, X, T=T, inst=Iv, grid_num=100)
    return N, T, y, q, X, Iv, res


# --------------------------------------------------------------------------------------------
# 1. quantile = numpy's averaged_inverted_cdf
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 10, 17, 40, 100, 101, 333, 8400])
def test_quantile_matches_numpy(n):
    rng = np.random.default_rng(n)
    for x in (rng.normal(size=n), rng.integers(0, 4, size=n).astype(float),
              np.round(rng.normal(size=n), 1)):
        for p in (0.2, 0.8, 0.25, 0.5):
            want = np.quantile(x, p, method="averaged_inverted_cdf")
            assert mm_quantile2(x, p) == pytest.approx(float(want), rel=0, abs=1e-14)


def test_grid_endpoints_are_type2_quantiles(sim):
    N, T, y, q, X, Iv, res = sim
    g = res["grid"]
    assert g.shape == (100,)
    assert g[0] == np.quantile(q, 0.2, method="averaged_inverted_cdf")
    assert g[-1] == np.quantile(q, 0.8, method="averaged_inverted_cdf")
    assert np.allclose(np.diff(g), (g[-1] - g[0]) / 99)


# --------------------------------------------------------------------------------------------
# 2. number of instruments
# --------------------------------------------------------------------------------------------
def _L_formula(T, kx, k_endo, k_exo, k_inst, static):
    """Per equation: constant, (t-2) lagged y levels (dynamic), one Delta x per varlist x,
    (t-2) lagged levels per endogenous, t levels x_1..x_t per exogenous(), one per inst."""
    ts = range(2, T + 1) if static else range(3, T + 1)
    return sum(1 + (0 if static else t - 2) + kx + k_endo * (t - 2) + k_exo * t + k_inst for t in ts)


def test_L_dynamic_three_endogenous_T15():
    N, T = 420, 15
    rng = np.random.default_rng(3)
    y, q = rng.normal(size=N * T), rng.normal(size=N * T)
    En = rng.normal(size=(N * T, 3))
    res = xthenreg(y, q, np.zeros((N * T, 0)), T=T, endogenous=En, grid_num=3)
    assert res["L"] == 13 + 4 * 91 == 377 == _L_formula(T, 0, 3, 0, 0, False)
    assert res["Z"].shape == (377, N)
    assert len(res["GMM_est_2"]) == 2 * 4 + 1 and res["cov"].shape == (10, 10)


def test_L_static_two_x_T5():
    N, T = 100, 5
    y, q, X, _ = _simulate(N, T, seed=4, n_x=2)
    res = xthenreg(y, q, X, T=T, static=True, grid_num=5)
    assert res["L"] == 12 == _L_formula(T, 2, 0, 0, 0, True)


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("kx,k_endo,k_exo,k_inst", [(1, 0, 1, 0), (0, 1, 1, 0), (1, 1, 2, 0),
                                                     (1, 0, 0, 1), (1, 1, 1, 2)])
def test_L_formula_and_exogenous_rows(static, kx, k_endo, k_exo, k_inst):
    N, T = 200, 5
    rng = np.random.default_rng(kx + 10 * k_endo + 100 * k_exo + 1000 * k_inst)
    y, q, X, Iv = _simulate(N, T, seed=5, n_x=max(kx, 1), extra=k_inst)
    X = X[:, :kx]
    En = rng.normal(size=(N * T, k_endo)) if k_endo else None
    Ex = rng.normal(size=(N * T, k_exo)) if k_exo else None
    res = xthenreg(y, q, X, T=T, endogenous=En, exogenous=Ex, inst=Iv if k_inst else None,
                   static=static, grid_num=4)
    L = _L_formula(T, kx, k_endo, k_exo, k_inst, static)
    assert res["L"] == L == res["Z"].shape[0]
    # rows of the LAST equation (t = T) are the last block of Z; build it independently
    t = T
    cols = lambda a, j: a[:, j].reshape(N, T)  # noqa: E731
    blk = [np.ones(N)]
    if not static:
        blk += [y.reshape(N, T)[:, s] for s in range(t - 2)]
    blk += [cols(X, j)[:, t - 1] - cols(X, j)[:, t - 2] for j in range(kx)]
    for j in range(k_endo):
        blk += [cols(En, j)[:, s] for s in range(t - 2)]
    for j in range(k_exo):
        blk += [cols(Ex, j)[:, s] for s in range(t)]          # levels x_1..x_t
    blk += [cols(Iv, j)[:, t - 1] for j in range(k_inst)]      # extra instruments at t
    want = np.array(blk)
    np.testing.assert_array_equal(res["Z"][L - want.shape[0]:, :], want)


# --------------------------------------------------------------------------------------------
# 3./4. simulated design: estimates, first-step weight, second-step algebra
# --------------------------------------------------------------------------------------------
def _indep_blocks(N, T, y, q, X, Iv, r):
    """Per entity, written from the model (not from the oracle's layout): the (T-2) x L block
    diagonal instrument matrix Z_i (row t-3 holds [1, y_1..y_{t-2}, Delta x_t, inst_t] in the
    block of period t), the (T-2) x 5 regressors X_i(r) of the differenced equation and dy_i."""
    Y = y.reshape(N, T)
    Q = q.reshape(N, T)
    Xm = X[:, 0].reshape(N, T)
    k_inst = Iv.shape[1]
    Im = Iv.reshape(N, T, k_inst)
    sizes = [1 + (t - 2) + 1 + k_inst for t in range(3, T + 1)]
    L = sum(sizes)
    off = np.cumsum([0] + sizes)
    Zi = np.zeros((N, T - 2, L))
    Xi = np.zeros((N, T - 2, 5))
    dy = np.zeros((N, T - 2))
    for i in range(N):
        for row, t in enumerate(range(3, T + 1)):     # t is the 1-based period
            c = t - 1                                  # 0-based column of period t
            z = np.concatenate([[1.0], Y[i, :t - 2], [Xm[i, c] - Xm[i, c - 1]], Im[i, c]])
            Zi[i, row, off[row]:off[row + 1]] = z
            I1, I0 = float(Q[i, c] > r), float(Q[i, c - 1] > r)
            Xi[i, row] = [Y[i, c - 1] - Y[i, c - 2], Xm[i, c] - Xm[i, c - 1], I1 - I0,
                          Y[i, c - 1] * I1 - Y[i, c - 2] * I0, Xm[i, c] * I1 - Xm[i, c - 1] * I0]
            dy[i, row] = Y[i, c] - Y[i, c - 1]
    return Zi, Xi, dy


def test_sim_estimates_near_truth(sim):
    N, T, y, q, X, Iv, res = sim
    # A Monte Carlo of this design (60 seeds, N=300, T=6) gave sd(r_hat_2) ~ 0.10 and sd of the
    # coefficients <= 0.14 (0.06 / 0.07 / 0.14 / 0.06 / 0.12), close to the median reported s.e.;
    # the bounds below are about 3 sd (the seed is fixed, so the test is deterministic).
    assert abs(res["r_hat_2"] - TRUE_R) < 0.3
    assert abs(res["r_hat"] - TRUE_R) < 0.4
    est = res["GMM_est_2"]
    assert est.shape == (5,) and res["cov"].shape == (6, 6)
    assert np.all(np.abs(est - TRUE_EST) < 0.45), est
    assert np.all(np.isfinite(res["se"])) and np.all(res["se"] > 0)
    assert np.all(np.abs(est - TRUE_EST) < 4 * res["se"][:5] + 0.05), (est, res["se"])
    np.testing.assert_allclose(res["se"], np.sqrt(np.diag(res["cov"])))
    np.testing.assert_allclose(res["cov"], res["cov"].T, rtol=1e-10, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(res["cov"]) > 0)
    sd = np.std(q, ddof=1)
    assert res["h_band"] == pytest.approx(1.5 * 1.06 * N ** -0.2 * sd, rel=1e-14)


def test_sim_first_step_weight_and_Z(sim):
    N, T, y, q, X, Iv, res = sim
    Zi, _, _ = _indep_blocks(N, T, y, q, X, Iv, 0.0)
    L = Zi.shape[2]
    assert res["L"] == L
    # Z_mat column i stacks the nonzeros of Z_i period by period
    Zcols = Zi.sum(axis=1)
    np.testing.assert_array_equal(res["Z"], Zcols.T)
    H = 2 * np.eye(T - 2) - np.eye(T - 2, k=1) - np.eye(T - 2, k=-1)
    A = np.zeros((L, L))
    for i in range(N):
        A += Zi[i].T @ H @ Zi[i]
    W = np.linalg.inv(A / N)
    np.testing.assert_allclose(res["W_n"], W, rtol=1e-9, atol=1e-12 * np.abs(W).max())


def test_sim_second_step_algebra(sim):
    N, T, y, q, X, Iv, res = sim
    # second-step weight: residuals of the first-step estimate at r_hat, centred moment variance
    Zi, Xi, dy = _indep_blocks(N, T, y, q, X, Iv, res["r_hat"])
    b1 = res["GMM_est_1"]
    L = Zi.shape[2]
    gs = np.array([Zi[i].T @ (dy[i] - Xi[i] @ b1) for i in range(N)])
    S = sum(np.outer(g, g) for g in gs) / N - np.outer(gs.mean(0), gs.mean(0))
    W2 = np.linalg.inv(S)
    np.testing.assert_allclose(res["W_n_2"], W2, rtol=1e-8, atol=1e-10 * np.abs(W2).max())
    W2 = res["W_n_2"]

    # at r_hat_2: first-order condition and J = min(J2)
    Zi, Xi, dy = _indep_blocks(N, T, y, q, X, Iv, res["r_hat_2"])
    G = sum(Zi[i].T @ Xi[i] for i in range(N)) / N
    g1 = sum(Zi[i].T @ dy[i] for i in range(N)) / N
    b = res["GMM_est_2"]
    foc = G.T @ W2 @ (g1 - G @ b)
    assert np.max(np.abs(foc)) <= 1e-10 * np.max(np.abs(G.T @ W2 @ g1))
    gn = g1 - G @ b
    J = gn @ W2 @ gn
    assert J == pytest.approx(res["J2"].min(), rel=1e-10)
    assert res["r_hat_2"] == res["grid"][np.argmin(res["J2"])]
    assert res["r_hat"] == res["grid"][np.argmin(res["J1"])]
    # J2 at another grid point, from an independent GMM solve there
    k = 17
    Zi, Xi, dy = _indep_blocks(N, T, y, q, X, Iv, res["grid"][k])
    G = sum(Zi[i].T @ Xi[i] for i in range(N)) / N
    bk = np.linalg.solve(G.T @ W2 @ G, G.T @ W2 @ g1)
    gn = g1 - G @ bk
    assert gn @ W2 @ gn == pytest.approx(res["J2"][k], rel=1e-9)
    assert np.all(res["J2"] >= 0) and L == res["L"]


# --------------------------------------------------------------------------------------------
# 5. bootstrap
# --------------------------------------------------------------------------------------------
def test_bootstrap_shapes(sim):
    N, T, y, q, X, Iv, _ = sim
    eta = np.random.default_rng(7).standard_normal((N, 5))
    res = xthenreg(y, q, X, T=T, inst=Iv, grid_num=30, boot_eta=eta)
    assert res["wald"].shape == (30,)
    assert res["sup_wald"] == np.max(res["wald"])
    assert res["boot"].shape == (5,)
    assert np.all(np.isfinite(res["boot"])) and np.all(res["boot"] >= 0)
    assert res["boots_p"] == np.mean(res["boot"] > res["sup_wald"])
    # a regime intercept jump of 2 (s.e. ~ 0.13): the sup-Wald is far beyond the bootstrap draws
    assert res["sup_wald"] > res["boot"].max()
    assert res["boots_p"] == 0.0


# --------------------------------------------------------------------------------------------
# 6. kink and static cases
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("static", [False, True])
def test_kink_runs(static):
    N, T = 300, 6
    y, q, X, _ = _simulate(N, T, seed=21, kink=True)
    Iv = np.column_stack([q, q ** 2])   # q-based instruments identify the kink point
    eta = np.random.default_rng(1).standard_normal((N, 3))
    res = xthenreg(y, q, X, T=T, inst=Iv, kink=True, static=static, grid_num=25, boot_eta=eta)
    p = 2 if static else 3             # (beta_lag?, beta_x, kink slope)
    assert res["GMM_est_2"].shape == (p,) and res["cov"].shape == (p + 1, p + 1)
    for key in ("GMM_est_2", "cov", "se", "J1", "J2", "wald", "boot"):
        assert np.all(np.isfinite(res[key])), key
    assert res["sup_wald"] == np.max(res["wald"]) and np.all(res["boot"] >= 0)
    assert res["L"] == _L_formula(T, 1, 0, 0, 2, static)
    if not static:
        # y = 0.5 y_{t-1} + x + 1.5 (q)_+ + a + e: the dynamic kink model is correctly specified
        assert abs(res["r_hat_2"] - TRUE_R) < 0.5
        assert np.all(np.abs(res["GMM_est_2"] - [0.5, 1.0, 1.5]) < 0.5), res["GMM_est_2"]


def test_static_runs():
    N, T = 300, 6
    y, q, X, _ = _simulate(N, T, seed=31, rho=(0.0, 0.0))
    Iv = _q_instruments(y, q, X, N, T, dynamic=False)
    eta = np.random.default_rng(2).standard_normal((N, 3))
    res = xthenreg(y, q, X, T=T, inst=Iv, static=True, grid_num=25, boot_eta=eta)
    assert res["L"] == _L_formula(T, 1, 0, 0, 3, True)
    assert res["GMM_est_2"].shape == (3,) and res["cov"].shape == (4, 4)  # beta_x, delta_0, delta_x
    for key in ("GMM_est_2", "cov", "se", "J1", "J2", "wald", "boot"):
        assert np.all(np.isfinite(res[key])), key
    # static data (rho = 0): beta_x = 1, delta_0 = 2, delta_x = -0.5, r = 0
    assert abs(res["r_hat_2"] - TRUE_R) < 0.4
    assert np.all(np.abs(res["GMM_est_2"] - [1.0, 2.0, -0.5]) < 0.5), res["GMM_est_2"]
    assert res["sup_wald"] > res["boot"].max()
