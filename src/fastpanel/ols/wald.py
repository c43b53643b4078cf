"""Wald and F tests of linear restrictions ``R b = r`` on the slopes of a fixed-effects OLS fit.

Statistic
---------
With ``b`` the estimates, ``V`` the fit's covariance (``results.cov_params()``, already scaled by
the fit's small-sample preset) and ``q`` restrictions (the rows of ``R``)::

    W = (R b - r)' (R V R')^{-1} (R b - r)

* ``distribution="chi2"``: the statistic is ``W``, ``p = P(chi2_q > W)``; ``df_denom`` is None.
  This is linearmodels' ``wald_test`` (always chi2) and pyfixest's ``wald_test(distribution=
  "chi2")``.
* ``distribution="F"``: the statistic is ``F = W / q``, ``p = P(F_{q, d} > F)`` with ``d`` the
  fit's ``df_t``, the degrees of freedom of its t statistics:

  ==========================  ==============================  ===============  ===============
  covariance                  ``ssc="fixest"``                ``"statsmodels"``  ``"linearmodels"``
  ==========================  ==============================  ===============  ===============
  iid, HC0-HC3                ``n - K``                       ``n - K``        ``n - K``
  CRV1 (one- or multiway)     ``Gmin - 1``                    ``Gmin - 1``     ``n - K``
  CRV3                        ``G - 1``                       ``G - 1``        ``n - K``
  Driscoll-Kraay              ``T - 1``                       ``n - K``        ``n - K``
  ==========================  ==============================  ===============  ===============

  ``K`` is the preset's parameter count (:mod:`fastpanel.ols.covariance`), ``Gmin`` the
  smallest cluster count of the cluster variables. This equals statsmodels' ``f_test`` /
  ``wald_test(use_f=True)`` on the dummy-variable regression (``df_resid``, or
  ``df_resid_inference = Gmin - 1`` for ``cov_type="cluster"``) and pyfixest's
  ``wald_test(distribution="F")`` (``min(G) - 1`` when clustered; pyfixest 0.60 applies F only
  to ``R = I, r = 0`` and switches any other hypothesis to chi2, and its unclustered
  denominator ``N - k - sum_f L_f`` is one below fixest's ``n - K`` with two-way effects).
  linearmodels has no F form of ``wald_test``.

The default ``distribution=None`` is the preset's peer: ``"chi2"`` under
``ssc="linearmodels"``, ``"F"`` under ``"fixest"`` and ``"statsmodels"``.

Restrictions
------------
``R`` is a ``(q, k)`` array (a 1-D array is one restriction), a DataFrame whose columns are
coefficient names, or a string such as ``"x1 = x2, x3 = 0"``, ``"x1 - 2*x2 = 1"`` or
``"x1 + x2"`` (``= 0`` implied): comma-separated linear equations in the coefficient names of
``results.params.index`` (names such as ``np.log(x)``, ``x1:x2`` or ``C(g)[T.b]`` are matched
as they are written there, spaces aside), numbers, ``+``, ``-``, ``*`` and ``/ number``.
``r`` (default zeros) is a scalar or a length-``q`` vector and is not allowed with a string.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["WaldTestResult", "wald_test", "parse_restrictions"]

_DISTRIBUTIONS = ("F", "chi2")
# a restriction whose R V R' diagonal is below this fraction of the sum |R_jl|^2 V_ll is one
# the covariance gives (up to rounding) no information on
_SINGULAR_RTOL = 1e-12


@dataclass(frozen=True, eq=False)  # arrays inside: compare the fields
class WaldTestResult:
    """Result of :func:`wald_test`.

    Attributes
    ----------
    stat : float
        ``F = W / q`` (distribution "F") or ``W`` (distribution "chi2").
    pvalue : float
        Upper-tail probability of ``stat``.
    df_num : int
        ``q``, the number of restrictions.
    df_denom : float or None
        Denominator degrees of freedom of the F distribution; None for chi2.
    distribution : {"F", "chi2"}
    R : numpy.ndarray, shape (q, k)
    r : numpy.ndarray, shape (q,)
    wald : float
        ``W`` itself (equal to ``stat`` for chi2, ``q * stat`` for F).
    names : tuple of str
        The coefficient names of the columns of ``R``.
    covariance : str
        The covariance and preset the test used, e.g. ``"CRV1 by firm (ssc=fixest)"``.
    """

    stat: float
    pvalue: float
    df_num: int
    df_denom: float | None
    distribution: str
    R: np.ndarray = field(repr=False)
    r: np.ndarray = field(repr=False)
    wald: float = field(repr=False, default=np.nan)
    names: tuple[str, ...] = field(repr=False, default=())
    covariance: str = field(repr=False, default="")

    @property
    def hypotheses(self) -> list[str]:
        """Each restriction as text, e.g. ``["x1 - x2 = 0", "x3 = 0"]``."""
        return [_restriction_text(row, rhs, self.names) for row, rhs in zip(self.R, self.r)]

    @property
    def dist_label(self) -> str:
        """``"F(2, 39)"`` or ``"chi2(2)"``."""
        if self.distribution == "F":
            return f"F({self.df_num}, {_num(self.df_denom)})"
        return f"chi2({self.df_num})"

    def line(self) -> str:
        """One line: ``Wald test (x1 - x2 = 0, x3 = 0): F(2, 39) = 3.14, p = 0.0541``."""
        return f"Wald test ({', '.join(self.hypotheses)}): {self.dist_label} = {self.stat:.6g}, p = {self.pvalue:.4g}"

    def summary(self) -> str:
        """A few lines: the hypotheses, the statistic and its distribution, the covariance."""
        h0 = self.hypotheses
        lines = [f"Wald test of {self.df_num} linear restriction{'s' if self.df_num != 1 else ''}",
                 f"  H0: {h0[0]}", *(f"      {h}" for h in h0[1:]),
                 f"  {self.dist_label} = {self.stat:.6g}, p-value = {self.pvalue:.4g}"]
        if self.covariance:
            lines.append(f"  covariance: {self.covariance}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``df_denom`` None for chi2)."""
        return {"hypotheses": self.hypotheses, "distribution": self.distribution, "stat": float(self.stat),
                "pvalue": float(self.pvalue), "df_num": int(self.df_num),
                "df_denom": None if self.df_denom is None else float(self.df_denom), "wald": float(self.wald),
                "covariance": self.covariance}


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _restriction_text(row: np.ndarray, rhs: float, names: tuple[str, ...]) -> str:
    parts = []
    for coef, name in zip(row, names):
        if coef == 0:
            continue
        sign = "-" if coef < 0 else "+"
        mag = abs(coef)
        term = name if mag == 1 else f"{mag:g}*{name}"
        parts.append((sign, term))
    if not parts:
        return f"0 = {rhs:g}"
    text = ("-" if parts[0][0] == "-" else "") + parts[0][1]
    text += "".join(f" {s} {t}" for s, t in parts[1:])
    return f"{text} = {rhs:g}"


# -- the string form ------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = "+-*/=,"
_OPEN, _CLOSE = "([{", ")]}"


def _squash(text: str) -> str:
    return "".join(text.split())


def _match_name(text: str, pos: int, squashed: str) -> int:
    """End of ``squashed`` (a name without spaces) matched at ``text[pos:]`` ignoring spaces, or -1."""
    i = pos
    for ch in squashed:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text) or text[i] != ch:
            return -1
        i += 1
    return i


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_."


def _unknown_word(text: str, pos: int) -> str:
    """The run of text at ``pos`` up to the next operator outside brackets (for a message)."""
    depth, i = 0, pos
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth <= 0 and (ch in _OPERATORS or ch.isspace()):
            break
        i += 1
    return text[pos:i] or text[pos]


def _tokenize(text: str, names: list[str]) -> list[tuple[str, Any]]:
    """Tokens ``("name", index) | ("num", value) | ("op", char)``; names matched longest first."""
    order = sorted(range(len(names)), key=lambda j: -len(_squash(names[j])))
    squashed = [_squash(n) for n in names]
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        for j in order:
            end = _match_name(text, pos, squashed[j])
            # a name must not be the start or the end of a longer word ("x1" in "x10" or "ax1")
            if end > 0 and not (_is_word(squashed[j][-1]) and end < len(text) and _is_word(text[end])) \
                    and not (_is_word(squashed[j][0]) and pos > 0 and _is_word(text[pos - 1])):
                tokens.append(("name", j))
                pos = end
                break
        else:
            m = _NUMBER.match(text, pos)
            if m and not (m.end() < len(text) and (text[m.end()].isalpha() or text[m.end()] == "_")):
                tokens.append(("num", float(m.group())))
                pos = m.end()
            elif ch in _OPERATORS:
                tokens.append(("op", ch))
                pos += 1
            else:
                word = _unknown_word(text, pos)
                close = difflib.get_close_matches(word, names, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(
                    f"R={text!r}: {word!r} is not a coefficient of the model (coefficients: "
                    f"{', '.join(map(repr, names))}){hint}"
                )
    return tokens


def _parse_side(tokens: list[tuple[str, Any]], k: int, where: str) -> tuple[np.ndarray, float]:
    """A linear expression: (coefficients of the names, constant)."""
    row = np.zeros(k)
    const = 0.0
    if not tokens:
        raise ValueError(f"{where}: an empty side; write e.g. 'x1 = x2' or 'x1 + x2 = 0'")
    i = 0
    sign = 1.0
    expect_term = True
    while i < len(tokens):
        kind, val = tokens[i]
        if expect_term:
            if kind == "op" and val in "+-":
                sign *= -1.0 if val == "-" else 1.0
                i += 1
                continue
            # a term: factors joined by '*' (at most one a name), then '/ number' divisors
            factor, name = 1.0, None
            while True:
                if i >= len(tokens):
                    raise ValueError(f"{where}: ends with an operator; finish the term")
                kind, val = tokens[i]
                if kind == "num":
                    factor *= val
                elif kind == "name":
                    if name is not None:
                        raise ValueError(f"{where}: a product of two coefficients is not a linear restriction")
                    name = val
                else:
                    raise ValueError(f"{where}: {val!r} where a number or a coefficient was expected")
                i += 1
                if i < len(tokens) and tokens[i] == ("op", "*"):
                    i += 1
                    continue
                while i < len(tokens) and tokens[i] == ("op", "/"):
                    if i + 1 >= len(tokens) or tokens[i + 1][0] != "num":
                        raise ValueError(f"{where}: '/' must be followed by a number (a coefficient cannot divide)")
                    if tokens[i + 1][1] == 0:
                        raise ValueError(f"{where}: division by zero")
                    factor /= tokens[i + 1][1]
                    i += 2
                if i < len(tokens) and tokens[i][0] != "op":
                    raise ValueError(f"{where}: two terms without an operator between them; write e.g. '2*x1'")
                break
            if name is None:
                const += sign * factor
            else:
                row[name] += sign * factor
            sign = 1.0
            expect_term = False
        else:
            if kind == "op" and val in "+-":
                expect_term = True
                sign = -1.0 if val == "-" else 1.0
                i += 1
            else:
                raise ValueError(f"{where}: {val!r} where '+' or '-' was expected")
    if expect_term:
        raise ValueError(f"{where}: ends with an operator; finish the term")
    return row, const


def parse_restrictions(text: str, names: list[str] | tuple[str, ...] | pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """``"x1 = x2, x3 = 0"`` -> ``(R, r)`` over the coefficient ``names``.

    Parameters
    ----------
    text : str
        Comma-separated linear equations (a side without ``=`` equals 0).
    names : sequence of str
        The coefficient names, in the order of the columns of ``R``.

    Returns
    -------
    R : numpy.ndarray, shape (q, k)
    r : numpy.ndarray, shape (q,)
    """
    names = [str(n) for n in names]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("R: an empty restriction string; write e.g. 'x1 = x2, x3 = 0'")
    tokens = _tokenize(text, names)
    # split on commas and '=' only after the names are matched: names may hold both
    groups: list[list[tuple[str, Any]]] = [[]]
    for tok in tokens:
        if tok == ("op", ","):
            groups.append([])
        else:
            groups[-1].append(tok)
    rows, rhs = [], []
    k = len(names)
    for j, group in enumerate(groups):
        where = f"R={text!r}, restriction {j + 1}"
        if not group:
            raise ValueError(f"{where} is empty (two commas, or a comma at an end); remove it")
        sides: list[list[tuple[str, Any]]] = [[]]
        for tok in group:
            if tok == ("op", "="):
                sides.append([])
            else:
                sides[-1].append(tok)
        if len(sides) > 2:
            raise ValueError(f"{where}: more than one '='; write 'a = b, b = c' for a chain")
        lhs_row, lhs_c = _parse_side(sides[0], k, where)
        if len(sides) == 2:
            rhs_row, rhs_c = _parse_side(sides[1], k, where)
        else:
            rhs_row, rhs_c = np.zeros(k), 0.0
        row = lhs_row - rhs_row
        if not row.any():
            raise ValueError(f"{where} involves no coefficient (after simplification); each restriction "
                             "must involve at least one coefficient")
        rows.append(row)
        rhs.append(rhs_c - lhs_c)
    return np.array(rows), np.array(rhs)


# -- the test ------------------------------------------------------------------------------------
def _as_matrix(R: Any, names: list[str]) -> np.ndarray:
    k = len(names)
    if isinstance(R, pd.DataFrame):
        cols = [str(c) for c in R.columns]
        unknown = [c for c in cols if c not in names]
        if unknown:
            raise ValueError(f"R: the DataFrame's column(s) {unknown} are not coefficients of the model "
                             f"({names})")
        R = R.rename(columns=str).reindex(columns=names, fill_value=0.0).to_numpy(dtype=np.float64)
    try:
        mat = np.asarray(R, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"R must be a (q, {k}) array of numbers or a restriction string such as 'x1 = x2', "
                        f"got {type(R).__name__}") from None
    if mat.ndim == 1:
        mat = mat[None, :]
    if mat.ndim != 2 or mat.shape[1] != k or mat.shape[0] == 0:
        raise ValueError(f"R has shape {np.shape(R)}; expected (q, {k}) with q >= 1 restrictions and one column "
                         f"per coefficient ({', '.join(names)}), or ({k},) for one restriction")
    if not np.isfinite(mat).all():
        raise ValueError("R has NaN or infinite entries; every weight must be a finite number")
    # one memory layout for every form of R (a reindexed DataFrame can come back with negative
    # strides, and numpy's matmul rounds differently off its BLAS path): equal R, equal bits
    return np.ascontiguousarray(mat)


def _as_rhs(r: Any, q: int) -> np.ndarray:
    if r is None:
        return np.zeros(q)
    try:
        vec = np.asarray(r, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"r must be a number or {q} numbers, got {type(r).__name__}") from None
    if vec.ndim == 0:
        vec = np.full(q, float(vec))
    vec = vec.reshape(-1) if vec.ndim == 2 and 1 in vec.shape else vec
    if vec.ndim != 1 or vec.shape[0] != q:
        raise ValueError(f"r has length {vec.size} (shape {np.shape(r)}) but R has {q} restriction row(s); pass "
                         f"one value per row of R (or a scalar)")
    if not np.isfinite(vec).all():
        raise ValueError("r has NaN or infinite entries; every value must be a finite number")
    return vec


def _check_rank(R: np.ndarray, r: np.ndarray, texts: list[str]) -> None:
    """Refuse repeated, contradictory or linearly dependent restrictions, naming them."""
    q = R.shape[0]
    aug = np.column_stack([R, r])
    for i in range(q):
        for j in range(i + 1, q):
            pair = R[[i, j]]
            if np.linalg.matrix_rank(pair) < 2:
                same = np.linalg.matrix_rank(aug[[i, j]]) < 2
                what = "repeat each other" if same else "contradict each other (same left-hand side, other value)"
                raise ValueError(f"R: restrictions {i + 1} ({texts[i]}) and {j + 1} ({texts[j]}) {what}; "
                                 "remove one of them")
    rank = np.linalg.matrix_rank(R)
    if rank < q:
        raise ValueError(f"R has rank {rank} < {q} restrictions: some restriction is a linear combination of the "
                         "others (rank-deficient R); remove the redundant ones")


def wald_test(results: Any, R: Any, r: Any = None, *, distribution: str | None = None) -> WaldTestResult:
    """Wald or F test of the linear restrictions ``R b = r`` (see the module docstring).

    Parameters
    ----------
    results : OLSResults
        A fit of :func:`fastpanel.feols` or :class:`fastpanel.PanelOLS` (in memory or on Dask).
    R : str, list of str, array-like of shape (q, k) or (k,), or pandas.DataFrame
        The restrictions: ``"x1 = x2, x3 = 0"`` (or ``["x1 = x2", "x3 = 0"]``), or a matrix whose columns follow
        ``results.params.index`` (a DataFrame's columns are matched by name).
    r : float or array-like of shape (q,), optional
        Right-hand side (default zeros); only with a matrix ``R``.
    distribution : {"F", "chi2"}, optional
        ``"F"``: ``W / q`` against ``F(q, results.df_t)``; ``"chi2"``: ``W`` against
        ``chi2(q)``. Default: ``"chi2"`` for ``ssc="linearmodels"``, else ``"F"``.

    Returns
    -------
    WaldTestResult

    Raises
    ------
    ValueError
        Unknown coefficient names, a malformed string, ``R`` or ``r`` of the wrong shape,
        repeated or linearly dependent restrictions, or a restriction the covariance gives no
        information on (``R V R'`` singular).

    Examples
    --------
    >>> res = fastpanel.feols("y ~ x1 + x2 + x3 | firm", df, vcov={"CRV1": "firm"})
    >>> res.wald_test("x1 = x2, x3 = 0")
    >>> res.wald_test(np.array([[1.0, -1.0, 0.0]]), distribution="chi2")
    """
    if distribution is None:
        distribution = "chi2" if getattr(results, "ssc", None) == "linearmodels" else "F"
    if distribution not in _DISTRIBUTIONS:
        low = {d.lower(): d for d in _DISTRIBUTIONS}
        if isinstance(distribution, str) and distribution.lower() in low:
            distribution = low[distribution.lower()]
        else:
            raise ValueError(f"distribution={distribution!r}; use 'F' or 'chi2'")
    names = [str(n) for n in results.params.index]
    k = len(names)
    if k == 0:
        raise ValueError("the model has no coefficients to test")
    if isinstance(R, (list, tuple)) and R and all(isinstance(x, str) for x in R):
        R = ", ".join(R)  # ["x1 = x2", "x3 = 0"], as linearmodels' formula= takes them
    if isinstance(R, str):
        if r is not None:
            raise ValueError("r is given with a restriction string; write the values in the string, e.g. "
                             "'x1 - 2*x2 = 1'")
        Rm, rv = parse_restrictions(R, names)
    else:
        Rm = _as_matrix(R, names)
        rv = _as_rhs(r, Rm.shape[0])
    q = Rm.shape[0]
    texts = [_restriction_text(row, rhs, tuple(names)) for row, rhs in zip(Rm, rv)]
    _check_rank(Rm, rv, texts)
    b = results.params.to_numpy(dtype=np.float64)
    V = np.asarray(results.cov_params(), dtype=np.float64)
    M = Rm @ V @ Rm.T
    M = 0.5 * (M + M.T)
    # Singular R V R': each restriction's variance is judged against the size it would have
    # without cancellation, sum_l R_jl^2 max(|V_ll|, B_ll ssr / n) (B the bread: B_ll ssr / n is an
    # iid-type variance of the same coefficient, so a coefficient of scale 1e8 is no reason to
    # refuse one and a variance made of rounding is refused); then all jointly, on the
    # equilibrated (correlation) matrix.
    ref = np.abs(np.diag(V))
    bread = getattr(getattr(results, "_state", None), "bread", None)
    nobs, ssr = getattr(results, "nobs", 0), getattr(results, "ssr", np.nan)
    if bread is not None and np.shape(bread) == V.shape and nobs and np.isfinite(ssr):
        ref = np.maximum(ref, np.abs(np.diag(bread)) * ssr / nobs)
    scale = (Rm ** 2) @ ref
    diag = np.diag(M)
    bad = np.flatnonzero(~(diag > _SINGULAR_RTOL * scale)) if np.isfinite(M).all() else np.arange(q)
    if bad.size:
        raise ValueError(
            f"R V R' is singular: the covariance gives the restriction(s) {', '.join(texts[j] for j in bad)} "
            "a variance of zero (e.g. a coefficient whose standard error is 0, or clusters that leave it "
            "unidentified), so the test is undefined; drop those restrictions or use another covariance type"
        )
    d = 1.0 / np.sqrt(diag)
    C = M * d[:, None] * d[None, :]
    eig = np.linalg.eigvalsh(C)
    if eig.min() <= _SINGULAR_RTOL * max(eig.max(), 1.0):
        raise ValueError(
            f"R V R' is singular (smallest eigenvalue of its correlation matrix {eig.min():.3g}): under this "
            "covariance the restrictions are linearly dependent (e.g. more restrictions than clusters allow); "
            "test fewer restrictions or use another covariance type"
        )
    diff = Rm @ b - rv
    z = d * diff
    W = float(z @ np.linalg.solve(C, z))
    label = f"{results.vcov_label} (ssc={results.ssc})" if hasattr(results, "vcov_label") else ""
    if distribution == "F":
        df_t = np.asarray(results.df_t, dtype=np.float64)
        if df_t.ndim and np.unique(df_t).size != 1:
            # CR2 gives one Satterthwaite df per coefficient: no single F denominator exists
            raise ValueError(
                f"distribution='F' needs one t df for the fit, but this covariance ({results.vcov_label}) has one "
                "per coefficient (Satterthwaite); use distribution='chi2'"
            )
        df_denom = float(df_t.reshape(-1)[0])
        stat = W / q
        pvalue = float(stats.f.sf(stat, q, df_denom))
    else:
        df_denom = None
        stat = W
        pvalue = float(stats.chi2.sf(W, q))
    return WaldTestResult(stat=float(stat), pvalue=pvalue, df_num=int(q), df_denom=df_denom,
                          distribution=distribution, R=Rm, r=rv, wald=W, names=tuple(names), covariance=label)
