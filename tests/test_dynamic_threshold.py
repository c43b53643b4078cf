"""fastpanel.dynamic_panel against a point-by-point NumPy GMM written for the tests
(fastpanel.dynamic_panel.reference: dense instruments, regressors rebuilt at every
threshold), on unbalanced panels with gaps in the middle of entities and rows in random order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
from _dynamic_data import simulate

import fastpanel as fp
from fastpanel.dynamic_panel.design import build_design
from fastpanel.dynamic_panel.gmm import GMMEngine, InstrumentWarning, whiten_moments, whitener
from fastpanel.dynamic_panel.model import fit_arrays, period_index
from fastpanel.dynamic_panel.reference import NaivePanelGMM


def _messy(N=40, T=8, seed=3, drop=30, **kw) -> pd.DataFrame:
    df = simulate(N, T, seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    df = df.drop(rng.choice(len(df), drop, replace=False))  # gaps anywhere, including mid-entity
    return df.sample(frac=1, random_state=seed + 2).reset_index(drop=True)


def _arrays(df, q_shift=0.0, centre=False):
    """Model arrays; ``centre`` subtracts the means of y and x, as fit_arrays does before it
    builds the instruments (so a missing lagged level is zero in the same units for both)."""
    y, X = df.y.to_numpy(), df[["x"]].to_numpy()
    if centre:
        y, X = y - y.mean(), X - X.mean(axis=0)
    return y, X, df.q.to_numpy() + q_shift, df.id.to_numpy(), period_index(df.year.to_numpy())


def _engine(df, grid, *, transform, kink, collapse, q_shift=0.0, max_lag=None, endog=False):
    y, X, q, ent, per = _arrays(df, q_shift)
    d = build_design(y, X, q, ent, per, lags=1, endog=np.array([endog]), extra_iv=np.empty((y.size, 0)),
                     transform=transform, collapse=collapse, max_lag=max_lag, y_name="y", x_names=["x"],
                     iv_names=[])
    ref = NaivePanelGMM(y, X, q, ent, per, lags=1, transform=transform, kink=kink, collapse=collapse,
                        max_lag=max_lag, endog=np.array([endog]))
    return GMMEngine(d, grid, kink), ref


CASES = [(t, k, c) for t in ("fd", "fod") for k in (False, True) for c in (False, True)]


@pytest.mark.parametrize(("transform", "kink", "collapse"), CASES)
def test_objective_equals_pointwise_gmm_at_every_grid_point(transform, kink, collapse):
    df = _messy()
    grid = np.linspace(-0.8, 0.8, 31)
    eng, ref = _engine(df, grid, transform=transform, kink=kink, collapse=collapse)
    assert eng.L == ref.Z.shape[1]
    assert eng.d.n_equations == ref.Z.shape[0]
    th, J, _ = eng.grid_search(whitener(eng.S1))
    W1 = np.linalg.inv(ref.S1)
    for i, g in enumerate(grid):
        th_r, J_r, _ = ref.gmm(W1, g)
        assert J[i] == pytest.approx(J_r, rel=1e-10, abs=1e-14)
        np.testing.assert_allclose(th[i], th_r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shift", [1e6, -3e7])
def test_objective_with_a_large_offset_in_the_threshold_variable(shift):
    df = _messy(seed=5)
    grid = np.linspace(-0.8, 0.8, 21)
    for kink in (False, True):
        eng, ref = _engine(df, grid + shift, transform="fd", kink=kink, collapse=False, q_shift=shift)
        _, J, _ = eng.grid_search(whitener(eng.S1))
        W1 = np.linalg.inv(ref.S1)
        Jr = np.array([ref.gmm(W1, g)[1] for g in grid + shift])
        np.testing.assert_allclose(J, Jr, rtol=1e-8)


def test_endogenous_regressor_and_max_lag_instruments():
    df = _messy(seed=8)
    grid = np.linspace(-0.6, 0.6, 15)
    eng, ref = _engine(df, grid, transform="fd", kink=False, collapse=False, max_lag=3, endog=True)
    assert eng.L == ref.Z.shape[1]
    _, J, _ = eng.grid_search(whitener(eng.S1))
    W1 = np.linalg.inv(ref.S1)
    np.testing.assert_allclose(J, [ref.gmm(W1, g)[1] for g in grid], rtol=1e-10)


@pytest.mark.parametrize(("transform", "kink"), [("fd", False), ("fd", True), ("fod", False)])
def test_two_step_estimates_match_the_pointwise_procedure(transform, kink):
    df = _messy(N=60, seed=11, kink=kink)
    y, X, q, ent, per = _arrays(df, centre=True)
    grid = np.linspace(-0.7, 0.7, 29)
    res = fit_arrays(y, X, q, ent, per, lags=1, kink=kink, transform=transform, grid=grid, n_boot=0)
    ref = NaivePanelGMM(y, X, q, ent, per, lags=1, transform=transform, kink=kink)
    out = ref.two_step(grid)
    assert res.first_step_threshold == out["g1"]
    assert res.threshold == out["g2"]
    np.testing.assert_allclose(res.objective_first, out["J1"], rtol=1e-10)
    np.testing.assert_allclose(res.objective, out["J2"], rtol=1e-8)
    np.testing.assert_allclose(res.params.to_numpy()[:-1], out["theta"], rtol=1e-8, atol=1e-10)

    # Covariance: (D' Omega^-1 D)^-1 / N with the threshold column written per equation
    # (not through the pulled-back instruments): sum_j z_j sum_r A_jr d/dg[regime_r] ...
    theta, g, N = out["theta"], out["g2"], ref.N
    h = res.bandwidth
    k = ref.dX.shape[1]
    col = np.zeros(ref.Z.shape[1])
    for j, (_, w, lv) in enumerate(ref.eqs):
        s = 0.0
        for i, wv in w.items():
            qi, xi = lv[i][3], lv[i][2]
            if kink:
                s += wv * theta[k] * (qi > g)
            else:
                s += wv * (theta[k] + xi @ theta[k + 1:]) * np.exp(-0.5 * ((g - qi) / h) ** 2) / np.sqrt(2 * np.pi) / h
        col += ref.Z[j] * s
    D = np.column_stack([-ref.Z.T @ ref.regressors(g) / N, col / N])
    V = np.linalg.inv(D.T @ np.linalg.inv(out["Omega"]) @ D) / N
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-7)


@pytest.mark.parametrize("kink", [False, True])
def test_balanced_panel_in_raw_units_matches_the_pointwise_procedure(kink):
    # Balanced: every lagged level exists, so centring changes no moment's span and the raw-unit
    # estimates (intercept shift mapped back to the data's origin) equal the oracle's.
    df = simulate(60, 7, seed=17, kink=kink)
    df = df.assign(y=df.y + 50.0, x=df.x - 20.0).sample(frac=1, random_state=3)
    y, X, q, ent, per = _arrays(df)
    grid = np.linspace(-0.7, 0.7, 21)
    res = fit_arrays(y, X, q, ent, per, lags=1, kink=kink, grid=grid, n_boot=0)
    out = NaivePanelGMM(y, X, q, ent, per, lags=1, kink=kink).two_step(grid)
    assert res.threshold == out["g2"]
    np.testing.assert_allclose(res.params.to_numpy()[:-1], out["theta"], rtol=1e-7)
    np.testing.assert_allclose(res.objective, out["J2"], rtol=1e-7)


def test_offsets_of_1e8_change_only_the_intercept_shift():
    df = _messy(N=120, seed=19)
    kw = dict(entity="id", time="year", threshold_var="q", instruments=["q"], n_boot=29, seed=2)
    grid = np.linspace(-0.7, 0.7, 41)
    a = fp.dynamic_threshold("y ~ x", df, grid=grid, **kw)
    c = 1e8
    b = fp.dynamic_threshold("y ~ x", df.assign(y=df.y + c, x=df.x - c, q=df.q + c), grid=grid + c, **kw)
    assert b.threshold - c == pytest.approx(a.threshold, abs=1e-7)
    slopes = ["L1.y", "x", "shift:L1.y", "shift:x"]
    np.testing.assert_allclose(b.params[slopes], a.params[slopes], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(b.bse[slopes + ["threshold"]], a.bse[slopes + ["threshold"]], rtol=1e-6)
    # (1, x)'d at the new origin: d_0' = d_0 - c d_y + c d_x, known to ~1e-8 of c |d|
    expect = a.params["shift:const"] - c * a.params["shift:L1.y"] + c * a.params["shift:x"]
    assert b.params["shift:const"] == pytest.approx(expect, abs=1e-7 * c)
    assert b.linearity_test.statistic == pytest.approx(a.linearity_test.statistic, rel=1e-6)
    assert b.linearity_test.pvalue == a.linearity_test.pvalue


@pytest.mark.parametrize("L", [12, 200])  # the batched path and the per-matrix LAPACK loop
@pytest.mark.parametrize("singular", [False, True])
def test_whiten_moments_gives_the_weighted_cross_product(L, singular):
    """(P B)'(P B) = B' Omega^+ B, Omega the centred moment covariance (Seo and Shin eq. 11),
    against a plain NumPy pinv; a repeated moment column (singular Omega) takes the eigh branch."""
    rng = np.random.default_rng(L)
    c, N = 3, 2 * L + 40
    Mi = rng.standard_normal((c, N, L)) + 1e3  # an offset that centring must remove
    if singular:
        Mi[:, :, -1] = Mi[:, :, 0]
    B = rng.standard_normal((c, L, 4))
    PB = whiten_moments(Mi, B)
    for i in range(c):
        D = Mi[i] - Mi[i].mean(axis=0)
        Om = D.T @ D / N
        want = B[i].T @ np.linalg.pinv(Om, rcond=1e-12, hermitian=True) @ B[i]
        got = PB[i].T @ PB[i]
        # pinv and Cholesky/eigh agree to kappa(Omega) eps relative to the largest entry
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_sup_wald_and_fast_bootstrap_match_pointwise_loops():
    df = _messy(N=50, seed=13, linear=True)
    y, X, q, ent, per = _arrays(df, centre=True)
    grid = np.linspace(-0.6, 0.6, 9)
    res = fit_arrays(y, X, q, ent, per, lags=1, grid=grid, n_boot=7, seed=4)
    ref = NaivePanelGMM(y, X, q, ent, per, lags=1)
    np.testing.assert_allclose(res.linearity_test.wald, ref.wald(grid), rtol=1e-7)
    assert res.linearity_test.statistic == pytest.approx(ref.wald(grid).max(), rel=1e-7)

    # Fast bootstrap, draw by draw and point by point: theta* = (G'W2G)^-1 G'W2 gbar*,
    # gbar* = mean_i eta_i g_i(theta_hat, g_hat); Wald* with each point's sample covariance.
    out = ref.two_step(grid)
    eta = np.random.default_rng(4).standard_normal((ref.N, 7))
    W1 = np.linalg.inv(ref.S1)
    k = ref.dX.shape[1]
    covs = []
    for g in grid:
        _, _, u1 = ref.gmm(W1, g)
        th2, _, u2 = ref.gmm(np.linalg.inv(ref.omega(u1)), g)
        G = ref.Z.T @ ref.regressors(g) / ref.N
        covs.append(np.linalg.inv(G.T @ np.linalg.inv(ref.omega(u2)) @ G)[k:, k:])
    draws = []
    for b in range(7):
        gstar = out["moments"].T @ eta[:, b] / ref.N
        best = -np.inf
        for g, V in zip(grid, covs):
            G = ref.Z.T @ ref.regressors(g) / ref.N
            th = np.linalg.solve(G.T @ out["W2"] @ G, G.T @ out["W2"] @ gstar)
            best = max(best, ref.N * th[k:] @ np.linalg.solve(V, th[k:]))
        draws.append(best)
    np.testing.assert_allclose(res.linearity_test.boot_stats, draws, rtol=1e-7)
    assert res.linearity_test.pvalue == np.mean(np.array(draws) > res.linearity_test.statistic)


def test_row_order_and_entity_labels_do_not_change_the_fit():
    df = _messy(N=80, seed=21)
    kw = dict(entity="id", time="year", threshold_var="q", n_boot=49, seed=7, grid=40)
    a = fp.dynamic_threshold("y ~ x", df, **kw)
    b = fp.dynamic_threshold("y ~ x", df.sample(frac=1, random_state=99), **kw)
    assert a.threshold == b.threshold
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-9)
    assert a.linearity_test.pvalue == b.linearity_test.pvalue
    # string ids in another order: same estimates (the bootstrap draws attach to entities in
    # label order, so only the estimates are compared)
    c = fp.dynamic_threshold("y ~ x", df.assign(id="firm-" + (1000 - df.id).astype(str)), **kw)
    assert c.threshold == a.threshold
    np.testing.assert_allclose(c.params, a.params, rtol=1e-10)


def test_recovers_the_parameters_on_a_large_panel():
    df = simulate(3000, 8, seed=2, shift=2.0, upper=(0.2, -0.5))
    res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", grid=200, n_boot=99,
                               seed=1)
    truth = {"L1.y": 0.6, "x": 1.0, "shift:const": 2.0, "shift:L1.y": -0.4, "shift:x": -1.5, "threshold": 0.0}
    for name, value in truth.items():
        assert abs(res.params[name] - value) < 4 * res.bse[name] + 0.05, name
    assert res.linearity_test.pvalue < 0.05
    reg = res.regimes
    assert reg.loc["x", "upper"] == pytest.approx(res.params["x"] + res.params["shift:x"])
    text = res.summary()
    assert "Linearity test" in text and "threshold" in text and str(res.n_entities) in text


def test_kink_model_recovers_a_continuous_threshold():
    df = simulate(2000, 8, seed=6, kink=True, shift=1.0, gamma=0.3)
    res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", kink=True,
                               grid=120, n_boot=0)
    assert list(res.params.index) == ["L1.y", "x", "kink:(q-threshold)+", "threshold"]
    assert abs(res.threshold - 0.3) < 4 * res.threshold_se + 0.05
    assert abs(res.params["kink:(q-threshold)+"] - 1.0) < 4 * res.bse["kink:(q-threshold)+"] + 0.05


def test_missing_values_are_dropped_and_counted():
    df = _messy(N=60, seed=30)
    df.loc[df.index[:5], "x"] = np.nan
    df.loc[df.index[5:8], "id"] = np.nan
    res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", n_boot=0, grid=20)
    assert res.n_dropped == 8
    assert "Rows dropped for missing values: 8" in res.summary()
    clean = df.iloc[8:]
    res2 = fp.dynamic_threshold("y ~ x", clean, entity="id", time="year", threshold_var="q", n_boot=0, grid=20)
    np.testing.assert_allclose(res.params, res2.params, rtol=1e-12)


def test_bad_input_names_the_argument():
    df = _messy(N=30, seed=40)
    kw = dict(entity="id", time="year", threshold_var="q", n_boot=0, grid=10)
    with pytest.raises(ValueError, match="threshold_var='nope'"):
        fp.dynamic_threshold("y ~ x", df, **{**kw, "threshold_var": "nope"})
    with pytest.raises(ValueError, match="entity= and time="):
        fp.dynamic_threshold("y ~ x | id", df, **kw)
    with pytest.raises(ValueError, match="endog='z'"):
        fp.dynamic_threshold("y ~ x", df, endog=["z"], **kw)
    with pytest.raises(ValueError, match="duplicate"):
        fp.dynamic_threshold("y ~ x", pd.concat([df, df.iloc[:3]]), **kw)
    with pytest.raises(ValueError, match="lags=-1"):
        fp.dynamic_threshold("y ~ x", df, lags=-1, **kw)
    with pytest.raises(ValueError, match="n_boot"):
        fp.dynamic_threshold("y ~ x", df, **{**kw, "n_boot": -5})
    with pytest.raises(ValueError, match="transform="):
        fp.dynamic_threshold("y ~ x", df, transform="within", **kw)
    with pytest.raises(ValueError, match="max_lag=1"):
        fp.dynamic_threshold("y ~ x", df, max_lag=1, **kw)
    with pytest.raises(ValueError, match="not identified"):
        fp.dynamic_threshold("y ~ x", df, collapse=True, max_lag=2, **kw)
    with pytest.raises(TypeError, match="DataFrame"):
        fp.dynamic_threshold("y ~ x", df.to_dict(), **kw)
    with pytest.raises(ValueError, match="no rows"):
        fp.dynamic_threshold("y ~ x", df.iloc[:0], **kw)


def test_polars_frames_are_accepted_and_lazy_frames_refused():
    pl = pytest.importorskip("polars")
    df = _messy(N=60, seed=41)
    kw = dict(entity="id", time="year", threshold_var="q", n_boot=0, grid=10, collapse=True)
    a = fp.dynamic_threshold("y ~ x", df, **kw)
    b = fp.dynamic_threshold("y ~ x", pl.from_pandas(df), **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)
    with pytest.raises(TypeError, match=r"\.collect\(\)"):
        fp.dynamic_threshold("y ~ x", pl.from_pandas(df).lazy(), **kw)
    with pytest.raises(TypeError, match=r"\.collect\(\)"):
        fp.threshold("y ~ x | id", pl.from_pandas(df).lazy(), threshold_var="q", regime_vars="x")


def test_many_instruments_warn_and_still_fit():
    df = simulate(25, 12, seed=50)
    with pytest.warns(InstrumentWarning):
        res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", n_boot=0, grid=10)
    assert np.isfinite(res.params).all()


def test_data_not_modified():
    df = _messy(N=30, seed=60)
    before = df.copy()
    fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", n_boot=5, grid=10, seed=0,
                         collapse=True)
    pd.testing.assert_frame_equal(df, before)
