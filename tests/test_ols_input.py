"""Input handling of feols / PanelOLS: bad input, NaN rows, polars, split=, renderings, etable."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.ols import CollinearityWarning
from _ols_data import assert_close, panel

DF = panel(seed=2)


def _numpy_within_ols(df, xs):
    """Plain NumPy reference: OLS on explicit entity and year dummies."""
    D = np.column_stack([df[x].to_numpy() for x in xs] + [pd.get_dummies(df.entity, dtype=float).to_numpy(),
                        pd.get_dummies(df.year, drop_first=True, dtype=float).to_numpy()])
    return np.linalg.lstsq(D, df.y.to_numpy(), rcond=None)[0][: len(xs)]


def test_missing_column_lists_close_matches():
    with pytest.raises(ValueError, match=r"'x11'.*did you mean 'x1'"):
        fastpanel.feols("y ~ x11 + x2 | entity", DF)
    with pytest.raises(ValueError, match="entty"):
        fastpanel.feols("y ~ x1 | entty", DF)
    with pytest.raises(ValueError, match="vcov names column 'regoin'"):
        fastpanel.feols("y ~ x1 | entity", DF, vcov={"CRV1": "regoin"})


def test_constant_dependent_variable():
    df = DF.assign(y=3.0)
    with pytest.raises(ValueError, match="constant"):
        fastpanel.feols("y ~ x1 | entity", df)


def test_no_residual_degrees_of_freedom():
    df = DF.iloc[:6].assign(entity=[0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        fastpanel.feols("y ~ x1 + x2 + x3 | entity", df)


def test_one_cluster_only():
    with pytest.raises(ValueError, match="single cluster"):
        fastpanel.feols("y ~ x1 | entity", DF.assign(g=1), vcov={"CRV1": "g"})


def test_text_regressor_must_be_declared_categorical():
    df = DF.assign(kind=np.where(DF.x1 > 0, "a", "b"))
    with pytest.raises(TypeError, match=r"C\(kind\)"):
        fastpanel.feols("y ~ x1 + kind | entity", df)
    res = fastpanel.feols("y ~ x1 + C(kind) | entity", df)
    assert len(res.params) == 2


def test_nan_rows_deleted_and_counted():
    df = DF.copy()
    df.loc[[3, 10, 11], "x1"] = np.nan
    df.loc[20, "y"] = np.nan
    res = fastpanel.feols("y ~ x1 + x2 | entity + year", df)
    assert res.n_dropped == 4
    assert re.search(r"NaN rows dropped\s+4\n", res.summary())
    clean = df.dropna(subset=["x1", "y"])
    ref = fastpanel.feols("y ~ x1 + x2 | entity + year", clean)
    assert res.nobs == ref.nobs
    assert_close(res.params, ref.params)
    assert df.x1.isna().sum() == 3  # user data untouched


def test_inf_is_an_error():
    df = DF.assign(x1=DF.x1.where(DF.index != 5, np.inf))
    with pytest.raises(ValueError, match="infinite values in x1"):
        fastpanel.feols("y ~ x1 | entity", df)
    with pytest.raises(ValueError, match="infinite"):
        fastpanel.PanelOLS(df.y, df[["x1"]], df.entity).fit()


def test_collinear_and_absorbed_regressors_dropped_with_warning():
    df = DF.assign(x1b=2 * DF.x1, ent_const=DF.entity * 1.5)
    with pytest.warns(CollinearityWarning, match="x1b, ent_const"):
        res = fastpanel.feols("y ~ x1 + x1b + ent_const + x2 | entity", df)
    assert list(res.params.index) == ["x1", "x2"]
    assert_close(res.params, fastpanel.feols("y ~ x1 + x2 | entity", df).params)


def test_params_match_numpy_dummy_reference():
    res = fastpanel.feols("y ~ x1 + x2 | entity + year", DF)
    assert_close(res.params.to_numpy(), _numpy_within_ols(DF, ["x1", "x2"]))


def test_panelols_equals_feols():
    res_a = fastpanel.PanelOLS(DF.y, DF[["x1", "x2"]], DF.entity, DF.year, time_effects=True).fit(vcov={"CRV1": "entity"})
    res_f = fastpanel.feols("y ~ x1 + x2 | entity + year", DF, vcov={"CRV1": "entity"})
    assert_close(res_a.params, res_f.params, rtol=1e-12)
    assert_close(res_a.bse, res_f.bse, rtol=1e-12)


def test_polars_input():
    pl = pytest.importorskip("polars")
    res_pl = fastpanel.feols("y ~ x1 + x2 | entity + year", pl.from_pandas(DF), vcov={"CRV1": "entity"})
    res_pd = fastpanel.feols("y ~ x1 + x2 | entity + year", DF, vcov={"CRV1": "entity"})
    assert_close(res_pl.bse, res_pd.bse, rtol=1e-12)


def test_split_fits_one_model_per_value():
    out = fastpanel.feols("y ~ x1 + x2 + x1:x2", DF, vcov="HC1", split="year")
    assert sorted(out) == sorted(DF.year.unique())
    for year, res in out.items():
        ref = fastpanel.feols("y ~ x1 + x2 + x1:x2", DF[DF.year == year], vcov="HC1")
        assert_close(res.params, ref.params, rtol=1e-12)
    out_by = fastpanel.feols("y ~ x1", DF, by="year")
    assert len(out_by) == len(out)


def test_singletons_option():
    df = pd.concat([DF, DF.iloc[[0]].assign(entity=1000)], ignore_index=True)
    res = fastpanel.feols("y ~ x1 | entity", df)
    assert res.n_singletons == 1
    kept = fastpanel.feols("y ~ x1 | entity", df, drop_singletons=False)
    assert kept.n_singletons == 0 and kept.nobs == res.nobs + 1
    assert_close(kept.params, res.params)


def test_hc2_twoway_raises():
    with pytest.raises(ValueError, match="HC2/HC3"):
        fastpanel.feols("y ~ x1 | entity + year", DF, vcov="HC2")


def test_bad_vcov_and_ssc():
    with pytest.raises(ValueError, match="vcov='HC9'"):
        fastpanel.feols("y ~ x1 | entity", DF, vcov="HC9")
    with pytest.raises(ValueError, match="ssc='stata'"):
        fastpanel.feols("y ~ x1 | entity", DF, ssc="stata")
    with pytest.raises(ValueError, match="time="):
        fastpanel.feols("y ~ x1 | entity", DF, vcov={"DK": 1})


def test_results_interface_and_renderings():
    res = fastpanel.feols("y ~ x1 + x2 | entity + year", DF, vcov={"CRV1": "entity"})
    ci = res.conf_int()
    assert list(ci.columns) == ["lower", "upper"]
    assert (ci["lower"] < res.params).all() and (res.params < ci["upper"]).all()
    assert res.cov_params().shape == (2, 2)
    assert_close(np.sqrt(np.diag(res.cov_params())), res.bse, rtol=1e-12)
    assert res.backend in ("cpp", "numba", "cuda")
    assert "x1" in res.summary() and "CRV1 by entity" in res.summary()
    assert res.to_markdown().startswith("| ")
    assert "\\begin{tabular}" in res.to_latex()
    assert "<table" in res._repr_html_()
    assert list(res.to_frame().index) == ["x1", "x2"]
    assert 0 < res.rsquared_within < res.rsquared < 1
    assert res.f_poolability["stat"] > 0


def test_etable():
    r1 = fastpanel.feols("y ~ x1 + x2 | entity + year", DF, vcov={"CRV1": "entity"})
    r2 = fastpanel.feols("y ~ x1 | entity", DF, vcov="hetero")
    text = fastpanel.etable([r1, r2])
    assert "entity FE" in text and "year FE" in text and f"{r1.nobs:,}" in text
    assert f"({r1.bse['x1']:.3f})" in text
    md = fastpanel.etable([r1, r2], type="md")
    assert md.startswith("| ")
    tex = fastpanel.etable([r1, r2], type="latex")
    assert "\\toprule" in tex and "$^{***}$" in tex
    with pytest.raises(ValueError, match="at least one"):
        fastpanel.etable([])
