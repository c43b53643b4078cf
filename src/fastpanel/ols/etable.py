"""``etable``: side-by-side regression tables (text, Markdown, LaTeX) for papers."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["etable", "ETable"]

_STARS = ((0.01, "***"), (0.05, "**"), (0.1, "*"))


def _stars(p: float) -> str:
    for cut, mark in _STARS:
        if p < cut:
            return mark
    return ""


class ETable:
    """A regression table; ``str(table)`` is the text rendering.

    Attributes
    ----------
    rows : list of list of str
        Header row first, then two rows per coefficient (estimate with stars, standard error in
        parentheses), then the statistics rows (fixed effects, N, R2, vcov).
    """

    def __init__(self, results: Sequence[Any], digits: int = 3) -> None:
        if isinstance(results, dict):
            results = list(results.values())
        results = list(results)
        if not results:
            raise ValueError("etable needs at least one results object, got an empty list")
        self.results = results
        names: list[str] = []
        for r in results:
            names += [n for n in r.params.index if n not in names]
        fes: list[str] = []
        for r in results:
            fes += [f for f in r.fixed_effects if f not in fes]
        header = ["", *(f"({j + 1}) {r.dependent}" for j, r in enumerate(results))]
        body: list[list[str]] = []
        for n in names:
            est, se = [n], [""]
            for r in results:
                if n in r.params.index:
                    est.append(f"{r.params[n]:.{digits}f}{_stars(r.pvalues[n])}")
                    se.append(f"({r.bse[n]:.{digits}f})")
                else:
                    est.append("")
                    se.append("")
            body += [est, se]
        stats = [[f"{f} FE", *("Yes" if f in r.fixed_effects else "No" for r in results)] for f in fes]
        stats.append(["N", *(f"{r.nobs:,}" for r in results)])
        stats.append(["R2", *(f"{r.rsquared:.{digits}f}" for r in results)])
        stats.append(["R2 within", *(f"{r.rsquared_within:.{digits}f}" for r in results)])
        stats.append(["vcov", *(r.vcov_label for r in results)])
        is_iv = [hasattr(r, "endog_names") for r in results]
        if any(is_iv):  # 2SLS columns: the estimator and the strength of the first stage
            stats.insert(len(fes), ["Estimator", *("2SLS" if iv else "OLS" for iv in is_iv)])
            stats.append(["First-stage F", *(
                ", ".join(f"{v:.1f}" for v in r.first_stage_f.to_numpy()) if iv else "" for r, iv in zip(results, is_iv))])
            if any(iv and len(r.endog_names) > 1 for r, iv in zip(results, is_iv)):
                stats.append(["KP rk Wald F", *(
                    f"{r.kp_rk_wald_f:.1f}" if iv and len(r.endog_names) > 1 else "" for r, iv in zip(results, is_iv))])
        # wild cluster bootstrap p-values (and CIs) of the coefficients tested on each fit
        boot_names = [n for n in names if any(n in (getattr(r, "wildboot_results", None) or {}) for r in results)]
        for n in boot_names:
            tests = [(getattr(r, "wildboot_results", None) or {}).get(n) for r in results]
            stats.append([f"{n}: wild bootstrap p", *("" if t is None else f"{t.pvalue:.{digits}f}" for t in tests)])
            if any(t is not None and t.conf_int is not None for t in tests):
                stats.append([f"{n}: bootstrap CI", *(
                    "" if t is None or t.conf_int is None else
                    f"[{t.conf_int[0]:.{digits}f}, {t.conf_int[1]:.{digits}f}]" for t in tests)])
        self.header, self.body, self.stats = header, body, stats
        self.rows = [header, *body, *stats]

    def to_text(self) -> str:
        widths = [max(len(row[j]) for row in self.rows) for j in range(len(self.header))]
        fmt = lambda row: "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths)))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [rule, fmt(self.header), rule, *(fmt(r) for r in self.body), rule, *(fmt(r) for r in self.stats), rule,
                 "Significance: *** p<0.01, ** p<0.05, * p<0.1"]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        line = lambda row: "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
        lines = [line(self.header), "|" + "|".join(["---"] + [":---:"] * (len(self.header) - 1)) + "|"]
        lines += [line(r) for r in self.body + self.stats]
        lines.append("\nSignificance: \\*\\*\\* p<0.01, \\*\\* p<0.05, \\* p<0.1")
        return "\n".join(lines)

    def to_latex(self) -> str:
        from fastpanel.ols.results import _latex_escape as esc

        def line(row: list[str]) -> str:
            cells = [esc(c) for c in row]
            cells = [c.replace("***", "$^{***}$") if c.endswith("***") else c.replace("**", "$^{**}$") if c.endswith("**")
                     else c.replace("*", "$^{*}$") if c.endswith("*") else c for c in cells]
            return " & ".join(cells) + " \\\\"

        ncol = len(self.header)
        lines = ["\\begin{tabular}{l" + "c" * (ncol - 1) + "}", "\\toprule", line(self.header), "\\midrule"]
        lines += [line(r) for r in self.body] + ["\\midrule"] + [line(r) for r in self.stats]
        lines += ["\\bottomrule", "\\multicolumn{%d}{l}{\\footnotesize $^{***}$ p$<$0.01, $^{**}$ p$<$0.05, $^{*}$ p$<$0.1}\\\\" % ncol,
                  "\\end{tabular}"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def etable(results: Sequence[Any], *, type: str = "text", digits: int = 3) -> ETable | str:
    """Side-by-side table of several fits: coefficients with stars, (standard errors), N, R2,
    fixed-effect rows and the covariance type.

    Parameters
    ----------
    results : sequence of OLSResults, the dict returned by ``feols(..., split=...)``, or a
        :class:`~fastpanel.ols.FitCollection` (multiple estimation; a dict of them with ``split=``)
    type : {"text", "md", "markdown", "tex", "latex", "object"}, default "text"
        ``"object"`` returns the :class:`ETable` (with ``to_text``, ``to_markdown``, ``to_latex``).
    digits : int, default 3

    Returns
    -------
    ETable or str
    """
    from fastpanel.ols.multi import FitCollection
    from fastpanel.ols.results import OLSResults

    items = list(results.values()) if isinstance(results, dict) else (
        [results] if isinstance(results, OLSResults) else list(results)
    )
    # a FitCollection (multiple estimation), or several (split= with a multiple-estimation formula)
    items = [r for item in items for r in (item if isinstance(item, FitCollection) else [item])]
    for j, r in enumerate(items):
        if not isinstance(r, OLSResults):
            raise TypeError(
                f"etable: results[{j}] is a {r.__class__.__name__}, not a fit; pass a list of results "
                "returned by feols or PanelOLS.fit"
            )
    table = ETable(items, digits)
    kind = type.lower()
    if kind == "object":
        return table
    if kind == "text":
        return table.to_text()
    if kind in ("md", "markdown"):
        return table.to_markdown()
    if kind in ("tex", "latex"):
        return table.to_latex()
    raise ValueError(f"type={type!r} is not known; use 'text', 'markdown', 'latex' or 'object'")
