"""``fastpanel fit FILES FORMULA --dask [SCHEDULER]``: the same table as the in-memory fit, and
clear failures (an unreadable partition file, a scheduler that does not answer) with nothing
printed as a result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

from fastpanel.cli import main  # noqa: E402
from test_distributed_ols import panel  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask_cli")
    df = panel(1).sample(frac=1.0, random_state=0)  # rows in random order, entities cut by files
    (root / "data").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[part].to_parquet(root / "data" / f"part{i}.parquet")
    df.to_parquet(root / "all.parquet")
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_dask_fit_equals_in_memory(files, capsys) -> None:
    fml = "y ~ x1 + x2 | firm + year"
    rc, out, err = run(capsys, "fit", str(files / "data" / "*.parquet"), fml, "--vcov", "CRV1:firm", "--format",
                       "json", "--dask")
    assert rc == 0, err
    assert "round 5/5" in err  # progress on stderr
    rc2, out2, _ = run(capsys, "fit", str(files / "all.parquet"), fml, "--vcov", "CRV1:firm", "--format", "json")
    assert rc2 == 0
    got, want = json.loads(out)["models"][0], json.loads(out2)["models"][0]
    assert got["nobs"] == want["nobs"] and got["n_singletons"] == want["n_singletons"]
    for name, coef in want["coefficients"].items():
        assert got["coefficients"][name]["estimate"] == pytest.approx(coef["estimate"], rel=1e-10)
        assert got["coefficients"][name]["se"] == pytest.approx(coef["se"], rel=1e-10)


def test_unreadable_partition_file(files, capsys, tmp_path) -> None:
    for i in range(2):
        (tmp_path / f"part{i}.parquet").write_bytes((files / "data" / f"part{i}.parquet").read_bytes())
    (tmp_path / "part2.parquet").write_bytes(b"PAR1 this is not a parquet file")
    rc, out, err = run(capsys, "fit", str(tmp_path / "*.parquet"), "y ~ x1 | firm", "--dask")
    assert rc != 0 and out == ""
    assert "part2.parquet" in err or "cannot read" in err or "Dask computation failed" in err


def test_scheduler_that_does_not_answer(files, capsys) -> None:
    rc, out, err = run(capsys, "fit", str(files / "all.parquet"), "y ~ x1 | firm", "--dask", "tcp://127.0.0.1:9")
    assert rc != 0 and out == ""
    assert "does not answer" in err


def test_unsupported_layout_is_named(files, capsys) -> None:
    rc, out, err = run(capsys, "fit", str(files / "all.parquet"), "y ~ x1 | firm + year", "--vcov", "CRV3:year",
                       "--dask")
    assert rc != 0 and out == "" and "on Dask, feols supports" in err
