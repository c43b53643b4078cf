"""``fastpanel.threshold`` on a Dask DataFrame against the in-memory fit of the same rows, on a
``distributed.LocalCluster`` of two worker processes: unbalanced panels with gaps in the middle
of entities, rows in random order, partitions that cut entities, string ids, NaN rows (dropped
and counted), one, two and three thresholds, both conventions, the wild bootstrap. The wild
weights are keyed by (seed, test, replicate, entity label), so the bootstrap p-values and
critical values are the in-memory ones for any partitioning. The in-memory fit is itself checked
against Hansen's programs and a naive loop elsewhere (test_threshold*.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fastpanel
from _dask_killer import kill_busy_worker, one_worker_died
from fastpanel.ols.model import CollinearityWarning
from fastpanel.panel_threshold.bootstrap import entity_keys, wild_weights

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")


def panel(seed: int, N: int = 80, T: int = 9, offset: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keep = rng.random(N * T) < 0.8  # gaps anywhere, also in the middle of an entity's periods
    cells = np.flatnonzero(keep)
    cells = cells[rng.permutation(cells.size)]  # rows in random order
    e, t = cells // T, cells % T
    n = cells.size
    df = pd.DataFrame({"firm": [f"f{v:03d}" for v in e * 7 + 3], "year": t + 2001,
                       "q": rng.gamma(2.0, size=n).round(2), "z": rng.normal(size=n),
                       "x1": rng.normal(size=n) + offset, "x2": rng.normal(size=n)})
    slope = np.select([df.q <= 1.0, df.q <= 2.5], [1.0, -0.5], 0.6)
    df["y"] = 0.5 * df.x1 - df.x2 + slope * df.z + rng.normal(size=N)[e] + 0.5 * rng.normal(size=n)
    df.loc[df.index[[5, 17]], "y"] = np.nan  # dropped and counted
    df.loc[df.index[9], "q"] = np.inf
    return df


KW = dict(threshold_var="q", regime_vars="z", time="year", n_boot=19, seed=7, bootstrap="wild", trim=0.05,
          grid=60, progress=False)


def same(a, b, rtol: float = 1e-10, lr: bool = True) -> None:
    """The Dask fit ``b`` equals the in-memory fit ``a``."""
    assert (a.nobs, a.n_dropped, a.df_resid) == (b.nobs, b.n_dropped, b.df_resid)
    np.testing.assert_array_equal(b.thresholds, a.thresholds)
    np.testing.assert_array_equal(b.grid, a.grid)
    for sa, sb in zip(a.ci_sets, b.ci_sets):
        np.testing.assert_array_equal(sb, sa)
    ta, tb = a.tests, b.tests
    np.testing.assert_array_equal(tb["pvalue"].to_numpy(), ta["pvalue"].to_numpy())
    np.testing.assert_array_equal(tb["n_boot"].to_numpy(), ta["n_boot"].to_numpy())
    for col in ("F", "ssr", "crit10", "crit5", "crit1"):
        np.testing.assert_allclose(tb[col].to_numpy(), ta[col].to_numpy(), rtol=rtol)
    for Fa, Fb in zip(a.boot_F, b.boot_F):
        np.testing.assert_allclose(Fb, Fa, rtol=rtol * 100, atol=1e-12)
    assert a.ssr0 == pytest.approx(b.ssr0, rel=rtol)
    assert list(b.params.index) == list(a.params.index)
    for attr in ("params", "bse", "bse_robust", "bse_cluster"):
        np.testing.assert_allclose(getattr(b, attr).to_numpy(), getattr(a, attr).to_numpy(), rtol=rtol * 10)
    assert b.ssr == pytest.approx(a.ssr, rel=rtol) and b.rsquared == pytest.approx(a.rsquared, rel=rtol)
    for k in range(1, len(a.thresholds) + 1 if lr else 1):
        ga, la = a.lr_curve(k)
        gb, lb = b.lr_curve(k)
        np.testing.assert_array_equal(gb, ga)
        np.testing.assert_array_equal(np.isinf(lb), np.isinf(la))
        ok = np.isfinite(la)
        np.testing.assert_allclose(lb[ok], la[ok], rtol=1e-7, atol=1e-7)
    assert a.n_selected == b.n_selected


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("conventions,effects", [("default", "firm"), ("hansen1999", "firm"),
                                                 ("default", "firm + year")])
def test_equals_in_memory(dask_client, K, conventions, effects) -> None:
    df = panel(K)
    fml = f"y ~ x1 + x2 | {effects}"
    want = fastpanel.threshold(fml, df, n_thresholds=K, conventions=conventions, **KW)
    got = fastpanel.threshold(fml, dd.from_pandas(df, npartitions=6, sort=False),
                              n_thresholds=K, conventions=conventions, **KW)
    assert want.n_dropped == 3
    same(want, got)
    pd.testing.assert_frame_equal(got.regime_shares(), want.regime_shares())
    for k in range(K + 1):  # computed during the fit: the result holds no data on the cluster
        pd.testing.assert_frame_equal(got.params_for(k), want.params_for(k), rtol=1e-9)
    assert got.model._run is None


@pytest.mark.parametrize("weights", ["mammen", "webb"])
def test_weight_distributions_and_no_period_column(dask_client, weights) -> None:
    df = panel(11)
    kw = dict(KW, weights=weights, time=None)
    want = fastpanel.threshold("y ~ x1 + x2 | firm", df, n_thresholds=2, **kw)
    got = fastpanel.threshold("y ~ x1 + x2 | firm", dd.from_pandas(df, npartitions=4, sort=False),
                              n_thresholds=2, **kw)
    same(want, got)


def test_balanced_two_way(dask_client) -> None:
    """A balanced panel: in memory the two-way quadratic form is the closed form (entity, period
    and one global group); on Dask the general period-Schur form. Also time_effects=True."""
    df = panel(12, N=40, T=7)
    full = pd.MultiIndex.from_product([df.firm.unique(), df.year.unique()], names=["firm", "year"])
    rng = np.random.default_rng(0)
    bal = pd.DataFrame(index=full).reset_index()
    bal = bal.assign(q=rng.gamma(2.0, size=len(bal)).round(2), z=rng.normal(size=len(bal)),
                     x1=rng.normal(size=len(bal)), x2=rng.normal(size=len(bal)))
    bal["y"] = bal.x1 + np.where(bal.q <= 1.5, 1.0, -1.0) * bal.z + rng.normal(size=len(bal))
    bal = bal.sample(frac=1.0, random_state=2)
    kw = dict(KW, time_effects=True)
    want = fastpanel.threshold("y ~ x1 + x2 | firm", bal, n_thresholds=2, **kw)
    got = fastpanel.threshold("y ~ x1 + x2 | firm", dd.from_pandas(bal, npartitions=3, sort=False),
                              n_thresholds=2, **kw)
    same(want, got)


@pytest.mark.parametrize("effects", ["firm", "firm + year"])
def test_singletons_empty_partitions_and_dates(dask_client, effects) -> None:
    """An entity seen once, a period seen only in a dropped row, datetime periods, and more
    partitions than entities (most of them empty after the shuffle)."""
    df = panel(21, N=12, T=8)
    extra = pd.DataFrame({"firm": ["solo", "f999", "f999"], "year": [2003, 2001, 2030], "q": [1.0, 2.0, 3.0],
                          "z": [0.1, 0.2, 0.3], "x1": [0.5, 0.1, 0.2], "x2": [0.3, 0.2, np.nan],
                          "y": [1.0, 2.0, 3.0]})
    df = pd.concat([df, extra], ignore_index=True).sample(frac=1.0, random_state=3)
    df["year"] = pd.to_datetime(df["year"].astype(str) + "-01-01")
    kw = dict(KW, grid=30)
    fml = f"y ~ x1 + x2 | {effects}"
    want = fastpanel.threshold(fml, df, n_thresholds=2, **kw)
    got = fastpanel.threshold(fml, dd.from_pandas(df, npartitions=30, sort=False), n_thresholds=2, **kw)
    assert want.n_dropped == 4
    same(want, got)
    pd.testing.assert_frame_equal(got.regime_shares(), want.regime_shares())


def test_partitioning_does_not_change_the_numbers(dask_client) -> None:
    df = panel(3)
    fits = [fastpanel.threshold("y ~ x1 + x2 | firm", dd.from_pandas(df, npartitions=p, sort=False),
                                n_thresholds=2, **KW) for p in (1, 3, 11)]
    for f in fits[1:]:
        same(fits[0], f)


@pytest.mark.parametrize("grid", [60, "exact"])
def test_grid_from_the_distributed_sort(dask_client, monkeypatch, grid) -> None:
    """Many distinct values of q: the grid comes from value counts sorted on the workers (forced
    here by a gather limit of 0) and is exactly the in-memory grid."""
    from fastpanel.distributed import threshold as dt

    monkeypatch.setattr(dt, "GATHER_DISTINCT_MAX", 0)
    df = panel(9).assign(q=lambda d: np.where(np.arange(len(d)) % 3 == 0, d.q.round(1), d.q + 1e-3 * d.x2))
    kw = dict(KW, grid=grid, trim=0.1)
    want = fastpanel.threshold("y ~ x1 + x2 | firm", df, n_thresholds=2, **kw)
    got = fastpanel.threshold("y ~ x1 + x2 | firm", dd.from_pandas(df, npartitions=5, sort=False),
                              n_thresholds=2, **kw)
    same(want, got)


def test_in_memory_draws_do_not_depend_on_row_order_or_coding() -> None:
    """The keyed weights: shuffled rows and ids recoded as integers (same order of labels) give
    the same bootstrap draws, hence the same p-values and critical values."""
    df = panel(4)
    a = fastpanel.threshold("y ~ x1 + x2 | firm", df, n_thresholds=2, **KW)
    b = fastpanel.threshold("y ~ x1 + x2 | firm", df.sample(frac=1.0, random_state=9), n_thresholds=2, **KW)
    same(a, b)
    # another seed, other draws
    c = fastpanel.threshold("y ~ x1 + x2 | firm", df, n_thresholds=2, **dict(KW, seed=8))
    assert not np.allclose(c.boot_F[0], a.boot_F[0])


def test_wild_weights_generator() -> None:
    keys = entity_keys(np.arange(4000))
    assert np.unique(keys).size == 4000
    np.testing.assert_array_equal(entity_keys(np.array([5.0, 7.0])), entity_keys(np.array([5, 7])))
    full = wild_weights(1, 2, 0, 300, keys, "webb")
    np.testing.assert_array_equal(wild_weights(1, 2, 120, 30, keys, "webb"), full[120:150])  # counter based
    np.testing.assert_array_equal(wild_weights(1, 2, 0, 300, keys[::-1], "webb"), full[:, ::-1])  # keyed
    for w, third in (("rademacher", 0.0), ("mammen", 1.0), ("webb", 0.0)):
        W = wild_weights(3, 1, 0, 500, keys, w)
        assert abs(W.mean()) < 0.01 and abs(W.var() - 1) < 0.01 and abs((W ** 3).mean() - third) < 0.02
    assert abs(np.corrcoef(wild_weights(3, 1, 0, 500, keys, "rademacher")[:, :50].T)[np.triu_indices(50, 1)]).max() < 0.25
    assert not np.array_equal(wild_weights(3, 1, 0, 5, keys, "rademacher"), wild_weights(3, 2, 0, 5, keys, "rademacher"))


def test_formula_terms_collinear_and_offset(dask_client) -> None:
    """Row-wise terms (a log of a non-positive value: the row is dropped and counted), a
    collinear regressor (dropped by name, as in memory) and a 1e8 offset."""
    df = panel(6, offset=1e8).assign(w=lambda d: np.exp(d.x2) * np.where(np.arange(len(d)) == 4, -1.0, 1.0))
    df["x3"] = df.x2 * 2.0 - 1.0
    fml = "y ~ x1 + np.log(w) + x3 | firm"
    with pytest.warns(CollinearityWarning, match="x3"):
        want = fastpanel.threshold(fml, df, n_thresholds=2, **KW)
    with pytest.warns(CollinearityWarning, match="x3"):
        got = fastpanel.threshold(fml, dd.from_pandas(df, npartitions=5, sort=False), n_thresholds=2, **KW)
    assert want.dropped_regressors == got.dropped_regressors == ["x3"]
    assert got.n_dropped == want.n_dropped == 4
    # the in-memory engine transforms the raw 1e8 columns: ~1e-8 of their digits are rounding
    same(want, got, rtol=1e-7)


def test_near_perfect_fit_is_recomputed_exactly(dask_client) -> None:
    """A fit so good that the sweep's difference cancels: the SSRs are recomputed by a TSQR."""
    df = panel(8)
    df["y"] = 0.5 * df.x1 + np.where(df.q <= 1.5, 1.0, -1.0) * df.z + 1e-7 * np.random.default_rng(0).normal(size=len(df))
    kw = dict(KW, n_boot=5, grid="exact")  # the true threshold 1.5 is a candidate
    with pytest.warns(RuntimeWarning, match="fits almost perfectly"):
        want = fastpanel.threshold("y ~ x1 + x2 | firm", df, n_thresholds=2, **kw)
    with pytest.warns(RuntimeWarning, match="fits almost perfectly"):
        got = fastpanel.threshold("y ~ x1 + x2 | firm", dd.from_pandas(df, npartitions=4, sort=False),
                                  n_thresholds=2, **kw)
    assert want.tests["ssr"].iloc[0] < 1e-9 * want.ssr0  # the cancellation case
    # Both sides hold ~9 digits here (the residual is 1e-7 of y, and F is a difference of two such
    # SSRs); the sweep alone, without the recomputation, would hold ~2 (eps e0'e0 / S ~ 1e-3).
    same(want, got, rtol=1e-6, lr=False)  # the LR curves are noise here: both fits say so


def test_unsupported_and_bad_input(dask_client) -> None:
    df = panel(2)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    with pytest.raises(ValueError, match="further absorbed effects"):
        fastpanel.threshold("y ~ x1 | firm + year + q", ddf, **KW)
    with pytest.raises(ValueError, match="conventions='default'"):
        fastpanel.threshold("y ~ x1 | firm + year", ddf, **dict(KW, conventions="hansen1999"))
    with pytest.raises(ValueError, match="needs the period"):
        fastpanel.threshold("y ~ x1 | firm", ddf, **dict(KW, time=None, time_effects=True))
    with pytest.raises(ValueError, match="residual bootstrap"):
        fastpanel.threshold("y ~ x1 | firm", ddf, **dict(KW, bootstrap="residual"))
    no_scheme = {k: v for k, v in KW.items() if k != "bootstrap"}
    with pytest.raises(ValueError, match="pass bootstrap='wild'"):  # not silently another test
        fastpanel.threshold("y ~ x1 | firm", ddf, **no_scheme)
    no_draws = fastpanel.threshold("y ~ x1 | firm", ddf, **dict(no_scheme, n_boot=0))  # no test: no scheme needed
    assert np.isnan(no_draws.tests["pvalue"].iloc[0])
    with pytest.raises(ValueError, match="Numba"):
        fastpanel.threshold("y ~ x1 | firm", ddf, **dict(KW, backend="cuda"))
    with pytest.raises(ValueError, match=r"\['nope'\]"):
        fastpanel.threshold("y ~ nope | firm", ddf, **KW)
    with pytest.raises(ValueError, match="C\\(...\\)"):
        fastpanel.threshold("y ~ C(year) | firm", ddf, **KW)
    with pytest.raises(ValueError, match="also appear among the regressors"):
        fastpanel.threshold("y ~ x1 + z | firm", ddf, **KW)
    with pytest.raises(ValueError, match="needs the period"):
        fastpanel.threshold("y ~ x1 | firm", ddf, **dict(KW, time=None, conventions="hansen1999"))
    dup = dd.from_pandas(pd.concat([df, df.iloc[:1]]), npartitions=3, sort=False)
    with pytest.raises(ValueError, match="twice"):
        fastpanel.threshold("y ~ x1 | firm", dup, **KW)
    with pytest.raises(ValueError, match="n_thresholds"):
        fastpanel.threshold("y ~ x1 | firm", ddf, **dict(KW, n_thresholds=4))
    with pytest.raises(ValueError, match="is also in X"):
        fastpanel.threshold("y ~ x1 + x4 | firm", dd.from_pandas(df.assign(x4=df.z), npartitions=3), **KW)


def test_worker_dies_during_the_fit(dask_client) -> None:
    """A worker SIGKILLed while partitions are processed: Dask reruns its tasks and the fit is
    still exactly the in-memory one."""
    df = panel(5, N=3000, T=8)
    ddf = dd.from_pandas(df, npartitions=12, sort=False)
    kw = dict(KW, n_boot=9)
    thread, pids = kill_busy_worker(dask_client, delay=1.0)  # into the sequence's rounds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # distributed's notice about the lost worker
        got = fastpanel.threshold("y ~ x1 + x2 | firm", ddf, n_thresholds=2, **kw)
    thread.join()
    same(fastpanel.threshold("y ~ x1 + x2 | firm", df, n_thresholds=2, **kw), got)
    assert one_worker_died(dask_client, pids)
