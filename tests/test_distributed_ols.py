"""``fastpanel.feols`` on a Dask DataFrame against the in-memory fit of the same rows, on a
``distributed.LocalCluster`` of two worker processes: unbalanced panels with gaps, rows in
random order, partitions that cut entities, NaN rows, singletons (entity and period, removed
iteratively), weights and 1e6 offsets; every supported covariance type and preset (statsmodels'
two-way df count the connected sets of the entity-period graph: a second, disconnected block of
entities and periods is added to test it). The
in-memory fit is itself checked against pyfixest, statsmodels and linearmodels elsewhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from _dask_killer import kill_busy_worker, one_worker_died
from fastpanel.ols.model import CollinearityWarning

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")


def panel(seed: int, N: int = 300, T: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(rng.random(N * T) < 0.75)
    rows = rows[rng.permutation(rows.size)]
    e, t = rows // T, rows % T
    n = rows.size
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n) + 1e6, "firm": e * 31 + 7,
                       "year": t + 1990, "w": rng.uniform(0.5, 2.0, n)})
    df["y"] = df.x1 - 0.5 * df.x2 + rng.normal(size=N)[e] + rng.normal(size=T)[t] + rng.normal(size=n)
    df.loc[df.index[[3, 40]], "x1"] = np.nan  # dropped and counted
    single = pd.DataFrame({"x1": [0.3, 0.1], "x2": [1e6, 1e6 + 1], "firm": [10**6, 10**6 + 1], "year": [1990, 2005],
                           "w": [1.0, 1.0], "y": [0.2, 0.4]})  # an entity singleton; a period seen once
    block = df.iloc[: n // 10].assign(firm=lambda d: d.firm + 10**7, year=lambda d: d.year + 100)  # disconnected
    return pd.concat([df, single, block], ignore_index=True)


def same(a, b) -> None:
    assert (a.nobs, a.n_dropped, a.n_singletons) == (b.nobs, b.n_dropped, b.n_singletons)
    assert a.df_resid == b.df_resid and a.df_t == b.df_t
    assert list(a.params.index) == list(b.params.index)
    np.testing.assert_allclose(b.params.to_numpy(), a.params.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.bse.to_numpy(), a.bse.to_numpy(), rtol=1e-10)
    for attr in ("ssr", "rsquared", "rsquared_within", "fvalue"):
        assert getattr(b, attr) == pytest.approx(getattr(a, attr), rel=1e-10)
    assert b.f_poolability["stat"] == pytest.approx(a.f_poolability["stat"], rel=1e-9)


VCOVS = ["iid", "HC0", "HC1", {"CRV1": "firm"}, {"CRV1": "year"}, {"CRV1": "firm+year"}, {"DK": 2}, {"DK": None}]


@pytest.mark.parametrize("vcov", VCOVS, ids=str)
@pytest.mark.parametrize("ssc", ["fixest", "linearmodels", "statsmodels"])
@pytest.mark.parametrize("weights", [None, "w"])
def test_two_way_equals_in_memory(dask_client, vcov, ssc, weights) -> None:
    df = panel(1)
    ddf = dd.from_pandas(df, npartitions=5, sort=False)
    kw = {"time": "year"} if "DK" in str(vcov) else {}
    want = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov=vcov, ssc=ssc, weights=weights, **kw)
    got = fastpanel.feols("y ~ x1 + x2 | firm + year", ddf, vcov=vcov, ssc=ssc, weights=weights, **kw)
    assert want.n_singletons >= 2  # the entity singleton and the row of the lone period
    same(want, got)


@pytest.mark.parametrize("vcov", ["iid", "HC1", "HC2", "HC3", {"CRV1": "firm"}, {"CRV3": "firm"}, {"DK": 1}], ids=str)
@pytest.mark.parametrize("ssc", ["fixest", "linearmodels", "statsmodels"])
@pytest.mark.parametrize("weights", [None, "w"])
def test_one_way_equals_in_memory(dask_client, vcov, ssc, weights) -> None:
    df = panel(2)
    kw = {"time": "year"} if "DK" in str(vcov) else {}
    want = fastpanel.feols("y ~ x1 + x2 | firm", df, vcov=vcov, ssc=ssc, weights=weights, **kw)
    got = fastpanel.feols("y ~ x1 + x2 | firm", dd.from_pandas(df, npartitions=3, sort=False), vcov=vcov,
                          ssc=ssc, weights=weights, **kw)
    same(want, got)


def test_partitioning_does_not_change_the_numbers(dask_client) -> None:
    df = panel(3)
    fits = [fastpanel.feols("y ~ x1 + x2 | firm + year", dd.from_pandas(df, npartitions=k, sort=False),
                            vcov={"CRV1": "firm"}) for k in (1, 2, 7)]
    for f in fits[1:]:
        np.testing.assert_allclose(f.params.to_numpy(), fits[0].params.to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(f.bse.to_numpy(), fits[0].bse.to_numpy(), rtol=1e-12)


def test_collinear_regressor_dropped_by_name(dask_client) -> None:
    df = panel(4).assign(x3=lambda d: 2 * d.x1)
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    with pytest.warns(CollinearityWarning, match="x3"):
        got = fastpanel.feols("y ~ x1 + x3 + x2 | firm + year", ddf)
    with pytest.warns(CollinearityWarning, match="x3"):
        want = fastpanel.feols("y ~ x1 + x3 + x2 | firm + year", df)
    same(want, got)


def test_worker_dies_during_the_fit(dask_client) -> None:
    """A worker SIGKILLed while partitions are processed: Dask reruns its tasks and the fit is
    still exactly the in-memory one."""
    df = panel(5, N=20_000, T=8)
    ddf = dd.from_pandas(df, npartitions=24, sort=False)
    thread, pids = kill_busy_worker(dask_client)
    got = fastpanel.feols("y ~ x1 + x2 | firm + year", ddf, vcov={"CRV1": "firm"})
    thread.join()
    same(fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "firm"}), got)
    assert one_worker_died(dask_client, pids)


def test_unsupported_and_bad_input(dask_client) -> None:
    df = panel(6, N=40)
    ddf = dd.from_pandas(df, npartitions=2, sort=False)
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] are not in the Dask DataFrame"):
        fastpanel.feols("y ~ x1 + nope | firm", ddf)
    with pytest.raises(ValueError, match="on Dask, feols supports"):
        fastpanel.feols("y ~ x1 | firm + year + x2", ddf)
    with pytest.raises(ValueError, match="on Dask, feols supports"):
        fastpanel.feols("y ~ x1", ddf)
    with pytest.raises(ValueError, match="one fixed-effect dimension"):
        fastpanel.feols("y ~ x1 | firm + year", ddf, vcov="HC3")
    with pytest.raises(ValueError, match="on Dask, feols supports"):
        fastpanel.feols("y ~ x1 | firm + year", ddf, vcov={"CRV3": "firm"})
    with pytest.raises(ValueError, match="among the fixed effects"):
        fastpanel.feols("y ~ x1 | firm", ddf, vcov={"CRV1": "year"})
    with pytest.raises(ValueError, match="not available on Dask"):
        fastpanel.feols("y ~ x1 | firm", ddf, split="year")
    with pytest.raises(ValueError, match="needs the period column"):
        fastpanel.feols("y ~ x1 | firm", ddf, vcov={"DK": 1})
    neg = dd.from_pandas(df.assign(w=-1.0), npartitions=2)
    with pytest.raises(ValueError, match="must be positive"):
        fastpanel.feols("y ~ x1 | firm", neg, weights="w")


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
@pytest.mark.parametrize("fml", ["y ~ np.log(pos) + I(x1**2) + x1:w | firm + year", "np.log(pos + 10) ~ x1 + x2 | firm"])
def test_formula_terms_equal_in_memory(dask_client, fml) -> None:
    """Row-wise terms are built per partition by the in-memory design code; a log of a
    negative value gives a NaN row, dropped and counted the same way."""
    df = panel(7).assign(pos=lambda d: np.exp(d.x1.fillna(0.0)))
    df.loc[df.index[10], "pos"] = -1.0
    want = fastpanel.feols(fml, df, vcov={"CRV1": "firm"})
    got = fastpanel.feols(fml, dd.from_pandas(df, npartitions=4, sort=False), vcov={"CRV1": "firm"})
    assert got.dependent == want.dependent
    same(want, got)


def test_categorical_terms_refused(dask_client) -> None:
    ddf = dd.from_pandas(panel(8, N=40), npartitions=2, sort=False)
    with pytest.raises(ValueError, match="categorical terms"):
        fastpanel.feols("y ~ x1 + C(year) | firm", ddf)
