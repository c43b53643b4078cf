"""Varying slopes (fixest ``g[x]``, ``g[[x]]``): the transform, feols/IV fits and their df.

Oracles: least squares on the explicit dummy-times-x design (NumPy lstsq, statsmodels OLS),
and pyfixest 0.60 with the slopes as ``i(g, x)`` regressors (pyfixest has no ``g[x]`` syntax).
Where the slope variable has a large mean (``year``), the oracle centres it: with the level's
intercept in the design the span is unchanged, and the uncentred dummy design is too
ill-conditioned for lstsq to serve as a reference.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpanel as fp
from fastpanel.slopes import VaryingSlopes, slopes_within


def _dummies(codes: np.ndarray) -> np.ndarray:
    levels = np.unique(codes)
    return (codes[:, None] == levels[None, :]).astype(float)


def _lstsq_resid(X: np.ndarray, D: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, int]:
    sw = np.ones(len(X)) if w is None else np.sqrt(w)
    b = np.linalg.lstsq(D * sw[:, None], X * sw[:, None], rcond=None)[0]
    return X - D @ b, int(np.linalg.matrix_rank(D * sw[:, None]))


def _panel(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 40, n)
    h = rng.integers(0, 8, n)
    df = pd.DataFrame(dict(
        g=g, h=h, k=rng.integers(0, 5, n), t=rng.normal(size=n) * 2 + 2000.0, x1=rng.normal(size=n),
        x2=rng.normal(size=n), s=rng.normal(size=n), w=rng.uniform(0.5, 2.0, n),
    ))
    df["y"] = 0.5 * df.x1 - df.x2 + np.sin(df.g) * (df.t - 2000) + 0.3 * df.s * df.h + rng.normal(size=n)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows in random order


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(60, 400),
    spec=st.sampled_from(["g[x]", "g[[x]]", "h + g[x]", "g + h[x]", "g + h[[x, s]] + k", "g[s] + h[x]"]),
    weighted=st.booleans(),
)
def test_transform_equals_dummy_least_squares(seed, n, spec, weighted):
    rng = np.random.default_rng(seed)
    g, h, k = rng.integers(0, 12, n), rng.integers(0, 4, n), rng.integers(0, 3, n)
    x, s = rng.normal(size=n), rng.normal(size=n)
    X = rng.normal(size=(n, 2)) + 1e3 * rng.normal()  # a common offset: the effects absorb it
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    G, H, K = _dummies(g), _dummies(h), _dummies(k)
    table = {
        "g[x]": ([VaryingSlopes(g, x)], [G, G * x[:, None]]),
        "g[[x]]": ([VaryingSlopes(g, x, intercept=False)], [G * x[:, None]]),
        "h + g[x]": ([h, VaryingSlopes(g, x)], [H, G, G * x[:, None]]),
        "g + h[x]": ([g, VaryingSlopes(h, x)], [G, H, H * x[:, None]]),
        "g + h[[x, s]] + k": ([g, VaryingSlopes(h, np.column_stack([x, s]), intercept=False), k],
                              [G, H * x[:, None], H * s[:, None], K]),
        "g[s] + h[x]": ([VaryingSlopes(g, s), VaryingSlopes(h, x)], [G, G * s[:, None], H, H * x[:, None]]),
    }
    effects, cols = table[spec]
    got, info = slopes_within(np.asfortranarray(X), effects, w)
    want, rank = _lstsq_resid(X, np.column_stack(cols), w)
    # lstsq on a design of condition number c loses about c * eps relative to |X|
    scale = np.abs(X).max()
    assert np.abs(got - want).max() <= 1e-9 * scale
    assert info.n_identified == rank
    assert info.residual <= 1e-12


def test_large_slope_variable_keeps_its_digits():
    df = _panel(3000, 1)
    X = df[["x1", "y"]].to_numpy()
    got = fp.within(X, [df.h.to_numpy(), VaryingSlopes(df.g.to_numpy(), df.t.to_numpy())])
    t0 = (df.t - 2000.0).to_numpy()  # centred: the same span with the level intercepts
    G = _dummies(df.g.to_numpy())
    want, _ = _lstsq_resid(X, np.column_stack([_dummies(df.h.to_numpy()), G, G * t0[:, None]]), None)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(X).max())


def test_within_api_drop_missing_and_errors():
    df = _panel(500, 2)
    X = df[["x1", "x2"]].to_numpy().copy()
    x = df.s.to_numpy().copy()
    x[7] = np.nan
    with pytest.raises(ValueError, match="drop_missing=True"):
        fp.within(X, [df.g.to_numpy(), VaryingSlopes(df.h.to_numpy(), x)])
    out, info = fp.within(X, [df.g.to_numpy(), VaryingSlopes(df.h.to_numpy(), x)], drop_missing=True,
                          return_info=True)
    assert info.n_dropped == 1 and np.isnan(out[7]).all() and info.method.startswith("slopes")
    keep = np.arange(len(X)) != 7
    alone = fp.within(X[keep], [df.g.to_numpy()[keep], VaryingSlopes(df.h.to_numpy()[keep], x[keep])])
    np.testing.assert_allclose(out[keep], alone, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="one value per row"):
        VaryingSlopes(df.g.to_numpy(), x[:10])
    with pytest.raises(TypeError, match="numeric"):
        VaryingSlopes(df.g.to_numpy(), np.array(["a"] * len(df)))


@pytest.mark.parametrize(
    "fe, dummies",
    [
        ("g[t]", "C(g) + C(g):t0 - 1"),
        ("h + g[t]", "C(h) + C(g) + C(g):t0 - 1"),
        ("g + h[[s]]", "C(g) + C(h):s - 1"),
        ("g + h[s, t]", "C(g) + C(h) + C(h):s + C(h):t0 - 1"),
    ],
)
@pytest.mark.parametrize("vcov, sm_cov", [("iid", {}), ("HC1", {"cov_type": "HC1"}),
                                          ({"CRV1": "g"}, {"cov_type": "cluster"})])
def test_feols_equals_statsmodels_dummy_ols(fe, dummies, vcov, sm_cov):
    import statsmodels.formula.api as smf

    df = _panel(2500, 3)
    df.loc[5, ["t", "s"]] = np.nan  # a missing slope variable drops its row, counted
    res = fp.feols(f"y ~ x1 + x2 | {fe}", df, vcov=vcov, ssc="statsmodels")
    d = df.dropna().copy()
    d["t0"] = d.t - 2000.0
    kw = dict(sm_cov)
    if kw.get("cov_type") == "cluster":
        kw["cov_kwds"] = {"groups": d.g.to_numpy()}
    ols = smf.ols(f"y ~ x1 + x2 + {dummies}", d).fit(**kw)
    assert res.nobs == len(d) and res.n_dropped == 1
    np.testing.assert_allclose(res.params.to_numpy(), ols.params[["x1", "x2"]].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(res.bse.to_numpy(), ols.bse[["x1", "x2"]].to_numpy(), rtol=1e-8)
    assert res.df_resid == ols.df_resid


@pytest.mark.parametrize("vcov", ["iid", "hetero", {"CRV1": "city"}])
def test_feols_equals_pyfixest_interaction_regressors(vcov):
    """fastpanel's slopes as fixed effects vs pyfixest's slopes as i() regressors (fixest preset)."""
    pf = pytest.importorskip("pyfixest")
    rng = np.random.default_rng(4)
    n = 4000
    city = rng.integers(0, 300, n)
    df = pd.DataFrame(dict(city=city, prov=city % 12, year=rng.integers(2000, 2020, n).astype(float),
                           x1=rng.normal(size=n), x2=rng.normal(size=n)))
    df["y"] = 0.5 * df.x1 - df.x2 + np.sin(df.prov) * (df.year - 2010) + rng.normal(size=n)
    ours = fp.feols("y ~ x1 + x2 | city + prov[[year]]", df, vcov=vcov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pf.feols("y ~ x1 + x2 + i(prov, year) | city", df, vcov=vcov, fixef_tol=1e-14)
    np.testing.assert_allclose(ours.params.to_numpy(), theirs.coef()[["x1", "x2"]].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.bse.to_numpy(), theirs.se()[["x1", "x2"]].to_numpy(), rtol=1e-8)


def test_iv_with_slopes_equals_iv_with_interaction_regressors():
    rng = np.random.default_rng(5)
    n = 3000
    df = pd.DataFrame(dict(g=rng.integers(0, 60, n), h=rng.integers(0, 6, n), t=rng.normal(size=n),
                           z1=rng.normal(size=n), z2=rng.normal(size=n), x1=rng.normal(size=n)))
    e = rng.normal(size=n)
    df["d"] = df.z1 + 0.5 * df.z2 + 0.3 * df.x1 + 0.5 * e + rng.normal(size=n)
    df["y"] = df.d + 0.5 * df.x1 + np.sin(df.h) * df.t + e
    inter = pd.get_dummies(df.h, prefix="h").astype(float).mul(df.t, axis=0)
    df2 = pd.concat([df, inter], axis=1)
    ours = fp.feols("y ~ x1 | g + h[[t]] | d ~ z1 + z2", df, vcov={"CRV1": "g"})
    explicit = fp.feols(f"y ~ x1 + {' + '.join(inter.columns)} | g | d ~ z1 + z2", df2, vcov={"CRV1": "g"})
    np.testing.assert_allclose(ours.params[["x1", "d"]].to_numpy(), explicit.params[["x1", "d"]].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.bse[["x1", "d"]].to_numpy(), explicit.bse[["x1", "d"]].to_numpy(), rtol=1e-8)


def test_row_order_and_crv3_and_panelols_api():
    df = _panel(1500, 6)
    a = fp.feols("y ~ x1 + x2 | h + g[t]", df, vcov={"CRV3": "h"})
    b = fp.feols("y ~ x1 + x2 | h + g[t]", df.iloc[::-1].reset_index(drop=True), vcov={"CRV3": "h"})
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.bse.to_numpy(), b.bse.to_numpy(), rtol=1e-10)
    # CRV3 by h with g-slopes not nested in h: leave-one-cluster-out refits, checked by hand
    h = df.h.to_numpy()
    betas = np.array([fp.feols("y ~ x1 + x2 | h + g[t]", df[h != v]).params.to_numpy() for v in np.unique(h)])
    G = len(betas)
    diffs = betas - a.params.to_numpy()
    # fixest preset: K = k + (1 + L_g - 1) + L_g: h nested in the clusters counts 1, one reference
    # level is dropped for the second dimension, and every slope of g counts
    n, K = a.nobs, 2 + 2 * df.g.nunique()
    V = (n - 1) / (n - K) * G / (G - 1) * diffs.T @ diffs
    np.testing.assert_allclose(a.bse.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-10)
    p = fp.PanelOLS(df.y, df[["x1", "x2"]], df.h, other_effects={"g": VaryingSlopes(df.g.to_numpy(), df.t.to_numpy())})
    c = p.fit(vcov="iid")
    d = fp.feols("y ~ x1 + x2 | h + g[t]", df)
    np.testing.assert_allclose(c.params.to_numpy(), d.params.to_numpy(), rtol=1e-12)


def test_slope_coefficients_count_in_the_degrees_of_freedom():
    df = _panel(2000, 7)
    res = fp.feols("y ~ x1 + x2 | h + g[t]", df)
    L_h, L_g = df.h.nunique(), df.g.nunique()
    # fixest preset: levels of h and g (one reference dropped) plus one slope per level of g
    assert res.df_resid == res.nobs - 2 - (L_h + L_g - 1) - L_g


def test_bad_slope_requests_raise_with_the_reason():
    df = _panel(800, 8)
    with pytest.raises(ValueError, match="HC2/HC3"):
        fp.feols("y ~ x1 | g[t]", df, vcov="HC2")
    with pytest.raises(ValueError, match="CR2"):
        fp.feols("y ~ x1 | g[t]", df, vcov={"CR2": "g"})
    with pytest.raises(ValueError, match="not supported"):
        fp.feols("y ~ x1 | g[[t]]", df)
    with pytest.raises(ValueError, match="malformed|unbalanced"):
        fp.feols("y ~ x1 | g[t", df)
    with pytest.raises(ValueError, match="unbalanced"):
        fp.feols("y ~ x1 | g[[t]", df)
    with pytest.raises(ValueError, match="not in data"):
        fp.feols("y ~ x1 | g[nope]", df)
    with pytest.raises(ValueError, match="wild cluster bootstrap"):
        fp.feols("y ~ x1 | h + g[t]", df, vcov={"CRV1": "h"}).wildboottest("x1", B=99)
    df["lab"] = "a"
    with pytest.raises(TypeError, match="non-numeric"):
        fp.feols("y ~ x1 | g[lab]", df)
