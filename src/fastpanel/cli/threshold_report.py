"""``fastpanel threshold ... --report DIR``: a report folder for a threshold fit.

The folder holds report.html and report.md (every table and the figure), one LaTeX file per
table, the curve as a PNG and results.json (the same payload as ``--format json``), for the
static model (Hansen 1999: the sequential tests, the selected model's coefficients and the LR
curve) and the dynamic model (Seo and Shin 2016: the linearity test, the regime table, the
coefficients and the GMM objective with the Wald curve).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["dynamic_report", "static_report"]


def _source(args: argparse.Namespace) -> str:
    return f"Data: {args.file}. Formula: {args.formula}. Threshold variable: {args.threshold_var}."


def _add_table(report: Any, frame: pd.DataFrame, caption: str, tex_name: str, *, notes: str | None = None) -> None:
    from fastpanel.report import frame_table

    report.table(frame_table(frame, "md", caption=caption, notes=notes),
                 frame_table(frame, "html", caption=caption, notes=notes),
                 tex=frame_table(frame, "latex", caption=caption, notes=notes), tex_name=tex_name)


def _add_coefs(report: Any, result: Any, caption: str, tex_name: str) -> None:
    from fastpanel.report import coef_table

    report.table(coef_table(result, "md", caption=caption), coef_table(result, "html", caption=caption),
                 tex=coef_table(result, "latex", caption=caption), tex_name=tex_name)


def shown_lr_curve(result: Any) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(grid, LR, estimate, caption) of the first threshold of the model the report shows: the
    selected model's own curve, or the one-threshold model's when no threshold is selected."""
    from fastpanel.report import lr_curve_arrays

    k = result.n_thresholds if result.n_selected is None else result.n_selected
    model = result.model_for(max(k, 1))
    grid, lr = lr_curve_arrays(model.lr_curve(1))
    which = (f"of the selected {k}-threshold model" if k else
             "of the one-threshold model (no threshold selected)")
    return grid, lr, float(model.thresholds[0]), f"Likelihood-ratio curve of the first threshold {which} with the 95% critical value"


def static_report(result: Any, args: argparse.Namespace, payload: dict[str, Any]) -> Any:
    """Report of a Hansen (1999) fit: the tests that chose the model, its coefficients, the LR curve."""
    from fastpanel.report import Report, lr_plot_png

    k = result.n_thresholds if result.n_selected is None else result.n_selected
    shown = result.model_for(k)
    report = Report(f"Panel threshold regression (Hansen 1999): {args.formula}")
    report.paragraph(_source(args) + f" Regime variable(s): {', '.join(args.regime)}. Observations: "
                     f"{int(result.nobs):,}; rows dropped for missing values or ids: {int(result.n_dropped):,}.")
    report.heading("Number of thresholds")
    report.paragraph(result.selection_text())
    _add_table(report, result.tests, "Bootstrap tests for the number of thresholds", "table_threshold_tests.tex")
    report.heading(f"Selected model: {k} threshold{'s' if k != 1 else ''}")
    if k:
        est = pd.DataFrame({"estimate": [float(t) for t in shown.thresholds],
                            "ci_low": [float(c[0]) for c in shown.ci], "ci_high": [float(c[1]) for c in shown.ci]},
                           index=pd.Index([f"threshold {i + 1}" for i in range(k)], name=""))
        _add_table(report, est, "Thresholds with 95% likelihood-ratio confidence intervals",
                   "table_thresholds.tex")
    _add_coefs(report, shown, "Coefficients of the selected model (one column per regime)", "table_threshold.tex")
    grid, lr, estimate, caption = shown_lr_curve(result)
    report.figure("lr_curve.png", lr_plot_png(grid, lr, estimate=estimate, xlabel=args.threshold_var), caption)
    report.results = {"model": "threshold", "formula": args.formula, "threshold_var": args.threshold_var,
                      "regime_vars": list(args.regime), **payload}
    return report


def dynamic_report(result: Any, args: argparse.Namespace, payload: dict[str, Any]) -> Any:
    """Report of a Seo and Shin (2016) fit: the linearity test, the specification tests (AR(1),
    AR(2), Hansen J), the regimes, the GMM objective."""
    from fastpanel.report import Report, objective_plot_png

    kind = "kink" if result.kink else "jump"
    report = Report(f"Dynamic panel threshold regression (Seo and Shin 2016): {args.formula}")
    report.paragraph(
        _source(args) + f" Model: {kind}, {result.lags} lag(s) of {result.y_name}, two-step "
        f"{'first-differenced' if result.transform == 'fd' else 'forward-orthogonal-deviations'} GMM with "
        f"{result.n_instruments} instruments{' (collapsed)' if result.collapse else ''}. Entities: "
        f"{result.n_entities:,}; equations: {result.nobs:,}; rows dropped for missing values: {result.n_dropped:,}.")
    report.heading("Is there a threshold?")
    lt = result.linearity_test
    if lt is None:
        report.paragraph("The linearity test was not run (--boot 0).")
    else:
        tests = pd.DataFrame({"sup-Wald": [lt.statistic], "p-value": [lt.pvalue], "draws": [str(lt.n_boot)],
                              **{f"crit {int(round(100 * q))}%": [v] for q, v in lt.critical_values.items()}},
                             index=pd.Index(["no threshold vs one"], name="test"))
        report.paragraph("Sup-Wald test of no threshold effect; p-value and critical values from the fast "
                         "bootstrap of Seo, Kim and Kim (2019).")
        _add_table(report, tests, "Linearity test", "table_linearity_test.tex")
    ci = result.conf_int().loc["threshold"]
    report.heading("Threshold and regimes")
    report.paragraph(f"Threshold {result.threshold:.6g} (se {result.threshold_se:.4g}; 95% CI "
                     f"{ci.iloc[0]:.6g} to {ci.iloc[1]:.6g}); first-step estimate {result.first_step_threshold:.6g}."
                     + (f" Hansen J {result.j_stat:.4g} (df {result.j_df}, p = {result.j_pvalue:.4g})."
                        if result.j_df > 0 else ""))
    if result.ar_tests:
        report.heading("Specification tests")
        spec = pd.DataFrame({"statistic": [z for _, (z, _) in sorted(result.ar_tests.items())],
                             "p-value": [p for _, (_, p) in sorted(result.ar_tests.items())]},
                            index=pd.Index([f"Arellano-Bond AR({j})" for j in sorted(result.ar_tests)], name="test"))
        if result.j_df > 0:
            spec.loc["Hansen J (overidentification)"] = [result.j_stat, result.j_pvalue]
        report.paragraph("Serial correlation of the differenced residuals (Arellano and Bond 1991; AR(1) is "
                         "expected, AR(2) would invalidate the lagged-level instruments) and Hansen's J, at "
                         "the estimated threshold.")
        _add_table(report, spec, "Specification tests", "table_specification_tests.tex")
    regimes = result.regimes.rename(columns={"lower": "below", "lower_se": "se below",
                                             "upper": "above", "upper_se": "se above"})
    _add_table(report, regimes, "Coefficients below and above the threshold", "table_regimes.tex",
               notes="above = below + shift; standard errors by the delta method")
    _add_coefs(report, result, "Estimated parameters", "table_dynamic_threshold.tex")
    report.figure("gmm_objective.png",
                  objective_plot_png(result.grid, result.objective, estimate=result.threshold,
                                     wald=None if lt is None else lt.wald, xlabel=args.threshold_var),
                  "Second-step GMM objective over the threshold grid" + ("" if lt is None else
                                                                         ", with the Wald statistic"))
    report.results = {"model": "dynamic_threshold", "formula": args.formula, "threshold_var": args.threshold_var,
                      **payload}
    return report
