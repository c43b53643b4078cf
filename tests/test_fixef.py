"""fixef(), resid, fittedvalues and predict() against a dummy-variable fit (statsmodels).

statsmodels' ``y ~ x + C(g) + C(h) - 1`` keeps every level of g and drops the first level of h:
R fixest's normalisation for a connected design (the reference of the second dimension is its
first level). Values carry an offset of 1e3 (y) so the comparison is relative to that scale.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import fastpanel as fp


def _panel(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(dict(g=rng.integers(0, 50, n), h=rng.integers(0, 9, n), x1=rng.normal(size=n),
                           x2=rng.normal(size=n), w=rng.uniform(0.5, 2, n), c=rng.choice(list("abc"), n)))
    df["y"] = df.x1 - 0.5 * df.x2 + np.sin(df.g) + 0.3 * df.h + rng.normal(size=n) + 1e3
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


ATOL = 1e-10 * 1e3  # lstsq on the dummy design vs the exact recovery, at the scale of y


def test_two_way_effects_fitted_and_residuals_equal_dummy_ols():
    df = _panel()
    df.loc[4, "x2"] = np.nan  # a dropped row: the effects and fitted values are of the sample used
    res = fp.feols("y ~ x1 + x2 | g + h", df)
    d = df.dropna()
    ols = smf.ols("y ~ x1 + x2 + C(g) + C(h) - 1", d).fit()
    fe = res.fixef()
    want_g = np.array([ols.params[f"C(g)[{lvl}]"] for lvl in fe["g"].index])
    want_h = np.array([0.0] + [ols.params[f"C(h)[T.{lvl}]"] for lvl in fe["h"].index[1:]])
    np.testing.assert_allclose(fe["g"].to_numpy(), want_g, rtol=0, atol=ATOL)
    np.testing.assert_allclose(fe["h"].to_numpy(), want_h, rtol=0, atol=ATOL)
    assert fe.references == {"g": [], "h": [0]} and fe.n_components == 1 and fe.exact
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), ols.fittedvalues.to_numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.resid.to_numpy(), ols.resid.to_numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.predict(), ols.fittedvalues.to_numpy(), rtol=0, atol=ATOL)
    frame = fe.to_frame()
    assert set(frame.columns) == {"fixed_effect", "level", "estimate", "reference"}
    assert frame["reference"].sum() == 1


def test_one_way_weighted():
    df = _panel(seed=1)
    res = fp.feols("y ~ x1 + x2 | g", df, weights="w")
    ols = smf.wls("y ~ x1 + x2 + C(g) - 1", df, weights=df.w).fit()
    fe = res.fixef()["g"]
    np.testing.assert_allclose(fe.to_numpy(), [ols.params[f"C(g)[{lvl}]"] for lvl in fe.index], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), ols.fittedvalues.to_numpy(), rtol=0, atol=ATOL)


def test_disconnected_design_has_one_reference_per_connected_set():
    rng = np.random.default_rng(2)
    n = 2000
    block = rng.integers(0, 3, n)  # three separate mobility groups
    df = pd.DataFrame(dict(g=block * 100 + rng.integers(0, 30, n), h=block * 10 + rng.integers(0, 5, n),
                           x1=rng.normal(size=n)))
    df["y"] = df.x1 + np.cos(df.g) + 0.1 * df.h + rng.normal(size=n)
    res = fp.feols("y ~ x1 | g + h", df)
    fe = res.fixef()
    assert fe.n_components == 3 and fe.references["h"] == [0, 10, 20]
    assert (fe["h"][[0, 10, 20]] == 0).all()
    with warnings.catch_warnings():  # rank-deficient on purpose (one null direction per extra set):
        warnings.simplefilter("ignore")  # the pinv fit's fitted values are still unique
        ols = smf.ols("y ~ x1 + C(g) + C(h) - 1", df).fit()
    fitted = res.params["x1"] * df.x1 + fe["g"].reindex(df.g).to_numpy() + fe["h"].reindex(df.h).to_numpy()
    np.testing.assert_allclose(fitted.to_numpy(), ols.fittedvalues.to_numpy(), rtol=0, atol=1e-10)


def test_predict_newdata_unseen_levels_and_formula_terms():
    df = _panel(seed=3)
    res = fp.feols("y ~ x1 + C(c) | g + h", df)
    ols = smf.ols("y ~ x1 + C(c) + C(g) + C(h) - 1", df).fit()
    new = df.iloc[:20].copy()
    np.testing.assert_allclose(res.predict(new), ols.predict(new).to_numpy(), rtol=0, atol=ATOL)
    new.loc[new.index[0], "g"] = 12345  # a level the fit has not seen
    pred = res.predict(new)
    assert np.isnan(pred[0]) and np.isfinite(pred[1:]).all()
    slopes_only = res.predict(new, fixef=False)
    X = np.column_stack([new.x1, new.c == "b", new.c == "c"]).astype(float)
    np.testing.assert_allclose(slopes_only, X @ res.params.to_numpy(), rtol=1e-13)
    with pytest.raises(ValueError, match="no column 'h'"):
        res.predict(new.drop(columns="h"))


def test_three_way_reproduces_the_fitted_effects_and_warns():
    rng = np.random.default_rng(4)
    n = 1500
    df = pd.DataFrame(dict(a=rng.integers(0, 20, n), b=rng.integers(0, 8, n), c=rng.integers(0, 5, n),
                           x1=rng.normal(size=n)))
    df["y"] = df.x1 + np.sin(df.a) + 0.2 * df.b - 0.1 * df.c + rng.normal(size=n)
    res = fp.feols("y ~ x1 | a + b + c", df)
    with pytest.warns(UserWarning, match="may not make the effects unique"):
        fe = res.fixef()
    assert not fe.exact
    fitted = res.params["x1"] * df.x1 + sum(fe[k].reindex(df[k]).to_numpy() for k in "abc")
    np.testing.assert_allclose(fitted.to_numpy(), res.fittedvalues.to_numpy(), rtol=0, atol=1e-9)


def test_panelols_fixef_and_refusals():
    df = _panel(seed=5)
    model = fp.PanelOLS(df.y, df[["x1", "x2"]], df.g, df.h, time_effects=True)
    res = model.fit()
    ref = fp.feols("y ~ x1 + x2 | g + h", df)
    np.testing.assert_allclose(res.fixef()["entity"].to_numpy(), ref.fixef()["g"].to_numpy(), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="formula"):
        res.predict(df.iloc[:3])
    with pytest.raises(ValueError, match="no fixed effects"):
        fp.feols("y ~ x1", df).fixef()
    df["t"] = np.arange(len(df)) % 7 + 0.5
    with pytest.raises(ValueError, match="varying slopes"):
        fp.feols("y ~ x1 | h + g[t]", df).fixef()


def test_iv_fixef_and_predict_equal_dummies_on_the_structural_residual():
    """pyfixest 0.60 has no fixef() for IV; the oracle is OLS of y - X b (the structural residual of the
    second stage) on the dummies, as R fixest defines the effects of an IV fit."""
    rng = np.random.default_rng(6)
    n = 3000
    df = pd.DataFrame(dict(g=rng.integers(0, 50, n), h=rng.integers(0, 9, n), x1=rng.normal(size=n),
                           z1=rng.normal(size=n), z2=rng.normal(size=n)))
    e = rng.normal(size=n)
    df["d"] = df.z1 + 0.5 * df.z2 + 0.5 * e + rng.normal(size=n)
    df["y"] = df.d + df.x1 + np.sin(df.g) + 0.3 * df.h + e
    res = fp.feols("y ~ x1 | g + h | d ~ z1 + z2", df)
    df["r"] = df.y - res.params["x1"] * df.x1 - res.params["d"] * df.d
    ols = smf.ols("r ~ C(g) + C(h) - 1", df).fit()
    fe = res.fixef()
    np.testing.assert_allclose(fe["g"].to_numpy(), [ols.params[f"C(g)[{lvl}]"] for lvl in fe["g"].index],
                               rtol=0, atol=1e-10)
    fitted = (df.y - ols.resid).to_numpy()
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), fitted, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.predict(df.iloc[:7]), fitted[:7], rtol=0, atol=1e-10)
