"""Regression tests for the command-line defects of the adversarial pass (issue 8, items 6, 7,
8, 11 and 12), run end to end in subprocesses."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_cli import run_cli, one_line_error

FIT = "np.log(y) ~ x + z | firm + year"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("adv")
    rng = np.random.default_rng(0)
    N, T = 60, 6
    df = pd.DataFrame({"firm": np.repeat(np.arange(N), T), "year": np.tile(np.arange(2000, 2000 + T), N)})
    n = len(df)
    df["x"] = rng.normal(size=n)
    df["z"] = rng.normal(size=n)
    df["q"] = np.round(rng.uniform(size=n), 2)
    df["y"] = np.exp(0.1 * df.x + 0.2 * df.z * (1 + (df.q > 0.5)) + 0.1 * rng.normal(size=n))
    df.loc[[3, 4], "y"] = -1.0          # log of <= 0: NaN made by the formula
    df.loc[[10], "x"] = np.nan          # NaN in the raw data
    df = pd.concat([df, pd.DataFrame({"firm": [999], "year": [2000], "x": [0.1], "z": [0.2], "q": [0.3],
                                      "y": [1.0]})], ignore_index=True)  # a singleton firm
    path = base / "panel.csv"
    df.to_csv(path, index=False)
    return {"csv": path, "frame": df, "base": base}


def test_fit_reports_rows_used_and_dropped(data) -> None:
    text = run_cli("fit", str(data["csv"]), FIT)
    assert text.returncode == 0, text.stderr
    assert "rows used: 357; dropped: 3 with missing values" in text.stdout
    assert "1 singletons" in text.stdout
    assert "vcov: iid" in text.stdout  # the covariance is always printed
    js = run_cli("fit", str(data["csv"]), FIT, "--format", "json")
    payload = json.loads(js.stdout)
    assert payload["rows"] == {"nobs": 357, "dropped_missing_values": 3, "dropped_singletons": 1}
    assert payload["models"][0]["n_dropped"] == 3 and payload["vcov"] == "iid"
    assert payload["rows"]["nobs"] + 3 + 1 == len(data["frame"])


def test_fit_never_overwrites_its_input(data, tmp_path) -> None:
    before = data["csv"].read_bytes()
    result = run_cli("fit", str(data["csv"]), FIT, "--out", str(data["csv"]))
    assert result.returncode == 1
    assert "is the input data file" in one_line_error(result)
    link = tmp_path / "link.csv"
    os.symlink(data["csv"], link)
    result = run_cli("fit", str(data["csv"]), FIT, "--out", str(link), "--force")
    assert result.returncode == 1 and "input data file" in result.stderr
    assert data["csv"].read_bytes() == before


def test_existing_output_needs_force(data, tmp_path) -> None:
    out = tmp_path / "table.txt"
    out.write_text("keep me")
    result = run_cli("fit", str(data["csv"]), FIT, "--out", str(out))
    assert result.returncode == 1 and "--force" in one_line_error(result)
    assert out.read_text() == "keep me"
    result = run_cli("fit", str(data["csv"]), FIT, "--out", str(out), "--force")
    assert result.returncode == 0 and "np.log(y)" not in out.read_text()[:0] and "x" in out.read_text()


def test_unwritable_plot_fails_before_the_bootstrap(data) -> None:
    start = time.perf_counter()
    result = run_cli("threshold", str(data["csv"]), "y ~ x | firm", "--threshold-var", "q", "--regime", "z",
                     "--time", "year", "--boot", "5000", "--plot", "/nonexistent/lr.png")
    assert result.returncode == 1
    assert "/nonexistent" in one_line_error(result)
    assert result.stdout == ""  # nothing printed as if the run had completed
    assert time.perf_counter() - start < 60


def test_demo_keeps_user_files(tmp_path) -> None:
    out = tmp_path / "rep"
    assert run_cli("--quiet", "demo", "--out", str(out), "--boot", "5").returncode == 0
    (out / "notes.txt").write_text("mine")
    assert run_cli("--quiet", "demo", "--out", str(out), "--boot", "5").returncode == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert "notes.txt" not in json.loads((out / "results.json").read_text())["files"]


def test_threshold_options_and_expressions(data) -> None:
    base = ["threshold", str(data["csv"]), "np.log(y) ~ x | firm + year", "--threshold-var", "q",
            "--regime", "z", "--boot", "19", "--trim", "0.05", "--grid", "50", "--format", "json"]
    result = run_cli(*base, "--bootstrap", "wild", "--level", "0.1")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["rows"]["dropped_missing_values_or_ids"] == 3
    assert payload["selection_level"] == 0.1 and payload["n_selected"] in (0, 1)
    import fastpanel

    frame = data["frame"]
    expected = fastpanel.threshold("np.log(y) ~ x | firm + year", frame, threshold_var="q", regime_vars="z",
                                   n_boot=19, trim=0.05, grid=50, bootstrap="wild", seed=0, level=0.1,
                                   progress=False)
    np.testing.assert_allclose(payload["estimated_thresholds"], expected.thresholds)
    assert [t["pvalue"] for t in payload["tests"]] == list(expected.tests.pvalue)
    # the same model through --time and --time-effects
    same = run_cli("threshold", str(data["csv"]), "np.log(y) ~ x | firm", "--threshold-var", "q",
                   "--regime", "z", "--boot", "19", "--trim", "0.05", "--grid", "50", "--format", "json",
                   "--bootstrap", "wild", "--level", "0.1", "--time", "year", "--time-effects")
    assert json.loads(same.stdout)["tests"] == payload["tests"]
    # Hansen's conventions have firm effects only, and delete one period per firm
    han = run_cli(*base[:3], "--threshold-var", "q", "--regime", "z", "--boot", "0", "--conventions",
                  "hansen1999")
    assert han.returncode == 1 and "--conventions default" in one_line_error(han)
    han = run_cli("threshold", str(data["csv"]), "y ~ x | firm", "--threshold-var", "q", "--regime", "z",
                  "--boot", "0", "--conventions", "hansen1999", "--time", "year")
    assert han.returncode == 1 and ">= 2 periods" in one_line_error(han)  # the singleton firm


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--time-effects"], "--time-effects needs the period column: add --time COL"),
        (["--trim", "abc"], "--trim 'abc'"),
        (["--grid", "many"], "--grid 'many'"),
    ],
)
def test_threshold_errors_speak_cli(data, extra, needle) -> None:
    result = run_cli("threshold", str(data["csv"]), "y ~ x | firm", "--threshold-var", "q", "--regime", "z",
                     "--boot", "0", *extra)
    assert result.returncode == 1
    assert needle in one_line_error(result)


def test_residual_bootstrap_without_period_says_which_option(data) -> None:
    result = run_cli("threshold", str(data["csv"]), "y ~ x | firm", "--threshold-var", "q", "--regime", "z",
                     "--boot", "5")
    assert result.returncode == 1
    line = one_line_error(result)
    assert "--time COL" in line and "time=" not in line


def test_fit_dk_needs_time_and_errors_speak_cli(data) -> None:
    result = run_cli("fit", str(data["csv"]), FIT, "--vcov", "DK:1")
    assert "add --time COL" in one_line_error(result)
    ok = run_cli("fit", str(data["csv"]), FIT, "--vcov", "DK:1", "--time", "year")
    assert ok.returncode == 0 and "vcov: DK:1" in ok.stdout
    bad = run_cli("fit", str(data["csv"]), "y ~ x | firm", "--vcov", "CRV1:nope")
    assert bad.returncode == 1 and "{" not in one_line_error(bad)


def test_split_failure_names_the_group(data, tmp_path) -> None:
    df = data["frame"].assign(g=np.where(data["frame"].firm < 2, "small", "big"))
    df.loc[df.g == "small", "x"] = 1.0
    path = tmp_path / "split.csv"
    df.to_csv(path, index=False)
    result = run_cli("fit", str(path), "y ~ x | firm", "--split", "g")
    assert result.returncode == 1
    assert "g = 'small'" in one_line_error(result)


def test_info_reads_only_key_columns_of_a_wide_file(tmp_path) -> None:
    path = tmp_path / "wide.csv"
    names = ["city", "year"] + [f"c{i}" for i in range(200_000)]
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for r in range(3):
            f.write(",".join([str(r), "2000"] + ["1"] * (len(names) - 2)) + "\n")
    start = time.perf_counter()
    result = run_cli("info", str(path), "--entity", "city", "--time", "year", "--json")
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - start < 30
    info = json.loads(result.stdout[result.stdout.index("{"):])
    assert info["columns"] == len(names) and info["columns_read"] == ["city", "year"]


def test_info_reports_duplicates_not_imbalance(data, tmp_path) -> None:
    df = pd.concat([data["frame"], data["frame"].iloc[[0]]])
    df = df[df.firm != 999]
    path = tmp_path / "dup.csv"
    df.to_csv(path, index=False)
    result = run_cli("info", str(path), "--entity", "firm", "--time", "year")
    assert result.returncode == 1
    assert "duplicate" in one_line_error(result)
    assert "balanced                  yes" in result.stdout
