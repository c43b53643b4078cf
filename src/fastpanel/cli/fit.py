"""``fastpanel fit FILE "FORMULA"``: fixed-effects / pooled OLS on a data file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fastpanel.cli._common import CLIError, add_global_options, echo, stderr
from fastpanel.cli.io import formula_columns, read_table, require_columns, require_numeric

__all__ = ["register", "run", "parse_vcov", "load_estimator"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit", help="OLS with fixed effects (feols) on a data file",
        description="Estimate FORMULA (fixest syntax: 'y ~ x1 + x2 | fe1 + fe2') on FILE.",
        epilog=("examples:\n  fastpanel fit data.csv \"np.log(gdp) ~ np.log(computing) | city + year\" "
                "--vcov CRV1:city\n  fastpanel fit data.dta \"y ~ x*pivot\" --vcov HC1 --split year "
                "--format latex --out table.tex"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="CSV, Parquet, Stata .dta or Excel file")
    p.add_argument("formula", help="model formula, e.g. \"y ~ x1 + x2 | entity + year\"")
    p.add_argument("--vcov", default=None, metavar="TYPE",
                   help="iid, HC0, HC1 (hetero), HC2, HC3, CRV1:COL, CRV1:COL1+COL2, CRV3:COL, "
                        "DK:LAGS (default: the estimator's)")
    p.add_argument("--ssc", default=None, choices=["fixest", "statsmodels", "linearmodels"],
                   help="small-sample convention")
    p.add_argument("--split", default=None, metavar="COL", help="fit one model per value of COL")
    p.add_argument("--format", default="text", choices=["text", "md", "latex", "json"],
                   help="output format (default text)")
    p.add_argument("--out", default=None, metavar="PATH", help="write the output to PATH")
    add_global_options(p, suppress=True)
    p.set_defaults(handler=run)


def parse_vcov(text: str | None) -> Any:
    """``"CRV1:city"`` -> ``{"CRV1": "city"}``, ``"DK:2"`` -> ``{"DK": 2}``, ``"HC1"`` -> ``"HC1"``."""
    if text is None:
        return None
    kind, sep, arg = text.partition(":")
    if not sep:
        return kind
    if not arg:
        raise CLIError(f"--vcov {text!r} names no argument after ':'; e.g. CRV1:city or DK:2")
    if kind.upper() == "DK":
        try:
            return {"DK": int(arg)}
        except ValueError:
            raise CLIError(f"--vcov {text!r}: Driscoll-Kraay lags must be an integer") from None
    return {kind.upper(): arg}


def load_estimator(name: str, module: str, what: str) -> Any:
    """``fastpanel.<name>``, or a clear error when that estimator is not installed."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if exc.name and exc.name.startswith(module):
            raise CLIError(f"{what} needs {module}, which this installation of fastpanel lacks") from exc
        raise


def _vcov_columns(vcov: Any) -> list[str]:
    if isinstance(vcov, dict):
        return [c for v in vcov.values() if isinstance(v, str) for c in v.split("+")]
    return []


def fit_file(args: argparse.Namespace) -> tuple[Any, Any]:
    """Read the file, check columns, fit; return (data frame, fit result)."""
    frame = read_table(args.file)
    numeric, categorical, fixed = formula_columns(args.formula, frame, args.file)
    vcov = parse_vcov(args.vcov)
    extra = _vcov_columns(vcov) + ([args.split] if args.split else [])
    require_columns(frame, extra, args.file)
    require_numeric(frame, [c for c in numeric if c not in categorical], args.file)
    used = list(dict.fromkeys(numeric + categorical + fixed + extra))
    n_missing = int(frame[used].isna().any(axis=1).sum()) if used else 0
    if n_missing:
        stderr(f"fastpanel: note: {n_missing:,} of {len(frame):,} rows have missing values in "
               f"the model's columns and are left out")
    feols = load_estimator("feols", "fastpanel.ols", "fit")
    kwargs: dict[str, Any] = {}
    if vcov is not None:
        kwargs["vcov"] = vcov
    if args.ssc is not None:
        kwargs["ssc"] = args.ssc
    if args.split is not None:
        kwargs["split"] = args.split
    return frame, feols(args.formula, frame, **kwargs)


def render_fit(result: Any, fmt: str, args: argparse.Namespace) -> str:
    from fastpanel.report import coef_table, model_dict, side_by_side, split_models

    models = split_models(result)
    if fmt == "json":
        payload = {"file": str(args.file), "formula": args.formula, "vcov": args.vcov,
                   "split": args.split,
                   "models": [{"label": label, **model_dict(res)} for label, res in models]}
        return json.dumps(payload, indent=2, allow_nan=False)
    caption = f"{args.formula}" + (f" (split by {args.split})" if args.split else "")
    notes = f"vcov: {args.vcov}" if args.vcov else None
    if len(models) == 1 and not args.split:
        return coef_table(models[0][1], fmt, caption=caption, notes=notes)
    return side_by_side(models, fmt, caption=caption, notes=notes)


def run(args: argparse.Namespace) -> int:
    _, result = fit_file(args)
    text = render_fit(result, args.format, args)
    if args.out:
        try:
            Path(args.out).write_text(text + "\n")
        except OSError as exc:
            raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
        echo(args, f"wrote {args.out}")
    else:
        echo(args, text, force=True)
    return 0
