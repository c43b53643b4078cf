"""Clustering on three or more variables (Cameron-Gelbach-Miller inclusion-exclusion), the
eigenvalue fix, bad input, Dask and the command line.

Expected values come from a plain NumPy reference written here: OLS on the explicit
dummy-variable design, the cluster score sums of every non-empty subset of the cluster
variables (intersections formed by pandas), signed and scaled per preset. The reference is
itself checked against statsmodels' two-way ``cov_cluster_2groups`` and pyfixest's two-way CRV1
(the largest number of cluster variables those peers support; pyfixest 0.60 refuses three).
"""

from __future__ import annotations

import json
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from _ols_data import assert_close
from fastpanel.ols import NonPSDCovarianceWarning

RTOL = 1e-8
XS = ["x1", "x2", "x3"]


def multi_panel(seed: int, n_entities: int = 40, n_periods: int = 8) -> pd.DataFrame:
    """Unbalanced panel in shuffled row order with several crossed and nested cluster variables."""
    rng = np.random.default_rng(seed)
    e = np.repeat(np.arange(n_entities), n_periods)
    t = np.tile(np.arange(n_periods), n_entities)
    keep = rng.random(e.size) < 0.8
    keep[t < 2] = True  # two periods per entity: no singletons
    e, t = e[keep], t[keep]
    n = e.size
    a, g = rng.normal(size=n_entities)[e], rng.normal(size=n_periods)[t]
    df = pd.DataFrame({"entity": e * 3 + 100, "year": t + 2000})
    df["x1"] = rng.normal(size=n) + 0.5 * a
    df["x2"] = rng.normal(size=n) + 0.3 * g
    df["x3"] = rng.gamma(2.0, size=n)
    shock = rng.normal(size=13)
    df["cl"] = rng.integers(0, 13, size=n)
    df["c3"] = rng.integers(0, 9, size=n)
    df["c4"] = [f"k{v}" for v in rng.integers(0, 6, size=n)]  # text ids
    df["region"] = e // 5  # entities nested in regions
    df["y"] = (0.5 * df.x1 - 0.3 * df.x2 + 0.1 * df.x3 + a + g + shock[df.cl]
               + rng.normal(size=n) * (1 + 0.4 * np.abs(df.x1)))
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


DATA = {"seed1": multi_panel(1), "seed2": multi_panel(2)}


# -- the NumPy reference ------------------------------------------------------------------------
def _nested(df: pd.DataFrame, fe: str, cluster: str) -> bool:
    """Every level of the fixed effect lies in one cluster."""
    return bool((df.groupby(fe)[cluster].nunique() == 1).all())


def reference_vcov(df: pd.DataFrame, fes: list[str], clusters: list[str], ssc: str,
                   weights: str | None = None) -> tuple[np.ndarray, float]:
    """Raw (unfixed) multiway CRV1 covariance of the slopes XS and its t df, from the dummy design."""
    X = pd.DataFrame({"Intercept": 1.0}, index=df.index)
    for x in XS:
        X[x] = df[x]
    for f in fes:
        X = X.join(pd.get_dummies(df[f], prefix=f, drop_first=True, dtype=float))
    Xm, y = X.to_numpy(), df.y.to_numpy()
    if weights is not None:
        sw = np.sqrt(df[weights].to_numpy())
        Xm, y = Xm * sw[:, None], y * sw
    n, k = len(df), len(XS)
    bread = np.linalg.inv(Xm.T @ Xm)
    u = y - Xm @ (bread @ (Xm.T @ y))
    scores = Xm * u[:, None]
    levels = [df[f].nunique() for f in fes]
    fe_df = sum(levels) - (len(fes) - 1)
    if ssc == "statsmodels":
        K = Xm.shape[1]  # the columns of the dummy design (a connected design has full rank)
    elif ssc == "fixest":  # a fixed effect nested in any cluster variable counts 1
        K = k + fe_df - sum(L - 1 for f, L in zip(fes, levels) if any(_nested(df, f, c) for c in clusters))
    else:  # linearmodels: K = k when the only effect is nested in every cluster variable
        K = k if len(fes) == 1 and all(_nested(df, fes[0], c) for c in clusters) else k + fe_df
    g_min = min(df[c].nunique() for c in clusters)
    V = np.zeros((Xm.shape[1], Xm.shape[1]))
    for size in range(1, len(clusters) + 1):
        for subset in combinations(clusters, size):
            codes = df.groupby(list(subset), sort=False).ngroup().to_numpy()  # the intersection
            G = codes.max() + 1
            sums = np.zeros((G, Xm.shape[1]))
            np.add.at(sums, codes, scores)
            if ssc == "fixest":
                c = (n - 1) / (n - K) * g_min / (g_min - 1)
            elif ssc == "statsmodels":
                c = (n - 1) / (n - K) * G / (G - 1)
            else:
                c = n / (n - K)
            V += (-1) ** (size + 1) * c * bread @ sums.T @ sums @ bread
    slopes = [list(X.columns).index(x) for x in XS]
    df_t = float(n - K) if ssc == "linearmodels" else float(g_min - 1)
    return V[np.ix_(slopes, slopes)], df_t


def reference_fix(V: np.ndarray) -> tuple[np.ndarray, int]:
    """The documented fix: eigenvalues of the correlation-scaled matrix clipped at zero."""
    d = 1.0 / np.sqrt(np.abs(np.diag(V)))
    vals, vecs = np.linalg.eigh(V * np.outer(d, d))
    neg = int((vals < -1e-12 * np.abs(vals).max()).sum())
    return (vecs @ np.diag(np.clip(vals, 0, None)) @ vecs.T) / np.outer(d, d), neg


def _fit(df, fes, clusters, ssc, weights=None, **vcov_extra):
    vcov = {"CRV1": "+".join(clusters), **vcov_extra}
    return fastpanel.feols(f"y ~ {' + '.join(XS)} | {' + '.join(fes)}", df, vcov=vcov, ssc=ssc, weights=weights)


# -- the reference against the peers (two-way) -------------------------------------------------
@pytest.mark.parametrize("fes", [["entity"], ["entity", "year"]], ids=["oneway", "twoway"])
def test_reference_matches_statsmodels_two_way(fes):
    sm = pytest.importorskip("statsmodels.api")
    df = DATA["seed1"]
    V, _ = reference_vcov(df, fes, ["cl", "c3"], "statsmodels")
    X = pd.DataFrame({"Intercept": 1.0, **{x: df[x] for x in XS}}, index=df.index)
    for f in fes:
        X = X.join(pd.get_dummies(df[f], prefix=f, drop_first=True, dtype=float))
    ref = sm.OLS(df.y, X).fit(cov_type="cluster", cov_kwds={"groups": df[["cl", "c3"]].to_numpy()})
    assert_close(V, ref.cov_params().loc[XS, XS].to_numpy())


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("fml_fes, clusters", [
    (["entity"], ["cl", "c3"]), (["entity", "year"], ["region", "cl"]), (["entity", "year"], ["entity", "year"]),
])
def test_two_way_matches_pyfixest_and_reference(data, fml_fes, clusters):
    pf = pytest.importorskip("pyfixest")
    df = DATA[data]
    fml = f"y ~ {' + '.join(XS)} | {' + '.join(fml_fes)}"
    with warnings.catch_warnings():
        # fixef_tol= (deprecated) makes pyfixest's iterative demeaning exact; pyfixest takes the
        # square root of a negative variance of a non-PSD two-way matrix (RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = pf.feols(fml, df, vcov={"CRV1": "+".join(clusters)}, fixef_tol=1e-14)
    ours = _fit(df, fml_fes, clusters, "fixest")
    assert_close(ours.cov_params().to_numpy(), ref._vcov, RTOL)
    assert ours.df_t == float(ref._df_t)
    V, df_t = reference_vcov(df, fml_fes, clusters, "fixest")
    assert_close(ours.cov_params().to_numpy(), V, RTOL)
    assert ours.df_t == df_t


def test_pyfixest_stops_at_two_way():
    """Why three-way clustering is compared with the NumPy reference only."""
    pf = pytest.importorskip("pyfixest")
    with pytest.raises(AssertionError, match="not more than twoway"):
        pf.feols("y ~ x1 | entity", DATA["seed1"], vcov={"CRV1": "cl+c3+c4"})


# -- three and four cluster variables -------------------------------------------------------------
CASES = {
    "3way-oneway": (["entity"], ["region", "cl", "c3"]),  # entity nested in region
    "3way-twoway": (["entity", "year"], ["cl", "c3", "c4"]),
    "3way-effects": (["entity", "year"], ["entity", "year", "cl"]),  # both effects are clusters
    "4way-oneway": (["entity"], ["cl", "c3", "c4", "year"]),
    "4way-twoway": (["entity", "year"], ["region", "cl", "c3", "c4"]),
}


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("ssc", ["fixest", "statsmodels", "linearmodels"])
def test_multiway_matches_numpy_reference(data, case, ssc):
    df = DATA[data]
    fes, clusters = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fix asked: no warning
        ours = _fit(df, fes, clusters, ssc, eigen_fix=False)
    V, df_t = reference_vcov(df, fes, clusters, ssc)
    assert_close(ours.cov_params().to_numpy(), V, RTOL)
    assert ours.df_t == df_t
    assert ours.vcov_eigen_fixed == 0
    assert ours.n_clusters == {c: df[c].nunique() for c in clusters}
    assert ours.vcov_label == f"CRV1 by {' + '.join(clusters)}"


@pytest.mark.parametrize("ssc", ["fixest", "statsmodels"])
def test_multiway_weighted_matches_numpy_reference(ssc):
    df = DATA["seed2"]
    fes, clusters = CASES["3way-twoway"]
    ours = _fit(df, fes, clusters, ssc, weights="w", eigen_fix=False)
    V, _ = reference_vcov(df, fes, clusters, ssc, weights="w")
    assert_close(ours.cov_params().to_numpy(), V, RTOL)


def test_panelols_multiway_with_names_and_arrays():
    df = DATA["seed1"]
    model = fastpanel.PanelOLS(df.y, df[XS], df.entity, df.year, time_effects=True)
    ours = model.fit(vcov={"CRV1": ["entity", "time", df.cl.to_numpy()], "eigen_fix": False}, ssc="linearmodels")
    V, df_t = reference_vcov(df, ["entity", "year"], ["entity", "year", "cl"], "linearmodels")
    assert_close(ours.cov_params().to_numpy(), V, RTOL)
    assert ours.df_t == df_t


# -- the eigenvalue fix ---------------------------------------------------------------------------
def _non_psd_case() -> tuple[pd.DataFrame, list[str], list[str]]:
    """A three-way case whose raw covariance has a negative eigenvalue (checked by the reference)."""
    return DATA["seed2"], ["entity"], ["c3", "c4", "year"]  # raw eigenvalues about -0.010, -0.001, 0.005


def test_eigen_fix_on_by_default_for_three_way():
    df, fes, clusters = _non_psd_case()
    V, _ = reference_vcov(df, fes, clusters, "fixest")
    assert np.linalg.eigvalsh(V).min() < 0  # the constructed case is not PSD
    want, n_neg = reference_fix(V)
    assert n_neg >= 1
    with pytest.warns(NonPSDCovarianceWarning, match=rf"{n_neg} of the 3 eigenvalues .* set to zero"):
        ours = _fit(df, fes, clusters, "fixest")
    assert ours.vcov_eigen_fixed == n_neg
    assert_close(ours.cov_params().to_numpy(), want, 1e-7)
    assert np.linalg.eigvalsh(ours.cov_params().to_numpy()).min() > -1e-12 * np.abs(want).max()
    assert_close(ours.bse.to_numpy(), np.sqrt(np.diag(want)), 1e-7)
    # turned off: the raw matrix, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw = _fit(df, fes, clusters, "fixest", eigen_fix=False)
    assert raw.vcov_eigen_fixed == 0
    assert_close(raw.cov_params().to_numpy(), V, RTOL)


def test_eigen_fix_off_by_default_for_two_way_and_on_request():
    df = DATA["seed1"]
    # a two-way case that is not PSD: find it with the reference (deterministic data)
    for pair in combinations(["region", "cl", "c3", "c4", "year"], 2):
        V, _ = reference_vcov(df, ["entity"], list(pair), "fixest")
        if np.linalg.eigvalsh(V).min() < -1e-6 * np.abs(V).max():
            break
    else:  # pragma: no cover - the data are fixed
        pytest.fail("no non-PSD two-way case in the test data")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # statsmodels, linearmodels and pyfixest do not fix two-way
        raw = _fit(df, ["entity"], list(pair), "fixest")
    assert raw.vcov_eigen_fixed == 0
    assert_close(raw.cov_params().to_numpy(), V, RTOL)
    want, n_neg = reference_fix(V)
    with pytest.warns(NonPSDCovarianceWarning):
        fixed = _fit(df, ["entity"], list(pair), "fixest", eigen_fix=True)
    assert fixed.vcov_eigen_fixed == n_neg >= 1
    assert_close(fixed.cov_params().to_numpy(), want, 1e-7)


def test_eigen_fix_leaves_a_psd_matrix_alone():
    df = DATA["seed2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = _fit(df, ["entity"], ["cl"], "fixest", eigen_fix=True)
    V, _ = reference_vcov(df, ["entity"], ["cl"], "fixest")
    assert one.vcov_eigen_fixed == 0
    assert_close(one.cov_params().to_numpy(), V, RTOL)


def test_eigen_fix_commutes_with_rescaling_a_regressor():
    df, fes, clusters = _non_psd_case()
    with pytest.warns(NonPSDCovarianceWarning):
        base = _fit(df, fes, clusters, "fixest")
    for factor in (1e-6, 1e6):
        with pytest.warns(NonPSDCovarianceWarning):
            scaled = fastpanel.feols("y ~ x1 + x2 + x3 | entity", df.assign(x2=df.x2 * factor),
                                     vcov={"CRV1": "+".join(clusters)})
        np.testing.assert_allclose(scaled.bse.to_numpy() * [1, factor, 1], base.bse.to_numpy(), rtol=1e-8)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input():
    df = DATA["seed1"].assign(one=7)
    with pytest.raises(ValueError, match="'one' has a single cluster"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV1": "cl+c3+one"})
    with pytest.raises(ValueError, match="CRV3.*one-way clustering only, got 3 cluster variables; use CRV1"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV3": "cl+c3+c4"})
    with pytest.raises(ValueError, match="names the cluster variable 'cl' more than once"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV1": "cl+c3+cl"})
    with pytest.raises(ValueError, match="names no cluster variable"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV1": " + "})
    with pytest.raises(ValueError, match="'eigen_fix' must be True, False or None"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV1": "cl+c3+c4", "eigen_fix": "yes"})
    with pytest.raises(ValueError, match=r"'eigen_fix' applies to \{'CRV1': ...\} only"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV3": "cl", "eigen_fix": True})
    with pytest.raises(ValueError, match="'c9', which is not in data"):
        fastpanel.feols("y ~ x1 | entity", df, vcov={"CRV1": "cl+c3+c9"})


# -- Dask -----------------------------------------------------------------------------------------
def test_dask_refuses_three_way_and_says_why():
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.from_pandas(DATA["seed1"], npartitions=2, sort=False)
    with pytest.raises(ValueError, match="clustering on 3 variables is not available on Dask: its cluster variables "
                                         "must be among the fixed effects, of which a Dask fit has at most two"):
        fastpanel.feols("y ~ x1 + x2 | entity + year", ddf, vcov={"CRV1": "entity+year+cl"})


def test_dask_two_way_eigen_fix_on_request(dask_client):
    # the session's distributed client (conftest), as every Dask test: the shuffle is P2P there
    dd = pytest.importorskip("dask.dataframe")

    df = DATA["seed2"]
    V, _ = reference_vcov(df, ["entity", "year"], ["entity", "year"], "fixest")
    want, n_neg = reference_fix(V)
    vcov = {"CRV1": "entity+year", "eigen_fix": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPSDCovarianceWarning)
        got = fastpanel.feols("y ~ x1 + x2 + x3 | entity + year", dd.from_pandas(df, npartitions=3, sort=False),
                              vcov=vcov)
    assert got.vcov_eigen_fixed == n_neg
    assert_close(got.cov_params().to_numpy(), want if n_neg else V, 1e-7)


# -- command line ---------------------------------------------------------------------------------
def test_cli_three_way_vcov(capsys, tmp_path):
    from fastpanel.cli import main

    df, fes, clusters = _non_psd_case()
    path = tmp_path / "multi.csv"
    df.to_csv(path, index=False)
    code = main(["fit", str(path), "y ~ x1 + x2 + x3 | entity", "--vcov", "CRV1:" + "+".join(clusters),
                 "--format", "json", "--wald", "x1 = 0.1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "not positive semi-definite" in out.err  # the fix is reported on stderr
    payload = json.loads(out.out)
    want, _ = reference_fix(reference_vcov(df, fes, clusters, "fixest")[0])
    bse = [payload["models"][0]["coefficients"][x]["se"] for x in XS]
    assert_close(bse, np.sqrt(np.diag(want)), 1e-7)
    assert payload["wald"][0]["df_denom"] == min(df[c].nunique() for c in clusters) - 1
    code = main(["fit", str(path), "y ~ x1 | entity", "--vcov", "CRV3:cl+c3"])
    err = capsys.readouterr().err
    assert code == 1 and "one-way clustering only" in err and "Traceback" not in err
