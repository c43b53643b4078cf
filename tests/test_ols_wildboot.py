"""Wild cluster bootstrap of feols / PanelOLS (fastpanel.ols.wildboot).

Oracle: a plain NumPy per-draw implementation written here. The fixed effects are explicit
dummy columns; every draw builds y* = Z theta_0 + u_0 * v_g, re-estimates the whole model by
least squares (pinv), forms the clustered variance from the full design and the t (or Wald)
statistic. Statistics are compared scale-free (each draw's statistic over the data's), so the
small-sample factor common to every term drops out; multiway terms carry their own
G/(G-1) under the statsmodels preset, which the oracle applies.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.kernels import wildboot_reference as ref

# --------------------------------------------------------------------------- data and oracle


def _panel(seed: int, n: int = 240, G: int = 8, T: int = 5, firms_per_cluster: int = 3, shuffle: bool = True):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, n)
    firm = g * 10 + rng.integers(0, firms_per_cluster, n)
    df = pd.DataFrame({"g": g, "firm": firm, "year": rng.integers(0, T, n), "h": rng.integers(0, 4, n)})
    eta = rng.normal(size=G)[g]
    df["x1"] = rng.normal(size=n) + 0.5 * eta
    df["x2"] = rng.normal(size=n)
    df["y"] = 0.2 * df.x1 - 0.3 * df.x2 + eta + rng.normal(size=n)
    df["w"] = rng.uniform(0.5, 2.0, n)
    if shuffle:
        df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return df


def _design(df, xnames, fes, weights=None):
    X = df[xnames].to_numpy(float)
    dummies = [pd.get_dummies(df[f].astype(str)).to_numpy(float) for f in fes]
    Z = np.column_stack([X, *dummies])
    y = df["y"].to_numpy(float)
    if weights is not None:
        sw = np.sqrt(df[weights].to_numpy(float))
        Z, y = Z * sw[:, None], y * sw
    return Z, y


def _codes(col):
    return np.unique(np.asarray(col), return_inverse=True)[1].ravel()


def _terms(df, clusters, preset):
    out = []
    for size in range(1, len(clusters) + 1):
        for sub in itertools.combinations(clusters, size):
            codes = _codes(df[list(sub)].astype(str).agg("|".join, axis=1)) if size > 1 else _codes(df[sub[0]])
            G = codes.max() + 1
            c = G / (G - 1) if preset == "statsmodels" else 1.0
            out.append((codes, (1.0 if size % 2 else -1.0) * c))
    return out


def _stat(Z, Minv, theta, u, R, r, terms):
    k = R.shape[1]
    Rf = np.zeros((R.shape[0], Z.shape[1]))
    Rf[:, :k] = R
    V = np.zeros((Z.shape[1], Z.shape[1]))
    for codes, c in terms:
        S = np.zeros((codes.max() + 1, Z.shape[1]))
        np.add.at(S, codes, Z * u[:, None])
        V += c * Minv @ S.T @ S @ Minv
    num = Rf @ theta - r
    RVR = Rf @ V @ Rf.T
    if R.shape[0] == 1:
        return num[0] / np.sqrt(RVR[0, 0]) if RVR[0, 0] > 0 else np.nan
    return num @ np.linalg.solve(RVR, num)


def oracle(df, xnames, fes, R, r, clusters, boot_codes, Vw, impose_null=True, preset="fixest", weights=None):
    """Per-draw statistics (and the data's) by explicit re-estimation."""
    Z, y = _design(df, xnames, fes, weights)
    Minv = np.linalg.pinv(Z.T @ Z)
    pZ = Minv @ Z.T
    theta = pZ @ y
    u = y - Z @ theta
    terms = _terms(df, clusters, preset)
    t0 = _stat(Z, Minv, theta, u, R, r, terms)
    k = R.shape[1]
    Rf = np.zeros((R.shape[0], Z.shape[1]))
    Rf[:, :k] = R
    if impose_null:
        th0 = theta - Minv @ Rf.T @ np.linalg.solve(Rf @ Minv @ Rf.T, Rf @ theta - r)
    else:
        th0 = theta
    u0 = y - Z @ th0
    r_boot = r if impose_null else Rf @ theta
    stats = np.empty(Vw.shape[0])
    for b in range(Vw.shape[0]):
        ys = Z @ th0 + u0 * Vw[b, boot_codes]
        th = pZ @ ys
        stats[b] = _stat(Z, Minv, th, ys - Z @ th, R, r_boot, terms)
    return t0, stats


def _unit(names, param):
    R = np.zeros((1, len(names)))
    R[0, names.index(param)] = 1.0
    return R


def _ratio_close(ours, ours0, theirs, theirs0, tol=1e-10):
    # the 1e-10; the largest difference measured over this file's fixed data is 5.7e-13
    a, b = ours / ours0, theirs / theirs0
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- against the oracle

@pytest.mark.parametrize("fe", ["firm", "firm + year"])
@pytest.mark.parametrize("impose_null", [True, False])
def test_full_enumeration_equals_per_draw_refit(fe, impose_null):
    df = _panel(1)
    res = fastpanel.feols(f"y ~ x1 + x2 | {fe}", df, vcov={"CRV1": "g"})
    wb = res.wildboottest("x1", B=9999, impose_null=impose_null, return_draws=True)
    assert wb.full_enumeration and wb.B == 2 ** 8 and wb.seed is None
    # the t statistic of the data is the fit's own
    assert wb.statistic == pytest.approx(res.tvalues["x1"], rel=1e-12)
    codes = np.searchsorted(wb.boot_labels, df["g"].to_numpy())
    t0, draws = oracle(df, ["x1", "x2"], fe.split(" + "), _unit(["x1", "x2"], "x1"), np.zeros(1), ["g"], codes,
                       wb.weights_matrix(), impose_null)
    _ratio_close(wb.draws, wb.statistic, draws, t0)
    # identical p-value under the same rule (ties with the data's statistic do not count)
    tol = 1e-9 * max(1.0, abs(wb.statistic))
    expected = np.mean(np.abs(draws / t0 * wb.statistic) > abs(wb.statistic) + tol)
    assert wb.pvalue == expected


@pytest.mark.parametrize("weights", ["rademacher", "mammen", "webb", "norm"])
@pytest.mark.parametrize(("fe", "levels"), [("firm + year", True), ("firm + year", False), ("year", True),
                                            ("firm + year + h", False)])
def test_random_draws_equal_per_draw_refit_weighted_and_not(weights, fe, levels, monkeypatch):
    """Effects not nested in the clusters (year, h): the exact refit through the effects' level
    space (one or two ways) or through the within transform of u0 * 1_g (any number of ways)."""
    from fastpanel.ols import wildboot

    monkeypatch.setattr(wildboot, "_USE_LEVELS", levels)
    df = _panel(2, G=14)
    for w in (None, "w"):
        res = fastpanel.feols(f"y ~ x1 + x2 | {fe}", df, vcov={"CRV1": "g"}, weights=w)
        wb = res.wildboottest("x2", B=300, weights=weights, seed=7, return_draws=True, r=-0.1)
        assert not wb.full_enumeration and wb.B == 300
        codes = np.searchsorted(wb.boot_labels, df["g"].to_numpy())
        t0, draws = oracle(df, ["x1", "x2"], fe.split(" + "), _unit(["x1", "x2"], "x2"), np.array([-0.1]), ["g"],
                           codes, wb.weights_matrix(), weights=w)
        _ratio_close(wb.draws, wb.statistic, draws, t0)


@pytest.mark.parametrize("preset", ["fixest", "statsmodels"])
def test_two_way_clustering_equals_per_draw_refit(preset):
    df = _panel(3, n=400, G=12, T=9)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g + year"}, ssc=preset)
    # with few clusters per dimension the inclusion-exclusion variance of some draws is not
    # positive: those draws are counted, reported and left out (the oracle finds the same ones)
    with pytest.warns(RuntimeWarning, match="non-positive variance"):
        wb = res.wildboottest("x1", B=199, seed=3, return_draws=True, bootstrap_cluster="intersection")
    assert wb.n_undefined == np.isnan(wb.draws).sum() > 0
    assert wb.bootstrap_cluster.startswith("intersection")
    labels = list(wb.boot_labels)
    pairs = list(zip(df["g"], df["year"]))
    codes = np.array([labels.index(p) for p in pairs])
    t0, draws = oracle(df, ["x1", "x2"], ["firm"], _unit(["x1", "x2"], "x1"), np.zeros(1), ["g", "year"], codes,
                       wb.weights_matrix(), preset=preset)
    _ratio_close(wb.draws, wb.statistic, draws, t0)
    # bootstrapping by one dimension only
    with pytest.warns(RuntimeWarning, match="non-positive variance"):
        wb2 = res.wildboottest("x1", B=199, seed=3, return_draws=True, bootstrap_cluster="min")
    assert wb2.bootstrap_cluster == "year" and wb2.n_boot_clusters == 9
    codes2 = np.searchsorted(wb2.boot_labels, df["year"].to_numpy())
    t0, draws2 = oracle(df, ["x1", "x2"], ["firm"], _unit(["x1", "x2"], "x1"), np.zeros(1), ["g", "year"], codes2,
                        wb2.weights_matrix(), preset=preset)
    _ratio_close(wb2.draws, wb2.statistic, draws2, t0)


def test_joint_wald_test_equals_per_draw_refit():
    df = _panel(4, G=9)
    res = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "g"})
    R = np.array([[1.0, 0.0], [1.0, 1.0]])
    r = np.array([0.1, -0.2])
    wb = res.wildboottest(R=R, r=r, B=2 ** 9, return_draws=True)
    assert wb.stat_type == "F" and wb.full_enumeration
    codes = np.searchsorted(wb.boot_labels, df["g"].to_numpy())
    W0, draws = oracle(df, ["x1", "x2"], ["firm", "year"], R, r, ["g"], codes, wb.weights_matrix())
    _ratio_close(wb.draws, wb.statistic * 2, draws, W0)
    # the Wald statistic of the data is the classical one with the fit's covariance
    b = res.params.to_numpy()
    V = res.cov_params().to_numpy()
    W = (R @ b - r) @ np.linalg.solve(R @ V @ R.T, R @ b - r)
    assert wb.statistic == pytest.approx(W / 2, rel=1e-10) and wb.wald == pytest.approx(W, rel=1e-10)


@pytest.mark.parametrize("preset", ["fixest", "statsmodels", "linearmodels"])
def test_three_way_clustering_statistic_is_the_fits(preset):
    """With 3 cluster variables the data's t uses the fit's inclusion-exclusion variance (the
    eigenvalue fix off, as the bootstrap draws cannot be fixed one by one)."""
    df = _panel(0, n=2000, G=25, T=8)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g + year + h", "eigen_fix": False}, ssc=preset)
    with pytest.warns(RuntimeWarning, match="non-positive variance"):
        wb = res.wildboottest("x1", B=199, seed=1)
    assert wb.statistic == pytest.approx(res.tvalues["x1"], rel=1e-12)
    assert wb.bootstrap_cluster.startswith("intersection") and wb.cluster == ("g", "year", "h")


def test_cr2_fit_lends_its_cluster():
    df = _panel(14, G=12)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CR2": "g"})
    wb = res.wildboottest("x1", B=999, seed=1)
    ref = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"}).wildboottest("x1", B=999, seed=1)
    assert wb.cluster == ("g",) and wb.pvalue == ref.pvalue


def test_string_restrictions_match_matrix_form():
    pytest.importorskip("fastpanel.ols.wald")
    df = _panel(5, G=12)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"})
    a = res.wildboottest(R="x1 - x2 = 0.5", B=999, seed=1)
    b = res.wildboottest(R=np.array([1.0, -1.0]), r=0.5, B=999, seed=1)
    assert a.pvalue == b.pvalue and a.statistic == pytest.approx(b.statistic, rel=1e-12)


# --------------------------------------------------------------------------- against wildboottest

def _wbt(X, y, cluster, R, B, btype, impose_null, V):
    wbt = pytest.importorskip("wildboottest.wildboottest")
    boot = wbt.WildboottestCL(X=X, Y=y, cluster=cluster, R=R, B=B, seed=1, parallel=False)
    boot.get_scores(bootstrap_type=btype, impose_null=impose_null)
    boot.get_weights(weights_type="rademacher")
    boot.v = V.T.copy()  # our keyed draws, in the peer's layout (clusters x draws)
    boot.B = V.shape[0]
    boot.get_numer()
    boot.get_denom()
    boot.get_tboot()
    boot.get_vcov()
    boot.get_tstat()
    boot.get_pvalue(pval_type="two-tailed")
    return float(np.ravel(boot.t_stat)[0]), np.asarray(boot.t_boot, dtype=float).ravel(), float(boot.pvalue)


@pytest.mark.parametrize("btype", ["11", "31"])
@pytest.mark.parametrize("impose_null", [True, False])
def test_equals_wildboottest_on_the_same_draws(btype, impose_null):
    """wildboottest (as pyfixest calls it: fixed effects as dummy columns) on our weights.

    Its CRV3 types ('13', '33') fail under NumPy 2 (an array assigned to a scalar slot), so
    those are checked against the jackknife oracle below. Webb weights: no draw reproduces
    the data's statistic exactly, so the peer's strict comparison has no rounding ties.
    """
    df = _panel(6, n=200, G=10, firms_per_cluster=2)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"})
    wb = res.wildboottest("x1", B=499, seed=11, bootstrap_type=btype, impose_null=impose_null, return_draws=True,
                          weights="webb")
    Z, y = _design(df, ["x1", "x2"], ["firm"])
    R = np.zeros(Z.shape[1])
    R[0] = 1.0
    # the peer's clusters are np.unique of the labels: the same order as ours
    t0, tb, p = _wbt(Z, y, df["g"].to_numpy(), R, 499, btype, impose_null, wb.weights_matrix())
    _ratio_close(wb.draws, wb.statistic, tb, t0)
    # same p-value: the peer's strict |t*| > |t| with no draw near a tie here
    assert abs(np.abs(wb.draws) - abs(wb.statistic)).min() > 1e-6
    assert wb.pvalue == p


def _loo(Z, y, keep, Rf=None, r=None):
    Zk, yk = Z[keep], y[keep]
    Mi = np.linalg.pinv(Zk.T @ Zk)
    th = Mi @ Zk.T @ yk
    if Rf is not None:
        th = th - Mi @ Rf.T @ np.linalg.solve(Rf @ Mi @ Rf.T, Rf @ th - r)
    return th


@pytest.mark.parametrize("btype", ["13", "31", "33"])
@pytest.mark.parametrize("impose_null", [True, False])
def test_jackknife_types_equal_per_draw_refit(btype, impose_null):
    """Types with a 3 (MacKinnon, Nielsen and Webb 2023): jackknife DGP and/or CRV3 variance,
    every leave-one-cluster-out fit done explicitly on the dummy design."""
    df = _panel(13, n=160, G=7, firms_per_cluster=2)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"})
    wb = res.wildboottest("x2", B=2 ** 7, bootstrap_type=btype, impose_null=impose_null, return_draws=True)
    Z, y = _design(df, ["x1", "x2"], ["firm"])
    Rf = np.zeros((1, Z.shape[1]))
    Rf[0, 1] = 1.0
    r = np.zeros(1)
    codes = np.searchsorted(wb.boot_labels, df["g"].to_numpy())
    G = 7
    theta = np.linalg.pinv(Z) @ y
    if btype[0] == "1":
        th0 = _loo(Z, y, np.ones(len(y), bool), Rf if impose_null else None, r)
        u0 = y - Z @ th0
    else:
        u0 = np.empty_like(y)
        for g in range(G):
            thg = _loo(Z, y, codes != g, Rf if impose_null else None, r)
            u0[codes == g] = y[codes == g] - Z[codes == g] @ thg
        th0 = _loo(Z, y, np.ones(len(y), bool), Rf if impose_null else None, r)
    r_boot = r if impose_null else Rf @ theta

    def stat(yv, rr):
        th = np.linalg.pinv(Z) @ yv
        if btype[1] == "3":
            d = np.array([(Rf @ (_loo(Z, yv, codes != g) - th))[0] for g in range(G)])
            var = d @ d
        else:
            Minv = np.linalg.pinv(Z.T @ Z)
            u = yv - Z @ th
            S = np.zeros((G, Z.shape[1]))
            np.add.at(S, codes, Z * u[:, None])
            var = (Rf @ Minv @ S.T @ S @ Minv @ Rf.T)[0, 0]
        return (Rf @ th - rr)[0] / np.sqrt(var)

    t0 = stat(y, r)
    Vw = wb.weights_matrix()
    draws = np.array([stat(Z @ th0 + u0 * Vw[b, codes], r_boot) for b in range(Vw.shape[0])])
    _ratio_close(wb.draws, wb.statistic, draws, t0)


# --------------------------------------------------------------------------- invariances

def test_backends_agree_and_p_values_are_identical():
    df = _panel(7, n=400, G=25)
    res = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "g"})
    out = {}
    for be in ("cpp", "numba"):
        out[be] = res.wildboottest("x1", B=2000, seed=5, backend=be, return_draws=True)
    np.testing.assert_allclose(out["cpp"].draws, out["numba"].draws, rtol=1e-12, atol=1e-12)
    assert out["cpp"].pvalue == out["numba"].pvalue
    # and the NumPy oracle of the kernel, on the same matrices, through the same weights
    w = out["cpp"].weights_matrix()
    assert w.shape == (2000, 25)


def test_row_order_and_labels_do_not_change_the_draws():
    df = _panel(8, n=300, G=20, shuffle=False)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"})
    a = res.wildboottest("x1", B=999, seed=9, return_draws=True)
    df2 = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    res2 = fastpanel.feols("y ~ x1 + x2 | firm", df2, vcov={"CRV1": "g"})
    b = res2.wildboottest("x1", B=999, seed=9, return_draws=True)
    np.testing.assert_allclose(a.draws, b.draws, rtol=1e-9, atol=1e-12)
    assert a.pvalue == b.pvalue
    c = res.wildboottest("x1", B=999, seed=10)
    assert c.pvalue != a.pvalue or c.B == a.B  # another seed gives other draws (a smoke check of the seed)


def test_threads_do_not_change_the_draws():
    df = _panel(9, n=300, G=30)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"})
    prev = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        a = res.wildboottest("x1", B=1500, seed=2, return_draws=True)
        fastpanel.set_num_threads(2)
        b = res.wildboottest("x1", B=1500, seed=2, return_draws=True)
    finally:
        fastpanel.set_num_threads(prev)
    assert np.array_equal(a.draws, b.draws)


def test_weights_generator_is_the_thresholds_keyed_generator():
    from fastpanel.panel_threshold.bootstrap import wild_weights

    keys = np.arange(1, 11, dtype=np.uint64) * np.uint64(977)
    for name, kind in (("rademacher", 0), ("mammen", 1), ("webb", 2)):
        a = wild_weights(123, 4, 5, 50, keys, name)
        base = ref.mix64(ref.mix64(np.uint64(123)) ^ np.uint64(4))
        b = ref.draw_weights(ref.mix64(keys ^ base), kind, 5, 50)
        assert np.array_equal(a, b)
    v = ref.draw_weights(ref.mix64(keys), 3, 0, 20000)
    assert abs(v.mean()) < 0.02 and abs(v.var() - 1) < 0.03


# --------------------------------------------------------------------------- confidence interval

def test_confidence_interval_inverts_the_test():
    df = _panel(10, n=300, G=12)
    res = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov={"CRV1": "g"})
    wb = res.wildboottest("x1", B=999, seed=4, conf_int=True, full_enumeration=False)
    lo, hi = wb.conf_int
    assert lo < res.params["x1"] < hi
    se = res.bse["x1"]
    for bound, inside in ((lo, lo + 1e-6 * se), (hi, hi - 1e-6 * se)):
        outside = 2 * bound - inside
        assert res.wildboottest("x1", r=inside, B=999, seed=4, full_enumeration=False).pvalue > 0.05
        assert res.wildboottest("x1", r=outside, B=999, seed=4, full_enumeration=False).pvalue <= 0.05
    assert "CI by test inversion" in str(wb)


# --------------------------------------------------------------------------- bad input

def test_bad_input_is_refused_with_clear_errors():
    df = _panel(11, n=200, G=6)
    res = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "g"})
    with pytest.raises(ValueError, match="B=0"):
        res.wildboottest("x1", B=0)
    with pytest.raises(ValueError, match="not a coefficient"):
        res.wildboottest("x3")
    with pytest.raises(ValueError, match=r"shape \(q, 2\)"):
        res.wildboottest(R=np.ones((1, 3)))
    with pytest.raises(ValueError, match="r must have 2"):
        res.wildboottest(R=np.eye(2), r=[1.0])
    with pytest.raises(ValueError, match="linearly dependent"):
        res.wildboottest(R=np.array([[1.0, 0.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="weights='gauss'"):
        res.wildboottest("x1", weights="gauss")
    with pytest.raises(ValueError, match="bootstrap_type='12'"):
        res.wildboottest("x1", bootstrap_type="12")
    with pytest.raises(ValueError, match="nested in the bootstrap"):
        res.wildboottest("x1", bootstrap_type="31")  # year effects are not nested in g
    with pytest.raises(ValueError, match="not known to this fit"):
        res.wildboottest("x1", cluster="nope")
    iid = fastpanel.feols("y ~ x1 + x2 | firm", df)
    with pytest.raises(ValueError, match="not clustered"):
        iid.wildboottest("x1")
    # cluster given by name of a fixed effect of an iid fit works
    assert 0 <= iid.wildboottest("x1", cluster="firm", B=99, seed=1).pvalue <= 1
    with pytest.raises(ValueError, match="inverts a test of one restriction"):
        res.wildboottest(R=np.eye(2), conf_int=True)


def test_single_cluster_is_refused():
    df = _panel(12, n=100, G=4).assign(one=0)
    res = fastpanel.feols("y ~ x1 + x2 | one", df)
    with pytest.raises(ValueError, match="single cluster"):
        res.wildboottest("x1", cluster="one")


def test_nan_rows_text_ids_and_offsets_do_not_change_the_test():
    """NaN rows (dropped and counted), text cluster and firm ids, an offset of 1e8 on a regressor
    and on y: the same sample and, under full enumeration (seed-free), the same draws."""
    df = _panel(15, n=300, G=9)
    res = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "g"})
    a = res.wildboottest("x1", B=9999, return_draws=True)
    odd = df.assign(g=[f"prov-{v:02d}" for v in df.g], firm=[f"f{v}" for v in df.firm],
                    x1=df.x1 + 1e8, y=df.y + 1e8)
    nan_rows = odd.iloc[:5].assign(x2=np.nan)
    odd = pd.concat([odd.iloc[:150], nan_rows, odd.iloc[150:]], ignore_index=True)
    res2 = fastpanel.feols("y ~ x1 + x2 | firm + year", odd, vcov={"CRV1": "g"})
    assert res2.n_dropped == 5 and res2.nobs == res.nobs
    b = res2.wildboottest("x1", B=9999, return_draws=True)
    assert a.full_enumeration and b.full_enumeration
    # the offset costs digits in the transform (about eps * 1e8 / sd), not in the bootstrap
    np.testing.assert_allclose(b.draws, a.draws, rtol=1e-6, atol=1e-6)
    assert b.pvalue == a.pvalue
