"""IV fits through the other front ends: the command line, the report, etable, Dask, the formula parser.

The numbers themselves are checked against pyfixest and linearmodels in tests/test_iv.py; here
each interface must carry the same fit (same estimates, same first-stage F) and refuse what it
cannot do with a message that says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastpanel as fp
from fastpanel.ols.formula import _parse

FML = "y ~ x1 | firm + year | d ~ z1 + z2"


def _panel(n: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    firm = rng.integers(0, 120, n)
    year = rng.integers(0, 8, n)
    z1, z2, x1, e = (rng.normal(size=n) for _ in range(4))
    d = 0.8 * z1 + 0.5 * z2 + 0.3 * x1 + np.sin(firm) + 0.6 * e + rng.normal(size=n)
    y = d + 0.5 * x1 + np.cos(firm) + 0.1 * year + e
    return pd.DataFrame(dict(y=y, d=d, x1=x1, z1=z1, z2=z2, firm=firm, year=year))


@pytest.mark.parametrize(
    "fml, expected",
    [
        ("y ~ x | fe | d ~ z", ("y", "x", ["fe"], ("d", "z"))),
        ("y ~ x | d ~ z1 + z2", ("y", "x", [], ("d", "z1 + z2"))),
        ("y ~ 1 | a + b | d1 + d2 ~ z1 + z2", ("y", "1", ["a", "b"], ("d1 + d2", "z1 + z2"))),
        ("y ~ x | a + b", ("y", "x", ["a", "b"], None)),
    ],
)
def test_formula_parts(fml, expected):
    assert _parse(fml) == expected


@pytest.mark.parametrize("fml", ["y ~ x | d ~ z | fe", "y ~ x | fe | d ~", "y ~ x | a | b | d ~ z", "y ~ x | fe | d ~ z ~ w"])
def test_malformed_iv_formulas_raise(fml):
    with pytest.raises(ValueError, match="formula"):
        _parse(fml)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    return subprocess.run([sys.executable, "-m", "fastpanel", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_cli_fit_reports_the_iv_part(tmp_path):
    df = _panel()
    path = tmp_path / "iv.csv"
    df.to_csv(path, index=False)
    res = fp.feols(FML, df, vcov={"CRV1": "firm"})
    out = _run_cli("fit", str(path), FML, "--vcov", "CRV1:firm", "--format", "json")
    assert out.returncode == 0, out.stderr
    model = json.loads(out.stdout)["models"][0]
    for name in ("x1", "d"):
        assert model["coefficients"][name]["estimate"] == pytest.approx(res.params[name], rel=1e-12)
        assert model["coefficients"][name]["se"] == pytest.approx(res.bse[name], rel=1e-12)
    iv = model["iv"]
    assert iv["endogenous"] == ["d"] and iv["instruments"] == ["z1", "z2"]
    assert iv["first_stage_f"]["d"] == pytest.approx(float(res.first_stage_f["d"]), rel=1e-12)
    assert iv["durbin_wu_hausman"]["stat"] == pytest.approx(res.dwh().stat, rel=1e-12)
    text = _run_cli("fit", str(path), FML, "--vcov", "CRV1:firm")
    assert text.returncode == 0, text.stderr
    assert "IV (2SLS): endogenous d; instruments z1, z2; first-stage F: d " in text.stdout


def test_etable_marks_2sls_columns_and_first_stage_f():
    df = _panel()
    iv = fp.feols(FML, df, vcov={"CRV1": "firm"})
    ols = fp.feols("y ~ x1 + d | firm + year", df, vcov={"CRV1": "firm"})
    table = fp.etable([ols, iv], type="object")
    rows = {r[0]: r[1:] for r in table.stats}
    assert rows["Estimator"] == ["OLS", "2SLS"]
    assert rows["First-stage F"] == ["", f"{float(iv.first_stage_f['d']):.1f}"]


def test_summary_and_repr_name_the_model():
    res = fp.feols(FML, _panel(), vcov="hetero")
    text = res.summary()
    assert text.startswith("IV (2SLS) with fixed effects")
    assert "Instruments         z1, z2" in text and "First-stage F" in text
    assert "endogenous: d" in repr(res)


def test_dask_refuses_iv_hc3_with_the_reason():
    """Dask fits IV (tests/test_distributed_iv.py) but not with the 2SLS leverage (HC2/HC3)."""
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.from_pandas(_panel(), npartitions=2)
    with pytest.raises(ValueError, match="leverage of the 2SLS"):
        fp.feols(FML, ddf, vcov="HC3")


def test_split_fits_one_iv_model_per_group():
    df = _panel(3000)
    df["half"] = df["year"] % 2
    out = fp.feols(FML, df, vcov="hetero", split="half")
    for value, res in out.items():
        alone = fp.feols(FML, df[df["half"] == value], vcov="hetero")
        np.testing.assert_allclose(res.params.to_numpy(), alone.params.to_numpy(), rtol=1e-13)
        assert isinstance(res, fp.IVResults)


def test_input_frame_is_not_modified():
    df = _panel()
    df.loc[3, "z1"] = np.nan
    before = df.copy()
    fp.feols(FML, df, vcov={"CRV3": "firm"})
    pd.testing.assert_frame_equal(df, before)
