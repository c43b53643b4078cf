"""``fastpanel threshold FILE "FORMULA" --threshold-var Q --regime Z``: Hansen (1999) model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fastpanel.cli._common import CLIError, add_global_options, echo
from fastpanel.cli.fit import load_estimator
from fastpanel.cli.io import (
    check_duplicate_keys,
    formula_columns,
    read_table,
    require_columns,
    require_numeric,
)

__all__ = ["register", "run", "threshold_payload"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "threshold", help="panel threshold regression (Hansen 1999) on a data file",
        description="Estimate a fixed-effects panel threshold model: FORMULA is 'y ~ x1 + x2 | "
        "entity'; the coefficients of the --regime variables change when --threshold-var "
        "crosses each threshold.",
        epilog=("example:\n  fastpanel threshold data.csv \"lgdp ~ lk + ll | city\" --threshold-var "
                "storage --regime lcloud --n-thresholds 2 --boot 300 --plot lr.png"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="CSV, Parquet, Stata .dta or Excel file")
    p.add_argument("formula", help="\"y ~ x1 + x2 | entity\"")
    p.add_argument("--threshold-var", required=True, metavar="Q", help="threshold variable")
    p.add_argument("--regime", required=True, action="append", metavar="Z",
                   help="regime-dependent regressor (repeat for several)")
    p.add_argument("--n-thresholds", type=int, default=1, choices=[1, 2, 3], metavar="K",
                   help="number of thresholds (1-3, default 1)")
    p.add_argument("--boot", type=int, default=300, metavar="B",
                   help="bootstrap draws per test (default 300)")
    p.add_argument("--bootstrap", default=None, choices=["residual", "wild"],
                   help="bootstrap scheme (default: the estimator's)")
    p.add_argument("--time", default=None, metavar="COL",
                   help="time column: checked for duplicate (entity, time) keys")
    p.add_argument("--plot", default=None, metavar="PATH", help="write the LR(gamma) plot (PNG)")
    p.add_argument("--format", default="text", choices=["text", "json"], help="output format")
    add_global_options(p, suppress=True)
    p.set_defaults(handler=run)


def _entity_column(formula: str) -> str:
    _, sep, effects = formula.partition("|")
    names = [t.strip() for t in effects.split("+") if t.strip()]
    if not sep or not names:
        raise CLIError(f"formula {formula!r} names no entity; write \"y ~ x1 + x2 | entity\"")
    return names[0]


def threshold_payload(result: Any) -> dict[str, Any]:
    """JSON-ready summary of a ThresholdResults object."""
    from fastpanel.report import model_dict, to_jsonable

    payload = {
        "thresholds": to_jsonable(list(result.thresholds)),
        "ci": to_jsonable([list(pair) for pair in result.ci]),
        "tests": to_jsonable(result.tests.reset_index(drop=False).to_dict(orient="records")),
    }
    payload.update(model_dict(result))
    return payload


def run(args: argparse.Namespace) -> int:
    frame = read_table(args.file)
    entity = _entity_column(args.formula)
    numeric, _, fixed = formula_columns(args.formula, frame, args.file)
    needed = [args.threshold_var, *args.regime] + ([args.time] if args.time else [])
    require_columns(frame, needed + [entity], args.file)
    require_numeric(frame, numeric + [args.threshold_var, *args.regime], args.file)
    if args.time:
        check_duplicate_keys(frame, entity, args.time, args.file)
        frame = frame.sort_values([entity, args.time], kind="stable").reset_index(drop=True)
    if args.boot < 0:
        raise CLIError(f"--boot must be >= 0, got {args.boot}")
    threshold = load_estimator("threshold", "fastpanel.panel_threshold", "threshold")
    kwargs: dict[str, Any] = {
        "threshold_var": args.threshold_var,
        "regime_vars": args.regime if len(args.regime) > 1 else args.regime[0],
        "n_thresholds": args.n_thresholds, "n_boot": args.boot,
        "seed": 0 if args.seed is None else args.seed,
        "progress": not args.quiet,
    }
    if args.time:
        kwargs["time"] = args.time
    if args.bootstrap:
        kwargs["bootstrap"] = args.bootstrap
    result = threshold(args.formula, frame, **kwargs)
    if args.format == "json":
        echo(args, json.dumps(threshold_payload(result), indent=2, allow_nan=False), force=True)
    else:
        echo(args, str(result.summary()), force=True)
    if args.plot:
        from fastpanel.report import lr_curve_arrays, lr_plot_png

        grid, lr = lr_curve_arrays(result.lr_curve(1))
        png = lr_plot_png(grid, lr, estimate=float(result.thresholds[0]), xlabel=args.threshold_var)
        try:
            Path(args.plot).write_bytes(png)
        except OSError as exc:
            raise CLIError(f"cannot write {args.plot}: {exc.strerror or exc}") from exc
        echo(args, f"wrote {args.plot}")
    return 0
