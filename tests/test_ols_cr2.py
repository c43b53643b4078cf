"""CR2 (Bell-McCaffrey) covariance with Satterthwaite df: ``vcov={"CR2": g}``.

Three kinds of evidence:

* equality with R clubSandwich (``vcovCR(lm(y ~ x + factor(fe)), cluster, "CR2")`` and
  ``coef_test(..., "Satterthwaite")``) on Grunfeld, Produc and an unbalanced synthetic panel,
  weighted and not; the numbers are in ``tests/reference/clubsandwich/`` (made by
  ``make_reference.R`` there; CI has no R);
* a plain NumPy oracle written here: explicit dummy design, the full n x n hat matrix and
  matrix square roots from ``numpy.linalg.eigh``, on random unbalanced shuffled panels with
  one, two and three fixed-effect dimensions (or none), weighted and not, clusters nested in
  the effects and not;
* bad input: clear errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import fastpanel
from fastpanel.ols import PanelOLS
from fastpanel.ols import cr2 as cr2_mod

REF = Path(__file__).parent / "reference" / "clubsandwich"
REFERENCE = json.loads((REF / "cr2_reference.json").read_text())
CASES = REFERENCE["cases"]
TOL = 1e-8  # the agreement required; the measured one is ~1e-11 or better (see docs/cr2.md)


def _data(name: str) -> pd.DataFrame:
    return pd.read_csv(REF / {"grunfeld": "grunfeld.csv", "produc": "produc.csv",
                              "synthetic": "synthetic_panel.csv"}[name])


def _corr_scaled_diff(V: np.ndarray, Vref: np.ndarray) -> float:
    """Largest |V - Vref| in units of sqrt(Vref_ii Vref_jj) (off-diagonals near zero are
    judged on the scale of the variances, not on their own)."""
    d = np.sqrt(np.diag(Vref))
    return float(np.max(np.abs(V - Vref) / np.outer(d, d)))


# -- R clubSandwich -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_equals_clubsandwich(name: str) -> None:
    case = CASES[name]
    res = fastpanel.feols(case["formula"], _data(case["data"]), vcov={"CR2": case["cluster"]},
                          weights=case["weights"])
    assert [n.removeprefix("np.") for n in res.params.index] == case["names"]  # R: log(x), here np.log(x)
    assert res.nobs == case["nobs"] and res.n_clusters == {case["cluster"]: case["n_clusters"]}
    np.testing.assert_allclose(res.params.to_numpy(), case["coef"], rtol=TOL, atol=0)
    assert _corr_scaled_diff(res.cov_params().to_numpy(), np.array(case["vcov"])) < TOL
    np.testing.assert_allclose(res.bse.to_numpy(), case["se"], rtol=TOL, atol=0)
    np.testing.assert_allclose(res.tvalues.to_numpy(), case["t"], rtol=TOL, atol=0)
    np.testing.assert_allclose(res.df_t.to_numpy(), case["df_satterthwaite"], rtol=TOL, atol=0)
    np.testing.assert_allclose(res.pvalues.to_numpy(), case["p_satterthwaite"], rtol=TOL, atol=0)
    # the confidence interval uses each coefficient's own df
    q = stats.t.ppf(0.975, case["df_satterthwaite"])
    ci = res.conf_int()
    np.testing.assert_allclose(ci["lower"], np.array(case["coef"]) - q * np.array(case["se"]), rtol=TOL)
    np.testing.assert_allclose(ci["upper"], np.array(case["coef"]) + q * np.array(case["se"]), rtol=TOL)


def test_array_api_equals_clubsandwich() -> None:
    """PanelOLS, the cluster named ("entity") or given as an array; weighted case as well."""
    g = _data("grunfeld")
    case = CASES["grunfeld_firm_year_by_firm"]
    model = PanelOLS(g["inv"], g[["value", "capital"]], g["firm"], g["year"], time_effects=True)
    for cl in ("entity", g["firm"].to_numpy()):
        res = model.fit(vcov={"CR2": cl})
        assert _corr_scaled_diff(res.cov_params().to_numpy(), np.array(case["vcov"])) < TOL
        np.testing.assert_allclose(res.df_t.to_numpy(), case["df_satterthwaite"], rtol=TOL)
    s = _data("synthetic")
    case = CASES["synthetic_firm_year_by_market_weighted"]
    res = PanelOLS(s["y"], s[["x1", "x2", "x3"]], s["firm"], s["year"], time_effects=True,
                   weights=s["w"]).fit(vcov={"CR2": s["market"].to_numpy()})
    assert _corr_scaled_diff(res.cov_params().to_numpy(), np.array(case["vcov"])) < TOL
    np.testing.assert_allclose(res.pvalues.to_numpy(), case["p_satterthwaite"], rtol=TOL)


def test_tables_show_the_per_coefficient_df() -> None:
    case = CASES["produc_state_year_by_region"]
    res = fastpanel.feols(case["formula"], _data("produc"), vcov={"CR2": "region"})
    assert isinstance(res.df_t, pd.Series) and list(res.df_t.index) == list(res.params.index)
    frame = res.to_frame()
    assert list(frame.columns[:5]) == ["coef", "std err", "t", "df", "P>|t|"]
    np.testing.assert_allclose(frame["df"].to_numpy(), case["df_satterthwaite"], rtol=TOL)
    text = res.summary()
    assert "CR2 (Bell-McCaffrey) by region, Satterthwaite df" in text
    assert f"{case['df_satterthwaite'][0]:.6g}" in text
    assert "CR2" in res.vcov_label and "| df |" in res.to_markdown()
    # a scalar df keeps the table as it was
    assert "df" not in fastpanel.feols(case["formula"], _data("produc"), vcov={"CRV1": "region"}).to_frame()


def test_ssc_presets_do_not_change_cr2() -> None:
    """clubSandwich's CR2 has no small-sample factor, and no preset's package has CR2."""
    case = CASES["synthetic_firm_by_market"]
    data = _data("synthetic")
    fits = [fastpanel.feols(case["formula"], data, vcov={"CR2": "market"}, ssc=s)
            for s in ("fixest", "statsmodels", "linearmodels")]
    for res in fits[1:]:
        np.testing.assert_array_equal(res.cov_params().to_numpy(), fits[0].cov_params().to_numpy())
        np.testing.assert_array_equal(res.df_t.to_numpy(), fits[0].df_t.to_numpy())


# -- NumPy oracle ---------------------------------------------------------------------------

def _inv_sqrt_psd(G: np.ndarray) -> np.ndarray:
    """Moore-Penrose inverse square root (clubSandwich's matrix_power: eigenvalues <= 1e-12 dropped)."""
    lam, Q = np.linalg.eigh(0.5 * (G + G.T))
    d = np.where(lam > 1e-12, 1.0 / np.sqrt(np.where(lam > 1e-12, lam, 1.0)), 0.0)
    return (Q * d) @ Q.T


def oracle_cr2(y: np.ndarray, X: np.ndarray, fes: list[np.ndarray], cluster: np.ndarray,
               w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes, CR2 covariance and Satterthwaite df by clubSandwich's definitions, all dense.

    Z = [X, every dummy of every effect] (rank deficient: only its column space matters),
    Omega = diag(w / mean w), H = Z (Z' Omega Z)^+ Z' Omega (from an SVD of Omega^{1/2} Z),
    A_g = [(I - H)(I - H)']_gg^{+1/2}, V = sum_g (M Z_g' W_g A_g e_g)(...)' for the slope rows,
    df_j = (tr P)^2 / ||P||^2, P_gh = zeta_g' zeta_h, zeta_g = (I - H)' E_g A_g (M Z_g' W_g)' e_j.
    """
    n, k = X.shape
    dummies = [np.eye(int(c.max()) + 1)[c] for c in fes]
    Z = np.column_stack([X, *dummies])
    om = np.ones(n) if w is None else w / w.mean()
    so = np.sqrt(om)
    Zs = Z * so[:, None]
    U, sv, _ = np.linalg.svd(Zs, full_matrices=False)
    Q = U[:, sv > sv[0] * 1e-10]
    H = (Q @ Q.T) / so[:, None] * so[None, :]  # W^{-1/2} Hs W^{1/2}
    # rows of M Z' W for the slopes (estimable, so any generalised inverse gives them)
    slope_map = np.linalg.pinv(Zs)[:k] * so[None, :]
    beta = slope_map @ y
    e = y - H @ y
    IH = np.eye(n) - H
    GG = IH @ IH.T
    groups = [np.flatnonzero(cluster == g) for g in np.unique(cluster)]
    A = [_inv_sqrt_psd(GG[np.ix_(idx, idx)]) for idx in groups]
    scores = np.array([slope_map[:, idx] @ (Ag @ e[idx]) for idx, Ag in zip(groups, A)])
    V = scores.T @ scores
    df = np.empty(k)
    for j in range(k):
        zeta = np.column_stack([IH.T[:, idx] @ (Ag @ slope_map[j, idx]) for idx, Ag in zip(groups, A)])
        P = zeta.T @ zeta
        df[j] = np.trace(P) ** 2 / np.sum(P * P)
    return beta, V, df


def random_panel(seed: int, nested: bool, n_ent: int = 24, T: int = 8, G: int = 11) -> pd.DataFrame:
    """Unbalanced, shuffled panel: each entity in a random 3..T of the periods; a third effect
    ``r`` (5 levels, crossing the others); clusters either unions of entities (nested) or an
    entity's home cluster with 30% of its rows elsewhere (not nested in any effect)."""
    rng = np.random.default_rng(seed)
    rows = []
    home = rng.integers(0, G, n_ent)
    for e in range(n_ent):
        periods = np.sort(rng.choice(T, rng.integers(3, T + 1), replace=False))
        for t in periods:
            g = home[e] if nested or rng.random() > 0.3 else rng.integers(0, G)
            rows.append((e, t, g))
    f = pd.DataFrame(rows, columns=["e", "t", "g"])
    n = len(f)
    ae, at = rng.normal(size=n_ent), rng.normal(size=T)
    f["r"] = rng.integers(0, 5, n)
    f["x1"] = ae[f["e"]] + rng.normal(size=n)
    f["x2"] = at[f["t"]] + rng.normal(size=n) * (1 + f["r"] / 4)
    f["y"] = 0.5 * f["x1"] - 0.2 * f["x2"] + ae[f["e"]] + at[f["t"]] + rng.normal(size=n) * (0.5 + np.abs(f["x1"]))
    f["w"] = rng.uniform(0.2, 3.0, n)
    f["e"] = "ent" + f["e"].astype(str)  # labels of any type
    return f.sample(frac=1.0, random_state=seed).reset_index(drop=True)


DESIGNS = {"none": [], "one": ["e"], "two": ["e", "t"], "three": ["e", "t", "r"]}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("nested", [False, True], ids=["crossing", "nested"])
@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("seed", [1, 2])
def test_equals_dense_oracle(design: str, nested: bool, weighted: bool, seed: int) -> None:
    f = random_panel(seed, nested)
    fes = DESIGNS[design]
    fml = "y ~ x1 + x2" + (" | " + " + ".join(fes) if fes else "")
    res = fastpanel.feols(fml, f, vcov={"CR2": "g"}, weights="w" if weighted else None)
    assert res.nobs == len(f)  # no singletons: the oracle sees the same rows
    X = f[["x1", "x2"]].to_numpy()
    if not fes:
        X = np.column_stack([np.ones(len(f)), X])
    codes = [pd.factorize(f[c])[0] for c in fes]
    beta, V, df = oracle_cr2(f["y"].to_numpy(), X, codes, f["g"].to_numpy(),
                             f["w"].to_numpy() if weighted else None)
    np.testing.assert_allclose(res.params.to_numpy(), beta, rtol=TOL)
    assert _corr_scaled_diff(res.cov_params().to_numpy(), V) < TOL
    np.testing.assert_allclose(res.df_t.to_numpy(), df, rtol=TOL)
    p = 2 * stats.t.sf(np.abs(beta / np.sqrt(np.diag(V))), df)
    np.testing.assert_allclose(res.pvalues.to_numpy(), p, rtol=TOL)


def test_singleton_levels_are_structural_null_directions() -> None:
    """Kept singletons (drop_singletons=False) are fitted exactly by their own dummy: a null
    direction of G_g that lies in the dummies. CR2 drops it (as clubSandwich's cutoff does) and
    equals both the oracle and the fit without the singletons."""
    f = random_panel(3, nested=False)
    extra = f.iloc[:3].assign(e=["lone1", "lone2", "lone3"])  # three singleton entities
    f2 = pd.concat([f, extra], ignore_index=True)
    kept = fastpanel.feols("y ~ x1 + x2 | e", f2, vcov={"CR2": "g"}, drop_singletons=False)
    dropped = fastpanel.feols("y ~ x1 + x2 | e", f2, vcov={"CR2": "g"})
    assert kept.n_singletons == 0 and dropped.n_singletons == 3
    np.testing.assert_allclose(kept.cov_params().to_numpy(), dropped.cov_params().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(kept.df_t.to_numpy(), dropped.df_t.to_numpy(), rtol=1e-10)
    _, V, df = oracle_cr2(f2["y"].to_numpy(), f2[["x1", "x2"]].to_numpy(), [pd.factorize(f2["e"])[0]],
                          f2["g"].to_numpy(), None)
    assert _corr_scaled_diff(kept.cov_params().to_numpy(), V) < TOL
    np.testing.assert_allclose(kept.df_t.to_numpy(), df, rtol=TOL)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_sparse_df_path_and_batching_agree(monkeypatch: pytest.MonkeyPatch, weighted: bool) -> None:
    """The trace/Frobenius identity (many clusters) equals the dense P; one cluster per batch
    equals the stacked batches; row order does not matter."""
    f = random_panel(4, nested=False)
    kw = {"vcov": {"CR2": "g"}, "weights": "w" if weighted else None}
    base = fastpanel.feols("y ~ x1 + x2 | e + t", f, **kw)
    monkeypatch.setattr(cr2_mod, "DENSE_DF_MAX_CLUSTERS", 1)
    monkeypatch.setattr(cr2_mod, "_BATCH_ELEMENTS", 1)
    other = fastpanel.feols("y ~ x1 + x2 | e + t", f.sort_values(["g", "e", "t"]), **kw)
    np.testing.assert_allclose(other.cov_params().to_numpy(), base.cov_params().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(other.df_t.to_numpy(), base.df_t.to_numpy(), rtol=1e-10)



@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("design", list(DESIGNS))
def test_low_rank_path_equals_dense_oracle(monkeypatch: pytest.MonkeyPatch, design: str, weighted: bool) -> None:
    """Clusters of whole entities: G_g = I + F S F' of low rank (module docstring), solved
    without the n_g x n_g block, equal the oracle; the dense path is not used (it would raise)."""
    calls = []
    real = cr2_mod._low_rank_update

    def spy(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(cr2_mod, "_low_rank_update", spy)
    monkeypatch.setattr(cr2_mod, "_LOW_RANK_MIN_ROWS", 1)
    monkeypatch.setattr(cr2_mod, "MAX_CLUSTER_ROWS", 10)
    f = random_panel(11, nested=True, n_ent=45, T=12, G=2)
    fes = DESIGNS[design]
    fml = "y ~ x1 + x2" + (" | " + " + ".join(fes) if fes else "")
    res = fastpanel.feols(fml, f, vcov={"CR2": "g"}, weights="w" if weighted else None)
    assert calls and all(calls)
    X = f[["x1", "x2"]].to_numpy()
    if not fes:
        X = np.column_stack([np.ones(len(f)), X])
    _, V, df = oracle_cr2(f["y"].to_numpy(), X, [pd.factorize(f[c])[0] for c in fes], f["g"].to_numpy(),
                          f["w"].to_numpy() if weighted else None)
    assert _corr_scaled_diff(res.cov_params().to_numpy(), V) < TOL
    np.testing.assert_allclose(res.df_t.to_numpy(), df, rtol=TOL)

# -- bad input ------------------------------------------------------------------------------

def test_two_cluster_variables_are_refused() -> None:
    f = random_panel(5, nested=False)
    for vcov in ({"CR2": "g+t"}, {"CR2": ["g", "t"]}, {"CR2": ""}):
        with pytest.raises(ValueError, match="exactly one cluster variable"):
            fastpanel.feols("y ~ x1 + x2 | e", f, vcov=vcov)
    with pytest.raises(ValueError, match=r"needs its cluster variable"):
        fastpanel.feols("y ~ x1 + x2 | e", f, vcov="CR2")


def test_cluster_with_one_level_is_refused() -> None:
    f = random_panel(5, nested=False).assign(one=7)
    with pytest.raises(ValueError, match="single cluster"):
        fastpanel.feols("y ~ x1 + x2 | e", f, vcov={"CR2": "one"})


def test_leverage_one_is_refused() -> None:
    """A regressor non-zero in one observation fits it exactly: I - H_gg is singular in a
    direction of the regressors, and CR2 is undefined (CRV1 still works)."""
    f = random_panel(6, nested=False)
    f["spike"] = 0.0
    f.loc[5, "spike"] = 1.0
    with pytest.raises(ValueError, match=r"leverage 1.*fitted exactly through the regressors"):
        fastpanel.feols("y ~ x1 + x2 + spike | e + t", f, vcov={"CR2": "g"})
    fastpanel.feols("y ~ x1 + x2 + spike | e + t", f, vcov={"CRV1": "g"})
    # the same through the low-rank path (clusters of whole entities), weighted and not
    big = random_panel(6, nested=True, n_ent=45, T=12, G=3).assign(spike=0.0)
    big.loc[5, "spike"] = 1.0
    for w in (None, "w"):
        with pytest.raises(ValueError, match=r"leverage 1"):
            fastpanel.feols("y ~ x1 + x2 + spike | e", big, vcov={"CR2": "g"}, weights=w)


def test_size_limits_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    f = random_panel(7, nested=False)
    monkeypatch.setattr(cr2_mod, "MAX_CLUSTER_ROWS", 10)
    with pytest.raises(ValueError, match=r"rows; CR2 eigendecomposes .* at most 10 rows"):
        fastpanel.feols("y ~ x1 + x2 | e", f, vcov={"CR2": "g"})
    monkeypatch.setattr(cr2_mod, "MAX_CLUSTER_ROWS", 10_000)
    monkeypatch.setattr(cr2_mod, "MAX_SCHUR_LEVELS", 3)
    with pytest.raises(ValueError, match=r"other than 'e' have 8 levels.*at most 3"):
        fastpanel.feols("y ~ x1 + x2 | e + t", f, vcov={"CR2": "g"})


def test_dask_refuses_cr2() -> None:
    dd = pytest.importorskip("dask.dataframe")
    f = random_panel(8, nested=True)
    ddf = dd.from_pandas(f, npartitions=2)
    with pytest.raises(ValueError, match=r"CR2.*not available on Dask.*not a sum over partitions"):
        fastpanel.feols("y ~ x1 + x2 | e", ddf, vcov={"CR2": "e"})


# -- command line ---------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    return subprocess.run([sys.executable, "-m", "fastpanel", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_cli_fit_with_cr2() -> None:
    case = CASES["grunfeld_firm_year_by_firm"]
    out = _cli("fit", str(REF / "grunfeld.csv"), case["formula"], "--vcov", "CR2:firm", "--format", "json")
    assert out.returncode == 0, out.stderr
    coefs = json.loads(out.stdout)["models"][0]["coefficients"]
    np.testing.assert_allclose([coefs[n]["se"] for n in case["names"]], case["se"], rtol=TOL)
    np.testing.assert_allclose([coefs[n]["pvalue"] for n in case["names"]], case["p_satterthwaite"], rtol=TOL)
    text = _cli("fit", str(REF / "grunfeld.csv"), case["formula"], "--vcov", "CR2:firm")
    assert text.returncode == 0 and "Satterthwaite" not in text.stderr
    for bad, words in (("CR2", "needs the cluster column: CR2:COL"), ("CR2:firm+year", "exactly one cluster")):
        res = _cli("fit", str(REF / "grunfeld.csv"), case["formula"], "--vcov", bad)
        lines = [line for line in res.stderr.splitlines() if line.startswith("fastpanel: error:")]
        assert res.returncode != 0 and len(lines) == 1 and words in lines[0], res.stderr
        assert "Traceback" not in res.stderr
