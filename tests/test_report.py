"""Report building blocks: tables against statsmodels numbers, figures, the report folder."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from fastpanel.report import (
    Report,
    ReportWriteError,
    coef_frame,
    coef_plot_png,
    coef_table,
    hansen_critical_value,
    lr_curve_arrays,
    lr_plot_png,
    model_dict,
    side_by_side,
    split_models,
    to_jsonable,
)

sm = pytest.importorskip("statsmodels.api")
mpimg = pytest.importorskip("matplotlib.image")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ols():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x_1": rng.normal(size=200), "z": rng.normal(size=200)})
    y = 1.0 + 0.5 * X["x_1"] - 0.2 * X["z"] + rng.normal(size=200)
    return sm.OLS(y, sm.add_constant(X)).fit(cov_type="HC1")


def test_coef_frame_matches_statsmodels(ols):
    frame = coef_frame(ols, truth={"x_1": 0.5, "z": -0.2})
    np.testing.assert_allclose(frame["estimate"], ols.params.to_numpy())
    np.testing.assert_allclose(frame["se"], ols.bse.to_numpy())
    np.testing.assert_allclose(frame[["ci_low", "ci_high"]], ols.conf_int().to_numpy())
    assert math.isnan(frame.loc["const", "true"]) and frame.loc["const", "covered"] is None
    assert frame.loc["x_1", "covered"] == bool(ols.conf_int().loc["x_1", 0] <= 0.5 <= ols.conf_int().loc["x_1", 1])


def test_coef_table_formats(ols):
    text = coef_table(ols, "text", truth={"x_1": 0.5})
    assert f"{ols.params['x_1']:.4f}" in text and "N = 200" in text
    md = coef_table(ols, "md", truth={"x_1": 0.5})
    assert md.splitlines()[0].startswith("| term |") and "| x_1 |" in md
    tex = coef_table(ols, "latex", caption="a_b & c")
    assert r"\begin{tabular}" in tex and r"x\_1" in tex and r"a\_b \& c" in tex
    assert "***" not in tex.replace("$^{***}$", "")  # stars are typeset in math mode
    html = coef_table(ols, "html")
    assert html.startswith("<table>") and "<td>x_1</td>" in html
    with pytest.raises(ValueError, match="fmt"):
        coef_table(ols, "rtf")


def test_side_by_side_and_split(ols):
    models = split_models({"2017": ols, "2018": ols})
    assert [label for label, _ in models] == ["2017", "2018"]
    table = side_by_side(models, "md", truth={"x_1": 0.5})
    assert table.count(f"({ols.bse['x_1']:.4f})") == 2
    assert "| N | 200 | 200 |" in table


def test_model_dict_is_json(ols):
    payload = json.loads(json.dumps(model_dict(ols), allow_nan=False))
    assert payload["coefficients"]["z"]["estimate"] == pytest.approx(ols.params["z"])
    assert payload["nobs"] == 200
    assert to_jsonable({"a": np.float64("nan"), "b": np.int64(3)}) == {"a": None, "b": 3}


def test_hansen_critical_value():
    # Hansen (2000), Table 1: the 95% critical value of the LR statistic is 7.35.
    assert hansen_critical_value(0.95) == pytest.approx(7.35, abs=0.005)


def test_lr_curve_arrays_accepts_common_shapes():
    grid, lr = np.array([1.0, 2.0, 3.0]), np.array([4.0, 0.0, 5.0])
    for curve in ((grid, lr), pd.DataFrame({"gamma": grid, "lr": lr}), {"grid": grid, "lr": lr},
                  pd.Series(lr, index=grid)):
        g, v = lr_curve_arrays(curve)
        np.testing.assert_array_equal(g, grid)
        np.testing.assert_array_equal(v, lr)


def test_plots_are_valid_png(tmp_path):
    grid = np.linspace(0, 10, 50)
    png = lr_plot_png(grid, (grid - 4) ** 2, estimate=4.0, truth=4.2)
    assert png.startswith(PNG_SIGNATURE)
    path = tmp_path / "lr.png"
    path.write_bytes(png)
    assert mpimg.imread(path).ndim == 3
    png = coef_plot_png([("a", 0.1, 0.0, 0.2, 0.1), ("b", -0.1, -0.3, 0.1, None)])
    assert png.startswith(PNG_SIGNATURE)


def _report(ols) -> Report:
    report = Report("test report")
    report.banner("SYNTHETIC")
    report.heading("one")
    report.paragraph("text <with> markup & stuff")
    report.table(coef_table(ols, "md"), coef_table(ols, "html"), tex=coef_table(ols, "latex"),
                 tex_name="t.tex")
    report.figure("f.png", lr_plot_png(np.arange(5.0), np.arange(5.0)), "a figure")
    report.results = {"x": np.float64(1.5)}
    return report


def test_report_folder_is_self_contained(tmp_path, ols):
    out = _report(ols).write(tmp_path / "rep")
    assert sorted(p.name for p in out.iterdir()) == ["f.png", "report.html", "report.md",
                                                     "results.json", "t.tex"]
    html = (out / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<link" not in html and "<script" not in html and "http" not in html
    assert "text &lt;with&gt; markup &amp; stuff" in html
    assert "![a figure](f.png)" in (out / "report.md").read_text()
    # the manifest lists what the report wrote (a later report replaces only those files)
    assert json.loads((out / "results.json").read_text()) == {
        "generator": "fastpanel", "files": ["f.png", "report.html", "report.md", "results.json", "t.tex"], "x": 1.5}
    # A previous report is replaced; nothing else is left beside it.
    _report(ols).write(tmp_path / "rep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_report_refuses_foreign_directory(tmp_path, ols):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("keep me")
    with pytest.raises(ReportWriteError, match="not a previous fastpanel report"):
        _report(ols).write(target)
    assert [p.name for p in target.iterdir()] == ["thesis.tex"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportWriteError, match="cannot write"):
        _report(ols).write(blocker / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine"]


def test_report_failure_leaves_nothing(tmp_path, ols):
    report = _report(ols)
    report.results = {"bad": object()}  # not JSON-serialisable: fails after files are staged
    with pytest.raises(TypeError):
        report.write(tmp_path / "rep")
    assert list(tmp_path.iterdir()) == []


def test_figure_rejects_non_png():
    with pytest.raises(ValueError, match="not PNG"):
        Report("x").figure("a.png", b"GIF89a", "x")
