"""Regression tables in text, Markdown, LaTeX and HTML.

Two shapes: :func:`coef_table` (one model, one row per coefficient: estimate, standard error,
confidence interval, optional true value) and :func:`side_by_side` (several models as columns,
standard errors in parentheses under the estimates, significance stars, N).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd

from fastpanel.report.results import coef_frame

__all__ = ["coef_table", "side_by_side", "render", "stars"]

Format = Literal["text", "md", "latex", "html"]


def stars(pvalue: float) -> str:
    """``***`` p < 0.01, ``**`` p < 0.05, ``*`` p < 0.1."""
    if pvalue is None or math.isnan(pvalue):
        return ""
    return "***" if pvalue < 0.01 else "**" if pvalue < 0.05 else "*" if pvalue < 0.1 else ""


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:.{digits}f}"


def render(header: Sequence[str], rows: Sequence[Sequence[str]], fmt: Format,
           caption: str | None = None, notes: str | None = None) -> str:
    """Render a table of strings in ``fmt`` ("text", "md", "latex" or "html")."""
    if fmt == "text":
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        line = "  ".join("-" * w for w in widths)
        out = [caption] if caption else []
        out += [line, "  ".join(h.rjust(w) if i else h.ljust(w)
                                for i, (h, w) in enumerate(zip(header, widths))), line]
        out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                for r in rows]
        out.append(line)
        if notes:
            out.append(notes)
        return "\n".join(out)
    if fmt == "md":
        esc = [[str(c).replace("|", "\\|") for c in r] for r in [header, *rows]]
        out = [f"**{caption}**", ""] if caption else []
        out.append("| " + " | ".join(esc[0]) + " |")
        out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
        if notes:
            out += ["", f"*{notes}*"]
        return "\n".join(out)
    if fmt == "latex":
        def tex(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                         ("#", r"\#"), ("$", r"\$")):
                s = s.replace(a, b)
            # inequality signs only exist in math mode (pdflatex prints "<" as an inverted "!")
            return re.sub(r"<=|>=|<|>", lambda m: {"<=": r"$\leq$", ">=": r"$\geq$", "<": "$<$", ">": "$>$"}[m.group()], s)

        def cell(s: str) -> str:
            s = str(s)
            stripped = s.rstrip("*")
            n = len(s) - len(stripped)
            return tex(stripped) + (f"$^{{{'*' * n}}}$" if n else "")

        out = [r"\begin{table}[htbp]", r"\centering"]
        if caption:
            out.append(rf"\caption{{{tex(caption)}}}")
        out.append(r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
        out += [r"\hline", " & ".join(cell(h) for h in header) + r" \\", r"\hline"]
        out += [" & ".join(cell(c) for c in r) + r" \\" for r in rows]
        out.append(r"\hline")
        out.append(r"\end{tabular}")
        if notes:
            note = re.sub(r"(\*+) p\$<\$", lambda m: f"$^{{{m.group(1)}}}$ $p<$", tex(notes))
            out.append(rf"\par\footnotesize {note}")
        out.append(r"\end{table}")
        return "\n".join(out)
    if fmt == "html":
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                   + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                for r in rows]
        out.append("</tbody></table>")
        if notes:
            out.append(f"<p class=\"notes\">{html.escape(notes)}</p>")
        return "\n".join(out)
    raise ValueError(f"fmt={fmt!r} is not a table format; choose text, md, latex or html")


def coef_table(result: Any, fmt: Format = "text", *, truth: Mapping[str, float] | None = None,
               caption: str | None = None, notes: str | None = None,
               terms: Sequence[str] | None = None, digits: int = 4) -> str:
    """One model as a table: estimate (with stars), SE, 95% CI and optionally the true value.

    Parameters
    ----------
    result : results object
        statsmodels-named results (``params``, ``bse``, ``pvalues``, ``conf_int()``).
    fmt : {"text", "md", "latex", "html"}
    truth : mapping, optional
        True parameter values by name; adds "true" and "in CI" columns.
    caption, notes : str, optional
    terms : sequence of str, optional
        Coefficients to show, in order (default: all).
    digits : int, default 4

    Returns
    -------
    str
    """
    frame = coef_frame(result, truth)
    if terms is not None:
        frame = frame.loc[[t for t in terms if t in frame.index]]
    header = ["term", "estimate", "std. err.", "95% CI"]
    if truth is not None:
        header += ["true", "in CI"]
    # wild cluster bootstrap tests run on the fit (res.wildboottest): p-value and CI columns
    boots = getattr(result, "wildboot_results", None) or {}
    has_boot_ci = any(b.conf_int is not None for b in boots.values())
    if boots:
        header += ["wild boot. p"] + (["wild boot. CI"] if has_boot_ci else [])
    rows = []
    for name, row in frame.iterrows():
        cells = [str(name), _num(row["estimate"], digits) + stars(row["pvalue"]),
                 _num(row["se"], digits),
                 f"[{_num(row['ci_low'], digits)}, {_num(row['ci_high'], digits)}]"]
        if truth is not None:
            cells += [_num(row["true"], digits),
                      "" if row["covered"] is None else ("yes" if row["covered"] else "no")]
        if boots:
            b = boots.get(name)
            cells.append("" if b is None else _num(b.pvalue, digits))
            if has_boot_ci:
                cells.append("" if b is None or b.conf_int is None else
                             f"[{_num(b.conf_int[0], digits)}, {_num(b.conf_int[1], digits)}]")
        rows.append(cells)
    nobs = getattr(result, "nobs", None)
    note = notes or ""
    if nobs is not None and not callable(nobs):
        note = (note + "; " if note else "") + f"N = {int(nobs):,}"
    return render(header, rows, fmt, caption, note + "; * p<0.1, ** p<0.05, *** p<0.01")


def side_by_side(models: Sequence[tuple[str, Any]], fmt: Format = "text", *,
                 truth: Mapping[str, float] | None = None, terms: Sequence[str] | None = None,
                 caption: str | None = None, notes: str | None = None, digits: int = 4) -> str:
    """Several models as columns: estimate with stars, SE in parentheses below; N and R2 rows.

    Parameters
    ----------
    models : sequence of (label, result)
    fmt : {"text", "md", "latex", "html"}
    truth : mapping, optional
        Adds a "true" column.
    terms : sequence of str, optional
        Coefficients to show, in order (default: union in first-seen order).
    caption, notes : str, optional
    digits : int, default 4

    Returns
    -------
    str
    """
    frames = [(label, coef_frame(res)) for label, res in models]
    if terms is None:
        terms = list(dict.fromkeys(name for _, f in frames for name in f.index))
    header = ["", *[label or f"({i + 1})" for i, (label, _) in enumerate(frames)]]
    if truth is not None:
        header.append("true")
    rows: list[list[str]] = []
    for term in terms:
        est, se = [term], [""]
        for _, frame in frames:
            if term in frame.index:
                est.append(_num(frame.at[term, "estimate"], digits) + stars(frame.at[term, "pvalue"]))
                se.append(f"({_num(frame.at[term, 'se'], digits)})")
            else:
                est.append("")
                se.append("")
        if truth is not None:
            est.append(_num(truth.get(term), digits))
            se.append("")
        rows += [est, se]
    for label, attr in (("N", "nobs"), ("R2", "rsquared")):
        values = [getattr(res, attr, None) for _, res in models]
        if any(v is not None and not callable(v) for v in values):
            row = [label] + [
                "" if v is None or callable(v) else (f"{int(v):,}" if attr == "nobs" else _num(float(v), 3))
                for v in values]
            rows.append(row + ([""] if truth is not None else []))
    note = (notes + "; " if notes else "") + "standard errors in parentheses; * p<0.1, ** p<0.05, *** p<0.01"
    return render(header, rows, fmt, caption, note)


def frame_table(frame: pd.DataFrame, fmt: Format = "text", *, caption: str | None = None,
                notes: str | None = None, digits: int = 4) -> str:
    """Render a DataFrame (index as the first column) in ``fmt``."""
    header = [str(frame.index.name or ""), *[str(c) for c in frame.columns]]
    rows = [[str(idx), *[_num(v, digits) if isinstance(v, float) else str(v) for v in row]]
            for idx, row in zip(frame.index, frame.itertuples(index=False))]
    return render(header, rows, fmt, caption, notes)


__all__.append("frame_table")
