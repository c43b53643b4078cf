"""Regression tests for the OLS and data-layer defects of the adversarial pass (issue 8).

Each test reproduces one script of ../shared/repro/ on data generated here, and checks the
number against an independent oracle (dummy-variable least squares in NumPy or statsmodels), or
checks that the input is refused with a message naming the argument.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.ols import MissingSplitWarning


def _dummy_ols(y, X, *ids):
    """Slopes, residuals and rank of [X, dummies] by least squares (the oracle)."""
    cols = [np.asarray(X, float).reshape(len(y), -1)]
    for g in ids:
        codes = pd.factorize(np.asarray(g))[0]
        D = np.zeros((len(y), codes.max() + 1))
        D[np.arange(len(y)), codes] = 1.0
        cols.append(D)
    Z = np.hstack(cols)
    beta, *_ = np.linalg.lstsq(Z, y, rcond=None)
    k = cols[0].shape[1]
    return beta[:k], y - Z @ beta, np.linalg.matrix_rank(Z)


@pytest.fixture
def panel() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n_e, T = 40, 6
    df = pd.DataFrame({"e": np.repeat(np.arange(n_e), T), "t": np.tile(np.arange(T), n_e)})
    df = df.sample(frac=0.85, random_state=3).reset_index(drop=True)  # gaps, random order
    n = len(df)
    df["x"] = rng.normal(size=n) + 0.3 * df.e
    df["z"] = rng.normal(size=n)
    df["y"] = 0.7 * df.x - 1.3 * df.z + 0.1 * df.e + rng.normal(size=n)
    return df


@pytest.mark.parametrize("offset", [1e6, 1e8, 1e10])
def test_regressor_with_large_mean_is_not_absorbed(panel, offset) -> None:
    df = panel.assign(x_off=panel.x + offset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "absorbed" warning may be raised
        res = fastpanel.feols("y ~ x_off + z | e + t", df)
    beta, _, _ = _dummy_ols(df.y.to_numpy(), df[["x_off", "z"]].to_numpy() - [offset, 0], df.e, df.t)
    # the data themselves are rounded to eps * offset when the offset is added
    tol = 1e-12 + 4 * np.finfo(float).eps * offset
    np.testing.assert_allclose(res.params.to_numpy(), beta, rtol=tol, atol=tol)


def test_regressor_with_large_mean_alone(panel) -> None:
    df = panel.assign(x_off=panel.x + 1e8)
    res = fastpanel.feols("y ~ x_off | e + t", df)
    assert list(res.params.index) == ["x_off"]


def test_constant_and_absorbed_regressors_still_dropped(panel) -> None:
    df = panel.assign(c=5e7, ex=panel.e * 2.0 + 1e8)
    with pytest.warns(fastpanel.ols.CollinearityWarning, match="c, ex"):
        res = fastpanel.feols("y ~ x + c + ex | e + t", df)
    assert list(res.params.index) == ["x"]


@pytest.mark.parametrize("offset", [0.0, 1e7, 1e8, 1e9])
def test_r2_and_poolability_invariant_to_y_offset(panel, offset) -> None:
    base = fastpanel.PanelOLS(panel.y, panel[["x"]], panel.e).fit()
    res = fastpanel.feols("y ~ x | e", panel.assign(y=panel.y + offset))
    # oracle for R2: 1 - SSR / TSS around the mean
    _, u, rank = _dummy_ols(panel.y.to_numpy(), panel[["x"]].to_numpy(), panel.e)
    tss = ((panel.y - panel.y.mean()) ** 2).sum()
    np.testing.assert_allclose(res.rsquared, 1 - (u @ u) / tss, rtol=1e-9)
    np.testing.assert_allclose(res.rsquared_adj, base.rsquared_adj, rtol=1e-9)
    np.testing.assert_allclose(res.f_poolability["stat"], base.f_poolability["stat"], rtol=1e-8)


@pytest.mark.parametrize("scale", [1e-8, 1e8])
@pytest.mark.parametrize("vcov", ["iid", "HC1", {"CRV1": "e"}, {"CRV3": "e"}])
def test_standard_errors_scale_exactly(panel, scale, vcov) -> None:
    a = fastpanel.feols("y ~ x + z | e", panel, vcov=vcov)
    b = fastpanel.feols("y ~ x + z | e", panel.assign(x=panel.x * scale), vcov=vcov)
    np.testing.assert_allclose(b.params["x"] * scale, a.params["x"], rtol=1e-9)
    np.testing.assert_allclose(b.bse["x"] * scale, a.bse["x"], rtol=1e-8)
    np.testing.assert_allclose(b.bse["z"], a.bse["z"], rtol=1e-8)


def test_crv3_matches_leave_one_cluster_out_refits(panel) -> None:
    df = panel.assign(x=panel.x * 1e-8)
    res = fastpanel.feols("y ~ x + z | e", df, vcov={"CRV3": "e"}, ssc="statsmodels")
    full, _, _ = _dummy_ols(df.y.to_numpy(), df[["x", "z"]].to_numpy() * [1e8, 1], df.e)
    loo = []
    for g in np.unique(df.e):
        s = df[df.e != g]
        loo.append(_dummy_ols(s.y.to_numpy(), s[["x", "z"]].to_numpy() * [1e8, 1], s.e)[0])
    d = np.array(loo) - full
    G = len(loo)
    se = np.sqrt(np.diag((G - 1) / G * d.T @ d)) * [1e8, 1]  # slope on x * 1e-8 is 1e8 times larger
    np.testing.assert_allclose(res.bse.to_numpy(), se, rtol=1e-7)


def test_unused_categories_are_not_levels() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    n_e, T = 20, 5
    ent = np.repeat(np.arange(n_e), T).astype(str)
    x = rng.normal(size=n_e * T)
    y = 0.5 * x + rng.normal(size=n_e * T)
    cats = list(dict.fromkeys(ent)) + [f"unused{i}" for i in range(30)]
    cat = pd.Series(pd.Categorical(ent, categories=cats))
    res = fastpanel.PanelOLS(y, x, cat).fit()
    D = pd.get_dummies(ent).to_numpy(float)
    ref = sm.OLS(y, np.column_stack([x, D])).fit()
    np.testing.assert_allclose(res.bse.iloc[0], ref.bse[0], rtol=1e-9)
    assert res.df_resid == ref.df_resid
    pi = fastpanel.PanelIndex(cat, np.tile(np.arange(T), n_e))
    assert pi.n_entities == n_e and pi.is_balanced


def test_split_reports_rows_with_missing_group(panel) -> None:
    df = panel.assign(grp=np.where(np.arange(len(panel)) % 3 == 0, "a", "b").astype(object))
    df.loc[:29, "grp"] = None
    with pytest.warns(MissingSplitWarning, match="30 of"):
        res = fastpanel.feols("y ~ x", df, split="grp")
    assert all(r.n_missing_split == 30 for r in res.values())
    assert sum(r.nobs + r.n_dropped + r.n_singletons for r in res.values()) + 30 == len(df)
    assert "Missing split value" in res["a"].summary()


def test_split_names_the_failing_group(panel) -> None:
    df = panel.assign(grp=np.where(panel.e < 3, "tiny", "big"))
    df.loc[df.grp == "tiny", "x"] = 1.0  # constant x: absorbed in that group only
    with pytest.raises(ValueError, match="grp = 'tiny'"):
        fastpanel.feols("y ~ x | e", df, split="grp")


def test_duplicate_fixed_effect_is_refused(panel) -> None:
    with pytest.raises(ValueError, match="'e' more than once"):
        fastpanel.feols("y ~ x | e + e", panel)


def test_fixed_effects_copy_the_callers_ids() -> None:
    rng = np.random.default_rng(0)
    e = np.repeat(np.arange(10), 5)
    t = np.tile(np.arange(5), 10)
    X = rng.normal(size=(50, 1))
    y = X[:, 0] + rng.normal(size=50)
    model = fastpanel.PanelOLS(y, X, e, t, time_effects=True)
    before = model.fit().params.to_numpy()
    fe = fastpanel.FixedEffects([e, t])
    ref = fastpanel.within(X, fe)
    t[5] = 3
    t[7] = 10**7  # would index far out of range if the codes were a view
    np.testing.assert_array_equal(model.fit().params.to_numpy(), before)
    np.testing.assert_array_equal(fastpanel.within(X, fe), ref)
    assert not any(np.shares_memory(f.codes, t) for f in fe.factors)


def test_factor_validates_codes() -> None:
    with pytest.raises(ValueError, match="codes must lie in -1 .. 2"):
        fastpanel.Factor(np.array([0, 0, 1, 1, 2, 10**8]), np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="codes must lie"):
        fastpanel.Factor(np.array([0, -5]), np.array(["a"]))
    with pytest.raises(TypeError, match="integers"):
        fastpanel.Factor(np.array([0.5, 1.0]), np.array(["a", "b"]))
    codes = np.array([0, 1, 1, 0])
    f = fastpanel.Factor(codes, np.array(["a", "b"]))
    codes[0] = 7  # the factor keeps its own copy
    assert f.codes[0] == 0 and not f.codes.flags.writeable


def test_exact_fit_has_no_standard_errors() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"firm": [0, 0, 1, 1, 2, 2], "y": rng.normal(size=6), "x1": rng.normal(size=6),
                       "x2": rng.normal(size=6), "x3": rng.normal(size=6)})
    with pytest.raises(ValueError, match="fits the 6 observations exactly"):
        fastpanel.feols("y ~ x1 + x2 + x3 | firm", df, vcov={"CRV1": "firm"})


def test_driscoll_kraay_needs_two_periods(panel) -> None:
    df = panel[panel.t == 0]
    with pytest.raises(ValueError, match="at least 2 periods"):
        fastpanel.feols("y ~ x | e", df.assign(e=df.e % 5), vcov={"DK": 0}, time="t")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vcov": {"DK": "a"}}, "non-negative integer"),
        ({"vcov": {"DK": 1.7}}, "non-negative integer"),
        ({"collin_tol": float("nan")}, "collin_tol"),
        ({"collin_tol": -1}, "collin_tol"),
    ],
)
def test_fit_arguments_are_checked(panel, kwargs, match) -> None:
    model = fastpanel.PanelOLS(panel.y, panel[["x"]], panel.e, panel.t)
    with pytest.raises(ValueError, match=match):
        model.fit(**kwargs)


def test_cluster_array_of_wrong_length_is_named(panel) -> None:
    model = fastpanel.PanelOLS(panel.y, panel[["x"]], panel.e)
    with pytest.raises(ValueError, match="cluster array given as cluster variable 1 has") as info:
        model.fit(vcov={"CRV1": np.zeros(len(panel) - 1)})
    assert "'cluster0'" not in str(info.value)  # an internal key means nothing to the caller


def test_formula_syntax_error_has_no_colour_codes(panel) -> None:
    with pytest.raises(ValueError, match="cannot be parsed") as info:
        fastpanel.feols("y ~ x +", panel)
    assert "\x1b" not in str(info.value)


def test_tiny_regressor_asks_for_rescaling(panel) -> None:
    with pytest.raises(ValueError, match="rescale"):
        fastpanel.PanelOLS(panel.y, panel[["x"]] * 1e-170, panel.e).fit()


def test_etable_refuses_non_results(panel) -> None:
    res = fastpanel.feols("y ~ x | e", panel)
    with pytest.raises(TypeError, match=r"results\[1\] is a str"):
        fastpanel.etable([res, "x"])


def test_polars_lazyframe_is_refused(panel) -> None:
    pl = pytest.importorskip("polars")
    with pytest.raises(TypeError, match="collect"):
        fastpanel.feols("y ~ x | e", pl.from_pandas(panel).lazy())


def test_within_accepts_nullable_float_frames() -> None:
    df = pd.DataFrame({"a": pd.array([1.0, 2.0, 4.0, 8.0], dtype="Float64")})
    out = fastpanel.within(df, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(out[:, 0], [-0.5, 0.5, -2.0, 2.0])
    out = fastpanel.within(np.arange(4.0), np.array([0, 0, 1, 1]), tol=np.float32(1e-8))
    np.testing.assert_allclose(out, [-0.5, 0.5, -0.5, 0.5])


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_within_on_zero_columns_is_empty_on_every_backend(backend) -> None:
    out, info = fastpanel.within(np.empty((5, 0)), np.arange(5) % 2, backend=backend, return_info=True)
    assert out.shape == (5, 0) and info.method == "none"


@pytest.mark.parametrize("fml", ["y ~ x | e", "y ~ x"])
def test_empty_frame_is_a_clear_error(panel, fml) -> None:
    with pytest.raises(ValueError, match="data has no rows"):
        fastpanel.feols(fml, panel.iloc[:0])


def test_empty_arrays_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="y has no rows"):
        fastpanel.PanelOLS(np.empty(0), np.empty((0, 1)), np.empty(0)).fit()


def test_poolability_f_is_offset_invariant_with_dropped_rows():
    """The pooled SSR of the poolability F comes from centred data: a regressor 1e6 + noise left
    the raw [1, x] ill-conditioned and lstsq lost 5e-6 of it (rows with NaN take that path)."""
    rng = np.random.default_rng(12)
    n_e, T = 20_000, 8
    e = np.repeat(np.arange(n_e), T)
    t = np.tile(np.arange(T), n_e)
    x1, x2 = rng.normal(size=e.size), rng.normal(size=e.size)
    y = x1 - 0.5 * x2 + rng.normal(size=n_e)[e] + rng.normal(size=e.size)
    base = pd.DataFrame({"y": y, "x1": x1, "x2": x2, "e": e, "t": t})
    base.loc[5, "x1"] = np.nan  # not the in-place path: the raw data are kept
    shifted = base.assign(x2=base.x2 + 1e6, y=base.y - 0.5e6)
    a = fastpanel.feols("y ~ x1 + x2 | e + t", base).f_poolability["stat"]
    b = fastpanel.feols("y ~ x1 + x2 | e + t", shifted).f_poolability["stat"]
    assert b == pytest.approx(a, rel=1e-9)
