"""``fastpanel threshold --dynamic``: the Seo and Shin (2016) model from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _dynamic_data import simulate
from test_cli import PNG_SIGNATURE, one_line_error, run_cli

import fastpanel as fp


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    df = simulate(150, 8, seed=3)
    path = tmp_path_factory.mktemp("dyn") / "panel.csv"
    df.sample(frac=1, random_state=0).to_csv(path, index=False)  # rows in random order
    return df, path


def test_dynamic_json_equals_the_python_api_and_writes_the_curve(panel, tmp_path):
    df, path = panel
    plot = tmp_path / "gmm.png"
    r = run_cli("threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                "--instrument", "q", "--boot", "19", "--grid", "30", "--seed", "5", "--format", "json",
                "--plot", str(plot), "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", instruments=["q"],
                               n_boot=19, grid=30, seed=5)
    assert out["threshold"] == pytest.approx(res.threshold, rel=1e-12)
    for name, value in res.params.items():
        assert out["params"][name] == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert out["linearity_test"]["pvalue"] == res.linearity_test.pvalue
    assert [row["term"] for row in out["regimes"]] == ["intercept shift", "L1.y", "x"]
    assert plot.read_bytes()[:8] == PNG_SIGNATURE


def test_dynamic_text_summary(panel):
    _, path = panel
    r = run_cli("threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                "--kink", "--boot", "0", "--grid", "20", "--collapse")
    assert r.returncode == 0, r.stderr
    assert "kink" in r.stdout and "Regimes" in r.stdout and "not run (n_boot=0)" in r.stdout


@pytest.mark.parametrize(("extra", "message"), [
    ([], "add --time COL"),
    (["--time", "year", "--regime", "x"], "--regime is for the static model"),
    (["--time", "year", "--max-lag", "1"], "--max-lag 1"),
    (["--time", "year", "--endog", "zz"], "--endog 'zz'"),
    (["--time", "year", "--grid", "exact"], "--grid exact"),
])
def test_dynamic_errors_are_one_line_in_cli_terms(panel, extra, message):
    _, path = panel
    r = run_cli("threshold", str(path), "y ~ x | id", "--threshold-var", "q", "--dynamic", "--boot", "0", *extra)
    assert r.returncode != 0
    assert message in one_line_error(r)


def test_static_model_still_needs_regime(panel):
    _, path = panel
    r = run_cli("threshold", str(path), "y ~ x | id", "--threshold-var", "q")
    assert "--regime" in one_line_error(r)


def test_dynamic_xthenreg_options(panel, tmp_path):
    df, path = panel  # simulate() is strongly balanced (rows shuffled in the file)
    r = run_cli("threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                "--conventions", "xthenreg", "--kink", "--h0", "2", "--boot", "9", "--grid", "20", "--seed", "2",
                "--format", "json", "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", kink=True, h0=2.0,
                               n_boot=9, grid=20, seed=2, conventions="xthenreg")
    assert out["conventions"] == "xthenreg" and out["linearity_test"]["kink_test"] == "xthenreg"
    assert out["linearity_test"]["restricted"] == ["x", "kink:(q-threshold)+"]
    assert out["threshold"] == pytest.approx(res.threshold, rel=1e-12)
    assert out["bandwidth"] == pytest.approx(res.bandwidth, rel=1e-12)
    txt = run_cli("threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                  "--kink", "--kink-test", "xthenreg", "--boot", "5", "--grid", "10")
    assert txt.returncode == 0, txt.stderr
    assert "restriction: xthenreg's statistic: x = kink:(q-threshold)+ = 0" in txt.stdout
    gap = tmp_path / "gap.csv"
    df.iloc[1:].to_csv(gap, index=False)
    r = run_cli("threshold", str(gap), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                "--conventions", "xthenreg", "--boot", "0", "--grid", "10")
    assert r.returncode != 0 and "strongly balanced" in one_line_error(r)
    r = run_cli("threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                "--conventions", "xthenreg", "--collapse", "--boot", "0")
    assert "--conventions xthenreg: --collapse" in one_line_error(r)
    r = run_cli("threshold", str(path), "y ~ x | id", "--threshold-var", "q", "--regime", "x", "--exogenous", "x",
                "--h0", "2")
    assert "--exogenous, --h0: for the dynamic model only; add --dynamic" in one_line_error(r)
