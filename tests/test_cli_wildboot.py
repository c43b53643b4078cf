"""`fastpanel fit ... --wildboot COEF`: the wild cluster bootstrap from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastpanel
from fastpanel.cli import main


@pytest.fixture(scope="module")
def city_csv(tmp_path_factory):
    df = fastpanel.datasets.city_panel(seed=0)
    df["lg"], df["lc"] = np.log(df.gdp), np.log(df.computing)
    path = tmp_path_factory.mktemp("wb") / "city.csv"
    df.to_csv(path, index=False)
    return path, df


def test_cli_wildboot_equals_the_api(city_csv, capsys):
    path, df = city_csv
    assert main(["fit", str(path), "lg ~ lc | city + year", "--vcov", "CRV1:province", "--wildboot", "lc",
                 "--B", "999", "--seed", "3", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    wb = fastpanel.feols("lg ~ lc | city + year", df, vcov={"CRV1": "province"}).wildboottest(
        "lc", B=999, seed=3, conf_int=True)
    got = out["wildboot"][0]
    assert got["pvalue"] == wb.pvalue and got["statistic"] == pytest.approx(wb.statistic, rel=1e-12)
    assert got["conf_int"] == pytest.approx(list(wb.conf_int), rel=1e-12)
    assert got["n_clusters"] == 31 and got["B"] == 999 and got["seed"] == 3


def test_cli_wildboot_text_shows_p_value_and_line(city_csv, capsys):
    path, _ = city_csv
    assert main(["fit", str(path), "lg ~ lc | city + year", "--vcov", "CRV1:province", "--wildboot", "lc",
                 "--B", "199", "--seed", "1", "--boot-weights", "webb"]) == 0
    text = capsys.readouterr().out
    assert "wild boot. p" in text and "Wild cluster bootstrap of lc = 0 (WCR11, webb, 199 draws, seed 1" in text


@pytest.mark.parametrize(("extra", "message"), [
    (["--wildboot", "lx", "--vcov", "CRV1:province"], "not a coefficient"),
    (["--wildboot", "lc"], "not clustered"),
    (["--wildboot", "lc", "--vcov", "CRV1:province", "--B", "0"], "--B 0"),
])
def test_cli_wildboot_errors(city_csv, capsys, extra, message):
    path, _ = city_csv
    assert main(["fit", str(path), "lg ~ lc | city + year", *extra]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
