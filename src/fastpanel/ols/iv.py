"""Two-stage least squares with absorbed fixed effects (IV): the engine and :class:`PanelIV`.

Algorithm. The columns ``M = [y, E, D, Z]`` (outcome, exogenous regressors, endogenous
regressors, excluded instruments) are cleaned together (listwise deletion of NaN rows, counted;
fixest's iterative singleton removal), within-transformed in ONE call of
:func:`fastpanel.within` (so every column is projected on the same exact fixed-effect space),
scaled by ``sqrt(w)``, and reduced to their Gram matrix ``M'M`` (one pass). With
``W = [E, Z]`` the first-stage regressors:

* first stage ``Pi = (W'W)^{-1} W'D`` (p x k_d), fitted ``Dhat = W Pi``;
* second stage on ``Xhat = [E, Dhat]``: ``Xhat'Xhat = [[E'E, E'D], [D'E, D'W Pi]]`` and
  ``Xhat'y = [E'y, Pi'W'y]`` (``E'Dhat = E'D`` because E lies in the span of W), so
  ``b = (Xhat'Xhat)^{-1} Xhat'y`` costs O(p^3) once the Gram matrix is known;
* structural residuals ``u = y - E b_E - D b_D`` (one pass).

The covariance estimators of :mod:`fastpanel.ols.covariance` then apply unchanged with
``X := Xhat`` and ``u`` the structural residuals (the textbook 2SLS sandwich
``B Xhat' Omega Xhat B``, ``B = (Xhat'Xhat)^{-1}``), which is pyfixest's
``(X'Z (Z'Z)^{-1}) Z' Omega Z ((Z'Z)^{-1} Z'X)`` form and linearmodels' IV2SLS. CRV3 is the
leave-one-cluster-out jackknife of the whole 2SLS estimate (first stage included): from
downdated Gram matrices when every fixed effect is nested in the clusters, by refitting
otherwise.

Cost: one within transform of ``1 + k_e + k_d + L`` columns, one Gram pass, one residual
pass; everything else is O(p^3).

Collinearity: a regressor or instrument whose Cholesky pivot falls below ``collin_tol`` times
its centred sum of squares is dropped with a :class:`~fastpanel.ols.CollinearityWarning` that
names it (exogenous and instruments judged together, in the order ``E`` then ``Z``; endogenous
regressors against ``E`` and the earlier endogenous ones). Fewer kept instruments than
endogenous regressors raise (under-identified); so does an endogenous regressor on which the
instruments have no explanatory power (rank condition).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import scipy.linalg

from fastpanel.ols.model import (
    CollinearityWarning,
    FitState,
    _as_vector,
    _check_inf,
    _check_scale,
    _gram,
    _OFFSET_RATIO,
    _raw_moments,
    _shift_large_means,
    absorb,
    check_weights,
    clean_rows,
    split_effects,
)

if TYPE_CHECKING:  # pragma: no cover
    from fastpanel.ols.iv_results import IVResults

__all__ = ["PanelIV", "estimate_iv", "solve_iv_gram", "IVState", "WeakInstrumentWarning"]


class WeakInstrumentWarning(UserWarning):
    """The excluded instruments are weak: first-stage F (or Kleibergen-Paap rk Wald F) below 10."""


@dataclass
class IVState(FitState):
    """A :class:`~fastpanel.ols.model.FitState` whose ``X`` is ``Xhat`` and ``u`` the structural
    residuals, plus what the first stage and the diagnostics need."""

    exog_names: list[str] = field(default_factory=list)
    endog_names: list[str] = field(default_factory=list)
    instrument_names: list[str] = field(default_factory=list)
    W: np.ndarray | None = None  # transformed, scaled first-stage regressors [E, Z] (kept)
    D: np.ndarray | None = None  # transformed, scaled endogenous regressors (kept)
    yt: np.ndarray | None = None  # transformed, scaled outcome
    Pi: np.ndarray | None = None  # first-stage coefficients (p x k_d)
    WW_inv: np.ndarray | None = None
    raw: np.ndarray | None = None  # cleaned untransformed [y, E, D, Z] (kept columns), for refits
    col_tss: np.ndarray | None = None  # centred (weighted) sums of squares of those columns
    weak_checked: bool = False

    def crv3_params(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Leave-one-cluster-out 2SLS estimates (G x k): see the module docstring."""
        from fastpanel.ols.covariance import nested_in

        ke = len(self.exog_names)
        groupings = [*self.fe_factors, *(vs.factor for vs in self.fe_slopes)]
        if all(nested_in(f.codes, f.n_levels, codes) for f in groupings):
            # Removing a cluster leaves the other clusters' transformed data unchanged: downdate
            # the Gram matrix of [y, E, D, Z_excluded] by the cluster's own cross-products.
            cols = np.column_stack([self.yt, self.W, self.D])
            total = cols.T @ cols
            p = cols.shape[1]
            per = np.empty((n_groups, p, p))
            for a in range(p):
                for b in range(a, p):
                    per[:, a, b] = per[:, b, a] = np.bincount(codes, weights=cols[:, a] * cols[:, b], minlength=n_groups)
            return np.stack([_tsls_from_gram(total - per[g], ke, self.D.shape[1]) for g in range(n_groups)])
        out = np.empty((n_groups, self.k))
        w = self.weights
        for g in range(n_groups):
            keep = codes != g
            sub = self.raw[keep]
            wk = None if w is None else w[keep]
            t = absorb(np.asfortranarray(sub - sub[0]), [f.subset(keep) for f in self.fe_factors],
                       [vs.subset(keep) for vs in self.fe_slopes], wk)[0]
            if wk is not None:
                t = t * np.sqrt(wk)[:, None]
            out[g] = _tsls_from_gram(t.T @ t, ke, self.D.shape[1])
        return out


def _tsls_from_gram(G: np.ndarray, ke: int, kd: int) -> np.ndarray:
    """2SLS coefficients ``[b_E, b_D]`` from the Gram matrix of ``[y, E, Z, D]`` (least squares
    solves, so a leave-out sample that loses rank still gives the minimum-norm answer)."""
    p = G.shape[0]
    iE = np.arange(1, 1 + ke)
    iW = np.arange(1, p - kd)
    iD = np.arange(p - kd, p)
    WW = G[np.ix_(iW, iW)]
    d = 1.0 / np.sqrt(np.maximum(np.diag(WW), np.finfo(float).tiny))
    # equilibrated solves: a scale cutoff must not truncate a column of small units
    WD = G[np.ix_(iW, iD)]
    Pi = d[:, None] * np.linalg.lstsq(WW * d[:, None] * d[None, :], WD * d[:, None], rcond=None)[0]
    A = np.block([[G[np.ix_(iE, iE)], G[np.ix_(iE, iD)]], [G[np.ix_(iD, iE)], WD.T @ Pi]])
    rhs = np.concatenate([G[iE, 0], Pi.T @ G[iW, 0]])
    e = 1.0 / np.sqrt(np.maximum(np.diag(A), np.finfo(float).tiny))
    return e * np.linalg.lstsq(A * e[:, None] * e[None, :], rhs * e, rcond=None)[0]


def _pivots_kept(A: np.ndarray, thresh: np.ndarray, order: Sequence[int], base: Sequence[int] = ()) -> list[int]:
    """Columns of ``order`` kept by sequential Cholesky pivots (given the always-kept ``base``):
    a column is kept when its residual sum of squares on the kept earlier columns exceeds its
    threshold (fixest's collin.tol rule, as in :func:`fastpanel.ols.model._solve`)."""
    kept = list(base)
    out = []
    for j in order:
        if kept:
            Akk = A[np.ix_(kept, kept)]
            akj = A[kept, j]
            try:
                resid = A[j, j] - akj @ scipy.linalg.solve(Akk, akj, assume_a="pos", check_finite=False)
            except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):  # pragma: no cover - kept is full rank
                resid = A[j, j] - akj @ np.linalg.lstsq(Akk, akj, rcond=None)[0]
        else:
            resid = A[j, j]
        if resid > thresh[j]:
            kept.append(j)
            out.append(j)
    return out


def _check_names(exog: list[str], endog: list[str], inst: list[str]) -> None:
    for a, b, what in ((endog, exog, "exogenous regressor"), (endog, inst, "instrument"), (inst, exog, "exogenous regressor")):
        both = [v for v in a if v in b]
        if both:
            first = "endogenous regressor" if a is endog else "instrument"
            raise ValueError(
                f"{', '.join(map(repr, both))} is listed both as {first} and as {what}; a variable is either "
                "exogenous (it instruments itself), endogenous, or an excluded instrument: list it once"
            )
    for group, what in ((exog, "exogenous regressors"), (endog, "endogenous regressors"), (inst, "instruments")):
        dup = sorted({v for v in group if group.count(v) > 1})
        if dup:
            raise ValueError(f"{', '.join(map(repr, dup))} appears more than once among the {what}; list it once")


def solve_iv_gram(G: np.ndarray, thresh: np.ndarray, names_all: Sequence[str], ke: int, L: int, kd: int,
                  collin_tol: float, stacklevel: int = 4) -> dict[str, Any]:
    """The 2SLS solve from the Gram matrix ``G`` of the transformed ``[y, E, Z, D]``: which columns
    are kept (sequential pivots against ``thresh``, warnings naming the dropped ones), the
    identification checks, the first stage ``Pi`` and ``(W'W)^{-1}``, the coefficients and the
    bread ``(Xhat'Xhat)^{-1}``. Shared by the in-memory fit and the Dask fit (whose ``G`` is a
    sum over partitions)."""
    iE = list(range(1, 1 + ke))
    iZ = list(range(1 + ke, 1 + ke + L))
    iD = list(range(1 + ke + L, 1 + ke + L + kd))
    kept_EZ = _pivots_kept(G, thresh, iE + iZ)
    kE = [j for j in iE if j in kept_EZ]
    kZ = [j for j in iZ if j in kept_EZ]
    kD = _pivots_kept(G, thresh, iD, base=kE)
    drop_e = [names_all[j] for j in iE if j not in kE]
    drop_d = [names_all[j] for j in iD if j not in kD]
    drop_z = [names_all[j] for j in iZ if j not in kZ]
    if drop_e or drop_d:
        warnings.warn(
            f"dropped {len(drop_e) + len(drop_d)} regressor(s) collinear with other regressors or absorbed by the "
            f"fixed effects: {', '.join(drop_e + drop_d)}; their coefficients are not identified (remove them "
            "to silence this warning)",
            CollinearityWarning,
            stacklevel=stacklevel,
        )
    if drop_z:
        warnings.warn(
            f"dropped {len(drop_z)} instrument(s) collinear with the other instruments and the exogenous "
            f"regressors or absorbed by the fixed effects: {', '.join(drop_z)}; they add no information "
            "(remove them to silence this warning)",
            CollinearityWarning,
            stacklevel=stacklevel,
        )
    if not kD:
        raise ValueError(
            f"every endogenous regressor ({', '.join(endog_names)}) is collinear with the exogenous regressors or "
            "absorbed by the fixed effects; nothing is left to instrument"
        )
    if len(kZ) < len(kD):
        raise ValueError(
            f"the model is under-identified: {len(kZ)} excluded instrument(s) "
            f"({', '.join(names_all[j] for j in kZ) or 'none'}) for {len(kD)} endogenous regressor(s) "
            f"({', '.join(names_all[j] for j in kD)}); add instruments or make regressors exogenous"
        )

    kW = kE + kZ
    WW = G[np.ix_(kW, kW)]
    cW = scipy.linalg.cho_factor(WW, lower=False, check_finite=False)
    WD = G[np.ix_(kW, kD)]
    Pi = scipy.linalg.cho_solve(cW, WD, check_finite=False)
    WW_inv = scipy.linalg.cho_solve(cW, np.eye(len(kW)), check_finite=False)
    WW_inv = 0.5 * (WW_inv + WW_inv.T)
    nE = len(kE)
    A = np.block([[G[np.ix_(kE, kE)], G[np.ix_(kE, kD)]], [G[np.ix_(kD, kE)], WD.T @ Pi]])
    rhs = np.concatenate([G[kE, 0], Pi.T @ G[kW, 0]])
    # Rank condition: the fitted endogenous regressors must keep a non-negligible part of their
    # variation net of E (pivot of Dhat against the pivot of D itself).
    try:
        cA = scipy.linalg.cho_factor(A, lower=False, check_finite=False)
        piv_hat = np.diag(cA[0])[nE:] ** 2
    except np.linalg.LinAlgError:
        cA, piv_hat = None, np.zeros(len(kD))
    XX = G[np.ix_(kE + kD, kE + kD)]
    cX = scipy.linalg.cho_factor(XX, lower=False, check_finite=False)
    piv_raw = np.diag(cX[0])[nE:] ** 2
    weak = piv_hat <= max(collin_tol, 1e-13) * piv_raw
    if cA is None or weak.any():
        bad_d = [names_all[kD[j]] for j in np.flatnonzero(weak)] or [names_all[j] for j in kD]
        raise ValueError(
            f"the instruments ({', '.join(names_all[j] for j in kZ)}) have no explanatory power for "
            f"{', '.join(bad_d)} beyond the exogenous regressors and the fixed effects (rank condition fails): "
            "the model is not identified; use instruments that are correlated with the endogenous regressors"
        )
    params = scipy.linalg.cho_solve(cA, rhs, check_finite=False)
    bread = scipy.linalg.cho_solve(cA, np.eye(A.shape[0]), check_finite=False)
    bread = 0.5 * (bread + bread.T)

    return {"kE": kE, "kZ": kZ, "kD": kD, "kW": kW, "Pi": Pi, "WW_inv": WW_inv, "params": params, "bread": bread,
            "dropped": drop_e + drop_d}


def estimate_iv(
    M: np.ndarray,
    exog_names: Sequence[str],
    endog_names: Sequence[str],
    instrument_names: Sequence[str],
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
    keep_raw: bool = True,
) -> IVState:
    """Clean, transform and solve a 2SLS model; see the module docstring.

    ``M`` is a float64 array ``[y, E, Z, D]`` (n x (1 + k_e + L + k_d); outcome, exogenous
    regressors, excluded instruments, endogenous regressors, so that ``W = [E, Z]`` is a view)
    that this function owns: it is transformed in place.
    """
    exog_names, endog_names, instrument_names = list(exog_names), list(endog_names), list(instrument_names)
    _check_names(exog_names, endog_names, instrument_names)
    ke, kd, L = len(exog_names), len(endog_names), len(instrument_names)
    if kd == 0:
        raise ValueError("no endogenous regressor given; with none, fit OLS (feols without the '| d ~ z' part)")
    if L == 0:
        raise ValueError(f"no excluded instrument given for {', '.join(endog_names)}: the model is under-identified")
    if not (isinstance(collin_tol, (float, int, np.floating, np.integer)) and np.isfinite(collin_tol)
            and 0 <= collin_tol < 1):
        raise ValueError(f"collin_tol={collin_tol!r} must be a number in [0, 1), e.g. 1e-10")
    n = M.shape[0]
    if n == 0:
        raise ValueError("y has no rows; pass at least one observation")
    names_all = [yname, *exog_names, *instrument_names, *endog_names]  # the column order of M
    if not M.flags.f_contiguous:
        M = np.asfortranarray(M)
    w = check_weights(weights, n)
    # One fused pass (column sums and the Gram matrix) gives the moments and, being non-finite
    # as soon as one value is, the NaN/inf check of clean data.
    with np.errstate(all="ignore"):
        moments = _raw_moments(M, None if w is None or np.isnan(w).any() else w)
    all_finite = bool(np.isfinite(moments[1]).all() and np.isfinite(moments[2]).all())
    bad = np.zeros(n, dtype=bool)
    if not all_finite:
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(M).all(axis=1)
        _check_inf(M, names_all)
    fe, slopes = split_effects(fe, n)
    for vs in slopes:
        bad |= np.isnan(vs.x).any(axis=1) | (vs.factor.codes < 0)
    keep, n_nan, n_single, factors, extra_factors = clean_rows(bad, w, fe, extra, drop_singletons_)
    if slopes and not keep.all():
        slopes = [vs.subset(keep) for vs in slopes]
    if not keep.all():
        idx = np.flatnonzero(keep)
        sub = np.empty((idx.size, M.shape[1]), order="F")
        for j in range(M.shape[1]):
            np.take(M[:, j], idx, out=sub[:, j])
        M = sub
        w = None if w is None else w[keep]
        moments = _raw_moments(M, w)
    total_w, means, centered = moments
    sd = np.sqrt(np.maximum(np.diag(centered), 0.0) / max(total_w, np.finfo(float).tiny))
    if (np.abs(means) > _OFFSET_RATIO * sd).any():
        # One-pass centring loses eps (mean / sd)^2 relative: centre exactly (two passes) when a
        # column's mean dwarfs its spread (1e8 + noise).
        total_w, means, centered = _raw_moments(M, np.ones(M.shape[0]) if w is None else w)
    nobs = M.shape[0]
    yv = M[:, 0]
    if nobs > 1 and np.ptp(yv) == 0:
        raise ValueError(
            f"the dependent variable {yname!r} is constant ({yv[0]:g}) on the {nobs} rows used; "
            "nothing to explain: check the variable and the sample"
        )
    centered_ss = np.maximum(np.diag(centered), 0.0)
    tss = float(centered_ss[0])
    # The collinearity scale: centred sums of squares with fixed effects (an offset must not make
    # a column look absorbed), raw ones without (the intercept is then a column of E).
    ref = centered_ss if factors else centered_ss + total_w * means ** 2
    _check_scale(ref[1:], M[:, 1:], names_all[1:])
    raw = M.copy(order="F") if (keep_raw and factors) else None

    backend_used, fe_rank = "numpy", None
    if factors:
        # Columns whose mean dwarfs their spread (1e8 + noise) are shifted by a value of their own
        # first (the effects absorb constants), so the transform keeps their digits; M is ours.
        _shift_large_means(M, means, centered, total_w)
        M, backend_used, fe_rank = absorb(M, factors, slopes, w, backend, out=M)
    if w is not None:
        M *= np.sqrt(w)[:, None]
    G = _gram(M)[1]
    thresh = collin_tol * np.maximum(ref, np.finfo(float).tiny)

    sol = solve_iv_gram(G, thresh, names_all, ke, L, kd, collin_tol)
    kE, kZ, kD, kW = sol["kE"], sol["kZ"], sol["kD"], sol["kW"]
    Pi, WW_inv, params, bread = sol["Pi"], sol["WW_inv"], sol["params"], sol["bread"]
    nE = len(kE)
    drop_e_d = sol["dropped"]
    W = _columns(M, kW)
    D = _columns(M, kD)
    yt = M[:, 0]
    Xhat = np.empty((nobs, nE + len(kD)), order="F")
    Xhat[:, :nE] = M[:, kE]
    Xhat[:, nE:] = W @ Pi
    u = yt.copy()
    for b, j in zip(params, kE + kD):
        u -= b * M[:, j]
    names = [names_all[j] for j in kE + kD]
    order = [0, *kE, *kZ, *kD]
    return IVState(
        yname=yname, names=names, params=params, X=Xhat, u=u, bread=bread, ssr=float(u @ u),
        tss_within=float(G[0, 0]) if factors else tss, tss=tss, nobs=nobs, n_dropped=n_nan + n_dropped_before,
        n_singletons=n_single, fe_factors=factors, fe_names=[name for name, _ in fe], weights=w,
        has_intercept=has_intercept, dropped=drop_e_d, backend=backend_used, extra=extra_factors,
        y_raw=None, X_raw=None, pooled_ssr=None,
        _fe_df_exact=fe_rank if factors and (len(factors) >= 3 or slopes) else None, fe_slopes=slopes,
        exog_names=[names_all[j] for j in kE], endog_names=[names_all[j] for j in kD],
        instrument_names=[names_all[j] for j in kZ], W=W, D=D, yt=yt, Pi=Pi, WW_inv=WW_inv,
        raw=None if raw is None else _columns(raw, order),
        col_tss=centered_ss[order], row_keep=None if keep.all() else keep,
    )


def _columns(M: np.ndarray, cols: list[int]) -> np.ndarray:
    """``M[:, cols]``: a view when the columns are a contiguous run, else a Fortran copy."""
    if cols and cols == list(range(cols[0], cols[0] + len(cols))):
        return M[:, cols[0]:cols[0] + len(cols)]
    out = np.empty((M.shape[0], len(cols)), order="F")
    for i, j in enumerate(cols):
        out[:, i] = M[:, j]
    return out


def _names_of(arr: Any, given: Sequence[str] | None, prefix: str) -> list[str]:
    if given is not None:
        return [str(g) for g in given]
    if hasattr(arr, "columns"):
        return [str(c) for c in arr.columns]
    if hasattr(arr, "name") and np.ndim(arr) == 1 and arr.name is not None:
        return [str(arr.name)]
    return [f"{prefix}{j}" for j in range(1 if np.ndim(arr) == 1 else np.shape(arr)[1])]


def _as_matrix(arr: Any, n: int | None, what: str) -> np.ndarray:
    a = np.asarray(arr.to_numpy() if hasattr(arr, "to_numpy") else arr)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{what} must be 1-D or 2-D, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"{what} must be numeric, got dtype {a.dtype}; encode text columns as numbers")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{what} has {a.shape[0]} rows but y has {n}; pass one row per observation")
    return a


class PanelIV:
    """2SLS with absorbed fixed effects on arrays (the IV counterpart of :class:`PanelOLS`).

    Parameters
    ----------
    y : array-like, shape (n,)
        Dependent variable.
    exog : array-like, shape (n, k_e), or None
        Exogenous regressors (they instrument themselves). No constant is added: the fixed
        effects absorb it; without effects pass a constant column yourself.
    endog : array-like, shape (n, k_d)
        Endogenous regressors.
    instruments : array-like, shape (n, L)
        Excluded instruments (``L >= k_d``).
    entity, time, entity_effects, time_effects, other_effects, weights, drop_singletons
        As in :class:`fastpanel.PanelOLS`.
    exog_names, endog_names, instrument_names : sequence of str, optional
        Names (default: DataFrame columns, Series names, or ``x0``, ``d0``, ``z0``, ...).

    Examples
    --------
    >>> res = PanelIV(y, X, d, Z, entity, time, time_effects=True).fit(vcov={"CRV1": "entity"})
    >>> res.first_stage_f, res.kp_rk_wald_f
    """

    def __init__(
        self,
        y: Any,
        exog: Any,
        endog: Any,
        instruments: Any,
        entity: Any = None,
        time: Any = None,
        *,
        entity_effects: bool = True,
        time_effects: bool = False,
        other_effects: dict[str, Any] | Sequence[Any] | None = None,
        weights: Any = None,
        drop_singletons: bool = True,
        exog_names: Sequence[str] | None = None,
        endog_names: Sequence[str] | None = None,
        instrument_names: Sequence[str] | None = None,
    ) -> None:
        from fastpanel.ols.model import PanelOLS

        yv = _as_vector(y.to_numpy() if hasattr(y, "to_numpy") else y, "y")
        n = yv.shape[0]
        self.yname = str(getattr(y, "name", None) or "y")
        E = np.empty((n, 0)) if exog is None else _as_matrix(exog, n, "exog")
        D = _as_matrix(endog, n, "endog")
        Z = _as_matrix(instruments, n, "instruments")
        self.exog_names = [] if exog is None else _names_of(exog, exog_names, "x")
        self.endog_names = _names_of(endog, endog_names, "d")
        self.instrument_names = _names_of(instruments, instrument_names, "z")
        for arr, nm, what in ((E, self.exog_names, "exog_names"), (D, self.endog_names, "endog_names"),
                              (Z, self.instrument_names, "instrument_names")):
            if len(nm) != arr.shape[1]:
                raise ValueError(f"{what} has {len(nm)} entries but the array has {arr.shape[1]} columns")
        _check_names(self.exog_names, self.endog_names, self.instrument_names)
        self._M = np.column_stack([yv, E, Z, D]).astype(np.float64, copy=False)
        # The fixed-effect and cluster bookkeeping is PanelOLS's (one code path for both).
        self._ols = PanelOLS(yv, E if E.shape[1] else np.zeros((n, 1)), entity, time, entity_effects=entity_effects,
                             time_effects=time_effects, other_effects=other_effects, weights=weights,
                             drop_singletons=drop_singletons, names=self.exog_names or ["_"])

    def fit(
        self,
        vcov: Any = "iid",
        *,
        ssc: str = "fixest",
        backend: str | None = None,
        collin_tol: float = 1e-10,
    ) -> "IVResults":
        """Estimate; ``vcov`` and ``ssc`` as in :func:`fastpanel.feols`."""
        from fastpanel.ols.iv_results import IVResults

        spec, extra = self._ols._vcov_extra(vcov, ssc)
        ols = self._ols
        state = estimate_iv(
            np.array(self._M, dtype=np.float64, order="F"), self.exog_names, self.endog_names,
            self.instrument_names, self.yname, ols.fe, weights=ols.weights, extra=extra,
            drop_singletons_=ols.drop_singletons, backend=backend, collin_tol=collin_tol,
            keep_raw=spec.kind == "CRV3",
        )
        return IVResults(state, spec, ssc)
