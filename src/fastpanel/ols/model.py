"""Core of fixed-effects OLS: cleaning, singleton removal, within transform, solve, covariance.

Algorithm: listwise deletion of rows with NaN (counted), iterative removal of singleton
fixed-effect groups (fixest), one call of :func:`fastpanel.within` on ``[y, X]`` (weighted when
weights are given), ``sqrt(w)`` scaling, ``A = X'X`` by BLAS, Cholesky solve. A regressor whose
Cholesky pivot ``A_jj - A_jK A_KK^{-1} A_Kj`` is below ``collin_tol`` times its weighted sum of
squares before the transform is dropped (collinear with earlier regressors, or absorbed by
the fixed effects), with a warning that names it. No dummy column is ever formed.

:class:`PanelOLS` is the array API; :func:`fastpanel.ols.formula.feols` builds on the same
:func:`estimate`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from scipy.linalg import lapack

from fastpanel.factor import Factor, factorize
from fastpanel.fixed_effects import FixedEffects
from fastpanel.ols import covariance as cov
from fastpanel.within import within

if TYPE_CHECKING:  # pragma: no cover
    from fastpanel.ols.results import OLSResults

__all__ = ["PanelOLS", "estimate", "CollinearityWarning"]


class CollinearityWarning(UserWarning):
    """Regressors were dropped because they are collinear or absorbed by the fixed effects."""


@dataclass
class FitState:
    """Everything the covariance estimators and the results need (rows already cleaned)."""

    yname: str
    names: list[str]
    params: np.ndarray
    X: np.ndarray  # transformed, sqrt(w)-scaled kept regressors (n x k)
    u: np.ndarray | None  # transformed, sqrt(w)-scaled residuals (None: computed on demand, see resid())
    bread: np.ndarray
    ssr: float
    tss_within: float
    tss: float
    nobs: int
    n_dropped: int
    n_singletons: int
    fe_factors: list[Factor]
    fe_names: list[str]
    weights: np.ndarray | None
    has_intercept: bool
    dropped: list[str]
    backend: str
    extra: dict[str, Any] = field(default_factory=dict)  # cleaned cluster / time arrays
    y_raw: np.ndarray | None = None
    X_raw: np.ndarray | None = None
    pooled_ssr: float | None = None  # SSR of pooled OLS with an intercept (when X_raw is not kept)
    # centred cross-products of [y, X] the pooled SSR is solved from on first use (f_poolability):
    # a collection of many small fits does not pay a pseudo-inverse per model up front
    pooled_moments: np.ndarray | None = None
    zyx: np.ndarray | None = None  # transformed [y, X_all] buffer (unweighted in-place fits)
    coef_all: np.ndarray | None = None  # params padded with zeros for dropped regressors (for zyx)
    kept_all: np.ndarray | None = None  # columns of zyx[:, 1:] that are kept regressors
    fe_slopes: list = field(default_factory=list)  # varying slopes (slopes only; intercepts are in fe_factors)
    row_keep: np.ndarray | None = None  # rows of the input used (None: all)
    kept_idx: np.ndarray | None = None  # input columns of X that are kept regressors
    raw_fn: Any = None  # () -> (y, X) of the input rows, untransformed (set by feols / PanelOLS)

    def resid(self) -> np.ndarray:
        """Transformed residuals, computed on first use when the fit did not need them."""
        if self.u is None:
            self.u = self.zyx[:, 0] - self.X @ self.params if self.k else self.zyx[:, 0].copy()
        return self.u
    _fe_df_exact: int | None = None

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def n_slope_params(self) -> int:
        """Varying-slope coefficients: levels times slope variables of each slope term."""
        return sum(vs.factor.n_levels * vs.n_slopes for vs in self.fe_slopes)

    @property
    def fe_df_fixest(self) -> int:
        if not self.fe_factors:
            return 0
        return sum(f.n_levels for f in self.fe_factors) - (len(self.fe_factors) - 1) + self.n_slope_params

    @property
    def fe_df_exact(self) -> int:
        """Rank of the dummy columns of the fixed effects (see the covariance module)."""
        if self._fe_df_exact is None and self.fe_slopes:
            self._fe_df_exact = absorb(np.zeros((self.nobs, 0)), self.fe_factors, self.fe_slopes, self.weights)[2]
        if self._fe_df_exact is None:
            f = self.fe_factors
            if len(f) == 2 and not FixedEffects(f).is_balanced_pair():
                from scipy.sparse import coo_matrix
                from scipy.sparse.csgraph import connected_components

                a, b = f
                graph = coo_matrix(
                    (np.ones(a.n_obs), (a.codes, b.codes + a.n_levels)),
                    shape=(a.n_levels + b.n_levels,) * 2,
                )
                n_comp = connected_components(graph, directed=False)[0]
                self._fe_df_exact = a.n_levels + b.n_levels - int(n_comp)
            elif len(f) >= 3:
                # Rank of the dummies: connected sets and the null directions of the reduced
                # Schur complement (fastpanel.kway); the transform reports it when it used the
                # exact solver, otherwise it is computed here (only the statsmodels convention
                # and the no-residual-df check ask for it).
                from fastpanel.kway import build_structure

                self._fe_df_exact = build_structure(list(f), self.weights).n_identified
            else:
                self._fe_df_exact = self.fe_df_fixest
        return self._fe_df_exact


def _as_vector(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}; convert it to numbers first")
    return np.asarray(arr, dtype=np.float64)


def _check_inf(arr: np.ndarray, names: Sequence[str]) -> None:
    with np.errstate(invalid="ignore"):
        inf = np.isinf(arr)
    if inf.any():
        cols = inf.any(axis=0) if arr.ndim == 2 else np.array([True])
        bad = [names[j] for j in np.flatnonzero(cols)]
        raise ValueError(
            f"infinite values in {', '.join(bad)} ({int(inf.sum())} entries); infinity is not a missing "
            "value: fix or remove those rows (e.g. log of zero) before fitting"
        )


def drop_singletons(factors: list[Factor], keep: np.ndarray) -> np.ndarray:
    """fixest's iterative singleton removal: drop rows alone in a level of any dimension,
    repeat until no fixed-effect level has exactly one row."""
    if keep.all() and all(bool((f.counts > 1).all()) for f in factors):
        return keep
    keep = keep.copy()
    changed = True
    while changed:
        changed = False
        for f in factors:
            counts = np.bincount(f.codes[keep], minlength=f.n_levels)
            single = keep & (counts[np.maximum(f.codes, 0)] == 1)
            if single.any():
                keep &= ~single
                changed = True
    return keep


def split_effects(fe: Sequence[tuple[str, Any]], n: int) -> tuple[list[tuple[str, Any]], list[Any]]:
    """Plain fixed effects ``(name, ids)`` and varying slopes (slopes only) from the effect list.

    ``name[x]`` (:class:`~fastpanel.slopes.VaryingSlopes` with ``intercept=True``) contributes the
    plain effect ``name`` (once, however often it is named) and the slopes; ``name[[x]]`` only the
    slopes.
    """
    from fastpanel.slopes import VaryingSlopes

    plain: list[tuple[str, Any]] = []
    slopes: list[Any] = []
    for name, eff in fe:
        if isinstance(eff, VaryingSlopes):
            if eff.n_obs != n:
                raise ValueError(f"varying slopes {eff.name!r} have {eff.n_obs} rows but y has {n}")
            if eff.intercept and name not in [p for p, _ in plain]:
                plain.append((name, eff.factor))
            slopes.append(VaryingSlopes(eff.factor, eff.x, intercept=False, name=eff.name))
        elif name not in [p for p, _ in plain]:
            plain.append((name, eff))
    if slopes and not plain:
        raise ValueError(
            "varying slopes without any fixed effect (only 'fe[[x]]' terms) are not supported: add the level "
            "intercepts ('fe[x]') or another fixed effect"
        )
    return plain, slopes


def absorb(
    X: np.ndarray, factors: list[Factor], slopes: list[Any], w: np.ndarray | None, backend: str | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, str, int | None]:
    """Residual of X on the fixed effects and varying slopes: ``(out, backend, rank or None)``."""
    if slopes:
        from fastpanel.slopes import slopes_within

        res, info = slopes_within(X, [*factors, *slopes], w, out=out)
        return res, "numpy", info.n_identified
    res, info = within(X, FixedEffects(factors), weights=w, backend=backend, return_info=True, out=out)
    return res, info.backend, info.n_identified


def check_weights(weights: Any, n: int) -> np.ndarray | None:
    """Weights as float64 (NaN kept: those rows are dropped), refusing a wrong length, inf or
    non-positive values."""
    if weights is None:
        return None
    w = _as_vector(weights, "weights")
    if w.shape[0] != n:
        raise ValueError(f"weights has length {w.shape[0]} but y has {n}; pass one weight per row")
    _check_inf(w, ["weights"])
    with np.errstate(invalid="ignore"):
        if (w <= 0).any():
            raise ValueError("weights must be positive; drop rows with zero or negative weight first")
    return w


def clean_rows(
    bad: np.ndarray, w: np.ndarray | None, fe: Sequence[tuple[str, Any]], extra: dict[str, Any] | None,
    drop_singletons_: bool,
) -> tuple[np.ndarray, int, int, list[Factor], dict[str, Factor]]:
    """Rows kept after listwise deletion and singleton removal, with the counts and factors.

    ``bad`` marks rows with a missing value in the data columns; missing weights, fixed-effect
    ids and cluster/period ids (``extra``) are added here. Returns ``(keep, n_nan, n_singletons,
    factors, extra_factors)``, the factors already restricted to the kept rows.
    """
    n = bad.shape[0]
    factors = [factorize(arr, name) for name, arr in fe]
    for f in factors:
        if f.n_obs != n:
            raise ValueError(f"fixed effect {f.name!r} has {f.n_obs} rows but y has {n}")
    bad = bad.copy()
    if w is not None:
        bad |= np.isnan(w)
    for f in factors:
        if f.has_missing:
            bad |= f.codes < 0
    extra_factors: dict[str, Factor] = {}
    fe_by_id = {id(arr): f for (_, arr), f in zip(fe, factors)}
    for key, arr in ({} if extra is None else dict(extra)).items():
        label = _extra_label(str(key))
        ef = fe_by_id.get(id(arr)) or factorize(arr, label)
        if ef.n_obs != n:
            raise ValueError(f"{label} has {ef.n_obs} rows but y has {n}; pass one value per row")
        if ef.has_missing:
            bad |= ef.codes < 0
        extra_factors[key] = ef
    n_nan = int(bad.sum())
    keep = ~bad
    n_single = 0
    if factors and drop_singletons_:
        keep2 = drop_singletons(factors, keep)
        n_single = int(keep.sum() - keep2.sum())
        keep = keep2
    if not keep.all():
        if not keep.any():
            raise ValueError("no observations left after removing rows with NaN and singleton groups")
        factors = [f.subset(keep) for f in factors]
        extra_factors = {k_: f.subset(keep) for k_, f in extra_factors.items()}
    return keep, n_nan, n_single, factors, extra_factors


def _solve(
    X: np.ndarray, y: np.ndarray, ref: np.ndarray, names: list[str], collin_tol: float,
    gram: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Cholesky solve with a sequential (rank-revealing) fallback; returns params, bread, kept.

    ``gram``, when given, is the cross-product matrix of ``[y, X]`` (saves two passes).
    """
    if gram is not None:
        A, b = gram[1:, 1:], gram[1:, 0]
    else:
        A = X.T @ X
        b = X.T @ y
    k = A.shape[0]
    kept = list(range(k))
    thresh = collin_tol * np.maximum(ref, _TINY)
    ok = False
    # LAPACK potrf/potrs directly: scipy.linalg.cho_factor's argument handling was most of a
    # small solve's time, paid once per model of a FitCollection
    if k:
        c, info = lapack.dpotrf(A, lower=0, clean=1)
        ok = info == 0 and bool((c.diagonal() ** 2 > thresh).all())
    if not ok and k:
        # Sequential pivots in column order: column j is kept when its residual sum of squares
        # on the kept earlier columns exceeds collin_tol times its sum of squares before the
        # fixed effects were removed (fixest's collin.tol rule).
        kept = []
        for j in range(k):
            if kept:
                Akk = A[np.ix_(kept, kept)]
                akj = A[kept, j]
                resid = A[j, j] - akj @ np.linalg.solve(Akk, akj)
            else:
                resid = A[j, j]
            if resid > thresh[j]:
                kept.append(j)
        if not kept:
            raise ValueError(
                "every regressor is collinear with the fixed effects (absorbed): "
                f"{', '.join(names)}; remove the fixed effects that absorb them or the regressors"
            )
        A = A[np.ix_(kept, kept)]
        b = b[kept]
        c, info = lapack.dpotrf(A, lower=0, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"the kept regressors' cross-product is not positive definite (potrf info {info})")
    if not k:
        return np.zeros(0), np.zeros((0, 0)), kept
    params, _ = lapack.dpotrs(c, b, lower=0)
    bread, _ = lapack.dpotrs(c, np.eye(len(kept)), lower=0)
    return params, 0.5 * (bread + bread.T), kept


def estimate(
    y: Any,
    X: Any,
    names: Sequence[str],
    yname: str,
    fe: Sequence[tuple[str, Any]],
    *,
    weights: Any = None,
    extra: dict[str, Any] | None = None,
    drop_singletons_: bool = True,
    has_intercept: bool = False,
    backend: str | None = None,
    collin_tol: float = 1e-10,
    n_dropped_before: int = 0,
    work: np.ndarray | None = None,
    keep_raw: bool = True,
) -> FitState:
    """Clean, transform and solve; see the module docstring.

    ``work`` is an optional caller-owned Fortran buffer holding ``[y, X]`` (``y`` and ``X`` are
    its column views). With ``keep_raw=False`` and no row removed, it is within-transformed in
    place and the untransformed data are summarised by their moments instead of being kept,
    which saves two copies of X on large panels.
    """
    yv = _as_vector(y, "y")
    n = yv.shape[0]
    if n == 0:
        raise ValueError("y has no rows; pass at least one observation")
    Xm = np.asarray(X)
    if Xm.ndim == 1:
        Xm = Xm[:, None]
    if Xm.ndim != 2 or Xm.shape[0] != n:
        raise ValueError(f"X must be 2-D with {n} rows (one per element of y), got shape {Xm.shape}")
    if not (np.issubdtype(Xm.dtype, np.number) or Xm.dtype == np.bool_):
        raise TypeError(f"X must be numeric, got dtype {Xm.dtype}; encode text regressors as categoricals")
    Xm = np.asarray(Xm, dtype=np.float64)
    if not (isinstance(collin_tol, (float, int, np.floating, np.integer)) and np.isfinite(collin_tol)
            and 0 <= collin_tol < 1):
        raise ValueError(f"collin_tol={collin_tol!r} must be a number in [0, 1), e.g. 1e-10")
    names = list(names)
    if len(names) != Xm.shape[1]:
        raise ValueError(f"names has {len(names)} entries but X has {Xm.shape[1]} columns")
    moments = None
    if work is not None and not keep_raw and work.flags.f_contiguous and work.shape == (n, 1 + Xm.shape[1]):
        # The raw moments (needed anyway when transforming in place) double as the NaN/inf
        # check: any non-finite value makes them non-finite, so clean data need no extra pass.
        with np.errstate(all="ignore"):
            moments = _raw_moments(work, None if weights is None else _as_vector(weights, "weights"))
    with np.errstate(all="ignore"):
        if moments is not None and np.isfinite(moments[1]).all() and np.isfinite(moments[2]).all():
            all_finite = True
        else:
            moments = None
            all_finite = bool(np.isfinite(Xm.sum(axis=1) + yv).all()) if Xm.shape[1] else bool(np.isfinite(yv).all())
    if not all_finite:
        _check_inf(yv, [yname])
        _check_inf(Xm, names)
    w = check_weights(weights, n)
    bad = np.zeros(n, dtype=bool) if all_finite else np.isnan(yv)
    if Xm.shape[1] and not all_finite:
        bad |= np.isnan(Xm).any(axis=1) if Xm.shape[1] > 1 else np.isnan(Xm[:, 0])
    fe, slopes = split_effects(fe, n)
    for vs in slopes:
        bad |= np.isnan(vs.x).any(axis=1) | (vs.factor.codes < 0)
    keep, n_nan, n_single, factors, extra_factors = clean_rows(bad, w, fe, extra, drop_singletons_)
    if slopes and not keep.all():
        slopes = [vs.subset(keep) for vs in slopes]
    if not keep.all():
        yv = yv[keep]
        Xm = Xm[keep]
        w = None if w is None else w[keep]
    nobs = yv.shape[0]
    if nobs > 1 and np.ptp(yv) == 0:
        raise ValueError(
            f"the dependent variable {yname!r} is constant ({yv[0]:g}) on the {nobs} rows used; "
            "nothing to explain: check the variable and the sample"
        )

    backend_used = "numpy"
    in_place = (
        factors and work is not None and not keep_raw and nobs == work.shape[0]
        and work.flags.f_contiguous and work.shape[1] == 1 + Xm.shape[1]
    )
    pooled_moments = None
    gram = None
    fe_rank = None  # rank of the fixed-effect dummies, when the transform computed it
    if in_place:
        total_w, means, centered = moments if moments is not None else _raw_moments(work, w)
        if _shift_large_means(work, means, centered, total_w):
            # Columns whose mean dwarfs their spread (y = 1e8 + noise) were shifted by a value of
            # their own; the fixed effects absorb any constant, so only the moments change.
            total_w, means, centered = _raw_moments(work, w)
        tss = float(centered[0, 0])
        # Collinearity is judged on centred sums of squares: an offset (x = 1e8 + noise) must
        # not make a regressor look absorbed.
        ref = np.diag(centered)[1:].copy()
        pooled_moments = centered
        out, backend_used, fe_rank = absorb(work, factors, slopes, w, backend, out=work)
        yt, Xt = out[:, 0], out[:, 1:]
        if w is None:  # one pass gives X'X, X'y and y'y of the transformed data
            gram = _gram(out)[1]
    else:
        if factors:
            # Shift every column by its first value: the fixed effects absorb constants, and the
            # transform then works on numbers of the data's spread, not of its mean (1e8 + noise
            # keeps all its digits).
            stacked = np.empty((nobs, 1 + Xm.shape[1]), order="F")
            np.subtract(yv, yv[0], out=stacked[:, 0])
            np.subtract(Xm, Xm[0], out=stacked[:, 1:])
            out, backend_used, fe_rank = absorb(stacked, factors, slopes, w, backend, out=stacked)
            yt, Xt = out[:, 0], out[:, 1:]
        else:
            yt, Xt = yv, np.asfortranarray(Xm)
        wn = np.ones(nobs) if w is None else w
        ybar = float(np.dot(wn, yv) / wn.sum())
        tss = float(np.dot(wn, (yv - ybar) ** 2))
        if factors:
            # centred (weighted) sums of squares: the scale of what the effects can leave over
            xbar = (wn @ Xm) / wn.sum()
            ref = np.einsum("ij,ij->j", (Xm - xbar) * wn[:, None], Xm - xbar)
        else:
            ref = np.einsum("ij,ij->j", Xm * wn[:, None], Xm)
    return fit_tail(
        yt, Xt, names=names, yname=yname, fe_names=[name for name, _ in fe], ref=ref, Xm=Xm, w=w,
        collin_tol=collin_tol, gram=gram, zyx=out if in_place else None, tss=tss, factors=factors,
        slopes=slopes, keep=keep, n_dropped=n_nan + n_dropped_before, n_singletons=n_single,
        has_intercept=has_intercept, backend=backend_used, extra_factors=extra_factors,
        y_raw=None if in_place else yv, X_raw=None if in_place else Xm, pooled_moments=pooled_moments, fe_rank=fe_rank,
    )


def fit_tail(
    yt: np.ndarray, Xt: np.ndarray, *, names: list[str], yname: str, fe_names: list[str], ref: np.ndarray,
    Xm: np.ndarray, w: np.ndarray | None, collin_tol: float, gram: np.ndarray | None, zyx: np.ndarray | None,
    tss: float, factors: list[Factor], slopes: list[Any], keep: np.ndarray, n_dropped: int, n_singletons: int,
    has_intercept: bool, backend: str, extra_factors: dict[str, Factor], y_raw: np.ndarray | None,
    X_raw: np.ndarray | None, pooled_moments: np.ndarray | None, fe_rank: int | None, scaled: bool = False,
    stacklevel: int = 4, zyx_cols: np.ndarray | None = None, ssr_from_gram: bool = False,
    all_rows: bool | None = None,
) -> FitState:
    """Solve and summarise a fit from its within-transformed data (the part of :func:`estimate`
    after the transform; :mod:`fastpanel.ols.multi` calls it once per model of a collection).

    ``yt``/``Xt``: transformed y and regressors (multiplied by ``sqrt(w)`` here unless
    ``scaled``); ``gram``: cross-products of the (scaled) ``[y, X]`` or None; ``zyx``: the
    transformed (scaled) buffer whose column 0 is y, kept for the fused SSR and cluster-score
    kernel when ``gram`` is given (else the residuals are formed), with X in its columns
    ``1 + zyx_cols`` (default: ``1 .. k``; other columns get coefficient 0); ``ssr_from_gram``:
    the SSR as ``y'y - b'X'y`` from ``gram`` when ``ssr > y'y / 100`` (then it loses under 1e-13
    relative), saving the kernel's pass; ``ref``: the sums of squares of the collinearity rule;
    ``Xm``: the regressors ``_check_scale`` reads; ``y_raw``/``X_raw``: the untransformed data
    to keep (None when transformed in place); ``keep``: the rows of the input used
    (``all_rows``: whether that is every row, when the caller knows).
    """
    nobs = yt.shape[0]
    if w is not None and not scaled:
        sw = np.sqrt(w)
        yt = yt * sw
        Xt = Xt * sw[:, None]

    _check_scale(ref, Xm, names)
    params, bread, kept = _solve(Xt, yt, ref, names, collin_tol, gram)
    dropped = [names[j] for j in range(len(names)) if j not in kept]
    if dropped:
        warnings.warn(
            f"dropped {len(dropped)} regressor(s) collinear with other regressors or absorbed by the "
            f"fixed effects: {', '.join(dropped)}; their coefficients are not identified (remove them "
            "to silence this warning)",
            CollinearityWarning,
            stacklevel=stacklevel,
        )
        Xt = Xt[:, kept]
        names = [names[j] for j in kept]
    coef_all = kept_all = None
    ssr = u = None
    if gram is not None and zyx is not None and _core_has("ols_cluster_scores"):
        # Fused pass: the SSR without materialising u (it is formed later only if a covariance
        # type needs it); chunks of rows give the kernel parallel work.
        from fastpanel import _core

        kept_all = np.asarray(kept, dtype=np.int64) if zyx_cols is None else np.asarray(zyx_cols, dtype=np.int64)[kept]
        coef_all = np.zeros(zyx.shape[1] - 1)
        coef_all[kept_all] = params
        if ssr_from_gram:
            # y'y - b'X'y loses about eps * y'y / ssr relative: used when that is under 1e-13
            yy = float(gram[0, 0])
            candidate = yy - (float(params @ gram[1:, 0][kept]) if len(kept) else 0.0)
            ssr = candidate if candidate > 1e-2 * yy else None
        if ssr is None:
            chunks = np.append(np.arange(0, nobs, 1 << 16, dtype=np.int64), np.int64(nobs))
            ssr = float(_core.ols_cluster_scores(zyx, coef_all, _EMPTY_I64, chunks)[1])
    else:
        u = yt - Xt @ params if len(kept) else yt.copy()
        ssr = float(u @ u)
    if factors:
        tss_within = float(gram[0, 0]) if gram is not None else float(yt @ yt)
    else:
        tss_within = tss
    return FitState(
        yname=yname, names=names, params=params, X=Xt, u=u, bread=bread, ssr=ssr,
        tss_within=tss_within, tss=tss, nobs=nobs, n_dropped=n_dropped,
        n_singletons=n_singletons, fe_factors=factors, fe_names=fe_names, weights=w,
        has_intercept=has_intercept, dropped=dropped, backend=backend,
        extra=extra_factors,
        y_raw=y_raw,
        X_raw=None if X_raw is None else (X_raw[:, kept] if dropped else X_raw),
        pooled_moments=pooled_moments, _fe_df_exact=fe_rank if factors and (len(factors) >= 3 or slopes) else None,
        fe_slopes=slopes, row_keep=None if (keep.all() if all_rows is None else all_rows) else keep,
        kept_idx=np.asarray(kept, dtype=np.int64),
        zyx=zyx if coef_all is not None else None,
        coef_all=coef_all,
        kept_all=kept_all,
    )


_EMPTY_I64 = np.empty(0, dtype=np.int64)
_TINY = np.finfo(float).tiny


def _gram(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column sums, Z'Z) of a Fortran-ordered matrix: one fused C++ read when available."""
    if Z.flags.f_contiguous and _core_has("ols_gram"):
        from fastpanel import _core

        return _core.ols_gram(Z)
    return Z.sum(axis=0), Z.T @ Z


def _core_has(name: str) -> bool:
    try:
        from fastpanel import _core
    except ImportError:  # pragma: no cover - pure-Python install
        return False
    return hasattr(_core, name)


def _raw_moments(Z: np.ndarray, w: np.ndarray | None, chunk: int = 1 << 18) -> tuple[float, np.ndarray, np.ndarray]:
    """(sum of weights, weighted column means, weighted centred cross-products) of Z.

    Centring before the cross-products keeps the pooled regression accurate when columns
    have large means; rows are processed in chunks so the temporaries stay small.
    """
    if w is None:
        # One pass: column sums and the Gram matrix, centred afterwards. The cancellation error
        # is about eps * (mean / sd)^2 relative, negligible for the sums of squares it serves.
        total = float(Z.shape[0])
        sums, cross = _gram(Z)
        means = sums / total
        return total, means, cross - total * np.outer(means, means)
    else:
        total = float(w.sum())
        means = (w @ Z) / total
    cross = np.zeros((Z.shape[1], Z.shape[1]))
    for start in range(0, Z.shape[0], chunk):
        Zc = Z[start:start + chunk] - means
        cross += (Zc if w is None else Zc * w[start:start + chunk, None]).T @ Zc
    return total, means, cross


def _check_scale(ref: np.ndarray, Xm: np.ndarray, names: Sequence[str]) -> None:
    """Refuse regressors whose squares leave the range of float64: their sums of squares
    underflow (or overflow), so no collinearity decision or solve could be trusted."""
    if not ref.size or 1e-250 <= ref.min() <= ref.max() <= 1e250:
        return  # the usual case, decided without building index arrays
    for j in np.flatnonzero((ref < 1e-250) | (ref > 1e250)):
        col = Xm[:, j]
        spread = float(np.nanmax(col) - np.nanmin(col)) if col.size else 0.0
        if ref[j] > 1e250 or 0.0 < spread < 1e-125:
            raise ValueError(
                f"regressor {names[j]!r} varies on a scale of {spread:.1e}, outside what float64 sums of squares "
                "can hold; rescale it (e.g. multiply by a power of ten) before fitting"
            )


def _extra_label(key: str) -> str:
    """How an internal key (cluster or period array) is named in messages."""
    if key.startswith("__cluster__"):
        return f"the cluster variable {key[len('__cluster__'):]!r} of vcov"
    if key == "__time__":
        return "the period ids (time)"
    return repr(key)


_OFFSET_RATIO = 64.0  # |mean| / sd above which a column is shifted before the transform


def _shift_large_means(work: np.ndarray, means: np.ndarray, centered: np.ndarray, total_w: float) -> bool:
    """Subtract the first row from every column of ``work`` whose mean is large next to its
    spread (in place; ``work`` is the estimator's own buffer). Returns whether any was shifted.

    One-pass moments lose ``eps * (mean / sd)^2`` relative and the transform ``eps * mean / sd``;
    after the shift both are at the precision of data with a small mean. A constant column
    becomes exactly zero, so it is recognised as absorbed.
    """
    sd = np.sqrt(np.maximum(np.diag(centered), 0.0) / max(total_w, np.finfo(float).tiny))
    cols = np.flatnonzero(np.abs(means) > _OFFSET_RATIO * sd)
    if cols.size == 0 or work.shape[0] == 0:
        return False
    first = work[0, cols].copy()
    for j, s0 in zip(cols, first):
        work[:, j] -= s0
    return True


def _pooled_ssr(centered: np.ndarray) -> float:
    """SSR of the pooled regression of column 0 on the others with an intercept, from the
    centred cross-products (pseudo-inverse: collinear columns are harmless here)."""
    cxx, cxy = centered[1:, 1:], centered[1:, 0]
    if cxx.shape[0] == 0:
        return float(centered[0, 0])
    beta = np.linalg.pinv(cxx, rcond=1e-12, hermitian=True) @ cxy
    return float(centered[0, 0] - cxy @ beta)


class PanelOLS:
    """Fixed-effects OLS on arrays (the API for downstream libraries).

    Parameters
    ----------
    y : array-like, shape (n,)
        Dependent variable.
    X : array-like, shape (n, k)
        Regressors (a DataFrame's column names become the coefficient names). No constant is
        added: the fixed effects absorb it; without effects pass a constant column yourself.
    entity : array-like, shape (n,)
        Entity ids (any dtype).
    time : array-like, shape (n,), optional
        Period ids; needed for ``time_effects=True`` and for ``vcov={"DK": lags}``.
    entity_effects, time_effects : bool
        Which effects to absorb.
    other_effects : dict of name -> array or sequence of arrays, optional
        Further fixed-effect dimensions.
    weights : array-like, shape (n,), optional
        Positive analytic weights (weighted least squares).
    drop_singletons : bool, default True
        Drop observations alone in a fixed-effect level, iteratively (fixest); their count is
        ``results.n_singletons``.
    names : sequence of str, optional
        Coefficient names (default: DataFrame columns or ``x0, x1, ...``).

    Examples
    --------
    >>> res = PanelOLS(y, X, entity, time, time_effects=True).fit(vcov={"CRV1": "entity"})
    """

    def __init__(
        self,
        y: Any,
        X: Any,
        entity: Any = None,
        time: Any = None,
        *,
        entity_effects: bool = True,
        time_effects: bool = False,
        other_effects: dict[str, Any] | Sequence[Any] | None = None,
        weights: Any = None,
        drop_singletons: bool = True,
        names: Sequence[str] | None = None,
    ) -> None:
        if names is None:
            if hasattr(X, "columns"):
                names = [str(c) for c in X.columns]
            elif hasattr(X, "name") and np.ndim(X) == 1:
                names = [str(X.name)]
            else:
                names = [f"x{j}" for j in range(1 if np.ndim(X) == 1 else np.shape(X)[1])]
        self.names = list(names)
        self.yname = str(getattr(y, "name", None) or "y")
        self.y = y.to_numpy() if hasattr(y, "to_numpy") else y
        self.X = X.to_numpy() if hasattr(X, "to_numpy") else X
        if entity_effects and entity is None:
            raise ValueError("entity is None but entity_effects=True; pass entity ids or entity_effects=False")
        if time_effects and time is None:
            raise ValueError("time is None but time_effects=True; pass period ids or time_effects=False")
        # factorised once and reused by every fit (cluster variables naming an effect share it)
        entity = None if entity is None else factorize(entity, "entity")
        time = None if time is None else factorize(time, "time")
        self.entity, self.time = entity, time
        fe: list[tuple[str, Any]] = []
        if entity_effects:
            fe.append(("entity", entity))
        if time_effects:
            fe.append(("time", time))
        if other_effects is not None:
            items = other_effects.items() if isinstance(other_effects, dict) else (
                (f"effect{j}", v) for j, v in enumerate(other_effects)
            )
            from fastpanel.slopes import VaryingSlopes

            fe.extend((str(k), v if isinstance(v, VaryingSlopes) else factorize(v, str(k))) for k, v in items)
        self.fe = fe
        self.weights = weights
        self.drop_singletons = drop_singletons

    def fit(
        self,
        vcov: Any = "iid",
        *,
        ssc: str = "fixest",
        backend: str | None = None,
        collin_tol: float = 1e-10,
    ) -> "OLSResults":
        """Estimate; ``vcov`` and ``ssc`` as in :func:`fastpanel.feols`.

        Cluster variables are named ``"entity"``, ``"time"`` or an ``other_effects`` key, or
        given as arrays with one value per row.
        """
        from fastpanel.ols.results import OLSResults

        spec, extra = self._vcov_extra(vcov, ssc)
        state = estimate(
            self.y, self.X, self.names, self.yname, self.fe, weights=self.weights, extra=extra,
            drop_singletons_=self.drop_singletons, backend=backend, collin_tol=collin_tol,
        )
        state.raw_fn = lambda: (self.y, self.X)  # the caller's arrays (references, no copy)
        return OLSResults(state, spec, ssc)

    def _vcov_extra(self, vcov: Any, ssc: str) -> tuple[cov.VcovSpec, dict[str, Any]]:
        """The parsed covariance (cluster variables renamed to their keys) and the cluster and
        period arrays the fit must clean along with the data."""
        spec = cov.parse_vcov(vcov)
        if ssc not in cov.SSC_PRESETS:
            raise ValueError(f"ssc={ssc!r} is not a preset; use one of {cov.SSC_PRESETS}")
        named = {"entity": self.entity, "time": self.time, **dict(self.fe)}
        extra: dict[str, Any] = {}
        clusters = []
        for j, c in enumerate(spec.clusters):
            if isinstance(c, str):
                if c not in named or named[c] is None:
                    raise ValueError(
                        f"cluster variable {c!r} is not known; name one of "
                        f"{[k for k, v in named.items() if v is not None]} or pass an array"
                    )
                arr, key = named[c], c
            else:
                # checked here, where the caller's words are known: estimate() only sees the
                # internal key of the array
                arr, key = factorize(c, f"cluster array {j} of vcov"), f"cluster{j}"
                n_y = int(np.shape(self.y)[0]) if np.ndim(self.y) else 0
                if arr.n_obs != n_y:
                    raise ValueError(
                        f"vcov={{{spec.kind!r}: ...}}: the cluster array given as cluster variable {j + 1} has "
                        f"{arr.n_obs} values but y has {n_y} rows; pass one cluster id per row"
                    )
            extra[f"__cluster__{key}"] = arr
            clusters.append(key)
        if spec.kind == "DK":
            if self.time is None:
                raise ValueError("vcov={'DK': lags} needs the period of each row: pass time= to PanelOLS")
            extra["__time__"] = self.time
        return dataclasses.replace(spec, clusters=tuple(clusters)), extra  # keeps eigen_fix
