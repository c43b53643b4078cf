"""``feols``: fixest-style formulas ``y ~ x1 + x2 | fe1 + fe2`` on pandas or polars data.

The part before ``|`` is parsed by formulaic (interactions, transforms such as ``np.log(x)``,
categoricals through ``C(x)``); the part after lists fixed-effect columns. A right-hand side
made only of plain numeric column names skips formulaic (the common large-data case).
"""

from __future__ import annotations

import builtins
import difflib
import functools
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from fastpanel.ols import covariance as cov
from fastpanel.ols.model import estimate
from fastpanel.ols.results import OLSResults

__all__ = ["feols", "MissingSplitWarning"]

_STEPWISE = re.compile(r"\b(?:c?sw0?)\s*\(")


def _is_multi(fml: str) -> bool:
    """Multiple estimation: sw( / sw0( / csw( / csw0( anywhere, or several outcomes ``y1 + y2 ~``
    (a ``+`` at the top level of the left-hand side; ``np.log(a + b) ~ x`` is one outcome)."""
    if _STEPWISE.search(fml):
        return True
    depth = 0
    for ch in fml.split("~", 1)[0]:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "+" and depth == 0:
            return True
    return False
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z_0-9.]*$")
_NAMESPACE = {"np", "numpy", "C", "I", "log", "exp", "center", "scale", "poly", "bs", "Q", "T", "lag"}


def _to_pandas(data: Any, columns: list[str]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    mod = type(data).__module__
    if mod.startswith("polars") and type(data).__name__ == "LazyFrame":
        raise TypeError("data is a polars LazyFrame; call .collect() on it first and pass the DataFrame")
    if mod.startswith("polars"):
        present = [c for c in dict.fromkeys(columns) if c in data.columns]
        return data.select(present).to_pandas()
    raise TypeError(f"data must be a pandas or polars DataFrame, got {type(data).__name__}")


def _check_columns(names: list[str], columns: list[str], what: str) -> None:
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, [str(c) for c in columns], n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; check the spelling"
            raise ValueError(f"{what} names column {name!r}, which is not in data{hint}")


def _parse(fml: str) -> tuple[str, str, list[str], tuple[str, str] | None]:
    """``(lhs, rhs, fixed effects, (endogenous, instruments) or None)`` of
    ``y ~ x | fe1 + fe2 | d ~ z`` (the fixed-effect and IV parts optional, in that order)."""
    if not isinstance(fml, str) or "~" not in fml:
        raise ValueError(f"formula {fml!r} must look like 'y ~ x1 + x2' or 'y ~ x1 | fe1 + fe2'")
    parts = fml.split("|")
    iv = None
    if len(parts) >= 2 and "~" in parts[-1]:
        endog, inst = (p.strip() for p in parts[-1].split("~", 1))
        if not endog or not inst or "~" in inst:
            raise ValueError(f"formula {fml!r}: the IV part must look like '| d1 + d2 ~ z1 + z2 + z3'")
        iv = (endog, inst)
        parts = parts[:-1]
    if len(parts) > 2:
        raise ValueError(f"formula {fml!r} has too many '|'; write 'y ~ x | fe1 + fe2' or 'y ~ x | fe | d ~ z'")
    if len(parts) == 2 and "~" in parts[1]:
        raise ValueError(f"formula {fml!r}: the IV part '| d ~ z' must come last, after the fixed effects")
    main = parts[0].strip()
    lhs, rhs = (s.strip() for s in main.split("~", 1))
    fes = [f.strip() for f in parts[1].split("+")] if len(parts) == 2 else []
    fes = [f for f in fes if f and f != "0"]
    return lhs, rhs, fes, iv


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _required(formula: str) -> list[str]:
    try:
        return list(_required_cached(formula))
    except Exception as exc:  # formulaic's syntax errors carry terminal colour codes
        if type(exc).__module__.startswith("formulaic"):
            msg = _ANSI.sub("", str(exc)).replace("\u29db", "").replace("\u29da", "").strip()
            raise ValueError(f"formula {formula!r} cannot be parsed: {msg}") from None
        raise


@functools.lru_cache(maxsize=256)
def _required_cached(formula: str) -> tuple[str, ...]:
    # Parsing is a pure function of the string and costs milliseconds: refits of the same
    # formula (per-year splits, bootstraps, benchmarks) parse it once.
    from formulaic import Formula

    names = sorted(str(v) for v in Formula(formula).required_variables)
    return tuple(v for v in names if v not in _NAMESPACE and not hasattr(builtins, v))


def _float_column(column: pd.Series) -> np.ndarray:
    """Column values as float64 with NaN for missing; a view (no copy) for float64 columns."""
    if column.dtype == np.float64:
        return column.to_numpy(copy=False)
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _fill(buf: np.ndarray, columns: list[np.ndarray], first: int) -> None:
    """buf[:, first + j] = columns[j]: a parallel copy in C++ when the module is built."""
    try:
        from fastpanel import _core
    except ImportError:  # pragma: no cover - pure-Python install
        _core = None
    if _core is not None and all(c.dtype == np.float64 and c.flags.c_contiguous for c in columns):
        _core.fill_columns(buf, columns, first)
        return
    for j, c in enumerate(columns):
        buf[:, first + j] = c


def _design(lhs: str, rhs: str, df: pd.DataFrame, has_fe: bool) -> tuple[np.ndarray, np.ndarray, list[str], bool, np.ndarray | None]:
    """y, X, names, whether X holds an intercept, and the Fortran buffer ``[y, X]`` when y and
    X are column views of one (so that the within transform can run in place)."""
    terms = [t.strip() for t in rhs.split("+")]
    simple = all(_IDENT.match(t) or t in ("0", "1", "-1") for t in terms) and _IDENT.match(lhs)
    if simple:
        cols = [t for t in terms if t not in ("0", "1", "-1")]
        no_const = "0" in terms or "-1" in rhs
        if all(c in df.columns and pd.api.types.is_numeric_dtype(df[c]) for c in cols + [lhs]):
            buf = np.empty((len(df), 1 + len(cols) + (0 if (has_fe or no_const) else 1)), order="F")
            y, X = buf[:, 0], buf[:, 1:]
            start = 0
            names = list(cols)
            if not (has_fe or no_const):
                X[:, 0] = 1.0
                start = 1
                names = ["Intercept", *cols]
            _fill(buf, [_float_column(df[lhs])], 0)
            _fill(buf, [_float_column(df[c]) for c in cols], 1 + start)
            return y, X, names, start == 1, buf
    import formulaic

    mm = formulaic.model_matrix(f"{lhs} ~ {rhs}", df, na_action="ignore")
    y_mat, X_mat = mm.lhs, mm.rhs
    names = [str(c) for c in X_mat.columns]
    X = np.asarray(X_mat, dtype=np.float64)
    has_int = "Intercept" in names
    if has_fe and has_int:
        j = names.index("Intercept")
        X = np.delete(X, j, axis=1)
        names.pop(j)
        has_int = False
    return np.asarray(y_mat, dtype=np.float64)[:, 0], X, names, has_int, None


def _rhs_design(rhs: str, frame: pd.DataFrame, new: pd.DataFrame, has_fe: bool, names: list[str]) -> np.ndarray:
    """The regressors of the fitted formula evaluated on new rows (all input columns of X, in
    the fit's order). Formulaic terms reuse the fit's model spec (categorical levels, stateful
    transforms), so new data are encoded as the estimation data were."""
    terms = [t.strip() for t in rhs.split("+")]
    if all(_IDENT.match(t) or t in ("0", "1", "-1") for t in terms):
        cols = [c for c in names if c != "Intercept"]
        _check_columns(cols, list(new.columns), "newdata (the fitted formula)")
        parts = [np.ones(len(new))] if "Intercept" in names else []
        return np.column_stack(parts + [_float_column(new[c]) for c in cols]) if parts or cols else np.empty((len(new), 0))
    import formulaic

    spec = formulaic.model_matrix(rhs, frame, na_action="ignore").model_spec
    mm = spec.get_model_matrix(new, na_action="ignore")
    got = [str(c) for c in mm.columns]
    missing = [c for c in names if c not in got]
    if missing:
        raise ValueError(f"newdata does not produce the regressor(s) {missing} of the fitted formula")
    return np.asarray(mm[names], dtype=np.float64)


def feols(
    fml: str,
    data: Any,
    vcov: Any = "iid",
    *,
    weights: str | None = None,
    ssc: str = "fixest",
    backend: str | None = None,
    split: str | None = None,
    by: str | None = None,
    time: str | None = None,
    drop_singletons: bool = True,
    collin_tol: float = 1e-10,
) -> OLSResults | dict[Any, OLSResults]:
    """Ordinary least squares with high-dimensional fixed effects, from a formula.

    Parameters
    ----------
    fml : str
        ``"y ~ x1 + x2 + x1:x2 + np.log(x3) | entity + year"``. Without ``| ...`` the model is
        pooled OLS with an intercept. Text columns must be declared categorical with ``C(x)``.
    data : pandas.DataFrame, polars.DataFrame or dask.dataframe.DataFrame
        A Dask DataFrame is fitted out of core (:mod:`fastpanel.distributed.ols`: entity or
        entity + period effects, row-wise terms (not ``C(x)``), iid / HC0-HC3 / CRV1 and CRV3 by
        the effects / DK), with the same results as in memory.
    vcov : str or dict, default "iid"
        ``"iid"``, ``"HC0"``, ``"HC1"`` (= ``"hetero"``), ``"HC2"``, ``"HC3"``,
        ``{"CRV1": "g"}``, ``{"CRV1": "g1+g2"}`` (any number of variables, Cameron-Gelbach-Miller;
        ``"eigen_fix": True/False`` as a second key), ``{"CRV3": "g"}``, ``{"CR2": "g"}``
        (Bell-McCaffrey with Satterthwaite df per coefficient), ``{"DK": lags}`` (needs ``time=``).
        See :mod:`fastpanel.ols.covariance` for the exact formulas. The results offer
        ``wald_test`` / ``f_test`` and ``wildboottest`` (the wild cluster bootstrap).
    weights : str, optional
        Column of positive analytic weights.
    ssc : {"fixest", "statsmodels", "linearmodels"}, default "fixest"
        Small-sample conventions.
    backend : {"auto", "cpp", "numba", "cuda"}, optional
        Kernel backend of the within transform.
    split, by : str, optional
        Fit one model per value of this column; returns a dict value -> results.
    time : str, optional
        Period column (needed by ``vcov={"DK": lags}``).
    drop_singletons : bool, default True
        Drop observations alone in a fixed-effect level (iteratively); counted in the results.
    collin_tol : float, default 1e-10
        Tolerance of the collinearity check.

    Returns
    -------
    OLSResults, or dict of value -> OLSResults with ``split``/``by``.

    Examples
    --------
    >>> res = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "firm"})
    """
    if isinstance(fml, str) and "~" in fml and _is_multi(fml):
        # multiple estimation: several outcomes and/or sw/sw0/csw/csw0 stepwise regressors
        from fastpanel.ols.multi import feols_multi

        return feols_multi(fml, data, vcov, weights=weights, ssc=ssc, backend=backend, split=split, by=by,
                           time=time, drop_singletons=drop_singletons, collin_tol=collin_tol)
    if type(data).__module__.startswith("dask"):  # a Dask DataFrame: the distributed fit
        if split is not None or by is not None or backend is not None:
            raise ValueError("split=, by= and backend= are not available on Dask; "
                             "fit each group on its own Dask DataFrame")
        from fastpanel.distributed.ols import feols_dask

        return feols_dask(fml, data, vcov, weights=weights, ssc=ssc, time=time, drop_singletons=drop_singletons,
                          collin_tol=collin_tol)
    if split is not None and by is not None:
        raise ValueError("pass either split= or by=, not both")
    split_col = split if split is not None else by
    spec = cov.parse_vcov(vcov)
    if ssc not in cov.SSC_PRESETS:
        raise ValueError(f"ssc={ssc!r} is not a preset; use one of {cov.SSC_PRESETS}")
    lhs, rhs, fes, iv = _parse(fml)
    dup = sorted({f for f in fes if fes.count(f) > 1})
    if dup:
        raise ValueError(
            f"formula {fml!r} names the fixed effect {', '.join(map(repr, dup))} more than once; list each "
            "fixed effect once"
        )
    main_vars = _required(f"{lhs} ~ {rhs}")
    if iv is not None:
        iv_vars = _required(f"{iv[0]} ~ {iv[1]}")
        main_vars = list(dict.fromkeys(main_vars + iv_vars))
    cluster_cols = [c for c in spec.clusters if isinstance(c, str)]
    if len(cluster_cols) != len(spec.clusters):
        raise TypeError("in feols, cluster variables are column names: e.g. vcov={'CRV1': 'firm'}")
    extra_cols = [c for c in (weights, split_col, time) if c is not None]
    fe_cols = _fe_columns(fes)
    columns_needed = list(dict.fromkeys(main_vars + fe_cols + cluster_cols + extra_cols))
    df = _to_pandas(data, columns_needed)
    if len(df) == 0:
        raise ValueError("data has no rows; pass a frame with at least one observation")
    cols = list(df.columns)
    _check_columns(main_vars, cols, "formula")
    _check_columns(fe_cols, cols, "formula (fixed effects)")
    _check_columns(cluster_cols, cols, "vcov")
    _check_columns(extra_cols, cols, "argument")
    for v in main_vars:
        s = df[v]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype)):
            if not re.search(rf"C\(\s*{re.escape(v)}\s*[,)]", rhs + ("" if iv is None else iv[1])) or v == lhs:
                raise TypeError(
                    f"column {v!r} has non-numeric dtype {s.dtype}; declare it categorical in the formula "
                    f"with C({v}) or convert it to numbers"
                )
    if spec.kind == "DK" and time is None:
        raise ValueError("vcov={'DK': lags} needs the period column: pass time='year' (the column name)")

    def fit_one(frame: pd.DataFrame) -> OLSResults:
        if iv is not None:
            return _fit_iv(frame, lhs, rhs, iv, fes, spec, ssc, weights, time, cluster_cols, drop_singletons,
                           backend, collin_tol)
        y, X, names, has_int, buf = _design(lhs, rhs, frame, bool(fes))
        # One array object per column: a cluster or period column that is also a fixed effect
        # then shares its factorisation (and is recognised as nested at no cost).
        arrays: dict[str, np.ndarray] = {}

        def column(name: str) -> np.ndarray:
            if name not in arrays:
                arrays[name] = frame[name].to_numpy()
            return arrays[name]

        extra = {f"__cluster__{c}": column(c) for c in cluster_cols}
        if time is not None:
            extra["__time__"] = column(time)
        state = estimate(
            y, X, names, lhs, _fe_items(fes, frame, column),
            weights=None if weights is None else frame[weights].to_numpy(dtype=np.float64, na_value=np.nan),
            extra=extra, drop_singletons_=drop_singletons, has_intercept=has_int, backend=backend,
            collin_tol=collin_tol, work=buf, keep_raw=spec.kind == "CRV3",
        )
        # fixef()/predict() rebuild the untransformed design from the data when asked (the fit may
        # have transformed its own copy in place); newdata reuses the fitted formula's terms
        state.raw_fn = lambda: _design(lhs, rhs, frame, bool(fes))[:2]
        state.design_fn = lambda new: _rhs_design(rhs, frame, new, bool(fes), names)
        return OLSResults(state, spec, ssc)

    if split_col is None:
        return fit_one(df)
    split_values = df[split_col]
    missing = split_values.isna()
    if split_values.dtype.kind == "f":  # inf is no group label either (as for ids)
        missing |= np.isinf(split_values.to_numpy())
    n_missing = int(missing.sum())
    if n_missing == len(df):
        raise ValueError(f"split/by column {split_col!r} is missing on every row; nothing to fit")
    if n_missing:
        warnings.warn(
            f"feols({'split' if split is not None else 'by'}={split_col!r}): {n_missing} of {len(df)} rows have a "
            f"missing {split_col!r} and belong to no group; they are not used (each result's "
            "n_missing_split counts them)",
            MissingSplitWarning,
            stacklevel=2,
        )
    out: dict[Any, OLSResults] = {}
    for value, frame in df[~missing].groupby(split_col, sort=True, observed=True):
        try:
            out[value] = fit_one(frame)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{split_col} = {value!r}: {exc}") from exc
        out[value].n_missing_split = n_missing
    return out


_SLOPE = re.compile(r"^([A-Za-z_][A-Za-z_0-9.]*)\[(\[?)([^\[\]]+)\]?\]$")


def _fe_term(term: str) -> tuple[str, list[str], bool] | None:
    """``("g", ["x1", "x2"], intercept)`` for ``g[x1, x2]`` / ``g[[x1, x2]]``; None for a plain effect."""
    m = _SLOPE.match(term.replace(" ", ""))
    if m is None:
        if "[" in term or "]" in term:
            raise ValueError(f"fixed-effect term {term!r} is malformed; write 'g[x]' (intercept and slope per level of g) "
                             "or 'g[[x]]' (slopes only), several variables as 'g[x1, x2]'")
        return None
    double = m.group(2) == "["
    if double != term.replace(" ", "").endswith("]]"):
        raise ValueError(f"fixed-effect term {term!r} has unbalanced brackets; write 'g[x]' or 'g[[x]]'")
    xs = [v for v in m.group(3).split(",")]
    if not all(_IDENT.match(v) for v in xs):
        raise ValueError(f"fixed-effect term {term!r}: the slope variables must be column names")
    return m.group(1), xs, not double


def _fe_columns(fes: list[str]) -> list[str]:
    """Every column the fixed-effect part names (groupings and slope variables)."""
    out: list[str] = []
    for t in fes:
        parsed = _fe_term(t)
        out += [t] if parsed is None else [parsed[0], *parsed[1]]
    return list(dict.fromkeys(out))


def _fe_items(fes: list[str], frame: pd.DataFrame, column: Any) -> list[tuple[str, Any]]:
    """``(name, ids or VaryingSlopes)`` for each fixed-effect term."""
    from fastpanel.slopes import VaryingSlopes

    items: list[tuple[str, Any]] = []
    for t in fes:
        parsed = _fe_term(t)
        if parsed is None:
            items.append((t, column(t)))
            continue
        g, xs, intercept = parsed
        for v in xs:
            if not pd.api.types.is_numeric_dtype(frame[v]):
                raise TypeError(f"slope variable {v!r} of {t!r} has non-numeric dtype {frame[v].dtype}")
        x = np.column_stack([_float_column(frame[v]) for v in xs])
        label = f"{g}[{', '.join(xs)}]" if intercept else f"{g}[[{', '.join(xs)}]]"
        items.append((g, VaryingSlopes(column(g), x, intercept=intercept, name=label)))
    return items


def _iv_columns(expr: str, frame: pd.DataFrame, what: str) -> tuple[list[np.ndarray], list[str]]:
    """The columns of the endogenous or instrument part (plain names, or formulaic terms)."""
    terms = [t.strip() for t in expr.split("+") if t.strip()]
    if all(_IDENT.match(t) and t in frame.columns and pd.api.types.is_numeric_dtype(frame[t]) for t in terms):
        return [_float_column(frame[t]) for t in terms], terms
    import formulaic

    mm = formulaic.model_matrix(f"0 + {expr}", frame, na_action="ignore")
    names = [str(c) for c in mm.columns]
    if not names:
        raise ValueError(f"the {what} part {expr!r} of the formula gives no column")
    arr = np.asarray(mm, dtype=np.float64)
    return [np.ascontiguousarray(arr[:, j]) for j in range(arr.shape[1])], names


def _fit_iv(frame, lhs, rhs, iv, fes, spec, ssc, weights, time, cluster_cols, drop_singletons, backend, collin_tol):
    from fastpanel.ols.iv import estimate_iv
    from fastpanel.ols.iv_results import IVResults

    y, X, names, has_int, _ = _design(lhs, rhs, frame, bool(fes))
    d_cols, d_names = _iv_columns(iv[0], frame, "endogenous")
    z_cols, z_names = _iv_columns(iv[1], frame, "instrument")
    M = np.empty((len(frame), 1 + X.shape[1] + len(d_cols) + len(z_cols)), order="F")
    M[:, 0] = y
    M[:, 1:1 + X.shape[1]] = X
    _fill(M, z_cols + d_cols, 1 + X.shape[1])  # estimate_iv's column order [y, E, Z, D]
    arrays: dict[str, np.ndarray] = {}

    def column(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = frame[name].to_numpy()
        return arrays[name]

    extra = {f"__cluster__{c}": column(c) for c in cluster_cols}
    if time is not None:
        extra["__time__"] = column(time)
    state = estimate_iv(
        M, names, d_names, z_names, lhs, _fe_items(fes, frame, column),
        weights=None if weights is None else frame[weights].to_numpy(dtype=np.float64, na_value=np.nan),
        extra=extra, drop_singletons_=drop_singletons, has_intercept=has_int, backend=backend,
        collin_tol=collin_tol, keep_raw=spec.kind == "CRV3",
    )
    full_names = names + d_names

    def raw() -> tuple[np.ndarray, np.ndarray]:  # y and the kept [E, D] of every input row
        y0, X0, *_ = _design(lhs, rhs, frame, bool(fes))
        D0 = np.column_stack(_iv_columns(iv[0], frame, "endogenous")[0])
        return y0, np.column_stack([X0, D0])[:, [full_names.index(nm) for nm in state.names]]

    def design(new: pd.DataFrame) -> np.ndarray:
        X0 = _rhs_design(rhs, frame, new, bool(fes), names)
        D0 = np.column_stack(_iv_columns(iv[0], new, "endogenous")[0])
        return np.column_stack([X0, D0])[:, [full_names.index(nm) for nm in state.names]]

    state.raw_fn, state.design_fn, state.kept_idx = raw, design, np.arange(state.k)
    return IVResults(state, spec, ssc)


class MissingSplitWarning(UserWarning):
    """Rows with a missing split/by value belong to no group and were not used."""
