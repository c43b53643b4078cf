"""``fastpanel threshold FILE "FORMULA" --threshold-var Q --regime Z``: Hansen (1999) model.

With ``--dask [SCHEDULER]`` FILE may be a Parquet/CSV glob or folder, read lazily, and the fit is
``fastpanel.threshold`` on the Dask DataFrame (``fastpanel.distributed.threshold``: entity effects,
the wild bootstrap) on a local cluster or the scheduler named, through the same path as
``fastpanel fit --dask`` (:func:`fastpanel.cli.dask_fit.run_dask`). The output is the in-memory
one (summary, JSON, --report, --plot): the Dask result carries every number they show.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fastpanel.cli._common import CLIError, add_global_options, check_output, echo
from fastpanel.cli.fit import load_estimator
from fastpanel.cli.io import (
    check_duplicate_keys,
    formula_columns,
    read_table,
    require_columns,
    require_numeric,
)

__all__ = ["dynamic_payload", "register", "run", "threshold_payload"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "threshold", help="panel threshold regression (Hansen 1999; --dynamic: Seo and Shin 2016) on a data file",
        description="Estimate a fixed-effects panel threshold model: FORMULA is 'y ~ x1 + x2 | "
        "entity'; the coefficients of the --regime variables change when --threshold-var "
        "crosses each threshold. With --dynamic: the dynamic panel threshold model of Seo and Shin "
        "(2016) by first-differenced GMM, where the lags of y (--lags) and every regressor change "
        "at the threshold, regressors may be endogenous (--endog) and --time is required.",
        epilog=("examples:\n  fastpanel threshold data.csv \"lgdp ~ lk + ll | city\" --threshold-var "
                "storage --regime lcloud --n-thresholds 2 --boot 300 --plot lr.png\n"
                "  fastpanel threshold data.csv \"lgdp ~ lcloud | city\" --time year --threshold-var storage "
                "--dynamic --lags 1 --endog lcloud --plot gmm.png\n"
                "  fastpanel threshold 'data/*.parquet' \"y ~ x | firm\" --threshold-var q --regime z --dask "
                "tcp://scheduler:8786"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="CSV, Parquet, Stata .dta or Excel file")
    p.add_argument("formula", help="\"y ~ x1 + x2 | entity\", \"... | entity + year\" (period effects) or \"... | entity + year + region\" (a further absorbed effect)")
    p.add_argument("--threshold-var", required=True, metavar="Q", help="threshold variable")
    p.add_argument("--regime", action="append", metavar="Z",
                   help="regime-dependent regressor (repeat for several; required without --dynamic)")
    p.add_argument("--n-thresholds", type=int, default=1, choices=[1, 2, 3], metavar="K",
                   help="number of thresholds (1-3, default 1)")
    p.add_argument("--boot", type=int, default=300, metavar="B",
                   help="bootstrap draws per test (default 300)")
    p.add_argument("--bootstrap", default=None, choices=["residual", "wild"],
                   help="bootstrap scheme (default: the estimator's; wild with --dask)")
    p.add_argument("--time", default=None, metavar="COL",
                   help="period column: orders rows within entity, checked for duplicate (entity, time) keys; "
                        "needed by --time-effects, --conventions hansen1999 and the residual bootstrap")
    p.add_argument("--time-effects", action="store_true",
                   help="add period effects (needs --time; or write the formula as 'y ~ x | entity + time')")
    p.add_argument("--trim", default=None, metavar="T",
                   help="trimming share per threshold: one number or one per threshold, comma-separated "
                        "(default 0.01)")
    p.add_argument("--grid", default=None, metavar="G",
                   help="number of quantile grid points, or 'exact' (default 400)")
    p.add_argument("--conventions", default="default", choices=["default", "hansen1999", "xthenreg"],
                   help="computation conventions (default: fastpanel's; hansen1999: Hansen's program; with "
                        "--dynamic, xthenreg: Seo, Kim and Kim's Stata command)")
    p.add_argument("--level", type=float, default=0.05, metavar="A",
                   help="significance level of the sequential selection of thresholds (default 0.05)")
    dyn = p.add_argument_group("dynamic model (--dynamic)")
    dyn.add_argument("--dynamic", action="store_true",
                     help="dynamic panel threshold model (Seo and Shin 2016), first-differenced two-step GMM")
    dyn.add_argument("--lags", type=int, default=1, metavar="P", help="lags of y among the regressors (default 1)")
    dyn.add_argument("--endog", action="append", default=[], metavar="X",
                     help="endogenous regressor, instrumented by its lagged levels (repeat for several)")
    dyn.add_argument("--instrument", action="append", default=[], metavar="W",
                     help="extra exogenous instrument column, used in levels (repeat for several)")
    dyn.add_argument("--exogenous", action="append", default=[], metavar="X",
                     help="regressor instrumented by its levels x_1..x_t (xthenreg's exogenous(); repeat for several)")
    dyn.add_argument("--kink", action="store_true", help="kink model: continuous at the threshold")
    dyn.add_argument("--kink-test", default=None, choices=["kink", "xthenreg"],
                     help="kink model's linearity test: kink (the kink slope is zero; default) or xthenreg (its "
                          "last two coefficients, as xthenreg computes it; the default with --conventions xthenreg)")
    dyn.add_argument("--h0", type=float, default=1.5, metavar="H",
                     help="scale of the threshold's kernel bandwidth h0 * 1.06 N^-1/5 sd(q) (default 1.5)")
    dyn.add_argument("--transform", default="fd", choices=["fd", "fod"],
                     help="fd: first differences (default); fod: forward orthogonal deviations (gaps)")
    dyn.add_argument("--collapse", action="store_true", help="one instrument per lag (Roodman 2009)")
    dyn.add_argument("--max-lag", type=int, default=None, metavar="L", help="deepest lag of the level instruments")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="write the LR(gamma) plot, or with --dynamic the GMM objective and Wald curves (PNG)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write a report folder (report.html, report.md, LaTeX tables, the curve as PNG, "
                        "results.json); replaced only if empty or a previous fastpanel report")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    p.add_argument("--format", default="text", choices=["text", "json"], help="output format")
    p.add_argument("--dask", nargs="?", const="local", default=None, metavar="SCHEDULER",
                   help="fit on Dask: FILE may be a Parquet/CSV glob or folder; without an address a local "
                        "cluster sized to the machine (needs fastpanel[dask]); entity effects, or entity and "
                        "period effects ('y ~ x | entity + time'), and the wild bootstrap (the default with --dask)")
    add_global_options(p, suppress=True)
    p.set_defaults(handler=run)


def _entity_column(formula: str) -> str:
    _, sep, effects = formula.partition("|")
    names = [t.strip() for t in effects.split("+") if t.strip()]
    if not sep or not names:
        raise CLIError(f"formula {formula!r} names no entity; write \"y ~ x1 + x2 | entity\"")
    return names[0]


def _threshold_words(message: str) -> str:
    """Estimator argument names in command-line terms."""
    for a, b in (("n_boot=", "--boot "), ("trim=", "--trim "), ("grid=", "--grid "), ("level=", "--level "),
                 ("bootstrap='wild'", "--bootstrap wild"), ("n_thresholds", "--n-thresholds"),
                 ("threshold_var", "--threshold-var"), ("regime_vars", "--regime"),
                 ("time_effects=True", "--time-effects"), ("pass time=", "add --time COL"),
                 ("conventions='default'", "--conventions default"),
                 ("conventions='hansen1999'", "--conventions hansen1999")):
        message = message.replace(a, b)
    return message


def threshold_payload(result: Any) -> dict[str, Any]:
    """JSON-ready summary of a ThresholdResults object."""
    from fastpanel.report import model_dict, to_jsonable

    # The model described (thresholds, intervals, coefficients) is the one chosen by Hansen's
    # sequential tests; the tests of every number of thresholds and the K estimates stay.
    k = result.n_thresholds if result.n_selected is None else result.n_selected
    shown = result.model_for(k)
    payload = {
        "n_selected": result.n_selected,
        "selection_level": result.selection_level,
        "selection": result.selection_text(),
        "thresholds": to_jsonable(list(shown.thresholds)),
        "ci": to_jsonable([list(pair) for pair in shown.ci]),
        "ci_single_grid_point": [len(c) == 1 for c in shown.ci_sets],
        "tests": to_jsonable(result.tests.reset_index(drop=False).to_dict(orient="records")),
        "estimated_thresholds": to_jsonable(list(result.thresholds)),
        "rows": {"nobs": int(result.nobs), "dropped_missing_values_or_ids": int(result.n_dropped)},
        "dropped_regressors": list(result.dropped_regressors),
    }
    payload.update(model_dict(shown))
    return payload


def _trim(text: str | None) -> Any:
    if text is None:
        return None
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        raise CLIError(f"--trim {text!r}: give a number such as 0.05, or one per threshold such as 0.01,0.01,0.05") from None
    return values[0] if len(values) == 1 else values


def _grid(text: str | None) -> Any:
    if text is None or text == "exact":
        return text
    try:
        return int(text)
    except ValueError:
        raise CLIError(f"--grid {text!r}: give a number of grid points such as 400, or 'exact'") from None


def dynamic_payload(result: Any) -> dict[str, Any]:
    """JSON-ready summary of a DynamicThresholdResults object."""
    from fastpanel.report import to_jsonable

    payload = to_jsonable(result.to_dict())
    payload["regimes"] = to_jsonable(result.regimes.reset_index().to_dict(orient="records"))
    return payload


def _dynamic_words(message: str) -> str:
    for a, b in (("n_boot=", "--boot "), ("trim=", "--trim "), ("grid=", "--grid "), ("lags=", "--lags "),
                 ("max_lag=", "--max-lag "), ("endog=", "--endog "), ("instruments:", "--instrument:"),
                 ("exogenous=", "--exogenous "), ("h0=", "--h0 "), ("kink_test=", "--kink-test "),
                 ("conventions='xthenreg'", "--conventions xthenreg"),
                 ("transform=", "--transform "), ("collapse=True", "--collapse"), ("threshold_var=", "--threshold-var "),
                 ("entity= and time=", "the formula's '| entity' and --time")):
        message = message.replace(a, b)
    return message


def _run_dynamic(args: argparse.Namespace, frame: Any, entity: str) -> int:
    if not args.time:
        raise CLIError("--dynamic needs the period column: add --time COL")
    if args.regime:
        raise CLIError("--regime is for the static model; with --dynamic every regressor and the lags of y change "
                       "at the threshold")
    if args.n_thresholds != 1 or args.time_effects or args.conventions == "hansen1999" or args.bootstrap:
        raise CLIError("--dynamic estimates one threshold with the fast bootstrap; drop --n-thresholds, "
                       "--time-effects, --conventions hansen1999 and --bootstrap")
    fml = args.formula.partition("|")[0]
    require_columns(frame, [args.threshold_var, args.time, *args.instrument], args.file)
    require_numeric(frame, [args.threshold_var, *args.instrument], args.file)
    fit = load_estimator("dynamic_threshold", "fastpanel.dynamic_panel", "the dynamic threshold model")
    kwargs: dict[str, Any] = dict(entity=entity, time=args.time, threshold_var=args.threshold_var, lags=args.lags,
                                  endog=args.endog, instruments=args.instrument, kink=args.kink,
                                  transform=args.transform, collapse=args.collapse, max_lag=args.max_lag,
                                  n_boot=args.boot, seed=0 if args.seed is None else args.seed,
                                  exogenous=args.exogenous, conventions=args.conventions, h0=args.h0,
                                  kink_test=args.kink_test)
    trim, grid = _trim(args.trim), _grid(args.grid)
    if isinstance(trim, list):
        raise CLIError("--trim: --dynamic takes one number, the share of the threshold variable left out at each end")
    if trim is not None:
        kwargs["trim"] = trim
    if grid == "exact":
        raise CLIError("--grid exact is for the static model; give a number of points with --dynamic")
    if grid is not None:
        kwargs["grid"] = grid
    result = _estimate(fit, (fml, frame), kwargs, errors=_dynamic_words, warns=_dynamic_words)
    payload = dynamic_payload(result)
    if args.format == "json":
        echo(args, json.dumps(payload, indent=2, allow_nan=False), force=True)
    else:
        echo(args, result.summary(), force=True)
    if args.report:
        from fastpanel.cli.threshold_report import dynamic_report

        _write_report(args, dynamic_report(result, args, payload))
    if args.plot:
        from fastpanel.report import objective_plot_png

        lt = result.linearity_test
        _write_plot(args, objective_plot_png(result.grid, result.objective, estimate=result.threshold,
                                             wald=None if lt is None else lt.wald, xlabel=args.threshold_var))
    return 0


def _estimate(fit: Any, args: tuple, kwargs: dict[str, Any], *, errors: Any, warns: Any) -> Any:
    """Run an estimator: errors become one-line CLI errors and warnings go to stderr, each
    worded in command-line terms by ``errors`` / ``warns``."""
    import warnings

    from fastpanel.cli._common import stderr

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit(*args, **kwargs)
        except (ValueError, TypeError, CLIError) as exc:
            raise CLIError(errors(str(exc))) from exc
    for w in caught:
        if issubclass(w.category, UserWarning):
            stderr(f"fastpanel: warning: {warns(str(w.message))}")
    return result


def _write_plot(args: argparse.Namespace, png: bytes) -> None:
    try:
        Path(args.plot).write_bytes(png)
    except OSError as exc:
        raise CLIError(f"cannot write {args.plot}: {exc.strerror or exc}") from exc
    echo(args, f"wrote {args.plot}")


def _write_report(args: argparse.Namespace, report: Any) -> None:
    from fastpanel.report import ReportWriteError

    try:
        written = report.write(args.report)
    except ReportWriteError as exc:
        raise CLIError(f"--report {args.report}: {exc}") from exc
    echo(args, f"report written to {written}")


def run(args: argparse.Namespace) -> int:
    check_output(args.plot, "--plot", inputs=(args.file,), force=args.force)
    if args.report:
        from fastpanel.report import ReportWriteError, check_output_dir

        try:  # fail before the fit, not after it
            check_output_dir(args.report)
        except ReportWriteError as exc:
            raise CLIError(f"--report {args.report}: {exc}") from exc
    if args.plot and not args.plot.lower().endswith(".png"):
        raise CLIError(f"--plot {args.plot}: the plot is a PNG image; give a file name ending in .png")
    if args.dask and args.dynamic:
        raise CLIError("--dynamic is not available with --dask: the dynamic model (Seo and Shin 2016) runs in "
                       "memory; drop --dask")
    if args.dynamic:
        frame = read_table(args.file)
        return _run_dynamic(args, frame, _entity_column(args.formula))
    dynamic_only = [flag for flag, used in (("--conventions xthenreg", args.conventions == "xthenreg"),
                                            ("--exogenous", bool(args.exogenous)), ("--kink-test", args.kink_test),
                                            ("--h0", args.h0 != 1.5)) if used]
    if dynamic_only:
        raise CLIError(f"{', '.join(dynamic_only)}: for the dynamic model only; add --dynamic")
    if not args.regime:
        raise CLIError("name the regime-dependent regressor(s) with --regime Z (or use --dynamic)")
    trim, grid = _trim(args.trim), _grid(args.grid)
    if args.dask:
        output = _fit_on_dask(args, trim, grid)
    else:
        output = _static_output(args, _fit_in_memory(args, trim, grid))
    _emit_static(args, *output)
    return 0


def _static_kwargs(args: argparse.Namespace, trim: Any, grid: Any) -> dict[str, Any]:
    """The estimator's keyword arguments from the options of the static model."""
    kwargs: dict[str, Any] = {
        "threshold_var": args.threshold_var,
        "regime_vars": args.regime if len(args.regime) > 1 else args.regime[0],
        "n_thresholds": args.n_thresholds, "n_boot": args.boot,
        "seed": 0 if args.seed is None else args.seed,
    }
    if args.time:
        kwargs["time"] = args.time
    if args.bootstrap:
        kwargs["bootstrap"] = args.bootstrap
    if trim is not None:
        kwargs["trim"] = trim
    if grid is not None:
        kwargs["grid"] = grid
    kwargs["conventions"] = args.conventions
    kwargs["level"] = args.level
    if args.time_effects:
        kwargs["time_effects"] = True
    return kwargs


def _fit_on_dask(args: argparse.Namespace, trim: Any, grid: Any) -> Any:
    """The static model on Dask: checks that need no data first (no cluster is started for a
    usage error), then the columns against the files' schema, then the fit."""
    from fastpanel.cli.dask_fit import dask_frame, run_dask
    from fastpanel.cli.fit import _cli_words

    if args.bootstrap == "residual":
        raise CLIError("--bootstrap residual is not available with --dask (it resamples whole entities, which "
                       "span partitions); use --bootstrap wild, the default with --dask, or drop --dask")
    entity = _entity_column(args.formula)
    effects = [t.strip() for t in args.formula.partition("|")[2].split("+") if t.strip()]
    if len(effects) >= 3:
        raise CLIError("--dask fits entity effects, or entity and period effects ('y ~ x | entity + time' or "
                       "--time-effects); further absorbed effects need the in-memory fit: drop --dask")
    if args.conventions == "hansen1999" and not args.time:
        raise CLIError("--conventions hansen1999 deletes each entity's last period: add --time COL")
    if args.boot < 0:
        raise CLIError(f"--boot must be >= 0, got {args.boot}")
    frame = dask_frame(str(args.file))
    schema = getattr(frame, "_meta", None)  # the columns and dtypes, no data read
    if schema is not None:
        numeric, _, _ = formula_columns(args.formula, schema, args.file)
        require_columns(schema, [args.threshold_var, *args.regime] + ([args.time] if args.time else [])
                        + [entity], args.file)
        require_numeric(schema, numeric + [args.threshold_var, *args.regime], args.file)
    threshold = load_estimator("threshold", "fastpanel.panel_threshold", "threshold")
    kwargs = _static_kwargs(args, trim, grid)
    kwargs["bootstrap"] = "wild"

    def compute(ddf: Any, progress: Any) -> tuple[str, Any, bytes | None]:
        result = threshold(args.formula, ddf, progress=progress, **kwargs)
        # The output is made while the cluster is up: the Dask result computes the coefficients
        # of each model it shows (model_for) by reductions over the persisted partitions.
        return _static_output(args, result)

    return _estimate(run_dask, (str(args.file), args.dask, compute), {"frame": frame, "quiet": args.quiet},
                     errors=lambda m: _threshold_words(_cli_words(m)), warns=_cli_words)


def _fit_in_memory(args: argparse.Namespace, trim: Any, grid: Any) -> Any:
    frame = read_table(args.file)
    entity = _entity_column(args.formula)
    effects = [t.strip() for t in args.formula.partition("|")[2].split("+") if t.strip()]
    if len(effects) >= 2:  # entity + period (+ further absorbed effects)
        if args.time and args.time != effects[1]:
            raise CLIError(f"the formula names the period column {effects[1]!r} but --time is {args.time!r}")
        args.time = effects[1]
    if args.time_effects and not args.time:
        raise CLIError("--time-effects needs the period column: add --time COL")
    numeric, _, fixed = formula_columns(args.formula, frame, args.file)
    needed = [args.threshold_var, *args.regime] + ([args.time] if args.time else []) + effects[2:]
    require_columns(frame, needed + [entity], args.file)
    require_numeric(frame, numeric + [args.threshold_var, *args.regime], args.file)
    if args.time:
        check_duplicate_keys(frame, entity, args.time, args.file)
        frame = frame.sort_values([entity, args.time], kind="stable").reset_index(drop=True)
    if args.boot < 0:
        raise CLIError(f"--boot must be >= 0, got {args.boot}")
    threshold = load_estimator("threshold", "fastpanel.panel_threshold", "threshold")
    kwargs = _static_kwargs(args, trim, grid)
    kwargs["progress"] = not args.quiet
    from fastpanel.cli.fit import _cli_words

    return _estimate(threshold, (args.formula, frame), kwargs,
                     errors=lambda m: _threshold_words(_cli_words(m)), warns=_cli_words)


def _static_output(args: argparse.Namespace, result: Any) -> tuple[str, Any, bytes | None]:
    """The output of a finished static fit (in memory or on Dask), made but not yet written:
    the summary or JSON text, the report (or None) and the PNG of the LR curve (or None)."""
    payload = threshold_payload(result)
    text = json.dumps(payload, indent=2, allow_nan=False) if args.format == "json" else str(result.summary())
    report = png = None
    if args.report:
        from fastpanel.cli.threshold_report import static_report

        report = static_report(result, args, payload)
    if args.plot:
        from fastpanel.cli.threshold_report import shown_lr_curve
        from fastpanel.report import lr_plot_png

        grid, lr, estimate, _ = shown_lr_curve(result)
        png = lr_plot_png(grid, lr, estimate=estimate, xlabel=args.threshold_var)
    return text, report, png


def _emit_static(args: argparse.Namespace, text: str, report: Any, png: bytes | None) -> None:
    echo(args, text, force=True)
    if report is not None:
        _write_report(args, report)
    if png is not None:
        _write_plot(args, png)
