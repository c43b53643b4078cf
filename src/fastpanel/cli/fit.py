"""``fastpanel fit FILE "FORMULA"``: fixed-effects / pooled OLS on a data file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fastpanel.cli._common import CLIError, add_global_options, check_output, echo, stderr
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
    p.add_argument("--time", default=None, metavar="COL",
                   help="period column (Driscoll-Kraay, --vcov DK:LAGS, needs it)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="write the output to PATH (never an input; an existing file needs --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--dask", nargs="?", const="local", default=None, metavar="SCHEDULER",
                   help="fit on Dask: FILE may be a Parquet/CSV glob or folder; without an address a local "
                        "cluster sized to the machine (needs fastpanel[dask])")
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
    if kind.upper() in ("CRV1", "CRV3") and arg.upper() == kind.upper():
        raise CLIError(f"--vcov {text!r}: name the cluster column after ':', e.g. {kind.upper()}:city")
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
    if getattr(args, "dask", None):
        return None, _fit_on_dask(args)
    frame = read_table(args.file)
    numeric, categorical, fixed = formula_columns(args.formula, frame, args.file)
    vcov = parse_vcov(args.vcov)
    time_col = getattr(args, "time", None)
    extra = _vcov_columns(vcov) + ([args.split] if args.split else []) + ([time_col] if time_col else [])
    require_columns(frame, extra, args.file)
    require_numeric(frame, [c for c in numeric if c not in categorical], args.file)
    if isinstance(vcov, dict) and "DK" in vcov and not time_col:
        raise CLIError("--vcov DK:LAGS (Driscoll-Kraay) needs the period column: add --time COL")
    feols = load_estimator("feols", "fastpanel.ols", "fit")
    kwargs: dict[str, Any] = {}
    if vcov is not None:
        kwargs["vcov"] = vcov
    if args.ssc is not None:
        kwargs["ssc"] = args.ssc
    if args.split is not None:
        kwargs["split"] = args.split
    if time_col:
        kwargs["time"] = time_col
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = feols(args.formula, frame, **kwargs)
        except (ValueError, TypeError) as exc:
            raise CLIError(_cli_words(str(exc))) from exc
    for w in caught:
        if issubclass(w.category, UserWarning):
            stderr(f"fastpanel: warning: {_cli_words(str(w.message))}")
    return frame, result


def _fit_on_dask(args: argparse.Namespace) -> Any:
    from fastpanel.cli.dask_fit import fit_dask

    if args.split:
        raise CLIError("--split is not available with --dask; fit each group's files on their own")
    vcov = parse_vcov(args.vcov)
    if isinstance(vcov, dict) and "DK" in vcov and not args.time:
        raise CLIError("--vcov DK:LAGS (Driscoll-Kraay) needs the period column: add --time COL")
    kwargs: dict[str, Any] = {"vcov": vcov if vcov is not None else "iid"}
    if args.ssc is not None:
        kwargs["ssc"] = args.ssc
    if args.time:
        kwargs["time"] = args.time
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit_dask(args, kwargs)
        except CLIError as exc:
            raise CLIError(_cli_words(str(exc))) from exc
    for w in caught:
        if issubclass(w.category, UserWarning):
            stderr(f"fastpanel: warning: {_cli_words(str(w.message))}")
    return result


def _cli_words(message: str) -> str:
    """An estimator's message in command-line terms (options instead of Python arguments)."""
    import re

    message = re.sub(r"vcov=\{'(CRV[13])': '([^']*)'\}", r"--vcov \1:\2", message)
    message = re.sub(r"vcov=\{'DK': ([^}]*)\}", r"--vcov DK:\1", message)
    message = re.sub(r"vcov=\{'DK': lags\}", "--vcov DK:LAGS", message)
    message = message.replace("pass time='year' (the column name)", "add --time COL")
    message = message.replace("pass time= (the period ids)", "add --time COL")
    message = message.replace("split/by column", "--split column").replace("use 'hetero'", "use --vcov HC1")
    return message


def rows_summary(result: Any) -> dict[str, int]:
    """Rows used and dropped, with the reason, summed over split groups."""
    from fastpanel.report import split_models

    models = [r for _, r in split_models(result)]
    out = {"nobs": sum(int(r.nobs) for r in models),
           "dropped_missing_values": sum(int(getattr(r, "n_dropped", 0)) for r in models),
           "dropped_singletons": sum(int(getattr(r, "n_singletons", 0)) for r in models)}
    missing_split = max((int(getattr(r, "n_missing_split", 0)) for r in models), default=0)
    if missing_split:
        out["dropped_missing_split_value"] = missing_split
    return out


def rows_text(rows: dict[str, int]) -> str:
    parts = [f"{rows['dropped_missing_values']:,} with missing values (in the data or made by the formula, "
             "e.g. log of <= 0)", f"{rows['dropped_singletons']:,} singletons"]
    if "dropped_missing_split_value" in rows:
        parts.append(f"{rows['dropped_missing_split_value']:,} with a missing split value")
    return f"rows used: {rows['nobs']:,}; dropped: " + ", ".join(parts)


def render_fit(result: Any, fmt: str, args: argparse.Namespace) -> str:
    from fastpanel.report import coef_table, model_dict, side_by_side, split_models

    models = split_models(result)
    vcov_text = args.vcov or "iid"
    rows = rows_summary(result)
    if fmt == "json":
        payload = {"file": str(args.file), "formula": args.formula, "vcov": vcov_text,
                   "split": args.split, "rows": rows,
                   "models": [{"label": label, **model_dict(res), "n_dropped": int(res.n_dropped),
                               "n_singletons": int(res.n_singletons)} for label, res in models]}
        return json.dumps(payload, indent=2, allow_nan=False)
    caption = f"{args.formula}" + (f" (split by {args.split})" if args.split else "")
    notes = f"vcov: {vcov_text}; {rows_text(rows)}"
    if len(models) == 1 and not args.split:
        return coef_table(models[0][1], fmt, caption=caption, notes=notes)
    return side_by_side(models, fmt, caption=caption, notes=notes)


def run(args: argparse.Namespace) -> int:
    check_output(args.out, "--out", inputs=(args.file,), force=args.force)
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
