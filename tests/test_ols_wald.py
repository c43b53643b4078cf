"""Wald and F tests of ``R b = r`` (fastpanel.ols.wald) against statsmodels, linearmodels and
pyfixest, on shuffled unbalanced panels and real data sets; the string and matrix forms; bad
input; a fit on Dask; the ``fastpanel fit --wald`` option.

Expected values come from the peers only: statsmodels ``OLS(...).fit(cov_type=...)`` on the
explicit dummy-variable design (``f_test`` / ``wald_test(use_f=False)``; ssc="statsmodels"),
linearmodels ``PanelOLS(...).wald_test`` (chi2; ssc="linearmodels") and pyfixest
``Feols.wald_test`` (ssc="fixest"; F only for ``R = I, r = 0``, as pyfixest 0.60 switches any
other hypothesis to chi2).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import fastpanel
from _ols_data import assert_close
from fastpanel.ols.wald import WaldTestResult, parse_restrictions

sm = pytest.importorskip("statsmodels.api")

RTOL = 1e-8


def weak_panel(seed: int, n_entities: int = 45, n_periods: int = 7) -> pd.DataFrame:
    """Unbalanced panel in shuffled row order whose slopes are small, so that the tested
    hypotheses have p-values far from 0 (a relative comparison of p then means something)."""
    rng = np.random.default_rng(seed)
    e = np.repeat(np.arange(n_entities), n_periods)
    t = np.tile(np.arange(n_periods), n_entities)
    keep = rng.random(e.size) < 0.8
    keep[t < 2] = True  # every entity keeps two periods: no singletons
    e, t = e[keep], t[keep]
    n = e.size
    a = rng.normal(size=n_entities)[e]
    g = rng.normal(size=n_periods)[t]
    df = pd.DataFrame({"entity": e * 7 + 3, "year": t + 1990})
    df["x1"] = rng.normal(size=n) + 0.5 * a
    df["x2"] = rng.normal(size=n) + 0.3 * g
    df["x3"] = rng.gamma(2.0, size=n) + 0.1
    df["y"] = 0.06 * df.x1 + 0.05 * df.x2 - 0.02 * df.x3 + a + g + rng.normal(size=n) * (1 + 0.3 * np.abs(df.x1))
    df["cl"] = rng.integers(0, 14, size=n)  # crossed with both effects
    df["region"] = (e // 4) * 11  # entities nested in regions
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


DATA = {"seed3": weak_panel(3), "seed8": weak_panel(8)}
XS = ["x1", "x2", "x3"]
HYPOTHESES = {  # string form -> (rows over XS, r)
    "x1 = x2, x3 = 0": ([[1, -1, 0], [0, 0, 1]], [0, 0]),
    "x1 - 2*x2 = 0.1": ([[1, -2, 0]], [0.1]),
    "x1 + x2 + x3": ([[1, 1, 1]], [0]),
}


def _dummy_design(df: pd.DataFrame, fes: list[str]) -> pd.DataFrame:
    X = pd.DataFrame({"Intercept": 1.0}, index=df.index)
    for x in XS:
        X[x] = df[x]
    for f in fes:
        X = X.join(pd.get_dummies(df[f], prefix=f, drop_first=True, dtype=float))
    return X


def _full_R(rows, X: pd.DataFrame) -> np.ndarray:
    """The restriction rows over the dummy design's columns (zeros for the intercept and dummies)."""
    R = np.zeros((len(rows), X.shape[1]))
    for j, x in enumerate(XS):
        R[:, list(X.columns).index(x)] = np.asarray(rows, dtype=float)[:, j]
    return R


SM_CASES = {
    "iid": ("iid", "nonrobust", None),
    "HC1": ("HC1", "HC1", None),
    "CRV1-cl": ({"CRV1": "cl"}, "cluster", ["cl"]),
    "CRV1-region": ({"CRV1": "region"}, "cluster", ["region"]),
    "CRV1-entity+cl": ({"CRV1": "entity+cl"}, "cluster", ["entity", "cl"]),
}


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("fes", [["entity"], ["entity", "year"]], ids=["oneway", "twoway"])
@pytest.mark.parametrize("case", list(SM_CASES))
def test_matches_statsmodels(data, fes, case):
    df = DATA[data]
    vcov, cov_type, groups = SM_CASES[case]
    ours = fastpanel.feols(f"y ~ x1 + x2 + x3 | {' + '.join(fes)}", df, vcov=vcov, ssc="statsmodels")
    X = _dummy_design(df, fes)
    kw = {} if groups is None else {"cov_kwds": {"groups": df[groups].to_numpy() if len(groups) > 1
                                                 else df[groups[0]].to_numpy()}}
    ref = sm.OLS(df.y, X).fit(cov_type=cov_type, **kw)
    for text, (rows, r) in HYPOTHESES.items():
        R = _full_R(rows, X)
        f_ref = ref.f_test((R, np.asarray(r, dtype=float)))
        chi_ref = ref.wald_test((R, np.asarray(r, dtype=float)), use_f=False, scalar=True)
        f_ours = ours.f_test(text)
        chi_ours = ours.wald_test(text, distribution="chi2")
        assert f_ours.distribution == "F" and chi_ours.distribution == "chi2"
        assert_close(f_ours.stat, float(np.squeeze(f_ref.fvalue)), RTOL)
        assert_close(f_ours.pvalue, float(f_ref.pvalue), RTOL)
        assert f_ours.df_num == int(f_ref.df_num) and f_ours.df_denom == float(f_ref.df_denom)
        assert_close(chi_ours.stat, float(np.squeeze(chi_ref.statistic)), RTOL)
        assert_close(chi_ours.pvalue, float(chi_ref.pvalue), RTOL)
        assert chi_ours.df_denom is None and chi_ours.df_num == len(rows)
        # the default under ssc="statsmodels" is the F form
        assert ours.wald_test(text).stat == f_ours.stat
    if groups is not None:  # statsmodels' cluster df: df_resid_inference = Gmin - 1
        assert f_ours.df_denom == min(df[g].nunique() for g in groups) - 1


LM_CASES = {
    "unadjusted": ("iid", {}),
    "robust": ("HC1", {}),
    "clustered-entity": ({"CRV1": "entity"}, {"cluster_entity": True}),
    "clustered-both": ({"CRV1": "entity+time"}, {"cluster_entity": True, "cluster_time": True}),
    "clustered-other": ("region", {}),
    "kernel": ({"DK": None}, {}),
}


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("effects", [(True, False), (True, True)], ids=["entity", "both"])
@pytest.mark.parametrize("case", list(LM_CASES))
def test_matches_linearmodels(data, effects, case):
    lm = pytest.importorskip("linearmodels")
    df = DATA[data]
    vcov, cfg = LM_CASES[case]
    cov_type = case.split("-")[0]
    if vcov == "region":
        vcov, cfg = {"CRV1": df.region.to_numpy()}, {"clusters": df.set_index(["entity", "year"])[["region"]]}
    d = df.set_index(["entity", "year"])
    ref = lm.PanelOLS(d.y, d[XS], entity_effects=effects[0], time_effects=effects[1]).fit(cov_type=cov_type, **cfg)
    ours = fastpanel.PanelOLS(df.y, df[XS], df.entity, df.year, entity_effects=effects[0],
                              time_effects=effects[1]).fit(vcov=vcov, ssc="linearmodels")
    for text, (rows, r) in HYPOTHESES.items():
        want = ref.wald_test(np.asarray(rows, dtype=float), np.asarray(r, dtype=float))
        got = ours.wald_test(text)  # chi2 is the default under ssc="linearmodels"
        assert got.distribution == "chi2" and got.df_num == want.df
        assert_close(got.stat, want.stat, RTOL)
        assert_close(got.pvalue, want.pval, RTOL)
    # linearmodels' own formula syntax (one 'expression = value' per item)
    want = ref.wald_test(formula=["x1 - x2 = 0", "x3 = 0"])
    assert_close(ours.wald_test(["x1 - x2 = 0", "x3 = 0"]).stat, want.stat, RTOL)


PF_CASES = ["iid", "hetero", {"CRV1": "cl"}, {"CRV1": "region"}, {"CRV1": "entity+cl"}]


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("vcov", PF_CASES, ids=str)
@pytest.mark.parametrize("fml", ["y ~ x1 + x2 + x3 | entity", "y ~ x1 + x2 + x3 | entity + year"])
def test_matches_pyfixest(data, vcov, fml):
    pf = pytest.importorskip("pyfixest")
    df = DATA[data]
    # pyfixest's unclustered F denominator is N - k - sum_f L_f, one below fixest's n - K with
    # two-way effects (documented in fastpanel.ols.wald): there only the statistics are compared
    same_df = isinstance(vcov, dict) or "year" not in fml
    # pyfixest demeans iteratively: a tight tolerance makes its two-way fit exact to ~1e-13
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fixef_tol= (a typed demeaner later)
        ref = pf.feols(fml, df, vcov=vcov, fixef_tol=1e-14)
    if not hasattr(ref, "wald_test"):
        pytest.skip("this pyfixest has no Feols.wald_test")
    ours = fastpanel.feols(fml, df, vcov=vcov)  # ssc="fixest"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyfixest warns when it falls back to chi2
        for text, (rows, r) in HYPOTHESES.items():
            want = ref.wald_test(R=np.asarray(rows, dtype=float), q=np.asarray(r, dtype=float), distribution="chi2")
            got = ours.wald_test(text, distribution="chi2")
            assert_close(got.stat, want["statistic"], RTOL)
            assert_close(got.pvalue, want["pvalue"], RTOL)
        want = ref.wald_test(R=np.eye(3), distribution="F")  # the joint test that every slope is 0
    got = ours.wald_test(np.eye(3))
    assert_close(got.stat, want["statistic"], RTOL)
    if same_df:
        assert_close(got.pvalue, want["pvalue"], RTOL)
        assert got.df_denom == float(ref._dfd)
    else:
        assert got.df_denom == float(ref._dfd) + 1


def test_scaling_a_regressor_leaves_the_test_unchanged():
    df = DATA["seed3"]
    base = fastpanel.feols("y ~ x1 + x2 + x3 | entity", df, vcov={"CRV1": "cl"})
    for factor in (1e-8, 1e8):
        scaled = fastpanel.feols("y ~ x1 + x2s + x3 | entity", df.assign(x2s=df.x2 * factor), vcov={"CRV1": "cl"})
        a = base.wald_test("x1 = 0, x2 = 0")
        b = scaled.wald_test("x1 = 0, x2s = 0")
        np.testing.assert_allclose(b.stat, a.stat, rtol=1e-9)
        # the same hypothesis about x2 in the new units
        np.testing.assert_allclose(scaled.wald_test(f"x2s = {0.05 / factor!r}").stat,
                                   base.wald_test("x2 = 0.05").stat, rtol=1e-9)


def test_grunfeld_against_statsmodels_and_linearmodels():
    lm = pytest.importorskip("linearmodels")
    grunfeld = sm.datasets.grunfeld.load_pandas().data.sample(frac=1.0, random_state=0).reset_index(drop=True)
    text = "value = 0.1, capital = 0.3"
    ours = fastpanel.feols("invest ~ value + capital | firm + year", grunfeld, vcov={"CRV1": "firm"}, ssc="statsmodels")
    X = pd.DataFrame({"Intercept": 1.0, "value": grunfeld.value, "capital": grunfeld.capital})
    for f in ("firm", "year"):
        X = X.join(pd.get_dummies(grunfeld[f], prefix=f, drop_first=True, dtype=float))
    ref = sm.OLS(grunfeld.invest, X).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(grunfeld.firm)[0]})
    R = np.zeros((2, X.shape[1]))
    R[0, 1] = R[1, 2] = 1.0
    want = ref.f_test((R, np.array([0.1, 0.3])))
    got = ours.wald_test(text)
    assert_close(got.stat, float(np.squeeze(want.fvalue)))
    assert_close(got.pvalue, float(want.pvalue))
    assert got.df_denom == grunfeld.firm.nunique() - 1
    d = grunfeld.assign(year=grunfeld.year.astype(int)).set_index(["firm", "year"])
    lref = lm.PanelOLS(d.invest, d[["value", "capital"]], entity_effects=True, time_effects=True).fit(
        cov_type="clustered", cluster_entity=True)
    lours = fastpanel.PanelOLS(grunfeld.invest, grunfeld[["value", "capital"]], grunfeld.firm, grunfeld.year,
                               time_effects=True).fit(vcov={"CRV1": "entity"}, ssc="linearmodels")
    lwant = lref.wald_test(np.eye(2), np.array([0.1, 0.3]))
    assert_close(lours.wald_test(text).stat, lwant.stat)
    assert_close(lours.wald_test(text).pvalue, lwant.pval)


def test_wage_panel_against_linearmodels():
    lm = pytest.importorskip("linearmodels")
    from linearmodels.datasets import wage_panel

    data = wage_panel.load()
    data["exper2"] = data.exper ** 2
    xs = ["exper2", "union", "married"]
    d = data.set_index(["nr", "year"])
    ref = lm.PanelOLS(d.lwage, d[xs], entity_effects=True, time_effects=True).fit(cov_type="clustered",
                                                                                 cluster_entity=True)
    ours = fastpanel.feols("lwage ~ exper2 + union + married | nr + year", data.sample(frac=1.0, random_state=1),
                           vcov={"CRV1": "nr"}, ssc="linearmodels")
    want = ref.wald_test(formula=["union - married = 0", "exper2 = 0"])
    got = ours.wald_test("union = married, exper2 = 0")
    assert_close(got.stat, want.stat)
    assert_close(got.pvalue, want.pval)


# -- the string form ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def formula_fit():
    df = DATA["seed3"].assign(x3=lambda d: d.x3 + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fastpanel.feols("y ~ x1 + x2 + x1:x2 + np.log(x3) | entity", df, vcov={"CRV1": "cl"})


@pytest.mark.parametrize("text, rows, r", [  # columns: x1, x2, np.log(x3), x1:x2
    ("x1:x2 = 0, np.log(x3) = x1", [[0, 0, 0, 1], [-1, 0, 1, 0]], [0, 0]),
    ("np.log( x3 ) - 2*x1 = 0.5", [[-2, 0, 1, 0]], [0.5]),  # spaces inside a name
    ("-x1 + 3 * x2 = x1:x2 - 1", [[-1, 3, 0, -1]], [-1]),
    ("x1/2 + 0.25*x2 = 1e-1", [[0.5, 0.25, 0, 0]], [0.1]),
    ("2 * x1 * 3 + x2 = 0, x1 = 2", [[6, 1, 0, 0], [1, 0, 0, 0]], [0, 2]),
    ("x1 + x1 = x2", [[2, -1, 0, 0]], [0]),  # a coefficient twice in one restriction: summed
])
def test_string_and_matrix_forms_agree(formula_fit, text, rows, r):
    assert list(formula_fit.params.index) == ["x1", "x2", "np.log(x3)", "x1:x2"]
    R, rv = parse_restrictions(text, formula_fit.params.index)
    np.testing.assert_array_equal(R, np.asarray(rows, dtype=float))
    np.testing.assert_allclose(rv, r, rtol=0, atol=1e-15)
    a = formula_fit.wald_test(text)
    b = formula_fit.wald_test(np.asarray(rows, dtype=float), np.asarray(r, dtype=float))
    names = list(formula_fit.params.index)
    c = formula_fit.wald_test(pd.DataFrame(np.asarray(rows, dtype=float)[:, ::-1], columns=names[::-1]), r)
    assert a.stat == b.stat == c.stat and a.pvalue == b.pvalue
    # the test itself, by hand from the covariance (a NumPy restatement of the formula)
    Rm, rr = np.asarray(rows, dtype=float), np.asarray(r, dtype=float)
    d = Rm @ formula_fit.params.to_numpy() - rr
    W = d @ np.linalg.solve(Rm @ formula_fit.cov_params().to_numpy() @ Rm.T, d)
    assert_close(a.stat, W / len(rows), 1e-10)


def test_one_restriction_as_1d_array_and_scalar_r(formula_fit):
    one = formula_fit.wald_test(np.array([1.0, -1.0, 0.0, 0.0]), 0.2)
    assert one.df_num == 1 and one.hypotheses == ["x1 - x2 = 0.2"]
    assert one.stat == formula_fit.wald_test("x1 - x2 = 0.2").stat
    # a DataFrame's columns are matched by name, in any order and any subset
    sub = pd.DataFrame({"x2": [-1.0], "x1": [1.0]})
    assert formula_fit.wald_test(sub, 0.2).stat == one.stat


def test_result_object_and_methods(formula_fit):
    res = formula_fit.wald_test("x1 = x2, np.log(x3) = 0")
    assert isinstance(res, WaldTestResult)
    assert res.distribution == "F" and res.df_num == 2 and res.df_denom == formula_fit.df_t
    assert res.wald == pytest.approx(2 * res.stat, rel=1e-15)
    assert res.hypotheses == ["x1 - x2 = 0", "np.log(x3) = 0"]
    text = str(res)
    assert "H0: x1 - x2 = 0" in text and "np.log(x3) = 0" in text and "F(2, 13)" in text
    assert "CRV1 by cl (ssc=fixest)" in res.summary()
    assert res.line().startswith("Wald test (x1 - x2 = 0, np.log(x3) = 0): F(2, 13) = ")
    f = formula_fit.f_test("x1 = x2, np.log(x3) = 0")
    assert (f.stat, f.pvalue, f.df_denom) == (res.stat, res.pvalue, res.df_denom)
    chi = formula_fit.wald_test("x1 = x2, np.log(x3) = 0", distribution="chi2")
    assert chi.stat == pytest.approx(res.wald, rel=1e-15) and chi.df_denom is None and "chi2(2)" in chi.line()
    json.dumps(chi.to_dict())
    assert fastpanel.ols.wald_test(formula_fit, "x1 = 0").stat == formula_fit.wald_test("x1 = 0").stat


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("R, match", [
    ("x9 = 0", r"'x9' is not a coefficient .*did you mean"),
    ("log(x3) = 0", r"'log\(x3\)' is not a coefficient"),
    ("x1 *", "ends with an operator"),
    ("x1 = ", "empty side"),
    ("= x1", "empty side"),
    ("x1 x2", "two terms without an operator"),
    ("2 x1", "two terms without an operator"),
    ("x1 * x2 = 0", "product of two coefficients"),
    ("x1 / x2", r"'/' must be followed by a number"),
    ("x1 / 0", "division by zero"),
    ("x1 = x2 = 0", "more than one '='"),
    ("x1 = 0,, x2 = 0", "restriction 2 is empty"),
    ("x1 - x1 = 0", "involves no coefficient"),
    ("1 = 1", "involves no coefficient"),
    ("", "empty restriction string"),
    ("x1 = 0, x1 = 0", r"restrictions 1 \(x1 = 0\) and 2 \(x1 = 0\) repeat each other"),
    ("x1 = x2, 2*x1 - 2*x2 = 0", "repeat each other"),
    ("x1 = 0, x1 = 1", "contradict each other"),
    ("x1 = 0, x2 = 0, x1 + x2 = 0", r"rank 2 < 3 restrictions"),
])
def test_bad_strings(formula_fit, R, match):
    with pytest.raises(ValueError, match=match):
        formula_fit.wald_test(R)


def test_bad_matrices(formula_fit):
    with pytest.raises(ValueError, match=r"R has shape \(2, 3\); expected \(q, 4\)"):
        formula_fit.wald_test(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"expected \(q, 4\)"):
        formula_fit.wald_test(np.ones((0, 4)))
    with pytest.raises(ValueError, match="r has length 3 .* R has 2 restriction row"):
        formula_fit.wald_test(np.eye(4)[:2], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="r is given with a restriction string"):
        formula_fit.wald_test("x1 = 0", [1.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        formula_fit.wald_test(np.array([[np.nan, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"rank 2 < 3 restrictions.*rank-deficient R"):
        formula_fit.wald_test(np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]]))
    with pytest.raises(ValueError, match=r"column\(s\) \['x7'\] are not coefficients"):
        formula_fit.wald_test(pd.DataFrame({"x7": [1.0]}))
    with pytest.raises(ValueError, match="distribution='t'; use 'F' or 'chi2'"):
        formula_fit.wald_test("x1 = 0", distribution="t")
    with pytest.raises(TypeError, match="R must be"):
        formula_fit.wald_test(object())


def test_singular_restriction_covariance():
    rng = np.random.default_rng(5)
    # x1 varies in entities 0-9 only, x4 in entities 10-19 only, where y = 2 x4 + effect exactly:
    # the residuals there are zero, so under HC1 (and clustering) the variance of x4 is rounding
    e = np.repeat(np.arange(20), 6)
    a = rng.normal(size=20)[e]
    x1 = np.where(e < 10, rng.normal(size=e.size), 0.0)
    x4 = np.where(e >= 10, rng.normal(size=e.size), 0.0)
    y = a + np.where(e < 10, 0.5 * x1 + rng.normal(size=e.size), 2.0 * x4)
    df = pd.DataFrame({"y": y, "x1": x1, "x4": x4, "entity": e, "cl": e % 5})
    for vcov in ("HC1", {"CRV1": "cl"}):
        res = fastpanel.feols("y ~ x1 + x4 | entity", df, vcov=vcov)
        with pytest.raises(ValueError, match=r"R V R' is singular.*restriction\(s\) x4 = 0 .*variance of zero"):
            res.wald_test("x1 = 0, x4 = 0")
        assert np.isfinite(res.wald_test("x1 = 0").stat)  # the other restriction is still testable
    # under iid the variance of x4 is s^2 B_44 > 0: the same test is defined
    assert np.isfinite(fastpanel.feols("y ~ x1 + x4 | entity", df).wald_test("x1 = 0, x4 = 0").stat)
    # two clusters: V has rank 1, so two restrictions cannot be tested jointly
    df = weak_panel(4)
    df["two"] = (df.entity % 2).astype(int)
    res2 = fastpanel.feols("y ~ x1 + x2 | year", df, vcov={"CRV1": "two"})
    with pytest.raises(ValueError, match="R V R' is singular.*linearly dependent"):
        res2.wald_test("x1 = 0, x2 = 0")


def test_f_form_needs_a_single_df():
    """CR2 (another module) gives one Satterthwaite df per coefficient: no single F denominator."""
    try:
        res = fastpanel.feols("y ~ x1 + x2 | entity", DATA["seed3"], vcov={"CR2": "cl"})
    except (ValueError, ImportError):
        pytest.skip("no CR2 covariance in this tree")
    if np.ndim(res.df_t) == 0:
        pytest.skip("this CR2 has a single df")
    with pytest.raises(ValueError, match="one per coefficient .*use distribution='chi2'"):
        res.wald_test("x1 = 0")
    assert res.wald_test("x1 = 0", distribution="chi2").df_denom is None


# -- Dask -----------------------------------------------------------------------------------------
def test_dask_fit_gives_the_same_wald_test(dask_client):
    # the session's distributed client (conftest), as every Dask test: the shuffle is P2P there
    dd = pytest.importorskip("dask.dataframe")

    df = DATA["seed8"]
    if True:
        for vcov in ("iid", {"CRV1": "entity+year"}):
            for ssc in ("fixest", "linearmodels"):
                mem = fastpanel.feols("y ~ x1 + x2 + x3 | entity + year", df, vcov=vcov, ssc=ssc)
                dsk = fastpanel.feols("y ~ x1 + x2 + x3 | entity + year", dd.from_pandas(df, npartitions=3, sort=False),
                                      vcov=vcov, ssc=ssc)
                for text in HYPOTHESES:
                    a, b = mem.wald_test(text), dsk.wald_test(text)
                    assert (a.distribution, a.df_num, a.df_denom) == (b.distribution, b.df_num, b.df_denom)
                    np.testing.assert_allclose(b.stat, a.stat, rtol=1e-10)
                    np.testing.assert_allclose(b.pvalue, a.pvalue, rtol=1e-9)


# -- command line ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wald") / "panel.csv"
    DATA["seed3"].to_csv(path, index=False)
    return path


def _cli(capsys, *args):
    from fastpanel.cli import main

    code = main(["fit", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fmt", ["text", "md", "latex", "json"])
def test_cli_wald(capsys, csv_file, fmt):
    fml = "y ~ x1 + x2 + x3 | entity"
    code, out, err = _cli(capsys, csv_file, fml, "--vcov", "CRV1:cl", "--wald", "x1 = x2, x3 = 0", "--format", fmt)
    assert code == 0, err
    ref = pytest.importorskip("pyfixest").feols(fml, DATA["seed3"], vcov={"CRV1": "cl"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref.wald_test(R=np.array([[1.0, -1, 0], [0, 0, 1]]), q=np.zeros(2), distribution="chi2")
    if fmt == "json":
        (w,) = json.loads(out)["wald"]
        assert w["hypotheses"] == ["x1 - x2 = 0", "x3 = 0"] and w["distribution"] == "F"
        assert w["df_num"] == 2 and w["df_denom"] == 13
        assert_close(w["wald"], want["statistic"])
        return
    last = out.rstrip().splitlines()[-1]
    assert "Wald test (x1 - x2 = 0, x3 = 0): F(2, 13) = " in last
    assert f"{want['statistic'] / 2:.6g}" in last
    if fmt == "latex":
        assert last.startswith(r"\par\noindent ")


def test_cli_wald_errors_are_one_line(capsys, csv_file):
    code, out, err = _cli(capsys, csv_file, "y ~ x1 + x2 | entity", "--wald", "x1 = x9")
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("fastpanel: error:")]
    assert lines == ["fastpanel: error: --wald 'x1 = x9': 'x9' is not a coefficient of the model (coefficients: "
                     "'x1', 'x2'); did you mean 'x1', 'x2'?"] or (len(lines) == 1 and "'x9' is not a coefficient"
                                                                  in lines[0])
    code, out, err = _cli(capsys, csv_file, "y ~ x1 + x2 | entity", "--wald", "x1 = 0, x1 = 0")
    assert code == 1 and "--wald 'x1 = 0, x1 = 0': restrictions 1 (x1 = 0) and 2 (x1 = 0) repeat each other" in err
