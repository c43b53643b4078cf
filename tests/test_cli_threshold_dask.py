"""``fastpanel threshold FILES FORMULA ... --dask [SCHEDULER]``: the thresholds, F statistics and
p-values of ``fastpanel.threshold`` on the same rows in memory, and clear failures (a scheduler
that does not answer, the residual bootstrap, a missing column, an unsupported layout) with
nothing printed as a result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import fastpanel  # noqa: E402
from fastpanel.cli import main  # noqa: E402

#: The options of every fit here, as the CLI spells them and as the library does.
CLI_OPTS = ("--threshold-var", "q", "--regime", "z", "--boot", "9", "--grid", "50", "--trim", "0.05",
            "--seed", "7")
LIB_OPTS = dict(threshold_var="q", regime_vars="z", n_boot=9, grid=50, trim=0.05, seed=7, bootstrap="wild")
FORMULA = "y ~ x | firm"


def panel(seed: int = 11, n_firms: int = 40, n_years: int = 9) -> pd.DataFrame:
    """An unbalanced panel with gaps, string ids, a threshold effect in z at q = 0.4, a NaN row,
    rows in random order."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_firms):
        years = np.sort(rng.choice(np.arange(2000, 2000 + n_years), size=int(rng.integers(4, n_years + 1)),
                                   replace=False))  # gaps: a random subset of the years
        rows += [(f"firm-{i:03d}", int(t)) for t in years]
    df = pd.DataFrame(rows, columns=["firm", "year"])
    n = len(df)
    alpha = rng.normal(size=n_firms)[df["firm"].str[-3:].astype(int)]
    df["x"] = rng.normal(size=n)
    df["z"] = rng.normal(size=n)
    df["q"] = np.round(rng.uniform(size=n), 3)
    df["y"] = 0.5 * df["x"] + df["z"] * np.where(df["q"] <= 0.4, 2.0, 0.8) + alpha + rng.normal(size=n)
    df.loc[3, "x"] = np.nan  # dropped and counted
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("threshold_dask_cli")
    df = panel()
    (root / "data").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):  # entities cut across files
        df.iloc[part].to_parquet(root / "data" / f"part{i}.parquet", index=False)
    return df, root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_dask_threshold_equals_in_memory(data, dask_client, capsys) -> None:
    df, root = data
    rc, out, err = run(capsys, "threshold", str(root / "data" / "*.parquet"), FORMULA, *CLI_OPTS,
                       "--n-thresholds", "2", "--format", "json", "--dask", dask_client.scheduler.address)
    assert rc == 0, err
    assert "fastpanel: round 1" in err and "fastpanel: bootstrap of test 2" in err  # progress on stderr
    got = json.loads(out)
    want = fastpanel.threshold(FORMULA, df, n_thresholds=2, **LIB_OPTS)
    assert got["rows"] == {"nobs": int(want.nobs), "dropped_missing_values_or_ids": 1}
    assert got["estimated_thresholds"] == [float(t) for t in want.thresholds]
    assert [t["F"] for t in got["tests"]] == pytest.approx(list(want.tests["F"]), rel=1e-9)
    assert [t["pvalue"] for t in got["tests"]] == list(want.tests["pvalue"])
    assert got["n_selected"] == want.n_selected
    shown = want.model_for(want.n_selected)
    assert got["thresholds"] == [float(t) for t in shown.thresholds]
    for name, coef in got["coefficients"].items():
        assert coef["estimate"] == pytest.approx(float(shown.params[name]), rel=1e-9)


def test_dask_two_way_equals_in_memory(data, dask_client, capsys) -> None:
    """Entity and period effects ('| firm + year') on Dask: the in-memory numbers."""
    df, root = data
    fml = FORMULA.replace("| firm", "| firm + year")
    rc, out, err = run(capsys, "threshold", str(root / "data" / "*.parquet"), fml, *CLI_OPTS, "--format", "json",
                       "--dask", dask_client.scheduler.address)
    assert rc == 0, err
    got = json.loads(out)
    want = fastpanel.threshold(fml, df, **LIB_OPTS)
    assert got["estimated_thresholds"] == [float(t) for t in want.thresholds]
    assert [t["F"] for t in got["tests"]] == pytest.approx(list(want.tests["F"]), rel=1e-9)
    assert [t["pvalue"] for t in got["tests"]] == list(want.tests["pvalue"])


def test_further_effects_refused(data, capsys) -> None:
    _, root = data
    rc, out, err = run(capsys, "threshold", str(root / "data"), FORMULA.replace("| firm", "| firm + year + x"),
                       *CLI_OPTS, "--dask", "tcp://127.0.0.1:9")
    assert rc == 1 and out == "" and "further absorbed effects need the in-memory fit" in err


def test_local_cluster_summary_and_report(data, tmp_path) -> None:
    """Without an address: a local cluster, in a fresh process (no other client to fall back on:
    everything printed must be computed before the cluster closes); the summary, the report folder
    and the plot of the Dask result, with --time (rows ordered by period on the workers)."""
    df, root = data
    report, plot = tmp_path / "report", tmp_path / "lr.png"
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    proc = subprocess.run([sys.executable, "-m", "fastpanel", "threshold", str(root / "data"), FORMULA, *CLI_OPTS,
                           "--n-thresholds", "2", "--time", "year", "--report", str(report), "--plot", str(plot),
                           "--dask"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "fastpanel: starting a local Dask cluster" in proc.stderr
    assert "fastpanel: last rounds" in proc.stderr and "WARNING" not in proc.stderr
    want = fastpanel.threshold(FORMULA, df, n_thresholds=2, time="year", **LIB_OPTS)
    out = proc.stdout
    assert "backend: numba (dask)" in out
    rows = re.findall(r"^([12])\s+(\S+)\s+(\S+)", out, re.M)  # the summary's test rows: k, F, p-value
    assert [int(k) for k, _, _ in rows] == [1, 2]
    assert [float(f) for _, f, _ in rows] == pytest.approx(list(want.tests["F"]), rel=1e-3)
    assert [float(p) for _, _, p in rows] == pytest.approx(list(want.tests["pvalue"]), abs=1e-3)
    want_text = str(want.summary())
    shown = want_text[want_text.index("Model shown"):]  # thresholds, confidence sets, coefficients
    assert shown in out
    results = json.loads((report / "results.json").read_text())
    assert results["estimated_thresholds"] == [float(t) for t in want.thresholds]
    assert [t["pvalue"] for t in results["tests"]] == list(want.tests["pvalue"])
    assert (report / "report.html").exists() and plot.read_bytes()[:4] == b"\x89PNG"


def test_scheduler_that_does_not_answer(data, capsys) -> None:
    _, root = data
    rc, out, err = run(capsys, "threshold", str(root / "data"), FORMULA, *CLI_OPTS, "--dask", "tcp://127.0.0.1:9")
    assert rc != 0 and out == ""
    assert "does not answer" in err and "tcp://127.0.0.1:9" in err


@pytest.mark.parametrize(("extra", "message"), [
    (("--bootstrap", "residual"), "--bootstrap residual is not available with --dask"),
    (("--dynamic",), "--dynamic is not available with --dask"),
    (("--conventions", "hansen1999"), "add --time COL"),
    (("--boot", "-1"), "--boot must be >= 0"),
])
def test_refused_before_any_cluster(data, capsys, extra, message) -> None:
    _, root = data
    rc, out, err = run(capsys, "threshold", str(root / "data"), FORMULA, *CLI_OPTS, *extra,
                       "--dask", "tcp://127.0.0.1:9")  # the check comes first: no connection is tried
    assert rc == 1 and out == ""
    assert message in err
    if "residual" in message:
        assert "use --bootstrap wild" in err


@pytest.mark.parametrize(("formula", "options", "column"), [
    ("y ~ x + w | firm", (), "'w'"),
    (FORMULA, ("--time", "period"), "'period'"),
    ("y ~ x | company", (), "'company'"),
])
def test_missing_column(data, capsys, formula, options, column) -> None:
    _, root = data
    rc, out, err = run(capsys, "threshold", str(root / "data" / "*.parquet"), formula, *CLI_OPTS, *options,
                       "--dask", "tcp://127.0.0.1:9")
    assert rc == 1 and out == ""
    assert f"column {column} not found" in err and "does not answer" not in err


def test_missing_threshold_variable(data, capsys) -> None:
    _, root = data
    rc, out, err = run(capsys, "threshold", str(root / "data"), FORMULA, "--threshold-var", "qq", "--regime", "z",
                       "--dask", "tcp://127.0.0.1:9")
    assert rc == 1 and out == "" and "column 'qq' not found" in err and "did you mean 'q'" in err


def test_no_files(tmp_path, capsys) -> None:
    rc, out, err = run(capsys, "threshold", str(tmp_path / "*.parquet"), FORMULA, *CLI_OPTS, "--dask")
    assert rc == 1 and out == "" and "no data files match" in err


def test_unreadable_partition_file(data, dask_client, capsys, tmp_path) -> None:
    """A corrupt Parquet file among the inputs: named, and nothing printed as a result."""
    df, _ = data
    folder = tmp_path / "bad"
    folder.mkdir()
    df.iloc[:60].to_parquet(folder / "a.parquet", index=False)
    (folder / "b.parquet").write_bytes(b"this is not parquet")
    rc, out, err = run(capsys, "threshold", str(folder / "*.parquet"), FORMULA, *CLI_OPTS, "--dask",
                       dask_client.scheduler.address)
    assert rc == 1 and out == ""
    assert "b.parquet" in err
