"""Multiple estimation: several outcomes and stepwise regressors in one formula (fixest / pyfixest).

``feols("y1 + y2 ~ x1 + csw0(x2, x3) | f1", df)`` fits one model per outcome and step and
returns a :class:`FitCollection`. The operators (fixest's ``stepwise`` functions):

* ``sw(a, b)``: one model with ``a``, one with ``b``; ``sw0(a, b)``: also one with neither;
* ``csw(a, b)``: ``a``, then ``a + b`` (cumulative); ``csw0(a, b)``: none, ``a``, ``a + b``.

At most one operator per formula, in the regressors, the fixed effects (``| csw0(f1, f2)``) or
the IV part; several outcomes ``y1 + y2 ~ ...`` (or ``sw(y1, y2) ~ ...``) combine with it. The
models, their order and their labels are pyfixest 0.60's (its ``all_fitted_models`` keys): the
expansion replaces the operator by each step (``"1"`` for the zero step), models are grouped by
their fixed effects in order of appearance, then by outcome, then by step, and a label is the
model's own formula, e.g. ``"y1 ~ x1 + 1 | f1"``.

Every model equals the single fit ``feols(label, data, ...)`` (each model its own sample: rows
with a missing value in its own variables, its own singletons). OLS models are not fitted one by
one: they are grouped by their sample (kept rows, fixed effects, and whether the single fit
would transform in place), and for each group the union of the group's columns is
within-transformed once; every model is then solved from the cross-products of the
transformed union (its sub-matrix) and its own columns, by the same tail as
:func:`fastpanel.ols.model.estimate` (:func:`fastpanel.ols.model.fit_tail`). The exact
transforms (one way, two way with a direct Schur solve) handle each column on its own, so the
shared transform gives the single fits' numbers to rounding; the iterative ones (two large
dimensions by conjugate gradients, three or more by alternating projections) stop on the
largest change of any column, so there the models agree with their single fits to the
transform's tolerance. IV formulas are fitted model by model.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fastpanel.ols import covariance as cov
from fastpanel.ols import formula as _f
from fastpanel.ols import model as _m
from fastpanel.ols.results import OLSResults

__all__ = ["FitCollection", "feols_multi", "expand_formula"]

# The stepwise operators (mvsw, pyfixest's multiverse stepwise, is recognised to refuse it).
_OP = re.compile(r"\b(csw0|csw|sw0|sw|mvsw)\s*\(")


# -- formula expansion ---------------------------------------------------------------------------
def _check_parentheses(fml: str) -> None:
    depth = 0
    for i, ch in enumerate(fml):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"formula {fml!r} has an unmatched ')' at position {i}; check the parentheses")
    if depth:
        raise ValueError(f"formula {fml!r} has {depth} unclosed '('; check the parentheses (e.g. 'sw(x1, x2)')")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses (pyfixest's ``_str_split_by_sep``), parts stripped."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def _closing(text: str, open_at: int) -> int:
    """Index of the ``)`` that closes the ``(`` at ``open_at`` (parentheses already balanced)."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    raise ValueError(f"unclosed '(' in {text!r}")  # pragma: no cover - checked before


def _expand_once(fml: str, full: str) -> list[str] | None:
    """Expand the first operator of ``fml`` (pyfixest's order: the first in the string)."""
    match = _OP.search(fml)
    if match is None:
        return None
    kind = match.group(1)
    open_at = match.end() - 1
    close_at = _closing(fml, open_at)
    inner = fml[open_at + 1:close_at]
    call = fml[match.start():close_at + 1]
    if not inner.strip():
        raise ValueError(f"formula {full!r}: {kind}() is empty; list the alternatives, e.g. {kind}(x1, x2)")
    args = _split_top(inner, ",")
    if any(not a for a in args):
        raise ValueError(f"formula {full!r}: {call} has an empty argument; remove the extra comma")
    if kind in ("csw", "csw0"):
        args = [" + ".join(args[:i + 1]) for i in range(len(args))]
    if kind in ("sw0", "csw0"):
        args = ["1", *args]
    return [fml.replace(call, a) for a in args]


def _expand_all(fml: str, full: str) -> list[str]:
    step = _expand_once(fml, full)
    if step is None:
        return [fml]
    return [g for e in step for g in _expand_all(e, full)]


def _label(expanded: str) -> tuple[str, str | None]:
    """(pyfixest's key of one expanded formula, its fixed-effect part or None)."""
    parts = re.split(r"\s*\|\s*", expanded)
    second = parts.pop(0).strip()
    first_stage = next((p.strip() for p in parts if "~" in p), None)
    fe = next((p.strip() for p in parts if "~" not in p), None)
    if fe in ("0", "1"):
        fe = None
    label = second + (f" | {fe}" if fe is not None else "") + (f" | {first_stage}" if first_stage is not None else "")
    return label, fe


def expand_formula(fml: str) -> list[str]:
    """The single-model formulas (labels) of a multiple-estimation formula, in pyfixest's order.

    Examples
    --------
    >>> expand_formula("y1 + y2 ~ x1 + csw0(x2, x3) | f1")  # doctest: +NORMALIZE_WHITESPACE
    ['y1 ~ x1 + 1 | f1', 'y1 ~ x1 + x2 | f1', 'y1 ~ x1 + x2 + x3 | f1',
     'y2 ~ x1 + 1 | f1', 'y2 ~ x1 + x2 | f1', 'y2 ~ x1 + x2 + x3 | f1']
    """
    if not isinstance(fml, str):
        raise ValueError(f"formula {fml!r} must look like 'y1 + y2 ~ x1 + sw(x2, x3) | fe'")
    return list(_expand_cached(fml))


@functools.lru_cache(maxsize=256)
def _expand_cached(fml: str) -> tuple[str, ...]:
    # a pure function of the string, parsed once per distinct formula (loops refit the same one)
    if not isinstance(fml, str) or "~" not in fml:
        raise ValueError(f"formula {fml!r} must look like 'y1 + y2 ~ x1 + sw(x2, x3) | fe'")
    _check_parentheses(fml)
    if re.search(r"\bmvsw\s*\(", fml):
        raise ValueError(f"formula {fml!r}: mvsw() (multiverse stepwise) is not supported; use sw, sw0, csw or csw0")
    lhs, rhs = re.split(r"\s*~\s*", fml, maxsplit=1)
    outcomes = _split_top(lhs.strip(), "+")
    if any(not o for o in outcomes):
        raise ValueError(f"formula {fml!r}: an outcome on the left of '~' is empty; write 'y1 + y2 ~ ...'")
    lhs_ops = [m.group(1) for m in _OP.finditer(lhs)]
    if len(outcomes) > 1:
        if lhs_ops:
            raise ValueError(f"formula {fml!r}: write several outcomes either as 'y1 + y2' or as 'sw(y1, y2)', not both")
        fml = f"sw({', '.join(outcomes)}) ~ {rhs}"
    elif lhs_ops and (lhs_ops != ["sw"] or not re.fullmatch(r"\s*sw\s*\(.*\)\s*", lhs)):
        raise ValueError(f"formula {fml!r}: on the left of '~' only several outcomes are allowed ('y1 + y2' or "
                         "'sw(y1, y2)'); csw/sw0/csw0 step regressors or fixed effects")
    ops = [m.group(0).rstrip("(").strip() + "(...)" for m in _OP.finditer(rhs)]
    if len(ops) > 1:
        raise ValueError(
            f"formula {fml if len(outcomes) == 1 else lhs + ' ~ ' + rhs!r} has {len(ops)} stepwise operators "
            f"({', '.join(ops)}); at most one sw/sw0/csw/csw0 is allowed per formula (several outcomes come on top): "
            "fit the other variations as separate formulas"
        )
    full = fml
    labels: list[str] = []
    by_fe: dict[str | None, list[str]] = {}
    for e in _expand_all(fml, full):
        label, fe = _label(e)
        if label not in labels:
            labels.append(label)
            by_fe.setdefault(fe, []).append(label)
    return tuple(label for group in by_fe.values() for label in group)


# -- the collection --------------------------------------------------------------------------------
class FitCollection(Sequence):
    """The fits of a multiple-estimation formula, in pyfixest's order.

    A sequence of results (``len``, iteration, ``coll[0]``, slices) that is also indexed by
    label (``coll["y1 ~ x1 | f1"]``); ``models`` is the dict label -> results (pyfixest's
    ``all_fitted_models``).

    Attributes
    ----------
    formula : str
        The multiple-estimation formula.
    labels : list of str
        One formula per model (a valid single-model formula for :func:`fastpanel.feols`).
    """

    def __init__(self, labels: Sequence[str], results: Sequence[Any], formula: str | None = None) -> None:
        if len(labels) != len(results):
            raise ValueError(f"{len(labels)} labels for {len(results)} results")
        self.labels = list(labels)
        self._results = list(results)
        self.formula = formula

    @property
    def models(self) -> dict[str, Any]:
        """Label -> results, in the collection's order."""
        return dict(zip(self.labels, self._results))

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._results)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key in self.labels:
                return self._results[self.labels.index(key)]
            close = difflib.get_close_matches(key, self.labels, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f"; the labels are {self.labels}"
            raise KeyError(f"no model labelled {key!r}{hint}")
        if isinstance(key, slice):
            return FitCollection(self.labels[key], self._results[key], self.formula)
        return self._results[key]

    def keys(self) -> list[str]:
        return list(self.labels)

    def items(self) -> list[tuple[str, Any]]:
        return list(zip(self.labels, self._results))

    def etable(self, **kwargs: Any) -> Any:
        """Side-by-side table of the models: :func:`fastpanel.etable` of the collection."""
        from fastpanel.ols.etable import etable

        return etable(self._results, **kwargs)

    def to_frame(self) -> pd.DataFrame:
        """Long coefficient table: one row per model and term (``model, term, coef, se, t, p``)."""
        rows = [
            pd.DataFrame({"model": label, "term": list(r.params.index), "coef": r.params.to_numpy(),
                          "se": r.bse.to_numpy(), "t": r.tvalues.to_numpy(), "p": r.pvalues.to_numpy()})
            for label, r in zip(self.labels, self._results)
        ]
        frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["model", "term", "coef", "se", "t", "p"])
        return frame.astype({"model": object, "term": object})

    def summary(self) -> str:
        """Each model's summary, headed by its number and label."""
        head = f"Multiple estimation: {self.formula} ({len(self)} models)" if self.formula else f"{len(self)} models"
        parts = [head]
        for j, (label, r) in enumerate(zip(self.labels, self._results)):
            parts.append(f"\nModel {j + 1}: {label}\n{r.summary()}")
        return "\n".join(parts)

    def __repr__(self) -> str:
        shown = ", ".join(repr(label) for label in self.labels[:4]) + (", ..." if len(self) > 4 else "")
        return f"<FitCollection of {len(self)} models: {shown}>"

    def __str__(self) -> str:
        return self.etable()


# -- estimation ------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Model:
    label: str
    lhs: str
    rhs: str
    fes: list[str]
    iv: tuple[str, str] | None
    main_vars: list[str]
    # filled by the design step (OLS only)
    ykey: str = ""
    xkeys: list[str] = dataclasses.field(default_factory=list)
    names: list[str] = dataclasses.field(default_factory=list)
    has_int: bool = False
    simple: bool = False


def feols_multi(
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
) -> FitCollection | dict[Any, FitCollection]:
    """Multiple estimation (:func:`fastpanel.feols` calls it for such formulas); the arguments
    are :func:`fastpanel.feols`'s. Returns a :class:`FitCollection`, or with ``split``/``by``
    a dict group value -> FitCollection."""
    labels = expand_formula(fml)
    if type(data).__module__.startswith("dask"):
        raise ValueError(
            f"multiple estimation ({fml!r}) is not available on Dask DataFrames; fit each model on its own: "
            + ", ".join(repr(label) for label in labels)
        )
    if split is not None and by is not None:
        raise ValueError("pass either split= or by=, not both")
    split_col = split if split is not None else by
    spec = cov.parse_vcov(vcov)
    if ssc not in cov.SSC_PRESETS:
        raise ValueError(f"ssc={ssc!r} is not a preset; use one of {cov.SSC_PRESETS}")
    if not (isinstance(collin_tol, (float, int, np.floating, np.integer)) and np.isfinite(collin_tol)
            and 0 <= collin_tol < 1):
        raise ValueError(f"collin_tol={collin_tol!r} must be a number in [0, 1), e.g. 1e-10")
    models: list[_Model] = []
    for label in labels:
        try:
            lhs, rhs, fes, iv = _f._parse(label)
            dup = sorted({f for f in fes if fes.count(f) > 1})
            if dup:
                raise ValueError(f"it names the fixed effect {', '.join(map(repr, dup))} more than once; list each "
                                 "fixed effect once")
            main_vars = _f._required(f"{lhs} ~ {rhs}")
            if iv is not None:
                main_vars = list(dict.fromkeys(main_vars + _f._required(f"{iv[0]} ~ {iv[1]}")))
        except ValueError as exc:
            raise ValueError(f"formula {fml!r}, model {label!r}: {exc}") from None
        models.append(_Model(label, lhs, rhs, fes, iv, main_vars))
    cluster_cols = [c for c in spec.clusters if isinstance(c, str)]
    if len(cluster_cols) != len(spec.clusters):
        raise TypeError("in feols, cluster variables are column names: e.g. vcov={'CRV1': 'firm'}")
    extra_cols = [c for c in (weights, split_col, time) if c is not None]
    needed = list(dict.fromkeys(
        [v for m in models for v in m.main_vars] + [c for m in models for c in _f._fe_columns(m.fes)]
        + cluster_cols + extra_cols))
    df = _f._to_pandas(data, needed)
    if len(df) == 0:
        raise ValueError("data has no rows; pass a frame with at least one observation")
    cols = list(df.columns)
    for m in models:
        try:
            _f._check_columns(m.main_vars, cols, "formula")
            _f._check_columns(_f._fe_columns(m.fes), cols, "formula (fixed effects)")
        except ValueError as exc:
            raise ValueError(f"formula {fml!r}, model {m.label!r}: {exc}") from None
    _f._check_columns(cluster_cols, cols, "vcov")
    _f._check_columns(extra_cols, cols, "argument")
    # every column's dtype read once (df[v] builds a Series per call); _SharedFit reuses them
    dtypes = dict(zip(cols, df.dtypes.tolist())) if df.columns.is_unique else {v: df[v].dtype for v in needed}
    numeric = {v for v in needed if pd.api.types.is_numeric_dtype(dtypes[v]) or pd.api.types.is_bool_dtype(dtypes[v])
               or isinstance(dtypes[v], pd.CategoricalDtype)}
    for m in models:
        for v in m.main_vars:
            # a non-numeric column is allowed only as a categorical C(v) regressor of this model
            if v not in numeric and (v == m.lhs or not re.search(
                    rf"C\(\s*{re.escape(v)}\s*[,)]", m.rhs + ("" if m.iv is None else m.iv[1]))):
                raise TypeError(
                    f"column {v!r} has non-numeric dtype {dtypes[v]}; declare it categorical in the formula "
                    f"with C({v}) or convert it to numbers"
                )
    if spec.kind == "DK" and time is None:
        raise ValueError("vcov={'DK': lags} needs the period column: pass time='year' (the column name)")
    opts = dict(vcov=vcov, spec=spec, ssc=ssc, weights=weights, backend=backend, time=time,
                cluster_cols=cluster_cols, drop_singletons=drop_singletons, collin_tol=collin_tol, dtypes=dtypes)
    if split_col is None:
        return FitCollection(labels, _fit_frame(models, df, **opts), fml)
    split_values = df[split_col]
    missing = split_values.isna()
    if split_values.dtype.kind == "f":
        missing |= np.isinf(split_values.to_numpy())
    n_missing = int(missing.sum())
    if n_missing == len(df):
        raise ValueError(f"split/by column {split_col!r} is missing on every row; nothing to fit")
    if n_missing:
        warnings.warn(
            f"feols({'split' if split is not None else 'by'}={split_col!r}): {n_missing} of {len(df)} rows have a "
            f"missing {split_col!r} and belong to no group; they are not used (each result's "
            "n_missing_split counts them)",
            _f.MissingSplitWarning,
            stacklevel=3,
        )
    out: dict[Any, FitCollection] = {}
    for value, frame in df[~missing].groupby(split_col, sort=True, observed=True):
        try:
            fits = _fit_frame(models, frame, **opts)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{split_col} = {value!r}: {exc}") from exc
        for r in fits:
            r.n_missing_split = n_missing
        out[value] = FitCollection(labels, fits, fml)
    return out


def _fit_frame(models: list[_Model], df: pd.DataFrame, *, vcov, spec, ssc, weights, backend, time, cluster_cols,
               drop_singletons, collin_tol, dtypes) -> list[Any]:
    """Every model on one frame, in the models' order."""
    results: list[Any] = [None] * len(models)
    ols = [j for j, m in enumerate(models) if m.iv is None]
    for j, m in enumerate(models):
        if m.iv is not None:  # 2SLS: model by model, the single fit itself
            results[j] = _f.feols(m.label, df, vcov, weights=weights, ssc=ssc, backend=backend, time=time,
                                  drop_singletons=drop_singletons, collin_tol=collin_tol)
    if ols:
        fits = _SharedFit(df, spec, ssc, weights, backend, time, cluster_cols, drop_singletons, collin_tol, dtypes)
        for j, r in zip(ols, fits.run([models[j] for j in ols])):
            results[j] = r
    return results


def _fe_key(fes: list[str]) -> tuple[str, ...]:
    return tuple(fes)


class _SharedFit:
    """OLS models on one frame with shared within transforms (see the module docstring)."""

    def __init__(self, df, spec, ssc, weights, backend, time, cluster_cols, drop_singletons, collin_tol,
                 dtypes) -> None:
        self.df, self.spec, self.ssc = df, spec, ssc
        self.backend, self.time, self.cluster_cols = backend, time, cluster_cols
        self.drop_singletons, self.collin_tol = drop_singletons, collin_tol
        self.n = len(df)
        self._arrays: dict[str, np.ndarray] = {}
        self._factors: dict[str, Any] = {}
        self._renamed: dict[tuple[str, str], Any] = {}
        self.cols: dict[str, np.ndarray] = {}  # union column key -> float64 values (all rows)
        self._floats: dict[str, np.ndarray] = {}
        self._dtypes = dtypes  # column -> dtype, read once by feols_multi
        self._numeric_cache: dict[str, bool] = {}
        self._nan: dict[str, np.ndarray | None] = {}
        w = None if weights is None else df[weights].to_numpy(dtype=np.float64, na_value=np.nan)
        self.w = _m.check_weights(w, self.n)

    # columns and factors, each built once
    def column(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = self.df[name].to_numpy()
        return self._arrays[name]

    def factor(self, name: str) -> Any:
        if name not in self._factors:
            from fastpanel.factor import factorize

            self._factors[name] = factorize(self.column(name), name)
        return self._factors[name]

    def _extra_factor(self, col: str, key: str, plain_names: list[str]) -> Any:
        """The cluster / period factor as the single fit has it: the fixed effect's own factor when
        the column is a (plain) fixed effect of the model, else one named as clean_rows names it."""
        if col in plain_names:
            return self.factor(col)
        label = _m._extra_label(key)
        if (col, label) not in self._renamed:
            self._renamed[(col, label)] = dataclasses.replace(self.factor(col), name=label)
        return self._renamed[(col, label)]

    def _numeric(self, name: str) -> bool:
        """Whether ``name`` is a numeric column of the frame (decided once per name)."""
        if name not in self._numeric_cache:
            dt = self._dtypes.get(name)
            self._numeric_cache[name] = dt is not None and pd.api.types.is_numeric_dtype(dt)
        return self._numeric_cache[name]

    def _float(self, name: str) -> np.ndarray:
        """A data column as float64 (formula._float_column), one array object per column."""
        if name not in self._floats:
            self._floats[name] = _f._float_column(self.df[name])
        return self._floats[name]

    def _register(self, key: str, values: np.ndarray) -> str:
        """Store a design column under ``key`` (a distinct key if ``key`` holds other values)."""
        j = 0
        cand = key
        while cand in self.cols:
            have = self.cols[cand]
            if have is values or (have.shape == values.shape and np.array_equal(have, values, equal_nan=True)):
                return cand
            j += 1
            cand = f"{key}\x00{j}"
        self.cols[cand] = values
        return cand

    def _design(self, m: _Model) -> None:
        """The model's y and X as union column keys (the same values as formula._design)."""
        df = self.df
        has_fe = bool(m.fes)
        terms = [t.strip() for t in m.rhs.split("+")]
        simple = all(_f._IDENT.match(t) or t in ("0", "1", "-1") for t in terms) and _f._IDENT.match(m.lhs)
        if simple:
            cols = [t for t in terms if t not in ("0", "1", "-1")]
            no_const = "0" in terms or "-1" in m.rhs
            if all(self._numeric(c) for c in cols) and self._numeric(m.lhs):
                m.simple = True
                m.ykey = self._register(m.lhs, self._float(m.lhs))
                keys = [self._register(c, self._float(c)) for c in cols]
                m.names = list(cols)
                m.has_int = False
                if not (has_fe or no_const):
                    if "Intercept" not in self._floats:
                        self._floats["Intercept"] = np.ones(self.n)
                    keys = [self._register("Intercept", self._floats["Intercept"]), *keys]
                    m.names = ["Intercept", *cols]
                    m.has_int = True
                m.xkeys = keys
                return
        y, X, names, has_int, _ = _f._design(m.lhs, m.rhs, df, has_fe)
        m.simple = False
        m.ykey = self._register(m.lhs, np.ascontiguousarray(y))
        m.xkeys = [self._register(nm, np.ascontiguousarray(X[:, j])) for j, nm in enumerate(names)]
        m.names, m.has_int = list(names), has_int

    def _nan_mask(self, key: str, shown: str) -> np.ndarray | None:
        """Rows where the column is NaN (None: none); infinity is refused as in estimate()."""
        if key not in self._nan:
            arr = self.cols[key]
            with np.errstate(all="ignore"):
                finite = bool(np.isfinite(arr.sum()))
            if finite or arr.size == 0:
                self._nan[key] = None
            else:
                _m._check_inf(arr, [shown])
                mask = np.isnan(arr)
                self._nan[key] = mask if mask.any() else None
        return self._nan[key]

    def _effects(self, fes: list[str]) -> tuple[list[tuple[str, Any]], list[Any]]:
        """(plain effects as factors, varying slopes) of a fixed-effect part, as estimate() splits them."""
        items: list[tuple[str, Any]] = []
        for t in fes:
            if _f._fe_term(t) is None:
                items.append((t, self.factor(t)))
            else:
                items += _f._fe_items([t], self.df, self.column)
        return _m.split_effects(items, self.n)

    def run(self, models: list[_Model]) -> list[Any]:
        for m in models:
            self._design(m)
        keep_raw = self.spec.kind == "CRV3"
        effects: dict[tuple[str, ...], tuple[list, list]] = {}
        cleaned: dict[tuple, tuple] = {}
        groups: dict[tuple, list[int]] = {}
        per_model: list[tuple] = []
        for j, m in enumerate(models):
            fk = _fe_key(m.fes)
            if fk not in effects:
                effects[fk] = self._effects(m.fes)
            plain, slopes = effects[fk]
            shown = [m.lhs, *m.names]
            nan_keys = frozenset(k for k, s in zip([m.ykey, *m.xkeys], shown) if self._nan_mask(k, s) is not None)
            ck = (fk, nan_keys)
            if ck not in cleaned:
                bad = np.zeros(self.n, dtype=bool)
                for k in nan_keys:
                    bad |= self._nan[k]
                for vs in slopes:
                    bad |= np.isnan(vs.x).any(axis=1) | (vs.factor.codes < 0)
                plain_names = [name for name, _ in plain]
                extra = {f"__cluster__{c}": self._extra_factor(c, f"__cluster__{c}", plain_names)
                         for c in self.cluster_cols}
                if self.time is not None:
                    extra["__time__"] = self._extra_factor(self.time, "__time__", plain_names)
                keep, n_nan, n_single, factors, extra_factors = _m.clean_rows(
                    bad, self.w, plain, extra, self.drop_singletons)
                slopes_k = [vs.subset(keep) for vs in slopes] if slopes and not keep.all() else slopes
                digest = b"all" if keep.all() else hashlib.blake2b(np.packbits(keep).tobytes(), digest_size=16).digest()
                cleaned[ck] = (keep, n_nan, n_single, factors, extra_factors, slopes_k, plain_names, digest)
            keep, n_nan, n_single, factors, extra_factors, slopes_k, plain_names, digest = cleaned[ck]
            in_place = bool(factors) and m.simple and not keep_raw and digest == b"all"
            groups.setdefault((fk, digest, in_place), []).append(j)
            per_model.append(cleaned[ck])
        results: list[Any] = [None] * len(models)
        for (fk, _, in_place), idx in groups.items():
            for j, r in zip(idx, self._fit_group([models[j] for j in idx], [per_model[j] for j in idx], in_place)):
                results[j] = r
        return results

    def _fit_group(self, models: list[_Model], cleaned: list[tuple], in_place: bool) -> list[Any]:
        keep, _, _, factors, _, slopes, plain_names, _ = cleaned[0]
        all_rows = bool(keep.all())
        nobs = self.n if all_rows else int(keep.sum())
        w = None if self.w is None else (self.w if all_rows else self.w[keep])
        # union columns: outcomes first, then regressors in the order of the largest models (so
        # nested models, as csw's, are leading column ranges: views, no copies)
        order: list[str] = list(dict.fromkeys(m.ykey for m in models))
        for m in sorted(models, key=lambda m: -len(m.xkeys)):
            order += [k for k in m.xkeys if k not in order]
        pos = {k: i for i, k in enumerate(order)}
        Z = np.empty((nobs, len(order)), order="F")
        if all_rows:
            _f._fill(Z, [self.cols[k] for k in order], 0)
        else:
            rows = np.flatnonzero(keep)
            for i, k in enumerate(order):
                np.take(self.cols[k], rows, out=Z[:, i])
        for m in {m.ykey: m for m in reversed(models)}.values():  # each outcome once (its first model)
            yv = Z[:, pos[m.ykey]]
            if nobs > 1 and np.ptp(yv) == 0:
                raise ValueError(
                    f"the dependent variable {m.lhs!r} is constant ({yv[0]:g}) on the {nobs} rows used; "
                    "nothing to explain: check the variable and the sample"
                )
        backend_used, fe_rank, centered, raw = "numpy", None, None, None
        if in_place:
            total_w, means, centered = _m._raw_moments(Z, w)
            if _m._shift_large_means(Z, means, centered, total_w):
                total_w, means, centered = _m._raw_moments(Z, w)
            T, backend_used, fe_rank = _m.absorb(Z, factors, slopes, w, self.backend, out=Z)
        else:
            raw = Z
            wn = np.ones(nobs) if w is None else w
            means = (wn @ Z) / wn.sum()
            if factors:
                T = np.empty_like(Z, order="F")
                np.subtract(Z, Z[0], out=T)
                T, backend_used, fe_rank = _m.absorb(T, factors, slopes, w, self.backend, out=T)
                ssq = np.einsum("ij,ij->j", (Z - means) * wn[:, None], Z - means)
            else:
                T = Z if w is None else np.array(Z, order="F", copy=True)
                ssq = np.einsum("ij,ij->j", Z * wn[:, None], Z)
            # tss of each outcome as estimate() computes it
            tss_of = {k: float(np.dot(wn, (Z[:, pos[k]] - float(np.dot(wn, Z[:, pos[k]]) / wn.sum())) ** 2))
                      for k in dict.fromkeys(m.ykey for m in models)}
        if w is not None:
            sw = np.sqrt(w)
            for i in range(T.shape[1]):
                T[:, i] *= sw
        gram = _m._gram(T)[1]
        out = []
        for m, (keep_m, n_nan, n_single, factors_m, extra_m, slopes_m, plain_m, _) in zip(models, cleaned):
            iy = pos[m.ykey]
            ix = [pos[k] for k in m.xkeys]
            sub = [iy, *ix]
            Xt = _columns(T, ix)
            # the union from the outcome's column on is the model's [y, X, other columns]: the fused
            # SSR / cluster-score kernel reads it with zero coefficients on the other columns
            rel = [c - iy - 1 for c in ix]
            zyx_cols = np.array(rel, dtype=np.int64)
            zyx = T[:, iy:iy + 1 + (max(rel) + 1 if rel else 0)] if all(c >= 0 for c in rel) else None
            if in_place:
                cm = _sub(centered, sub)
                tss, ref, pooled = float(cm[0, 0]), np.diag(cm)[1:].copy(), cm
                y_raw = X_raw = None
                Xm = Xt
            else:
                tss = tss_of[m.ykey]
                ref = ssq[ix].copy()
                pooled = None
                y_raw = raw[:, iy]
                X_raw = _columns(raw, ix)
                Xm = X_raw
            state = _m.fit_tail(
                T[:, iy], Xt, names=list(m.names), yname=m.lhs, fe_names=list(plain_m), ref=ref, Xm=Xm, w=w,
                collin_tol=self.collin_tol, gram=_sub(gram, sub), zyx=zyx, tss=tss, factors=factors_m,
                slopes=slopes_m, keep=keep_m, n_dropped=n_nan, n_singletons=n_single, has_intercept=m.has_int,
                backend=backend_used, extra_factors=extra_m, y_raw=y_raw, X_raw=X_raw, pooled_moments=pooled,
                fe_rank=fe_rank, scaled=True, stacklevel=7, zyx_cols=zyx_cols, all_rows=all_rows,
                ssr_from_gram=bool(factors_m),  # y'y of pooled data is uncentred: formed residuals there
            )
            df, lhs, rhs, has_fe, names = self.df, m.lhs, m.rhs, bool(m.fes), list(m.names)
            state.raw_fn = lambda lhs=lhs, rhs=rhs, has_fe=has_fe: _f._design(lhs, rhs, df, has_fe)[:2]
            state.design_fn = lambda new, rhs=rhs, has_fe=has_fe, names=names: _f._rhs_design(rhs, df, new, has_fe, names)
            out.append(OLSResults(state, self.spec, self.ssc))
        return out


def _sub(A: np.ndarray, idx: list[int]) -> np.ndarray:
    """``A[np.ix_(idx, idx)]`` of a small matrix (two takes: np.ix_'s set-up costs more)."""
    return A.take(idx, axis=0).take(idx, axis=1)


def _columns(M: np.ndarray, idx: list[int]) -> np.ndarray:
    """Columns ``idx`` of a Fortran matrix: a view for a contiguous range, else a Fortran copy."""
    if not idx:
        return M[:, :0]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return M[:, idx[0]:idx[0] + len(idx)]
    out = np.empty((M.shape[0], len(idx)), order="F")
    for j, c in enumerate(idx):
        out[:, j] = M[:, c]
    return out
