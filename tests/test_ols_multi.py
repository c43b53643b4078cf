"""Multiple estimation (fastpanel.ols.multi): expansion and labels vs pyfixest 0.60, every model of a
collection vs its single fit (to rounding) and vs pyfixest's model, samples per model, the
collection API, etable / report, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.ols import CollinearityWarning, FitCollection
from fastpanel.ols.multi import expand_formula

pf = pytest.importorskip("pyfixest")
from pyfixest.demeaners import MapDemeaner  # noqa: E402

TIGHT = MapDemeaner(fixef_tol=1e-14, fixef_maxiter=100_000)


def _data(n: int = 600, seed: int = 0, nan: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f1 = rng.integers(0, 40, n)
    f2 = rng.integers(0, 6, n)
    df = pd.DataFrame({"f1": f1, "f2": f2, "f3": rng.integers(0, 5, n), "g": rng.integers(0, 4, n)})
    a, b = rng.normal(size=40)[f1], rng.normal(size=6)[f2]
    for j, c in enumerate(["x1", "x2", "x3", "x4"]):
        df[c] = rng.normal(size=n) + 0.3 * (j + 1) * a + 0.2 * b
    df["z"] = rng.normal(size=n)
    df["d"] = df.z + 0.5 * df.x1 + rng.normal(size=n)
    df["y1"] = 1 + 0.5 * df.x1 - 0.3 * df.x2 + 0.2 * df.x3 + 0.1 * df.d + a + b + rng.normal(size=n)
    df["y2"] = -0.4 * df.x1 + 0.6 * df.x3 + 2 * a + rng.normal(size=n) * (1 + 0.3 * np.abs(df.x2))
    df["x4"] = np.abs(df.x4) + 0.1
    df["w"] = rng.uniform(0.5, 2.0, n)
    if nan:  # different NaN patterns per variable: each model has its own sample
        df.loc[rng.random(n) < 0.10, "x2"] = np.nan
        df.loc[rng.random(n) < 0.08, "y2"] = np.nan
        df.loc[rng.random(n) < 0.05, "x3"] = np.nan
        # a level of f1 whose rows all lack x2 but one: a singleton only where x2 is used
        rows = np.flatnonzero(df.f1 == 7)
        df.loc[rows[1:], "x2"] = np.nan
    return df


DF = _data()


def _same(ours, single, rtol=1e-12):
    assert list(ours.params.index) == list(single.params.index)
    np.testing.assert_allclose(ours.params, single.params, rtol=rtol, atol=0)
    np.testing.assert_allclose(ours.bse, single.bse, rtol=rtol, atol=0)
    assert ours.nobs == single.nobs
    assert ours.n_dropped == single.n_dropped
    assert ours.n_singletons == single.n_singletons
    assert ours.dropped_regressors == single.dropped_regressors
    np.testing.assert_allclose([ours.ssr, ours.rsquared, ours.rsquared_within],
                               [single.ssr, single.rsquared, single.rsquared_within], rtol=1e-11, atol=1e-14)
    assert ours.df_resid == single.df_resid
    # the Series built on first access and the pooled SSR solved on first access
    np.testing.assert_allclose(ours.tvalues, single.tvalues, rtol=rtol, atol=0)
    np.testing.assert_allclose(ours.pvalues, single.pvalues, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose([ours.fvalue], [single.fvalue], rtol=1e-9, atol=0)
    if single.fixed_effects:
        np.testing.assert_allclose(ours.f_poolability["stat"], single.f_poolability["stat"], rtol=1e-9)


def _like_pyfixest(ours, ref):
    coef = ref.coef()
    assert list(ours.params.index) == list(coef.index)
    np.testing.assert_allclose(ours.params, coef, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ours.bse, ref.se(), rtol=1e-8, atol=0)
    assert ours.nobs == ref._N


EXPANSIONS = [
    "y1 + y2 ~ x1 + csw0(x2, x3) | f1",
    "y1 ~ x1 | csw0(f1, f2)",
    "y1 + y2 ~ sw0(x1, x2)",
    "y1 ~ csw(x1, x2, x3) | f1",
    "y1 + y2 ~ sw(x1, x2) + x3 | f1 + f2",
    "y1+y2~x1|f1",
    "y1 ~ x1 + x2 | sw(f1, f2)",
    "y1 + y2 ~ x1 | sw0(f1, f2)",
    "y1 ~ csw(x1, x2) | f1 | d ~ z",
    "sw(y1, y2) ~ x1 | f1",
]


@pytest.mark.parametrize("fml", EXPANSIONS)
def test_expansion_order_and_labels_match_pyfixest(fml):
    ref = list(pf.feols(fml, DF, demeaner=TIGHT).all_fitted_models)
    assert expand_formula(fml) == ref
    coll = fastpanel.feols(fml, DF)
    assert isinstance(coll, FitCollection)
    assert coll.labels == ref == list(coll.models)


def test_expansion_examples():
    assert expand_formula("y ~ sw(a, b)") == ["y ~ a", "y ~ b"]
    assert expand_formula("y ~ sw0(a, b)") == ["y ~ 1", "y ~ a", "y ~ b"]
    assert expand_formula("y ~ csw(a, b)") == ["y ~ a", "y ~ a + b"]
    assert expand_formula("y ~ csw0(a, b)") == ["y ~ 1", "y ~ a", "y ~ a + b"]
    assert expand_formula("y1 + y2 ~ x | csw0(f1, f2)") == [
        "y1 ~ x", "y2 ~ x", "y1 ~ x | f1", "y2 ~ x | f1", "y1 ~ x | f1 + f2", "y2 ~ x | f1 + f2"]
    assert expand_formula("y ~ sw(np.log(a), C(b, Treatment(1)))") == ["y ~ np.log(a)", "y ~ C(b, Treatment(1))"]


FML = "y1 + y2 ~ x1 + csw0(x2, x3) | f1 + f2"


@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "f1"}], ids=str)
@pytest.mark.parametrize("weights", [None, "w"])
def test_every_model_equals_its_single_fit_and_pyfixest(vcov, weights):
    coll = fastpanel.feols(FML, DF, vcov=vcov, weights=weights)
    ref = pf.feols(FML, DF, vcov=vcov, weights=weights, demeaner=TIGHT).all_fitted_models
    assert coll.labels == list(ref)
    nobs = set()
    for label, ours in coll.models.items():
        _same(ours, fastpanel.feols(label, DF, vcov=vcov, weights=weights))
        _like_pyfixest(ours, ref[label])
        nobs.add(ours.nobs)
    assert len(nobs) >= 4  # the NaN patterns give the models different samples
    assert any(r.n_singletons for r in coll)  # and singletons of their own


def test_no_fixed_effects_intercept_models():
    fml = "y1 + y2 ~ sw0(x1, x2)"
    coll = fastpanel.feols(fml, DF, vcov="hetero")
    ref = pf.feols(fml, DF, vcov="hetero").all_fitted_models
    for label, ours in coll.models.items():
        assert ours.params.index[0] == "Intercept"
        _same(ours, fastpanel.feols(label, DF, vcov="hetero"))
        _like_pyfixest(ours, ref[label])


def test_stepwise_fixed_effects():
    fml = "y1 ~ x1 + x3 | csw0(f1, f2)"
    coll = fastpanel.feols(fml, DF, vcov={"CRV1": "f1"})
    ref = pf.feols(fml, DF, vcov={"CRV1": "f1"}, demeaner=TIGHT).all_fitted_models
    assert [r.fixed_effects for r in coll] == [[], ["f1"], ["f1", "f2"]]
    for label, ours in coll.models.items():
        _same(ours, fastpanel.feols(label, DF, vcov={"CRV1": "f1"}))
        _like_pyfixest(ours, ref[label])


def test_formulaic_terms_and_three_way_effects():
    fml = "y1 + y2 ~ x1 + sw(np.log(x4), C(g), x1:x3) | f1 + f2 + f3"
    coll = fastpanel.feols(fml, DF, vcov="hetero")
    ref = pf.feols(fml, DF, vcov="hetero", demeaner=TIGHT).all_fitted_models
    for label, ours in coll.models.items():
        _same(ours, fastpanel.feols(label, DF, vcov="hetero"), rtol=1e-10)
        _like_pyfixest(ours, ref[label])


def test_full_sample_in_place_and_crv3():
    df = _data(nan=False)
    for vcov in ["iid", {"CRV3": "f1"}]:  # in place, and with the raw data kept (CRV3)
        coll = fastpanel.feols("y1 + y2 ~ x1 + csw(x2, x3, x4) | f1", df, vcov=vcov)
        assert all(r.n_dropped == 0 for r in coll)
        for label, ours in coll.models.items():
            _same(ours, fastpanel.feols(label, df, vcov=vcov))


def test_offsets_of_1e8_in_place_and_the_pooled_f_test():
    """Columns of 1e8 + noise, rows shuffled, in place: every model equals its single fit, and
    the poolability F (pooled SSR solved on first access from centred moments) equals a plain
    NumPy pooled regression with an intercept."""
    df = _data(nan=False).sample(frac=1, random_state=5).reset_index(drop=True)
    for c in ["y1", "x1", "x3"]:
        df[c] = df[c] + 1e8
    coll = fastpanel.feols("y1 ~ x1 + csw0(x2, x3) | f1", df)
    for label, ours in coll.models.items():
        _same(ours, fastpanel.feols(label, df), rtol=1e-9)
        xs = list(ours.params.index)
        X = df[xs].to_numpy() - df[xs].to_numpy().mean(axis=0)
        y = df.y1.to_numpy() - df.y1.mean()
        Z = np.column_stack([np.ones(len(df)), X])
        r = y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
        d1 = df.f1.nunique() - 1
        want = ((r @ r - ours.ssr) / d1) / (ours.ssr / ours.df_resid)
        np.testing.assert_allclose(ours.f_poolability["stat"], want, rtol=1e-8)


def test_varying_slopes_and_dk():
    fml = "y1 + y2 ~ x1 + sw(x2, x3) | f1 + f2[x4]"
    coll = fastpanel.feols(fml, DF, vcov={"DK": 1}, time="f2")
    for label, ours in coll.models.items():
        _same(ours, fastpanel.feols(label, DF, vcov={"DK": 1}, time="f2"))


def test_fixef_resid_predict_match_single_fit():
    coll = fastpanel.feols("y1 ~ x1 + csw(x2, x3) | f1 + f2", DF)
    for label, ours in coll.models.items():
        single = fastpanel.feols(label, DF)
        np.testing.assert_allclose(ours.resid, single.resid, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.predict(DF.iloc[:50].fillna(0.0)), single.predict(DF.iloc[:50].fillna(0.0)),
                                   rtol=1e-9, atol=1e-12)


def test_collinear_regressor_warns_like_single_fit():
    df = DF.assign(x5=DF.x1 + DF.x3)
    fml = "y1 ~ x1 + x3 + sw(x2, x5) | f1"
    with pytest.warns(CollinearityWarning, match="x5") as rec:
        coll = fastpanel.feols(fml, df)
    assert len([w for w in rec if issubclass(w.category, CollinearityWarning)]) == 1
    with pytest.warns(CollinearityWarning, match="x5") as rec1:
        single = fastpanel.feols("y1 ~ x1 + x3 + x5 | f1", df)
    assert str(rec[0].message) == str(rec1[0].message)
    _same(coll[1], single)
    assert coll[1].dropped_regressors == ["x5"]


def test_iv_models_are_their_single_fits():
    fml = "y1 + y2 ~ x1 + sw0(x3, x4) | f1 | d ~ z"
    coll = fastpanel.feols(fml, DF, vcov={"CRV1": "f1"})
    ref = pf.feols(fml, DF, vcov={"CRV1": "f1"}, demeaner=TIGHT).all_fitted_models
    assert coll.labels == list(ref)
    for label, ours in coll.models.items():
        single = fastpanel.feols(label, DF, vcov={"CRV1": "f1"})
        np.testing.assert_array_equal(ours.params, single.params)
        np.testing.assert_array_equal(ours.bse, single.bse)
        _like_pyfixest(ours, ref[label])


def test_split_gives_a_collection_per_group():
    out = fastpanel.feols("y1 + y2 ~ csw(x1, x3) | f1", DF, split="g")
    assert sorted(out) == [0, 1, 2, 3]
    for value, coll in out.items():
        assert isinstance(coll, FitCollection) and len(coll) == 4
        for label, ours in coll.models.items():
            _same(ours, fastpanel.feols(label, DF, split="g")[value])


def test_polars_input():
    pl = pytest.importorskip("polars")
    coll = fastpanel.feols(FML, pl.from_pandas(DF))
    for label, ours in coll.models.items():
        _same(ours, fastpanel.feols(label, DF))


def test_collection_api_and_tables():
    coll = fastpanel.feols(FML, DF)
    assert len(coll) == 6 and len(list(coll)) == 6
    assert coll[0] is coll["y1 ~ x1 + 1 | f1 + f2"] is coll.models["y1 ~ x1 + 1 | f1 + f2"]
    assert isinstance(coll[1:3], FitCollection) and coll[1:3].labels == coll.labels[1:3]
    with pytest.raises(KeyError, match="did you mean"):
        coll["y1 ~ x1 + x2 | f1"]
    frame = coll.to_frame()
    assert list(frame.columns) == ["model", "term", "coef", "se", "t", "p"]
    assert len(frame) == sum(len(r.params) for r in coll)
    row = frame[(frame.model == coll.labels[2]) & (frame.term == "x3")].iloc[0]
    assert row.coef == coll[2].params["x3"] and row.se == coll[2].bse["x3"]
    assert all(label in coll.summary() for label in coll.labels)
    assert "FitCollection of 6 models" in repr(coll)
    text = fastpanel.etable(coll)
    assert text == coll.etable() == fastpanel.etable(list(coll))
    assert "(6) y2" in text
    assert "| x3 |" in coll.etable(type="markdown")
    # etable of a split fit of a collection: every model of every group
    split = fastpanel.feols("y1 ~ sw(x1, x3)", DF, split="g")
    assert "(8) y1" in fastpanel.etable(split)


def test_report_accepts_collection():
    from fastpanel.report import model_dict, side_by_side, split_models, to_jsonable

    coll = fastpanel.feols(FML, DF)
    pairs = split_models(coll)
    assert [label for label, _ in pairs] == coll.labels
    assert all(r is coll[j] for j, (_, r) in enumerate(pairs))
    d = model_dict(pairs[2][1])
    assert d["nobs"] == coll[2].nobs and "x2" in d["coefficients"]
    to_jsonable(d)
    table = side_by_side(pairs, "md")
    assert coll.labels[5].replace("|", "\\|") in table or coll.labels[5] in table
    split = fastpanel.feols("y1 ~ sw(x1, x3)", DF, split="g")
    labels = [label for label, _ in split_models(split)]
    assert labels[:2] == ["0: y1 ~ x1", "0: y1 ~ x3"] and len(labels) == 8


@pytest.mark.parametrize("fml,match", [
    ("y1 ~ sw(x1, x2 | f1", "unclosed"),
    ("y1 ~ x1) + sw(x2, x3)", "unmatched"),
    ("y1 ~ sw() | f1", r"sw\(\) is empty"),
    ("y1 ~ csw0(x1, ) | f1", "empty argument"),
    ("y1 ~ sw(x1, x2) | csw0(f1, f2)", r"2 stepwise operators \(sw\(\.\.\.\), csw0\(\.\.\.\)\)"),
    ("y1 ~ sw(x1, csw(x2, x3))", "2 stepwise operators"),
    ("y1 ~ sw(x1, nope) | f1", "nope"),
    ("y1 + y2 ~ x1 | sw(f1, f9)", "f9"),
    ("y1 ~ mvsw(x1, x2)", "mvsw"),
    ("csw(y1, y2) ~ x1", "only several outcomes"),
    ("y1 + ~ x1", "outcome"),
])
def test_bad_formulas_are_refused(fml, match):
    with pytest.raises(ValueError, match=match):
        fastpanel.feols(fml, DF)


def test_dask_is_refused():
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(ValueError, match="not available on Dask"):
        fastpanel.feols(FML, dd.from_pandas(DF, npartitions=2))


def test_constant_outcome_in_one_model_is_refused():
    df = DF.assign(y2=1.0)
    with pytest.raises(ValueError, match="'y2' is constant"):
        fastpanel.feols("y1 + y2 ~ x1 | f1", df)


def test_one_transform_per_sample(monkeypatch):
    """The union of a sample's columns is within-transformed once (not once per model)."""
    import fastpanel.ols.multi as multi

    calls = []
    real = multi._m.absorb

    def counting(X, *args, **kwargs):
        calls.append(X.shape[1])
        return real(X, *args, **kwargs)

    monkeypatch.setattr(multi._m, "absorb", counting)
    df = _data(nan=False)
    coll = fastpanel.feols("y1 + y2 ~ x1 + csw0(x2, x3, x4) | f1 + f2", df)
    assert len(coll) == 8 and calls == [6]  # y1, y2, x1..x4 once
    calls.clear()
    coll = fastpanel.feols(FML, DF)  # six models, six samples (their NaN patterns differ)
    assert len({r.nobs for r in coll}) == len(calls) == 6
    calls.clear()
    fastpanel.feols("y1 ~ x1 + csw0(x3, x4) | f1", DF.assign(x4=DF.x4.where(DF.x3.notna())))
    assert calls == [2, 4]  # y1 ~ x1 on all rows; the x3 and x3 + x4 models share the rows with x3
