"""``fastpanel threshold ... --report DIR``: the report folder of the static and dynamic models.

Every number in the report is checked against the Python API's fit of the same data (the
estimators themselves are checked against their oracles in test_threshold*.py and
test_dynamic_threshold.py); what is tested here is that the report shows the curve, the tests
that choose the model and the regime table, and that it refuses to overwrite a folder that is
not a fastpanel report.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _dynamic_data import simulate
from test_cli import PNG_SIGNATURE, one_line_error, run_cli

import fastpanel as fp
from fastpanel.datasets import city_panel

TH_FORMULA = "log_gdp ~ log_computing + log_invest | city"


@pytest.fixture(scope="module")
def static_file(tmp_path_factory):
    data = city_panel()
    data = data.assign(log_gdp=np.log(data["gdp"]), log_computing=np.log(data["computing"]),
                       log_invest=np.log(data["invest"]), log_cloud_spend=np.log(data["cloud_spend"]))
    path = tmp_path_factory.mktemp("th") / "city.csv"
    data.sample(frac=1, random_state=1).to_csv(path, index=False)
    return data, path


@pytest.fixture(scope="module")
def dynamic_file(tmp_path_factory):
    df = simulate(120, 8, seed=11)
    path = tmp_path_factory.mktemp("dyn") / "panel.csv"
    df.sample(frac=1, random_state=2).to_csv(path, index=False)
    return df, path


def _tex_numbers(text: str) -> str:
    return text.replace(",", "")


def test_static_report_shows_the_tests_the_selected_model_and_the_lr_curve(static_file, tmp_path):
    data, path = static_file
    out = tmp_path / "rep"
    r = run_cli("--quiet", "threshold", str(path), TH_FORMULA, "--threshold-var", "storage", "--regime",
                "log_cloud_spend", "--time", "year", "--n-thresholds", "2", "--boot", "30", "--seed", "4",
                "--report", str(out))
    assert r.returncode == 0, r.stderr
    files = {p.name for p in out.iterdir()}
    assert {"report.html", "report.md", "results.json", "lr_curve.png", "table_threshold_tests.tex",
            "table_threshold.tex"} <= files
    assert (out / "lr_curve.png").read_bytes().startswith(PNG_SIGNATURE)
    res = fp.threshold(TH_FORMULA, data, threshold_var="storage", regime_vars="log_cloud_spend", time="year",
                       n_thresholds=2, n_boot=30, seed=4, progress=False)
    payload = json.loads((out / "results.json").read_text())
    assert payload["model"] == "threshold" and payload["n_selected"] == res.n_selected
    k = res.n_thresholds if res.n_selected is None else res.n_selected
    np.testing.assert_allclose(payload["thresholds"], np.asarray(res.model_for(k).thresholds, float), rtol=1e-12)
    md = (out / "report.md").read_text()
    assert res.selection_text() in md
    # every test row (F statistic and bootstrap p-value) is in the tests table
    for _, row in res.tests.iterrows():
        assert f"{float(row.iloc[0]):.4f}" in md
    # the selected model's coefficients are in the coefficient table
    for value in res.model_for(k).params:
        assert f"{float(value):.4f}" in md
    assert "<img" in (out / "report.html").read_text()


def test_dynamic_report_shows_the_linearity_test_the_regimes_and_the_objective(dynamic_file, tmp_path):
    df, path = dynamic_file
    out = tmp_path / "rep"
    r = run_cli("--quiet", "threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q",
                "--dynamic", "--instrument", "q", "--boot", "29", "--grid", "25", "--seed", "6",
                "--report", str(out))
    assert r.returncode == 0, r.stderr
    files = {p.name for p in out.iterdir()}
    assert {"report.html", "report.md", "results.json", "gmm_objective.png", "table_linearity_test.tex",
            "table_regimes.tex", "table_dynamic_threshold.tex"} <= files
    assert (out / "gmm_objective.png").read_bytes().startswith(PNG_SIGNATURE)
    res = fp.dynamic_threshold("y ~ x", df, entity="id", time="year", threshold_var="q", instruments=["q"],
                               n_boot=29, grid=25, seed=6)
    payload = json.loads((out / "results.json").read_text())
    assert payload["model"] == "dynamic_threshold"
    assert payload["threshold"] == pytest.approx(res.threshold, rel=1e-12)
    assert payload["linearity_test"]["pvalue"] == res.linearity_test.pvalue
    md = (out / "report.md").read_text()
    lt = res.linearity_test
    assert f"{lt.statistic:.4f}" in md and f"{lt.pvalue:.4f}" in md
    regimes = res.regimes
    for term, row in regimes.iterrows():
        line = next(line for line in md.splitlines() if line.startswith(f"| {term} |"))
        for col in ("lower", "lower_se", "upper", "upper_se"):
            assert f"{row[col]:.4f}" in line
    tex = (out / "table_regimes.tex").read_text()
    assert f"{regimes.loc['x', 'upper']:.4f}" in _tex_numbers(tex)
    # the specification tests: Arellano-Bond AR(1), AR(2) and Hansen's J, in the table and the JSON
    assert "table_specification_tests.tex" in files
    for j in (1, 2):
        z, p = res.ar_tests[j]
        line = next(line for line in md.splitlines() if line.startswith(f"| Arellano-Bond AR({j}) |"))
        assert f"{z:.4f}" in line and f"{p:.4f}" in line
        assert payload["ar_tests"][f"AR({j})"]["z"] == pytest.approx(z, rel=1e-12)
    assert any(line.startswith("| Hansen J (overidentification) |") for line in md.splitlines())


def test_dynamic_report_without_bootstrap_says_so(dynamic_file, tmp_path):
    _, path = dynamic_file
    out = tmp_path / "rep"
    r = run_cli("--quiet", "threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q",
                "--dynamic", "--boot", "0", "--grid", "15", "--kink", "--report", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    assert "not run (--boot 0)" in md and "(q - threshold)+" in md
    assert not (out / "table_linearity_test.tex").exists()


def test_report_refuses_a_folder_that_is_not_a_report_before_fitting(dynamic_file, tmp_path):
    _, path = dynamic_file
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = run_cli("threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
                "--boot", "0", "--grid", "15", "--report", str(out))
    assert r.returncode != 0
    assert "--report" in one_line_error(r) and "not a previous fastpanel report" in r.stderr
    assert r.stdout == ""  # failed before the fit: nothing printed as if complete
    assert (out / "notes.txt").read_text() == "keep me"


def test_report_replaces_a_previous_report(dynamic_file, tmp_path):
    _, path = dynamic_file
    out = tmp_path / "rep"
    args = ["--quiet", "threshold", str(path), "y ~ x | id", "--time", "year", "--threshold-var", "q", "--dynamic",
            "--grid", "15", "--report", str(out)]
    assert run_cli(*args, "--boot", "9").returncode == 0
    assert (out / "table_linearity_test.tex").exists()
    assert run_cli(*args, "--boot", "0").returncode == 0
    # the second report has no linearity test: the first one's table is gone, not left stale
    assert not (out / "table_linearity_test.tex").exists()
    assert json.loads((out / "results.json").read_text())["linearity_test"] is None
    assert isinstance(pd.read_json(out / "results.json", typ="series")["threshold"], float)
