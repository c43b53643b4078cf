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
                   help="iid, HC0, HC1 (hetero), HC2, HC3, CRV1:COL, CRV1:COL1+COL2 (or more: "
                        "CRV1:A+B+C), CRV3:COL, CR2:COL (Bell-McCaffrey, Satterthwaite df), DK:LAGS "
                        "(default: the estimator's)")
    p.add_argument("--wald", default=None, metavar="RESTRICTIONS",
                   help="also test linear restrictions on the coefficients, e.g. \"x1 = x2, x3 = 0\" (F; chi2 "
                        "with --ssc linearmodels); printed after the table (json: the field \"wald\")")
    p.add_argument("--wildboot", default=None, metavar="COEF",
                   help="wild cluster bootstrap test of COEF = 0 (WCR, clusters of --vcov CRV1:COL); its p-value "
                        "and CI (by test inversion) join the table (json: the field \"wildboot\")")
    p.add_argument("--B", type=int, default=9999, metavar="N", help="bootstrap draws for --wildboot (default 9999)")
    p.add_argument("--boot-weights", default="rademacher", choices=["rademacher", "mammen", "webb", "norm"],
                   help="--wildboot weight distribution (default rademacher)")
    p.add_argument("--boot-type", default="11", choices=["11", "13", "31", "33"],
                   help="--wildboot bootstrap type (DGP digit, variance digit; default 11)")
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
    """``"CRV1:city"`` -> ``{"CRV1": "city"}``, ``"CR2:city"`` -> ``{"CR2": "city"}``, ``"DK:2"`` ->
    ``{"DK": 2}``, ``"HC1"`` -> ``"HC1"``."""
    if text is None:
        return None
    kind, sep, arg = text.partition(":")
    if not sep and kind.strip().upper() == "CR2":
        raise CLIError(f"--vcov {text!r} needs the cluster column: CR2:COL, e.g. CR2:firm")
    if not sep:
        return kind
    if not arg:
        raise CLIError(f"--vcov {text!r} names no argument after ':'; e.g. CRV1:city or DK:2")
    if kind.upper() in ("CRV1", "CRV3", "CR2") and arg.upper() == kind.upper():
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
    walds = wald_tests(models, getattr(args, "wald", None))
    boots = wild_bootstraps(models, args)
    if fmt == "json":
        payload = {"file": str(args.file), "formula": args.formula, "vcov": vcov_text,
                   "split": args.split, "rows": rows,
                   "models": [{"label": label, **model_dict(res), "n_dropped": int(res.n_dropped),
                               "n_singletons": int(res.n_singletons)} for label, res in models]}
        if boots:
            payload["wildboot"] = [{"label": label, **_boot_dict(b)} for label, b in boots]
        if walds:  # one entry per model (one for a fit without --split)
            payload["wald"] = [{"label": label, **w.to_dict()} for label, w in walds]
        return json.dumps(payload, indent=2, allow_nan=False)
    caption = f"{args.formula}" + (f" (split by {args.split})" if args.split else "")
    notes = f"vcov: {vcov_text}; {rows_text(rows)}"
    from fastpanel.report.results import iv_text

    iv_lines = [t for t in (iv_text(res) for _, res in models) if t]
    if iv_lines and len(models) == 1:
        notes = f"{notes}\n{iv_lines[0]}"
    if len(models) == 1 and not args.split:
        table = coef_table(models[0][1], fmt, caption=caption, notes=notes)
    else:
        table = side_by_side(models, fmt, caption=caption, notes=notes)
    return "\n".join([table, *(_wald_line(label, w, fmt) for label, w in walds),
                      *(_wald_line(label, _BootLine(b), fmt) for label, b in boots)])


class _BootLine:
    """One line on a --wildboot test, in the form of the Wald line after the table."""

    def __init__(self, b: Any) -> None:
        self.b = b

    def line(self) -> str:
        b = self.b
        kind = ("WCR" if b.impose_null else "WCU") + b.bootstrap_type
        draws = f"full enumeration of {b.B:,}" if b.full_enumeration else f"{b.B:,} draws, seed {b.seed}"
        return (f"Wild cluster bootstrap of {b.param} ({kind}, {b.weights}, {draws}; {b.n_boot_clusters} clusters of "
                f"{' + '.join(b.cluster)}): t = {b.statistic:.4f}, p = {b.pvalue:.4g}")


def wild_bootstraps(models: list[tuple[str, Any]], args: argparse.Namespace) -> list[tuple[str, Any]]:
    """``--wildboot COEF``: the wild cluster bootstrap of each model (kept on the fit, so the table
    shows its p-value and CI); a bad request is a one-line error."""
    param = getattr(args, "wildboot", None)
    if not param:
        return []
    if args.B < 1:
        raise CLIError(f"--B {args.B}: the number of bootstrap draws must be a positive integer, e.g. --B 9999")
    out = []
    for label, res in models:
        try:
            out.append((label, res.wildboottest(param, B=args.B, seed=getattr(args, "seed", None), weights=args.boot_weights,
                                                bootstrap_type=args.boot_type, conf_int=True)))
        except (ValueError, TypeError) as exc:
            where = f" (split group {label})" if label else ""
            msg = _cli_words(str(exc)).replace("param=", "--wildboot ").replace("B=", "--B ").replace(
                "pass cluster='g' (a fixed effect or a cluster variable of the fit) or ", "")
            raise CLIError(f"--wildboot {param}{where}: {msg}") from exc
    return out


def _boot_dict(b: Any) -> dict[str, Any]:
    return {"param": b.param, "statistic": b.statistic, "pvalue": b.pvalue, "B": b.B,
            "bootstrap_type": b.bootstrap_type, "impose_null": b.impose_null, "weights": b.weights,
            "full_enumeration": b.full_enumeration, "cluster": list(b.cluster),
            "n_clusters": b.n_boot_clusters, "seed": b.seed,
            "conf_int": None if b.conf_int is None else list(b.conf_int)}


def wald_tests(models: list[tuple[str, Any]], text: str | None) -> list[tuple[str, Any]]:
    """``--wald``: (label, Wald test) of each model; a bad restriction is a one-line error."""
    if not text:
        return []
    out = []
    for label, res in models:
        try:
            out.append((label, res.wald_test(text)))
        except (ValueError, TypeError) as exc:
            where = f" (split group {label})" if label else ""
            msg = str(exc)
            for prefix in (f"R={text!r}, ", f"R={text!r}: ", "R: "):  # the argument is --wald here
                msg = msg[len(prefix):] if msg.startswith(prefix) else msg
            raise CLIError(f"--wald {text!r}{where}: {msg}") from exc
    return out


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
        "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "{": r"\{", "}": r"\}"}


def _wald_line(label: str, test: Any, fmt: str) -> str:
    """The Wald test as one line after the table (md: a paragraph; latex: escaped text)."""
    import re

    line = test.line() if not label else f"{label}: {test.line()}"
    if fmt == "md":
        return f"\n{line}"
    if fmt == "latex":
        # one pass, so the braces of a replacement are not escaped again
        return r"\par\noindent " + re.sub(r"[\\&%_#$^~{}]", lambda m: _TEX[m.group()], line)
    return line


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
