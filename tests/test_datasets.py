"""The embedded SYNTHETIC data sets: structure, determinism, and that independent software
(statsmodels OLS with dummy columns, a plain NumPy threshold grid search written here) recovers
the documented true parameters of each data-generating process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastpanel import datasets
from fastpanel.datasets import (
    CITY_CONTROLS,
    city_panel,
    city_panel_params,
    province_quarterly,
    province_quarterly_params,
)

sm = pytest.importorskip("statsmodels.api")

CITY_COLUMNS = ["city", "province", "region", "year", "gdp", "computing", "peo", "fin", "fou",
                "invest", "retail", "agri", "indus", "inex", "storage", "cloud_spend", "pivot"]
HUBS = {"Zhangjiakou", "Shanghai", "Suzhou", "Jiaxing", "Wuhu", "Shaoguan", "Chengdu",
        "Chongqing", "Qingyang", "Zhongwei", "Gui'an/Guiyang", "Horinger/Hohhot",
        "Jining/Ulanqab"}


@pytest.fixture(scope="module")
def city() -> pd.DataFrame:
    return city_panel()


@pytest.fixture(scope="module")
def province() -> pd.DataFrame:
    return province_quarterly()


def test_city_panel_structure(city):
    assert list(city.columns) == CITY_COLUMNS
    assert len(city) == 336 * 6
    assert city["city"].nunique() == 336
    assert city["province"].nunique() == 31
    assert sorted(city["year"].unique()) == list(range(2017, 2023))
    assert not city.duplicated(["city", "year"]).any()
    assert set(city.loc[city["pivot"] == 1, "city"]) == HUBS
    assert set(city["region"]) == {"east", "central", "west"}
    assert "Guangdong-07" in set(city["city"])
    numeric = city.drop(columns=["city", "province", "region"])
    assert np.isfinite(numeric.to_numpy(dtype=float)).all()
    assert (numeric.drop(columns=["pivot"]) > 0).all().all()


def test_city_panel_levels_are_plausible(city):
    # Median city GDP of a few hundred billion yuan (unit 1e8 yuan), east > central > west.
    median_gdp = city.groupby("region")["gdp"].median()
    assert 500 < city["gdp"].median() < 10_000
    assert median_gdp["east"] > median_gdp["central"] > median_gdp["west"]


def test_city_panel_is_labelled_synthetic_and_exposes_truth(city):
    assert city.attrs["synthetic"] is True
    assert "SYNTHETIC" in city.attrs["description"]
    assert city.attrs["true_params"] == city_panel_params()
    truth = city_panel_params()
    assert truth["beta"]["log_computing"] == pytest.approx(0.04)
    assert truth["cloud_elasticity"] == (0.045, 0.078)
    assert datasets.true_params("city_panel") == truth


def test_generators_are_deterministic_and_seeded():
    pd.testing.assert_frame_equal(city_panel(seed=3), city_panel(seed=3))
    pd.testing.assert_frame_equal(province_quarterly(seed=3), province_quarterly(seed=3))
    assert not np.allclose(city_panel(seed=1)["gdp"], city_panel(seed=2)["gdp"])
    pd.testing.assert_frame_equal(datasets.load("city_panel", seed=5), city_panel(seed=5))


def test_bad_arguments():
    with pytest.raises(TypeError, match="seed"):
        city_panel(seed="a")
    with pytest.raises(TypeError, match="seed"):
        province_quarterly(seed=1.5)
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load("nope")


def test_province_quarterly_structure(province):
    assert list(province.columns) == ["province", "region", "year", "quarter", "period", "gdp",
                                      "cloud_spend", "cloud_firms", "storage", "labor", "capital"]
    assert len(province) == 31 * 20
    assert province["period"].iloc[0] == "2016Q1" and province["period"].iloc[-1] == "2020Q4"
    truth = province_quarterly_params()
    assert province.attrs["true_params"] == truth
    assert "SYNTHETIC" in province.attrs["description"]
    end = province[province["period"] == "2020Q4"]
    above = set(end.loc[end["storage"] > truth["threshold"], "province"])
    assert above == set(truth["provinces_above_at_end"])
    assert len(above) == 4


def _city_logs(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"log_gdp": np.log(frame["gdp"]), "log_computing": np.log(frame["computing"])})
    out["log_computing:pivot"] = out["log_computing"] * frame["pivot"]
    for k in CITY_CONTROLS:
        out[f"log_{k}"] = np.log(frame[k])
    return out


def _covers(fit, truth: dict[str, float], alpha: float = 0.05) -> None:
    ci = fit.conf_int(alpha=alpha)
    for name, value in truth.items():
        low, high = ci.loc[name]
        assert low <= value <= high, (name, value, low, high)


def test_city_two_way_fe_recovers_elasticities(city):
    """statsmodels OLS with explicit city and year dummies, clustered by city."""
    logs = _city_logs(city)
    regressors = ["log_computing", "log_computing:pivot"] + [f"log_{k}" for k in CITY_CONTROLS]
    dummies = pd.get_dummies(city[["city"]].astype(str), drop_first=True, dtype=float)
    years = pd.get_dummies(city["year"].astype(str), prefix="y", drop_first=True, dtype=float)
    X = sm.add_constant(pd.concat([logs[regressors], dummies, years], axis=1))
    groups = pd.factorize(city["city"])[0]
    fit = sm.OLS(logs["log_gdp"], X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    truth = city_panel_params()["beta"]
    # The elasticities of interest lie in their 95% intervals; with ten coefficients one
    # control may fall outside its 95% interval by chance, so all are checked at 99.9%.
    _covers(fit, {k: truth[k] for k in ["log_computing", "log_computing:pivot"]})
    _covers(fit, {k: truth[k] for k in regressors}, alpha=0.001)
    assert fit.params["log_computing"] == pytest.approx(0.04, abs=0.01)


@pytest.mark.parametrize("year", range(2017, 2023))
def test_city_cross_sections_recover_pivot_interaction(city, year):
    sub = city[city["year"] == year]
    logs = _city_logs(sub)
    logs["pivot"] = sub["pivot"].astype(float)
    regressors = ["log_computing", "pivot", "log_computing:pivot"] + [f"log_{k}" for k in CITY_CONTROLS]
    fit = sm.OLS(logs["log_gdp"], sm.add_constant(logs[regressors])).fit(cov_type="HC3")
    truth = city_panel_params()["beta"]
    _covers(fit, {"log_computing": truth["log_computing"]})
    # The hub terms rest on 13 cities, where robust intervals under-cover (HC3: about 11%
    # rejections at the 5% level over 60 seeds here), so they are checked at 99%. The controls
    # are nuisance parameters here (checked in the fixed-effects test).
    _covers(fit, {k: truth[k] for k in ["pivot", "log_computing:pivot"]}, alpha=0.01)


def _naive_threshold(y, X, z, q, entity, trim=0.05, stride=4):
    """Per-grid-point least squares on the entity-demeaned data (Hansen 1999, one threshold)."""
    def demean(a):
        a = np.asarray(a, dtype=float)
        frame = pd.DataFrame(a.reshape(len(a), -1))
        return (frame - frame.groupby(entity).transform("mean")).to_numpy()

    yd = demean(y)[:, 0]
    candidates = np.unique(q)
    lo, hi = np.quantile(q, [trim, 1 - trim])
    candidates = candidates[(candidates >= lo) & (candidates <= hi)][::stride]
    best = (np.inf, None, None)
    for g in candidates:
        below = q <= g
        design = demean(np.column_stack([X, z * below, z * ~below]))
        coef, *_ = np.linalg.lstsq(design, yd, rcond=None)
        ssr = float(np.sum((yd - design @ coef) ** 2))
        if ssr < best[0]:
            best = (ssr, g, coef[-2:])
    return best[1], best[2], candidates


def test_city_threshold_is_recoverable(city):
    logs = _city_logs(city)
    X = logs[["log_computing", "log_computing:pivot"] + [f"log_{k}" for k in CITY_CONTROLS]]
    g, (d_low, d_high), grid = _naive_threshold(
        logs["log_gdp"].to_numpy(), X.to_numpy(), np.log(city["cloud_spend"]).to_numpy(),
        city["storage"].to_numpy(), pd.factorize(city["city"])[0])
    truth = city_panel_params()
    spacing = np.median(np.diff(grid))
    assert abs(g - truth["threshold"]) < 3 * spacing + 2.0
    assert d_low == pytest.approx(0.045, abs=0.006)
    assert d_high == pytest.approx(0.078, abs=0.006)


def test_province_threshold_is_recoverable(province):
    X = np.log(province[["capital", "labor", "cloud_firms"]].to_numpy())
    g, (d_low, d_high), _ = _naive_threshold(
        np.log(province["gdp"].to_numpy()), X, np.log(province["cloud_spend"].to_numpy()),
        province["storage"].to_numpy(), pd.factorize(province["province"])[0], trim=0.01, stride=1)
    truth = province_quarterly_params()
    assert 45.0 < g < 55.0
    assert d_low == pytest.approx(0.045, abs=0.006)
    assert d_high == pytest.approx(0.078, abs=0.01)
