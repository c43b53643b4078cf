"""IV (2SLS) on a Dask DataFrame against the in-memory fit of the same rows, on the two-process
``distributed.LocalCluster`` of the Dask tests: an unbalanced panel in random order with gaps,
partitions that cut entities, a NaN in an instrument, singletons, weights, a second block of
entities and periods that is not connected to the first (statsmodels' two-way df); one and two
endogenous regressors; every supported covariance type and preset. The in-memory IV fit is itself
checked against pyfixest and linearmodels (tests/test_iv.py), so the oracle here is independent of
the Dask code path: every number of the Dask fit comes from partition sums, none from rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.ols import CollinearityWarning, WeakInstrumentWarning

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

RTOL = 1e-10  # the same sums, added in another order: rounding only


def panel(seed: int, N: int = 240, T: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(rng.random(N * T) < 0.8)
    rows = rows[rng.permutation(rows.size)]
    e, t = rows // T, rows % T
    n = rows.size
    df = pd.DataFrame({"firm": e * 7 + 3, "year": t + 2000, "x": rng.normal(size=n), "z1": rng.normal(size=n),
                       "z2": rng.normal(size=n), "z3": rng.normal(size=n) + 1e6, "w": rng.uniform(0.5, 2.0, n)})
    v = rng.normal(size=n)
    df["d1"] = df.z1 + 0.5 * df.z2 + 0.3 * df.x + v + rng.normal(size=N)[e]
    df["d2"] = df.z2 - 0.4 * (df.z3 - 1e6) + 0.5 * rng.normal(size=n)
    df["y"] = df.x + 0.5 * df.d1 - 0.3 * df.d2 + v + rng.normal(size=N)[e] + rng.normal(size=T)[t] + rng.normal(size=n)
    df.loc[df.index[7], "z1"] = np.nan  # dropped and counted
    single = df.iloc[:1].assign(firm=10**6)  # an entity singleton
    block = df.iloc[: n // 8].assign(firm=lambda d: d.firm + 10**7, year=lambda d: d.year + 100)  # disconnected
    return pd.concat([df, single, block], ignore_index=True)


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))) if a.size else 0.0


def same_iv(a, b) -> None:
    """b (Dask) equals a (in memory): the fit, the first stages and every diagnostic."""
    assert (a.nobs, a.n_dropped, a.n_singletons) == (b.nobs, b.n_dropped, b.n_singletons)
    assert list(a.params.index) == list(b.params.index)
    assert (a.exog_names, a.endog_names, a.instrument_names) == (b.exog_names, b.endog_names, b.instrument_names)
    assert a.df_resid == b.df_resid and a.df_t == b.df_t
    for got, want in [(b.params, a.params), (b.bse, a.bse), (b.first_stage_f, a.first_stage_f), (b.sw_f, a.sw_f),
                      ([b.ssr, b.rsquared, b.rsquared_within, b.fvalue], [a.ssr, a.rsquared, a.rsquared_within, a.fvalue])]:
        assert _rel(got, want) <= RTOL
    for d in a.endog_names:
        fa, fb = a.first_stage[d], b.first_stage[d]
        assert list(fa.params.index) == list(fb.params.index)
        assert _rel(fb.params, fa.params) <= RTOL and _rel(fb.bse, fa.bse) <= RTOL
        assert fa.df_t == fb.df_t
    if len(a.endog_names) > 1:
        assert a.kp_rk_df == b.kp_rk_df
        assert _rel([b.kp_rk_wald, b.kp_rk_wald_f], [a.kp_rk_wald, a.kp_rk_wald_f]) <= RTOL
    ta, tb = a.dwh(), b.dwh()
    assert _rel([tb.stat, tb.pvalue], [ta.stat, ta.pvalue]) <= 1e-9 and ta.df_num == tb.df_num


VCOVS = ["iid", "HC0", "HC1", {"CRV1": "firm"}, {"CRV1": "year"}, {"CRV1": "firm+year"}, {"DK": 2}]
FORMULAS = ["y ~ x | firm + year | d1 ~ z1 + z2", "y ~ x | firm + year | d1 + d2 ~ z1 + z2 + z3",
            "y ~ 1 | firm + year | d1 + d2 ~ z1 + z2 + z3"]


@pytest.fixture(scope="module")
def frames():
    df = panel(1)
    return df, dd.from_pandas(df, npartitions=5, sort=False)


# every preset on the two-endogenous formula; the other formulas under fixest's in every CI run
# and under the other presets in the slow run (pytest -m slow)
CASES = [pytest.param(f, s, id=f"{i}-{s}", marks=() if (i == 1 or s == "fixest") else pytest.mark.slow)
         for i, f in enumerate(FORMULAS) for s in ("fixest", "linearmodels", "statsmodels")]


@pytest.mark.parametrize("fml, ssc", CASES)
@pytest.mark.parametrize("vcov", VCOVS, ids=str)
def test_two_way_iv_equals_in_memory(dask_client, frames, fml, vcov, ssc) -> None:
    df, ddf = frames
    kw = {"time": "year"} if "DK" in str(vcov) else {}
    want = fastpanel.feols(fml, df, vcov=vcov, ssc=ssc, **kw)
    got = fastpanel.feols(fml, ddf, vcov=vcov, ssc=ssc, **kw)
    assert type(got).__name__ == "DaskIVResults"
    same_iv(want, got)


@pytest.mark.parametrize("vcov", ["iid", "HC1", {"CRV1": "firm"}, {"DK": 1}], ids=str)
@pytest.mark.parametrize("weights", [None, "w"])
def test_one_way_weighted_iv_equals_in_memory(dask_client, frames, vcov, weights) -> None:
    df, ddf = frames
    fml = "y ~ x | firm | d1 + d2 ~ z1 + z2 + z3"
    kw = {"time": "year"} if "DK" in str(vcov) else {}
    same_iv(fastpanel.feols(fml, df, vcov=vcov, weights=weights, **kw),
            fastpanel.feols(fml, ddf, vcov=vcov, weights=weights, **kw))


def test_partitioning_does_not_change_the_fit(dask_client, frames) -> None:
    df, _ = frames
    fml = "y ~ x | firm + year | d1 + d2 ~ z1 + z2 + z3"
    a = fastpanel.feols(fml, dd.from_pandas(df, npartitions=2, sort=False), vcov={"CRV1": "firm"})
    b = fastpanel.feols(fml, dd.from_pandas(df.sample(frac=1.0, random_state=3), npartitions=7, sort=False),
                        vcov={"CRV1": "firm"})
    same_iv(a, b)


def test_collinear_instrument_is_dropped_and_named_as_in_memory(dask_client, frames) -> None:
    df, _ = frames
    df = df.assign(z4=2.0 * df.z1 - df.z2)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    fml = "y ~ x | firm + year | d1 ~ z1 + z2 + z4"
    with pytest.warns(CollinearityWarning, match="z4"):
        want = fastpanel.feols(fml, df, vcov="HC1")
    with pytest.warns(CollinearityWarning, match="z4"):
        got = fastpanel.feols(fml, ddf, vcov="HC1")
    assert got.instrument_names == ["z1", "z2"]
    same_iv(want, got)


def test_weak_instrument_warns_as_in_memory(dask_client, frames) -> None:
    df, _ = frames
    rng = np.random.default_rng(5)
    df = df.assign(noise=rng.normal(size=len(df)))
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    with pytest.warns(WeakInstrumentWarning, match="first-stage F"):
        fastpanel.feols("y ~ x | firm | d1 ~ noise", ddf, vcov={"CRV1": "firm"})


def test_under_identified_raises(dask_client, frames) -> None:
    _, ddf = frames
    with pytest.raises(ValueError, match="under-identified"):
        fastpanel.feols("y ~ x | firm | d1 + d2 ~ z1", ddf)


@pytest.mark.parametrize("vcov, match", [("HC3", "leverage"), ({"CRV3": "firm"}, "leave-one-cluster-out")], ids=str)
def test_refuses_what_it_does_not_compute_and_says_why(frames, vcov, match) -> None:
    _, ddf = frames
    with pytest.raises(ValueError, match=match):
        fastpanel.feols("y ~ x | firm | d1 ~ z1 + z2", ddf, vcov=vcov)


def test_refuses_formula_terms_in_the_iv_part(frames) -> None:
    _, ddf = frames
    with pytest.raises(ValueError, match="named by column"):
        fastpanel.feols("y ~ x | firm | d1 ~ np.log(w)", ddf)


def test_listed_twice_raises(frames) -> None:
    _, ddf = frames
    with pytest.raises(ValueError, match="'x' is listed both"):
        fastpanel.feols("y ~ x | firm | x ~ z1", ddf)


def test_summary_of_a_dask_iv_fit(dask_client, frames) -> None:
    _, ddf = frames
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fastpanel.feols("y ~ x | firm + year | d1 + d2 ~ z1 + z2 + z3", ddf, vcov={"CRV1": "firm"})
    text = res.summary()
    assert text.startswith("IV (2SLS) with fixed effects") and "KP rk Wald F" in text
