"""``fastpanel demo [--out DIR]``: the three standard analyses on the SYNTHETIC city panel.

1. Two-way fixed-effects elasticity regression of log GDP on log computing capacity (with the
   hub interaction and eight log controls), clustered by city.
2. Panel threshold model (Hansen 1999): does the elasticity of GDP to cloud spending jump
   once data storage passes a threshold? Bootstrap tests for one and two thresholds.
3. Per-year robust (HC3) cross-sections with the hub-city (pivot) interaction, one call with
   ``split="year"``.

Every estimate is printed beside the true value of the data-generating process, and a report
folder is written (report.html, report.md, .tex tables, PNG figures, results.json).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fastpanel.cli._common import add_global_options, echo
from fastpanel.cli.fit import load_estimator

__all__ = ["register", "run", "analysis_frame", "FE_FORMULA", "THRESHOLD_FORMULA", "CS_FORMULA",
           "run_analyses"]

_CONTROLS = ("peo", "fin", "fou", "invest", "retail", "agri", "indus", "inex")
_CONTROL_TERMS = " + ".join(f"log_{c}" for c in _CONTROLS)
FE_FORMULA = f"log_gdp ~ log_computing + log_computing:pivot + {_CONTROL_TERMS} | city + year"
THRESHOLD_FORMULA = f"log_gdp ~ log_computing + log_computing:pivot + {_CONTROL_TERMS} | city"
CS_FORMULA = f"log_gdp ~ log_computing * pivot + {_CONTROL_TERMS}"
KEY_TERMS = ["log_computing", "log_computing:pivot", "pivot"]
SYNTHETIC_NOTE = ("SYNTHETIC DATA: fastpanel.datasets.city_panel simulates 336 Chinese cities, "
                  "2017-2022, from a documented data-generating process with known true "
                  "parameters. The numbers describe no real city.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the three standard analyses on the built-in synthetic city panel",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fastpanel demo\n  fastpanel demo --out my-report --boot 300")
    p.add_argument("--out", default="fastpanel-demo", metavar="DIR",
                   help="report folder (default ./fastpanel-demo); replaced only if empty or a "
                        "previous fastpanel report")
    p.add_argument("--boot", type=int, default=200, metavar="B",
                   help="bootstrap draws per threshold test (default 200)")
    add_global_options(p, suppress=True)
    p.set_defaults(handler=run)


def analysis_frame(data: pd.DataFrame) -> pd.DataFrame:
    """Log variables used by the three analyses (natural logs of the level columns)."""
    out = data[["city", "province", "region", "year", "pivot", "storage"]].copy()
    for column in ("gdp", "computing", "cloud_spend", "storage", *_CONTROLS):
        out[f"log_{column}"] = np.log(data[column].to_numpy())
    return out


def _regime_truth(result: Any, truth: dict[str, Any], q: np.ndarray) -> dict[str, float]:
    """True coefficient of each regime of the fitted threshold model.

    A regime (g_{r-1}, g_r] gets the elasticity of the side of the true threshold its middle
    lies on (the estimated thresholds need not equal the true one).
    """
    low, high = truth["cloud_elasticity"]
    gamma = truth["threshold"]
    cuts = [float(np.min(q))] + sorted(float(t) for t in result.thresholds) + [float(np.max(q))]
    names = [n for n in result.params.index if "log_cloud_spend" in str(n)]
    out = {}
    for name, lo, hi in zip(names, cuts[:-1], cuts[1:]):
        out[str(name)] = low if 0.5 * (lo + hi) <= gamma else high
    return out


def _with_truth(payload: dict[str, Any], truth: dict[str, float]) -> dict[str, Any]:
    """Add the true value to each coefficient of a results payload that has one."""
    for name, row in payload.get("coefficients", {}).items():
        if name in truth:
            row["true"] = float(truth[name])
    return payload


def run_analyses(frame: pd.DataFrame, *, seed: int, n_boot: int, progress: bool) -> dict[str, Any]:
    """Fit the three models; return them with timings."""
    feols = load_estimator("feols", "fastpanel.ols", "the demo")
    threshold = load_estimator("threshold", "fastpanel.panel_threshold", "the demo")
    timings = {}
    start = time.perf_counter()
    fe = feols(FE_FORMULA, frame, vcov={"CRV1": "city"})
    timings["fixed_effects"] = time.perf_counter() - start
    start = time.perf_counter()
    th = threshold(THRESHOLD_FORMULA, frame, threshold_var="storage", time="year",
                   regime_vars="log_cloud_spend", n_thresholds=2, n_boot=n_boot, seed=seed,
                   progress=progress)
    timings["threshold"] = time.perf_counter() - start
    start = time.perf_counter()
    cs = feols(CS_FORMULA, frame, vcov="HC3", split="year")
    timings["cross_sections"] = time.perf_counter() - start
    return {"fe": fe, "threshold": th, "cross_sections": cs, "timings": timings}


def run(args: argparse.Namespace) -> int:
    from fastpanel import __version__, get_backend
    from fastpanel.cli.threshold import threshold_payload
    from fastpanel.datasets import city_panel, city_panel_params
    from fastpanel.report import (
        Report,
        coef_plot_png,
        coef_table,
        frame_table,
        lr_plot_png,
        model_dict,
        side_by_side,
        split_models,
    )

    start = time.perf_counter()
    seed = 0 if args.seed is None else args.seed
    if args.boot < 1:
        raise ValueError(f"--boot must be at least 1, got {args.boot}")
    out_dir = Path(args.out)
    from fastpanel.report import check_output_dir

    check_output_dir(out_dir)  # fail before the analyses, not after them
    data = city_panel(seed=seed)
    truth = city_panel_params()
    echo(args, SYNTHETIC_NOTE)
    frame = analysis_frame(data)
    fits = run_analyses(frame, seed=seed, n_boot=args.boot, progress=not args.quiet)
    fe, th = fits["fe"], fits["threshold"]
    years = split_models(fits["cross_sections"])

    beta = truth["beta"]
    th_truth = {**beta, **_regime_truth(th, truth, frame["storage"].to_numpy())}
    report = Report("fastpanel demo: computing, cloud spending and GDP in 336 cities (synthetic)")
    report.banner(SYNTHETIC_NOTE)
    report.paragraph(f"fastpanel {__version__}; data seed {seed}; bootstrap draws per test "
                     f"{args.boot}; backend {get_backend()}.")

    # 1. two-way fixed effects ------------------------------------------------------------
    caption = "Two-way fixed effects (city, year), SE clustered by city: log GDP"
    report.heading("1. Elasticity of GDP to computing capacity")
    report.paragraph(f"Formula: {FE_FORMULA}. The true elasticity is "
                     f"{beta['log_computing']} outside hub cities and "
                     f"{beta['log_computing'] + beta['log_computing:pivot']:.2f} in the 13 hubs.")
    fe_notes = (f"within R² {fe.rsquared_within:.4f}; clusters: "
                + ", ".join(f"{c} {g:,}" for c, g in fe.n_clusters.items()))
    report.table(coef_table(fe, "md", truth=beta, caption=caption, notes=fe_notes),
                 coef_table(fe, "html", truth=beta, caption=caption, notes=fe_notes),
                 tex=coef_table(fe, "latex", truth=beta, caption=caption, notes=fe_notes.replace("R²", "R$^2$")),
                 tex_name="table_fixed_effects.tex")
    echo(args, "", coef_table(fe, "text", truth=beta, caption="1. " + caption, notes=fe_notes), force=True)

    # 2. threshold --------------------------------------------------------------------------
    # The model presented is the one Hansen's sequential bootstrap tests choose; the tests of
    # every number of thresholds stay in the table.
    k_sel = th.n_thresholds if th.n_selected is None else th.n_selected
    th_all, th = th, th.model_for(k_sel)
    th_truth = {**beta, **_regime_truth(th, truth, frame["storage"].to_numpy())}
    thresholds = [float(t) for t in th.thresholds]
    ci = [tuple(float(v) for v in pair) for pair in th.ci]
    single = [len(c) == 1 for c in th.ci_sets]

    def _fmt_ci(t: float, lo: float, hi: float, one: bool) -> str:
        return (f"{t:.2f} (95% LR set: the single grid point {lo:.2f})" if one
                else f"{t:.2f} (95% CI {lo:.2f} to {hi:.2f})")
    report.heading("2. Threshold in the cloud-spending elasticity (Hansen 1999)")
    report.paragraph(
        f"Formula: {THRESHOLD_FORMULA}; regime variable log_cloud_spend; threshold variable "
        f"storage (PB). True model: one threshold at {truth['threshold']:g} PB where the "
        f"elasticity rises from {truth['cloud_elasticity'][0]} to {truth['cloud_elasticity'][1]}. "
        + th_all.selection_text() + " "
        + (f"Selected model: {k_sel} threshold(s), at " + "; ".join(
            _fmt_ci(t, lo, hi, one) for t, (lo, hi), one in zip(thresholds, ci, single)) + "."
           if k_sel else "Selected model: no threshold."))
    tests = th.tests
    report.table(frame_table(tests, "md", caption="Bootstrap tests for the number of thresholds"),
                 frame_table(tests, "html", caption="Bootstrap tests for the number of thresholds"),
                 tex=frame_table(tests, "latex", caption="Bootstrap tests for the number of thresholds"),
                 tex_name="table_threshold_tests.tex")
    caption = f"Selected threshold model ({k_sel} threshold{'s' if k_sel != 1 else ''}), city effects: log GDP"
    report.table(coef_table(th, "md", truth=th_truth, caption=caption),
                 coef_table(th, "html", truth=th_truth, caption=caption),
                 tex=coef_table(th, "latex", truth=th_truth, caption=caption),
                 tex_name="table_threshold.tex")
    from fastpanel.cli.threshold_report import shown_lr_curve

    grid, lr, estimate, caption = shown_lr_curve(th_all)  # the selected model's own curve
    report.figure("lr_curve.png",
                  lr_plot_png(grid, lr, estimate=estimate, truth=truth["threshold"],
                              xlabel="storage threshold (PB)", title="LR(γ), first threshold"),
                  caption)
    echo(args, "", "2. Threshold model (true threshold "
         f"{truth['threshold']:g} PB): " + th_all.selection_text() + " Selected: "
         + (", ".join(_fmt_ci(t, lo, hi, one) for t, (lo, hi), one in zip(thresholds, ci, single))
            if k_sel else "no threshold"),
         force=True)
    echo(args, frame_table(tests, "text", caption="Bootstrap tests"), force=True)
    echo(args, coef_table(th, "text", truth=th_truth, caption=caption), force=True)

    # 3. per-year cross-sections --------------------------------------------------------------
    caption = "Per-year cross-sections, HC3 standard errors: log GDP"
    report.heading("3. Hub cities: per-year cross-sections with the pivot interaction")
    report.paragraph(f"Formula: {CS_FORMULA}, fitted once per year with split=\"year\".")
    kw = {"truth": beta, "terms": KEY_TERMS + [f"log_{c}" for c in _CONTROLS], "caption": caption}
    report.table(side_by_side(years, "md", **kw), side_by_side(years, "html", **kw),
                 tex=side_by_side(years, "latex", **kw), tex_name="table_cross_sections.tex")
    echo(args, "", side_by_side(years, "text", **{**kw, "terms": KEY_TERMS,
                                                  "caption": "3. " + caption}), force=True)

    # coefficient plot -----------------------------------------------------------------------
    from fastpanel.report import coef_frame

    rows = []
    fe_frame = coef_frame(fe, beta)
    for term in ("log_computing", "log_computing:pivot"):
        r = fe_frame.loc[term]
        rows.append((f"FE: {term}", r.estimate, r.ci_low, r.ci_high, r.true))
    th_frame = coef_frame(th, th_truth)
    for term, r in th_frame.iterrows():
        if "log_cloud_spend" in str(term):
            rows.append((f"threshold: {term}", r.estimate, r.ci_low, r.ci_high, r.true))
    for label, res in years:
        r = coef_frame(res, beta).loc["log_computing:pivot"]
        rows.append((f"{label}: log_computing:pivot", r.estimate, r.ci_low, r.ci_high, r.true))
    report.heading("Estimates and true values")
    report.figure("coefficients.png", coef_plot_png(rows, title="Estimates (95% CI) and true values"),
                  "Key estimates with 95% confidence intervals; crosses mark the true values")

    elapsed = time.perf_counter() - start
    report.results = {
        "synthetic": True,
        "dataset": {k: v for k, v in data.attrs.items() if k not in ("dgp", "true_params")},
        "true_params": truth,
        "fastpanel_version": __version__,
        "backend": get_backend(),
        "seed": seed,
        "n_boot": args.boot,
        "fixed_effects": {"formula": FE_FORMULA, "vcov": {"CRV1": "city"}, **model_dict(fe, beta)},
        "threshold": {"formula": THRESHOLD_FORMULA, "threshold_var": "storage",
                      "regime_vars": ["log_cloud_spend"], **_with_truth(threshold_payload(th_all), th_truth),
                      "true_coefficients": {k: v for k, v in th_truth.items()
                                            if k in set(map(str, th.params.index))}},
        "cross_sections": {"formula": CS_FORMULA, "vcov": "HC3",
                           "models": {label: model_dict(res, beta) for label, res in years}},
        "timings_s": {**fits["timings"], "total": elapsed},
    }
    report.paragraph(f"Total run time {elapsed:.1f} s.")
    written = report.write(out_dir)
    echo(args, "", f"report written to {written} ({elapsed:.1f} s): report.html, report.md, "
         "table_*.tex, lr_curve.png, coefficients.png, results.json")
    return 0
