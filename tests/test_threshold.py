"""Tests of the panel threshold engine against a naive per-grid-point OLS and Hansen (1999)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.kernels.threshold_reference import sequence_naive, ssr_curve_naive
from fastpanel.panel_threshold.grid import candidate_grid, exclusion_window
from fastpanel.panel_threshold.scan import ThresholdEngine, run_sequence
from fastpanel.panel_threshold.transform import PanelTransform

from _threshold_data import hansen_model, random_panel


CASES = [
    dict(drop_last=False, time_effects=False, unbalanced=False, pz=1, strict=False),
    dict(drop_last=False, time_effects=False, unbalanced=True, pz=2, strict=False),
    dict(drop_last=True, time_effects=False, unbalanced=False, pz=1, strict=True),
    dict(drop_last=True, time_effects=False, unbalanced=True, pz=2, strict=True),
    dict(drop_last=False, time_effects=True, unbalanced=False, pz=2, strict=False),
    dict(drop_last=False, time_effects=True, unbalanced=True, pz=1, strict=False),
    dict(drop_last=False, time_effects=True, unbalanced=True, pz=2, strict=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_curves_match_naive_ols(case):
    rng = np.random.default_rng(7)
    y, X, Z, q, ent, time = random_panel(rng, pz=case["pz"], unbalanced=case["unbalanced"])
    tr = PanelTransform(ent, time, drop_last=case["drop_last"], time_effects=case["time_effects"])
    B = np.column_stack([X, Z])
    cand = candidate_grid(q, 0.05, "exact")
    eng = ThresholdEngine(tr, B, Z, q, cand, strict=case["strict"], backend="numba")
    yt = tr.apply(y)
    U, ee = eng.residual_u(yt)
    for fixed in ([], [cand[3]], [cand[3], cand[-4]]):
        idx = np.array([[int(np.searchsorted(cand, f)) for f in fixed]], dtype=np.int64)
        S, _ = eng.scan(U, ee, idx.reshape(1, -1))
        naive = ssr_curve_naive(tr.apply, yt, B, Z, q, cand, fixed, strict=case["strict"])
        np.testing.assert_allclose(S[0], naive, rtol=1e-10, atol=1e-10 * naive.max())
    windows = (0, 2, 2)
    seq = run_sequence(eng, U, ee, 3, windows)
    ref = sequence_naive(tr.apply, yt, B, Z, q, cand, 3, windows, strict=case["strict"])
    for stage, (i, s) in ref.items():
        assert seq.idx[stage][0] == i
        assert seq.ssr[stage][0] == pytest.approx(s, rel=1e-10)


def test_bootstrap_replicates_match_naive():
    """Replicate F statistics equal the naive sequential estimation on the same draws."""
    rng = np.random.default_rng(3)
    y, X, Z, q, ent, time = random_panel(rng, N=10, T=5)
    m = fastpanel.ThresholdPanel(y, X, Z, q, ent, time)
    res = m.fit(2, n_boot=4, trim=0.05, grid="exact", seed=11, backend="numba", progress=False)
    tr = PanelTransform(m.entity_codes, m.time_codes, drop_last=False, time_effects=False)
    B = np.column_stack([m.X, m.Z])
    cand = res.grid
    w = exclusion_window(0.05, "exact", cand.shape[0])
    yt = tr.apply(m.y)
    fitted, resid = m._fit_transformed(tr, yt, [], False)
    draws = np.random.default_rng(11).integers(0, 10, size=(4, 10))
    df = tr.n_out - tr.n_absorbed - B.shape[1] - Z.shape[1]
    for r in range(4):
        ystar = fitted + resid.reshape(10, -1)[draws[r]].ravel()
        ref = sequence_naive(tr.apply, ystar, B, m.Z, m.q, cand, 1, (0, w), strict=False)
        e0 = ystar - tr.apply(B) @ np.linalg.lstsq(tr.apply(B), ystar, rcond=None)[0]
        F = (e0 @ e0 - ref["1"][1]) / (ref["1"][1] / df)
        assert res.boot_F[0][r] == pytest.approx(F, rel=1e-9)


def test_same_seed_same_pvalues_and_wild():
    rng = np.random.default_rng(5)
    y, X, Z, q, ent, time = random_panel(rng, N=15, T=5, unbalanced=True, jump=1.0)
    m = fastpanel.ThresholdPanel(y, X, Z, q, ent, time)
    a = m.fit(1, n_boot=20, trim=0.05, bootstrap="wild", seed=2, backend="numba", progress=False)
    b = m.fit(1, n_boot=20, trim=0.05, bootstrap="wild", seed=2, backend="numba", progress=False)
    pd.testing.assert_frame_equal(a.tests, b.tests)
    for w in ("mammen", "webb"):
        r = m.fit(1, n_boot=10, trim=0.05, bootstrap="wild", weights=w, seed=2, backend="numba", progress=False)
        assert r.tests.loc[1, "n_boot"] == 10


# -- bad input ------------------------------------------------------------------------------------
def _small():
    rng = np.random.default_rng(1)
    return random_panel(rng, N=10, T=5)


def test_bad_input_messages():
    y, X, Z, q, ent, time = _small()
    qn = q.copy()
    qn[3] = np.nan
    with pytest.raises(ValueError, match="threshold_var"):
        fastpanel.ThresholdPanel(y, X, Z, qn, ent, time)
    with pytest.raises(ValueError, match="also in X"):
        fastpanel.ThresholdPanel(y, np.column_stack([X, Z]), Z, q, ent, time)
    m = fastpanel.ThresholdPanel(y, X, Z, np.round(q), ent, time)
    with pytest.raises(ValueError, match="distinct values"):
        m.fit(1, n_boot=0, backend="numba")
    m = fastpanel.ThresholdPanel(y, X, Z, q, ent, time)
    with pytest.raises(ValueError, match="n_thresholds"):
        m.fit(4, backend="numba")
    keep = np.ones(len(y), bool)
    keep[0] = False
    mu = fastpanel.ThresholdPanel(y[keep], X[keep], Z[keep], q[keep], ent[keep], time[keep])
    with pytest.raises(ValueError, match="wild"):
        mu.fit(1, n_boot=5, bootstrap="residual", backend="numba")
    with pytest.raises(ValueError, match="trim"):
        m.fit(1, n_boot=0, trim=0.7, backend="numba")


def test_formula_api_and_results():
    y, X, Z, q, ent, time = _small()
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "z": Z[:, 0], "q": q, "firm": ent, "year": time})
    res = fastpanel.threshold("y ~ x1 + x2 | firm", df, threshold_var="q", regime_vars="z", time="year",
                              n_boot=5, trim=0.05, seed=0, backend="numba", progress=False)
    arr = fastpanel.ThresholdPanel(y, X, Z, q, ent, time).fit(1, n_boot=5, trim=0.05, seed=0, backend="numba")
    np.testing.assert_allclose(res.params.to_numpy(), arr.params.to_numpy())
    assert list(res.params.index[:2]) == ["x1", "x2"]
    g, lr = res.lr_curve(1)
    assert lr.min() == 0.0 and g.shape == lr.shape
    assert res.ci[0][0] <= res.thresholds[0] <= res.ci[0][1]
    shares = res.regime_shares()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert "Threshold tests" in res.summary()
    # params of the final model equal a direct within regression (statsmodels)
    import statsmodels.api as sm

    reg = (q <= res.thresholds[0])
    design = np.column_stack([X, Z[:, 0] * reg, Z[:, 0] * ~reg])
    dm = lambda a: a - pd.DataFrame(a).groupby(ent).transform("mean").to_numpy()
    ols = sm.OLS(dm(y.reshape(-1, 1)).ravel(), dm(design)).fit()
    np.testing.assert_allclose(res.params.to_numpy(), ols.params, rtol=1e-8)
    with pytest.raises(ValueError, match="not in data"):
        fastpanel.threshold("y ~ x1 | firm", df, threshold_var="nope", regime_vars="z")
    import matplotlib

    matplotlib.use("Agg")
    ax = res.plot_lr(1)
    assert ax.get_ylabel() == "likelihood ratio"


# -- Hansen (1999) ---------------------------------------------------------------------------------
def _hansen_model():
    return hansen_model(x_names=["Q", "Q2", "Q3", "D", "QD"], z_names=["CF"], q_name="D")


def test_hansen1999_estimates():
    m = _hansen_model()
    r = m.fit(3, n_boot=0, trim=(0.01, 0.01, 0.05), backend="numba")
    assert r.grid.shape[0] == 393
    F = r.tests["F"].round(1).tolist()
    assert F == [32.6, 25.8, 4.2]
    r2 = m.fit(2, n_boot=0, trim=0.01, backend="numba")
    assert np.round(r2.thresholds, 4).tolist() == [0.0157, 0.5362]
    assert [tuple(np.round(c, 4)) for c in r2.ci] == [(0.0139, 0.0181), (0.5305, 0.5629)]
    table5 = {  # coefficient, OLS s.e., White s.e. (Table 5, printed digits)
        "Q": (0.010, 0.001, 0.002), "Q2": (-0.198, 0.026, 0.064), "Q3": (1.047, 0.199, 0.448),
        "D": (-0.016, 0.005, 0.009), "QD": (0.001, 0.001, 0.002),
    }
    cf = [(0.063, 0.006, 0.014), (0.098, 0.006, 0.010), (0.039, 0.012, 0.031)]
    got = {k: (r2.params[k], r2.bse[k], r2.bse_robust[k]) for k in table5}
    for k, v in table5.items():
        assert np.round(got[k], 3).tolist() == list(v), k
    for j, v in enumerate(cf):
        name = r2.params.index[5 + j]
        assert np.round([r2.params[name], r2.bse[name], r2.bse_robust[name]], 3).tolist() == list(v)


def test_hansen1999_bootstrap_small():
    m = _hansen_model()
    r = m.fit(3, n_boot=(60, 60, 60), trim=(0.01, 0.01, 0.05), seed=42, backend="numba", progress=False)
    p = r.tests["pvalue"]
    assert p[1] < 0.05 and p[2] < 0.10 and p[3] > 0.2


@pytest.mark.slow
def test_hansen1999_bootstrap_300():
    m = _hansen_model()
    r = m.fit(3, n_boot=300, trim=(0.01, 0.01, 0.05), seed=1999, backend="numba", progress=False)
    p = r.tests["pvalue"]
    assert p[1] < 0.05 and p[2] < 0.05 and p[3] > 0.10
