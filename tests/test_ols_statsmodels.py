"""fastpanel against statsmodels OLS/WLS with explicit dummy columns (ssc="statsmodels")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from _ols_data import assert_close, panel

sm = pytest.importorskip("statsmodels.api")

DATA = {"balanced": panel(balanced=True), "unbalanced": panel(seed=1)}
MODELS = {
    "twoway": ("y ~ x1 + x2 | entity + year", ["x1", "x2"], ["entity", "year"]),
    "oneway": ("y ~ x1 + x2 | entity", ["x1", "x2"], ["entity"]),
    "interaction": ("y ~ x1 + x2 + x1:x2", ["x1", "x2", "x1:x2"], []),
}


def _dummy_design(df, xs, fes):
    X = pd.DataFrame({"Intercept": 1.0}, index=df.index)
    for x in xs:
        X[x] = df.x1 * df.x2 if x == "x1:x2" else df[x]
    for f in fes:
        X = X.join(pd.get_dummies(df[f], prefix=f, drop_first=True, dtype=float))
    return X


def _sm_fit(df, xs, fes, weights, cov_type, **kw):
    X = _dummy_design(df, xs, fes)
    model = sm.WLS(df.y, X, weights=df[weights]) if weights else sm.OLS(df.y, X)
    return model.fit(cov_type=cov_type, **kw)


SM_VCOV = {
    "iid": ("nonrobust", {}),
    "HC0": ("HC0", {}),
    "HC1": ("HC1", {}),
    "HC2": ("HC2", {}),
    "HC3": ("HC3", {}),
}


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("vcov", list(SM_VCOV))
@pytest.mark.parametrize("weights", [None, "w"])
def test_iid_and_hc(data, model, vcov, weights):
    fml, xs, fes = MODELS[model]
    df = DATA[data]
    if vcov in ("HC2", "HC3") and len(fes) > 1:
        with pytest.raises(ValueError, match="one fixed-effect dimension"):
            fastpanel.feols(fml, df, vcov=vcov, weights=weights, ssc="statsmodels")
        return
    ours = fastpanel.feols(fml, df, vcov=vcov, weights=weights, ssc="statsmodels")
    cov_type, kw = SM_VCOV[vcov]
    ref = _sm_fit(df, xs, fes, weights, cov_type, **kw)
    names = list(ours.params.index)
    assert_close(ours.params, ref.params[names])
    assert_close(ours.bse, ref.bse[names])
    assert ours.df_resid == ref.df_resid
    assert_close(ours.rsquared, ref.rsquared)
    assert_close(ours.rsquared_adj, ref.rsquared_adj)
    assert_close(ours.ssr, ref.ssr)
    if vcov == "iid":
        assert_close(ours.pvalues, ref.pvalues[names], rtol=1e-7)


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("clusters", [["entity"], ["region"], ["cl"], ["entity", "year"], ["region", "cl"]], ids=str)
@pytest.mark.parametrize("weights", [None, "w"])
def test_cluster(data, model, clusters, weights):
    fml, xs, fes = MODELS[model]
    df = DATA[data]
    ours = fastpanel.feols(fml, df, vcov={"CRV1": "+".join(clusters)}, weights=weights, ssc="statsmodels")
    groups = df[clusters[0]].to_numpy() if len(clusters) == 1 else df[clusters].to_numpy()
    ref = _sm_fit(df, xs, fes, weights, "cluster", cov_kwds={"groups": groups})
    names = list(ours.params.index)
    assert_close(ours.params, ref.params[names])
    # statsmodels' own bse takes the square root of every diagonal entry, dummies included, which
    # can be negative for two-way clustering; compare the slopes' block of cov_params
    assert_close(ours.bse, np.sqrt(np.diag(ref.cov_params().loc[names, names])))


@pytest.mark.parametrize("cluster", ["region", "cl"])
@pytest.mark.parametrize("weights", [None, "w"])
def test_crv3_cross_section(cluster, weights):
    df = DATA["unbalanced"]
    fml, xs, fes = MODELS["interaction"]
    ours = fastpanel.feols(fml, df, vcov={"CRV3": cluster}, weights=weights, ssc="statsmodels")
    ref = _sm_fit(df, xs, fes, weights, "cluster-crv3", cov_kwds={"groups": df[cluster].to_numpy()})
    assert_close(ours.bse, ref.bse[list(ours.params.index)])


def test_fvalue_cross_section():
    df = DATA["unbalanced"]
    ours = fastpanel.feols("y ~ x1 + x2 + x1:x2", df, ssc="statsmodels")
    ref = _sm_fit(df, ["x1", "x2", "x1:x2"], [], None, "nonrobust")
    assert_close(ours.fvalue, ref.fvalue)
    assert_close(ours.f_pvalue, ref.f_pvalue, rtol=1e-6)


def test_poolability_f_matches_nested_model_test():
    df = DATA["unbalanced"]
    ours = fastpanel.feols("y ~ x1 + x2 | entity + year", df, ssc="statsmodels")
    full = _sm_fit(df, ["x1", "x2"], ["entity", "year"], None, "nonrobust")
    pooled = _sm_fit(df, ["x1", "x2"], [], None, "nonrobust")
    f_ref, p_ref, df_ref = full.compare_f_test(pooled)
    assert_close(ours.f_poolability["stat"], f_ref)
    assert_close(ours.f_poolability["pvalue"], p_ref, rtol=1e-6)
    assert ours.f_poolability["df_num"] == df_ref


def test_grunfeld():
    grunfeld = sm.datasets.grunfeld.load_pandas().data
    ours = fastpanel.feols("invest ~ value + capital | firm + year", grunfeld, vcov={"CRV1": "firm"}, ssc="statsmodels")
    X = _dummy_design(grunfeld, ["value", "capital"], ["firm", "year"])
    ref = sm.OLS(grunfeld.invest, X).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(grunfeld.firm)[0]})
    assert_close(ours.params, ref.params[["value", "capital"]])
    assert_close(ours.bse, ref.bse[["value", "capital"]])
    assert ours.nobs == len(grunfeld) == 220
