"""Covariance estimators of the fixed-effects OLS slopes and the small-sample presets.

Notation (all after the within transformation and the sqrt(w) weighting):
``X`` (n x k) the transformed regressors that were kept, ``u`` the transformed residuals,
``A = X'X``, ``B = A^{-1}`` (the bread), ``s_i = x_i u_i`` the scores, ``n`` the observations
used (after NaN and singleton removal), ``k`` the slopes (with the intercept when the model
has no fixed effects), ``G`` clusters.

Fixed-effect degrees of freedom (``L_f`` = levels of fixed-effect dimension f, F dimensions):

* ``fe_df_fixest = sum_f L_f - (F - 1)`` (pyfixest's ``k_fe_adj``; also linearmodels'
  ``neffects``, which drops one level per dimension after the first);
* ``fe_df_exact`` = rank of the dummy columns: ``L_1`` (one way), ``L_1 + L_2 - c`` with
  ``c`` the connected components of the bipartite level graph (two ways); for three or more
  ways the largest dimension's levels plus the rank of the Schur complement of the others
  (``fastpanel.kway``: one level per dimension per connected set pinned, then the null
  directions of the reduced system from its LU pivots or eigenvalues).

Presets (``ssc=``), with ``V0 = B M B`` the raw sandwich for the meat ``M``:

``"fixest"`` (default; pyfixest 0.60 ``ssc(k_adj=True, k_fixef="nonnested", G_adj=True,
G_df="min")``). ``K = k + fe_df_fixest``; for clustered types, each fixed-effect dimension
nested in a cluster variable contributes 1 instead of its levels
(``K = k + fe_df_fixest - sum_nested L_f + n_nested``).

* iid: ``V = ssr / (n - K) * B``; t with ``n - K`` df.
* HC0: ``V0``; HC1/HC2/HC3: ``n / (n - K) * V0`` (HC2/HC3 use leverage-scaled scores; pyfixest
  applies its hetero factor to them too); t with ``n - K`` df.
* CRV1: ``(n - 1) / (n - K) * G / (G - 1) * V0``; multiway (``{"CRV1": "g1+g2+...+gm"}``,
  m >= 2) by Cameron-Gelbach-Miller inclusion-exclusion ``V = sum_{S} (-1)^{|S|+1} V_S`` over
  the non-empty subsets S of the cluster variables, ``V_S`` clustered by the intersection of
  the variables in S (two-way: ``V1 + V2 - V12``), every term scaled by
  ``(n - 1) / (n - K) * Gmin / (Gmin - 1)``, ``Gmin`` the smallest cluster count of the m
  ORIGINAL variables (fixest ``cluster.df = "min"``; pyfixest 0.60 stops at two-way); t with
  ``Gmin - 1`` df.
* CRV3: ``(n - 1) / (n - K) * G / (G - 1) * sum_g (b_(-g) - b)(b_(-g) - b)'``.
* DK: ``(n - 1) / (n - K) * T / (T - 1) * V0`` with the Bartlett meat of the period sums
  (no nesting); t with ``T - 1`` df.

``"statsmodels"`` (statsmodels OLS on the data with explicit dummy columns).
``K = k + fe_df_exact`` (the number of dummy-design columns):

* iid: ``ssr / (n - K) * B``; HC0: ``V0``; HC1: ``n / (n - K) V0``; HC2/HC3: ``V0`` with the
  leverage of the full dummy design; t with ``n - K`` df.
* CRV1: ``G / (G - 1) * (n - 1) / (n - K) * V0``; two-way: each of ``V1, V2, V12`` with its own
  ``G_j / (G_j - 1)`` (statsmodels' ``cov_cluster_2groups``); m-way: each inclusion-exclusion
  term ``V_S`` with its own ``G_S / (G_S - 1)``, ``G_S`` the clusters of the intersection
  (statsmodels stops at two-way; this is its rule extended); t with ``Gmin - 1`` df.
* CRV3 (statsmodels' ``cluster-crv3``): ``(G - 1) / G * sum_g (b_(-g) - b)(b_(-g) - b)'``.
* DK: ``V0`` (Bartlett, no correction).

``"linearmodels"`` (linearmodels PanelOLS defaults: ``debiased=True``, ``auto_df=True``,
``group_debias=False``). ``K = k + e``, ``e = fe_df_fixest``, except that for clustered types
with exactly one fixed-effect dimension nested in every cluster variable ``e = 0``:

* iid ("unadjusted"): ``ssr / (n - K) * B``; HC1 ("robust"): ``n / (n - K) * V0``; HC0, HC2,
  HC3: no scale.
* CRV1 ("clustered"): ``n / (n - K) * V0`` (no G/(G-1)); two-way ``n / (n - K) (V1 + V2 - V12)``;
  m-way ``n / (n - K) sum_S (-1)^{|S|+1} V_S`` (linearmodels stops at two-way).
* CRV3: as statsmodels.
* DK (``cov_type="kernel"``, Bartlett, bandwidth ``floor(4 (T/100)^(2/9))`` by default):
  ``n / (n - K) * B S B`` with ``S = Z'Z + sum_{l<=bw} (1 - l/(bw+1)) (Z_l'Z_0 + Z_0'Z_l)``,
  ``Z`` (T x k) the period sums of the scores in period order.
  t with ``n - K`` df for every type.

Eigenvalue fix of CRV1 (Cameron, Gelbach & Miller 2011): an inclusion-exclusion sum need not
be positive semi-definite. With the fix on, ``D = diag(|V_jj|)^(-1/2)``, ``D V D = Q diag(l) Q'``
and ``V`` is replaced by ``D^-1 Q diag(max(l, 0)) Q' D^-1`` when some ``l_j < -1e-12 max|l|``
(above that the negative values are rounding of a PSD matrix, left as they are). CGM and R
fixest decompose ``V`` itself; the correlation scale makes the fix commute with rescaling a
regressor. A :class:`NonPSDCovarianceWarning` says how many eigenvalues were clipped and
``results.vcov_eigen_fixed`` records the count. The fix is on
by default for three or more cluster variables (no installed peer computes them; R fixest's
``vcov_fix`` defaults to TRUE), off by default for one- and two-way clustering, where
statsmodels, linearmodels and pyfixest 0.60 return the raw matrix; ``{"CRV1": "g1+g2",
"eigen_fix": True}`` turns it on, ``"eigen_fix": False`` off.

CR2 (``{"CR2": "g"}``, one cluster variable; :mod:`fastpanel.ols.cr2`): Bell-McCaffrey
``B [sum_g X_g' A_g u_g u_g' A_g X_g] B`` with ``A_g`` the inverse square root of the cluster's
block of ``I - H`` for the hat matrix ``H`` of the full design, fixed-effect dummies included
(with weights clubSandwich's ``[(I - H)(I - H)']_gg``), equal to R clubSandwich
``vcovCR(lm(y ~ x + factor(fe)), cluster, type = "CR2")``. No small-sample factor under any
preset (clubSandwich has none; fixest, statsmodels and linearmodels have no CR2); t with one
Satterthwaite df per coefficient (clubSandwich ``coef_test(test = "Satterthwaite")``), so
``df_t`` is an array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fastpanel.within import within

import numpy as np

__all__ = [
    "SSC_PRESETS",
    "VcovSpec",
    "parse_vcov",
    "bartlett_meat",
    "check_residual_df",
    "cluster_meat",
    "crv1_scale",
    "crv3_scale",
    "dk_scale",
    "hc_scale",
    "k_total",
    "score_group_sums",
    "hc_scores",
]

SSC_PRESETS = ("fixest", "statsmodels", "linearmodels")

_HC_ALIASES = {"hetero": "HC1", "robust": "HC1", "hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3"}


@dataclass(frozen=True)
class VcovSpec:
    """A parsed ``vcov=`` argument.

    kind is one of ``"iid"``, ``"HC0"``, ``"HC1"``, ``"HC2"``, ``"HC3"``, ``"CRV1"``, ``"CRV3"``,
    ``"CR2"``, ``"DK"``; ``clusters`` names the cluster variables (one or more); ``lags`` the DK bandwidth;
    ``eigen_fix`` the CRV1 eigenvalue fix (None: on for three or more cluster variables).
    """

    kind: str
    clusters: tuple = ()
    lags: int | None = None
    eigen_fix: bool | None = None

    @property
    def label(self) -> str:
        if self.kind in ("CRV1", "CRV3"):
            return f"{self.kind} by {' + '.join(str(c) for c in self.clusters)}"
        if self.kind == "DK":
            return f"Driscoll-Kraay (lags={'auto' if self.lags is None else self.lags})"
        if self.kind == "CR2":
            return f"CR2 (Bell-McCaffrey) by {self.clusters[0]}, Satterthwaite df"
        return self.kind


def parse_vcov(vcov: object) -> VcovSpec:
    """Parse ``"iid" | "HC0".."HC3" | "hetero" | {"CRV1": "g"} | {"CRV1": "g1+g2"} |
    {"CRV1": "g1+g2+...+gm"} | {"CRV3": "g"} | {"CR2": "g"} | {"DK": lags}`` (cluster values may
    also be arrays); a CRV1 dict may add ``"eigen_fix": True | False | None`` (module docstring)."""
    if vcov is None:
        return VcovSpec("iid")
    if isinstance(vcov, str):
        key = vcov.strip()
        if key.lower() in ("iid", "unadjusted", "nonrobust", "homoskedastic"):
            return VcovSpec("iid")
        if key.lower() in _HC_ALIASES:
            return VcovSpec(_HC_ALIASES[key.lower()])
        if key.upper() == "DK":
            return VcovSpec("DK")
        if key.upper() == "CR2":
            raise ValueError("vcov='CR2' needs its cluster variable: pass {'CR2': 'g'} (one variable)")
        raise ValueError(
            f"vcov={vcov!r} is not known; use 'iid', 'HC0', 'HC1' (= 'hetero'), 'HC2', 'HC3', "
            "{'CRV1': 'g'}, {'CRV1': 'g1+g2'}, {'CRV3': 'g'}, {'CR2': 'g'} or {'DK': lags}"
        )
    eigen_fix = None
    if isinstance(vcov, dict) and "eigen_fix" in vcov and len(vcov) == 2:
        # {"CRV1": "g1+g2", "eigen_fix": True}: the CRV1 eigenvalue fix (module docstring)
        vcov = dict(vcov)
        eigen_fix = vcov.pop("eigen_fix")
        if not (eigen_fix is None or isinstance(eigen_fix, (bool, np.bool_))):
            raise ValueError(f"vcov: 'eigen_fix' must be True, False or None, got {eigen_fix!r}")
        if str(next(iter(vcov))).upper() != "CRV1":
            raise ValueError("vcov: 'eigen_fix' applies to {'CRV1': ...} only, e.g. "
                             "{'CRV1': 'g1+g2', 'eigen_fix': True}")
        eigen_fix = None if eigen_fix is None else bool(eigen_fix)
    if isinstance(vcov, dict) and len(vcov) == 1:
        (key, value), = vcov.items()
        kind = str(key).upper()
        if kind in ("CRV1", "CRV3"):
            if isinstance(value, str):
                parts = tuple(p.strip() for p in value.split("+") if p.strip())
            elif isinstance(value, (list, tuple)):
                parts = tuple(value)
            else:
                parts = (value,)
            if len(parts) < 1:
                raise ValueError(f"vcov={{{key!r}: ...}} names no cluster variable; e.g. {{{key!r}: 'firm'}}")
            names = [p for p in parts if isinstance(p, str)]
            dup = sorted({p for p in names if names.count(p) > 1})
            if dup:
                # inclusion-exclusion over a repeated variable would subtract a term it added
                raise ValueError(f"vcov={{{key!r}: ...}} names the cluster variable {', '.join(map(repr, dup))} "
                                 "more than once; list each cluster variable once")
            if kind == "CRV3" and len(parts) != 1:
                raise ValueError(f"vcov={{'CRV3': ...}} supports one-way clustering only, got {len(parts)} cluster "
                                 "variables; use CRV1 for multiway clustering")
            return VcovSpec(kind, parts, eigen_fix=eigen_fix)
        if kind == "CR2":
            # CR2 (Bell-McCaffrey, fastpanel.ols.cr2): one-way only, as in clubSandwich
            if isinstance(value, str):
                cr2_parts = tuple(p.strip() for p in value.split("+") if p.strip())
            elif isinstance(value, (list, tuple)):
                cr2_parts = tuple(value)
            else:
                cr2_parts = (value,)
            if len(cr2_parts) != 1:
                raise ValueError(
                    f"vcov={{'CR2': ...}} takes exactly one cluster variable (CR2 is one-way), got "
                    f"{len(cr2_parts)}; use {{'CRV1': 'g1+g2'}} for multiway clustering"
                )
            return VcovSpec("CR2", cr2_parts)
        if kind == "DK":
            ok = value is None or (
                isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0
            )
            if not ok:
                raise ValueError(
                    f"vcov={{'DK': {value!r}}}: the number of lags must be a non-negative integer "
                    "(or None for the default), e.g. {'DK': 2}"
                )
            return VcovSpec("DK", (), None if value is None else int(value))
    raise ValueError(
        f"vcov={vcov!r} is not understood; pass a string such as 'HC1' or a one-entry dict such "
        "as {'CRV1': 'entity'} or {'DK': 2}"
    )


def group_sums(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group column sums (n_groups x k) of ``values`` (n x k), one bincount per column."""
    return np.column_stack(
        [np.bincount(codes, weights=values[:, j], minlength=n_groups) for j in range(values.shape[1])]
    ) if values.shape[1] else np.zeros((n_groups, 0))


def cluster_meat(scores: np.ndarray, codes: np.ndarray, n_groups: int, factor=None) -> np.ndarray:
    """``sum_g (sum_{i in g} s_i)(sum_{i in g} s_i)'``."""
    if factor is not None and factor.is_sorted and n_groups > 0:
        # rows of each cluster are contiguous: one segmented sum, no scatter
        sums = np.add.reduceat(scores, factor.group_starts[:-1], axis=0)
    else:
        sums = group_sums(scores, codes, n_groups)
    return sums.T @ sums


def score_group_sums(X: np.ndarray, u: np.ndarray, codes: np.ndarray, n_groups: int, factor=None) -> np.ndarray:
    """Per-group sums of the scores ``x_i u_i`` (n_groups x k), one column at a time, so no
    n x k score matrix is formed (it would be one more copy of X on a large panel)."""
    segmented = factor is not None and factor.is_sorted and n_groups > 0
    cols = []
    for j in range(X.shape[1]):
        s = X[:, j] * u
        cols.append(np.add.reduceat(s, factor.group_starts[:-1]) if segmented
                    else np.bincount(codes, weights=s, minlength=n_groups))
    return np.column_stack(cols) if cols else np.zeros((n_groups, 0))


def _cluster_score_sums(state, factor) -> np.ndarray:
    """Cluster sums of the scores: one fused C++ pass over the transformed [y, X] buffer when
    the fit kept it (unweighted in-place fits), else column by column from the residuals."""
    if state.zyx is not None:
        from fastpanel import _core

        order = factor.order
        sums, _ = _core.ols_cluster_scores(
            state.zyx, state.coef_all, np.empty(0, dtype=np.int64) if order is None else order,
            factor.group_starts,
        )
        return sums[:, state.kept_all]
    return score_group_sums(state.X, state.resid(), factor.codes, factor.n_levels, factor)


def bartlett_meat(scores: np.ndarray, time_codes: np.ndarray, n_periods: int, lags: int) -> np.ndarray:
    """Driscoll-Kraay meat: Bartlett kernel over the period sums of the scores (period order)."""
    z = group_sums(scores, time_codes, n_periods)
    meat = z.T @ z
    for lag in range(1, lags + 1):
        op = z[lag:].T @ z[:-lag]
        meat += (1.0 - lag / (lags + 1.0)) * (op + op.T)
    return meat


def default_dk_lags(n_periods: int) -> int:
    """linearmodels' rule of thumb ``floor(4 (T / 100)^(2/9))``."""
    return int(np.floor(4.0 * (n_periods / 100.0) ** (2.0 / 9.0)))


def hc_scores(
    kind: str, X: np.ndarray, u: np.ndarray, bread: np.ndarray, fe_leverage: np.ndarray | None
) -> np.ndarray:
    """Scores ``x_i u_i``, divided by ``sqrt(1 - h_i)`` (HC2) or ``1 - h_i`` (HC3)."""
    scores = X * u[:, None]
    if kind in ("HC2", "HC3"):
        h = np.einsum("ij,jk,ik->i", X, bread, X)
        if fe_leverage is not None:
            h = h + fe_leverage
        one_minus = 1.0 - h
        if (one_minus <= 1e-12).any():
            raise ValueError(
                f"vcov='{kind}': {int((one_minus <= 1e-12).sum())} observations have leverage 1, so "
                f"{kind} is undefined; use 'HC1' or a clustered covariance"
            )
        scores = scores / (np.sqrt(one_minus) if kind == "HC2" else one_minus)[:, None]
    return scores


def sandwich(bread: np.ndarray, meat: np.ndarray) -> np.ndarray:
    out = bread @ meat @ bread
    return 0.5 * (out + out.T)


def nested_in(fe_codes: np.ndarray, n_levels: int, cluster_codes: np.ndarray) -> bool:
    """Whether every level of a fixed effect lies inside one cluster."""
    if fe_codes is cluster_codes or (cluster_codes.max(initial=-1) + 1 > n_levels):
        # the same variable, or more clusters than levels (a level cannot then span them all)
        return fe_codes is cluster_codes
    first = np.full(n_levels, -1, dtype=np.int64)
    first[fe_codes] = cluster_codes
    return bool((first[fe_codes] == cluster_codes).all())


ScaleFn = Callable[..., float]


def _fe_leverage(state) -> np.ndarray | None:
    """The fixed effects' part of the leverage: ``w_i / W_g`` for one-way effects."""
    factors = state.fe_factors
    if not factors:
        return None
    if getattr(state, "fe_slopes", None):
        raise ValueError(
            "HC2/HC3 need the leverage of the fixed effects, which is computed exactly only for one plain "
            "fixed-effect dimension, not with varying slopes; use 'HC1' or a clustered covariance"
        )
    if len(factors) > 1:
        raise ValueError(
            "HC2/HC3 need the leverage of the fixed effects, which is computed exactly only for one "
            "fixed-effect dimension; use 'HC1' or a clustered covariance with several dimensions"
        )
    f = factors[0]
    w = np.ones(f.n_obs) if state.weights is None else state.weights
    totals = np.bincount(f.codes, weights=w, minlength=f.n_levels)
    return w / totals[f.codes]


def _cluster_factors(state, spec: VcovSpec) -> list:
    out = [state.extra[f"__cluster__{c}"] for c in spec.clusters]
    for c, f in zip(spec.clusters, out):
        if f.n_levels < 2:
            raise ValueError(
                f"cluster variable {c!r} has a single cluster in the sample; clustered standard errors "
                "need at least two clusters (use 'HC1' instead)"
            )
    return out


def _intersection(f1, f2):
    from fastpanel.factor import factorize

    return factorize(f1.codes * np.int64(f2.n_levels) + f2.codes, "intersection")


def _k_total(state, ssc: str, spec: VcovSpec, clusters: list) -> int:
    """K of the preset (see the module docstring)."""
    k = state.k
    if not state.fe_factors:
        return k
    if ssc == "statsmodels":
        return k + state.fe_df_exact
    clustered = spec.kind in ("CRV1", "CRV3")
    # linearmodels: one dimension nested in every cluster variable; fixest: in any
    test = all if ssc == "linearmodels" else any
    nested = [clustered and test(nested_in(f.codes, f.n_levels, c.codes) for c in clusters)
              for f in state.fe_factors]
    # varying-slope coefficients count in full (never discounted for nesting in a cluster)
    slopes = getattr(state, "n_slope_params", 0)
    return k_total(k, [f.n_levels for f in state.fe_factors], ssc, clustered, nested) + slopes


def _crv3_params(state, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Leave-one-cluster-out coefficients b_(-g) (G x k).

    When every fixed effect is nested in the clusters (or there is none), removing a cluster
    leaves the transformed data of the other clusters unchanged, so
    ``b_(-g) = (A - X_g'X_g)^{-1} (X'y - X_g'y_g)`` is exact. Otherwise the model is refitted
    without each cluster (the fixed effects re-estimated), which is exact and costs G fits.
    """
    if hasattr(state, "crv3_params"):  # an estimator with its own leave-out fit (2SLS)
        return state.crv3_params(codes, n_groups)
    factors = state.fe_factors
    slopes = getattr(state, "fe_slopes", [])
    k = state.k
    if all(nested_in(f.codes, f.n_levels, codes) for f in [*factors, *(vs.factor for vs in slopes)]):
        X, yt = state.X, state.X @ state.params + state.resid()
        A = X.T @ X
        b = X.T @ yt
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(n_groups))
        Xs, ys = X[order], yt[order]
        outer = np.add.reduceat(Xs[:, :, None] * Xs[:, None, :], starts, axis=0)
        xy = np.add.reduceat(Xs * ys[:, None], starts, axis=0)
        # Equilibrate before solving: a singular-value cutoff (lstsq) relative to the largest
        # column would truncate a regressor of scale 1e-8 next to one of scale 1 and break the
        # exact scaling of the standard errors.
        d = 1.0 / np.sqrt(np.maximum(np.diag(A), np.finfo(float).tiny))
        out = np.empty((n_groups, k))
        for g in range(n_groups):
            Ag = (A - outer[g]) * d[:, None] * d[None, :]
            out[g] = d * np.linalg.lstsq(Ag, (b - xy[g]) * d, rcond=None)[0]
        return out
    from fastpanel.ols.model import absorb

    y, Xr, w = state.y_raw, state.X_raw, state.weights
    out = np.empty((n_groups, k))
    for g in range(n_groups):
        keep = codes != g
        fsub = [f.subset(keep) for f in factors]
        stacked = np.asfortranarray(np.column_stack([y[keep], Xr[keep]]))
        wk = None if w is None else w[keep]
        t = absorb(stacked, fsub, [vs.subset(keep) for vs in slopes], wk)[0]
        if wk is not None:
            t = t * np.sqrt(wk)[:, None]
        Xg = t[:, 1:]
        d = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->j", Xg, Xg)), np.finfo(float).tiny)
        out[g] = d * np.linalg.lstsq(Xg * d, t[:, 0], rcond=None)[0]
    return out


def k_total(k: int, fe_levels: list[int], ssc: str, clustered: bool, nested: list[bool]) -> int:
    """K of the preset from the slopes, the fixed-effect level counts and, for each fixed
    effect, whether it is nested in a cluster variable (see the module docstring; the
    statsmodels preset takes its K from ``fe_df_exact`` and is handled by the caller)."""
    if not fe_levels:
        return k
    fe_df_fixest = sum(fe_levels) - (len(fe_levels) - 1)
    if ssc == "linearmodels":
        if clustered and len(fe_levels) == 1 and nested[0]:
            return k
        return k + fe_df_fixest
    K = k + fe_df_fixest
    if clustered:
        K += sum(1 - L for L, is_nested in zip(fe_levels, nested) if is_nested)
    return K


def crv1_scale(ssc: str, n: int, K: int, G: int, g_min: int) -> float:
    """Factor of one CRV1 term ``B (sum_g s_g s_g') B`` of a cluster variable with G clusters."""
    if ssc == "fixest":
        return (n - 1) / (n - K) * g_min / (g_min - 1)
    if ssc == "statsmodels":
        return (n - 1) / (n - K) * G / (G - 1)
    return n / (n - K)


def hc_scale(kind: str, ssc: str, n: int, K: int) -> float:
    """Factor of the HC0-HC3 sandwich (fixest scales HC2/HC3 too; the others only HC1)."""
    if kind == "HC1" or (kind != "HC0" and ssc == "fixest"):
        return n / (n - K)
    return 1.0


def crv3_scale(ssc: str, n: int, K: int, G: int) -> tuple[float, float]:
    """Factor of ``sum_g (b_(-g) - b)(b_(-g) - b)'`` and the df of its t distribution."""
    if ssc == "fixest":
        return (n - 1) / (n - K) * G / (G - 1), float(G - 1)
    return (G - 1) / G, (float(n - K) if ssc == "linearmodels" else float(G - 1))


def dk_scale(ssc: str, n: int, K: int, T: int) -> tuple[float, float]:
    """Factor of the Driscoll-Kraay sandwich and the df of its t distribution."""
    if ssc == "linearmodels":
        return n / (n - K), float(n - K)
    if ssc == "fixest":
        return (n - 1) / (n - K) * T / (T - 1), float(T - 1)
    return 1.0, float(n - K)


def check_residual_df(n: int, k: int, K: int, fe_df_upper: int, fe_df_exact: Callable[[], int]) -> None:
    """Raise when no residual degrees of freedom are left (the fit is exact, or K >= n)."""
    # fe_df_upper bounds the rank from above: the exact count is needed only when it says no
    # residual degrees of freedom are left (with 3+ ways it can cost a Schur factorisation).
    if n - k - fe_df_upper <= 0 and n - k - fe_df_exact() <= 0:
        # Whatever K a clustered convention uses, the residuals are zero up to rounding here:
        # any standard error would be a number made of rounding errors.
        raise ValueError(
            f"the model fits the {n} observations exactly ({k} slopes and {fe_df_exact()} fixed-effect "
            "parameters): no residual degrees of freedom, so standard errors are undefined; use fewer "
            "regressors or fixed effects, or more data"
        )
    if n - K <= 0:
        raise ValueError(
            f"no residual degrees of freedom: {n} observations but {K} parameters (slopes and fixed "
            "effects); use fewer regressors or fixed effects, or more data"
        )


class NonPSDCovarianceWarning(UserWarning):
    """A multiway clustered covariance was not positive semi-definite: its negative eigenvalues
    were set to zero (Cameron, Gelbach & Miller 2011); ``results.vcov_eigen_fixed`` counts them."""


#: eigenvalues below -_PSD_RTOL * max|eigenvalue| are negative; above it, rounding of a PSD matrix
_PSD_RTOL = 1e-12


def psd_eigen_fix(V: np.ndarray, label: str = "CRV1") -> tuple[np.ndarray, int]:
    """The CGM (2011) eigenvalue fix, on the correlation scale: with ``D = diag(|V_jj|)^(-1/2)``
    and ``D V D = Q diag(l) Q'``, returns ``D^-1 Q diag(max(l, 0)) Q' D^-1`` and the count of
    eigenvalues below ``-1e-12 max|l|``; when there is none, ``V`` itself (a PSD matrix keeps its
    bits) and 0. Warns (:class:`NonPSDCovarianceWarning`) when it clips.

    CGM and R fixest decompose ``V`` itself; equilibrating first makes the fix commute with
    rescaling a regressor (its standard error then scales exactly, as for every other covariance)
    and lets one tolerance serve coefficients of any scale.
    """
    if V.size == 0 or not np.isfinite(V).all():
        return V, 0
    diag = np.abs(np.diag(V))
    d = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    C = V * d[:, None] * d[None, :]
    vals, vecs = np.linalg.eigh(0.5 * (C + C.T))
    top = float(np.abs(vals).max())
    n_neg = int((vals < -_PSD_RTOL * top).sum())
    if n_neg == 0:
        return V, 0
    import warnings

    were = "was" if n_neg == 1 else "were"
    warnings.warn(
        f"the covariance ({label}) is not positive semi-definite: {n_neg} of the {vals.size} eigenvalues of its "
        f"correlation-scaled matrix {were} negative (smallest {vals.min():.3g}) and {were} set to zero (Cameron, "
        "Gelbach & Miller 2011); results.vcov_eigen_fixed records the count (vcov={'CRV1': ..., 'eigen_fix': "
        "False} keeps the raw matrix)",
        NonPSDCovarianceWarning,
        stacklevel=4,
    )
    fixed = (vecs * np.maximum(vals, 0.0)) @ vecs.T / d[:, None] / d[None, :]
    return 0.5 * (fixed + fixed.T), n_neg


def compute_vcov(state, spec: VcovSpec, ssc: str) -> tuple[np.ndarray, float]:
    """Covariance of the slopes and the degrees of freedom of its t distribution."""
    n, X, bread = state.nobs, state.X, state.bread
    clusters = _cluster_factors(state, spec) if spec.clusters else []
    K = _k_total(state, ssc, spec, clusters)
    check_residual_df(n, state.k, K, state.fe_df_fixest if state.fe_factors else 0,
                      lambda: state.fe_df_exact if state.fe_factors else 0)
    df_resid = float(n - K)
    kind = spec.kind
    if kind == "iid":
        return state.ssr / (n - K) * bread, df_resid
    if kind.startswith("HC"):
        lev = _fe_leverage(state) if kind in ("HC2", "HC3") else None
        scores = hc_scores(kind, X, state.resid(), bread, lev)
        return hc_scale(kind, ssc, n, K) * sandwich(bread, scores.T @ scores), df_resid
    if kind == "CRV1":
        from itertools import combinations

        # Inclusion-exclusion over the non-empty subsets (in the order V1, V2, ..., V12, ...,
        # V123, ...; two-way keeps its former order and bits). Each intersection is factorised
        # from the one of its first |S| - 1 variables, so the codes stay below n.
        inter = {(j,): c for j, c in enumerate(clusters)}
        g_min = min(c.n_levels for c in clusters)
        V = np.zeros_like(bread)
        for size in range(1, len(clusters) + 1):
            sign = 1.0 if size % 2 else -1.0
            for subset in combinations(range(len(clusters)), size):
                if subset not in inter:
                    inter[subset] = _intersection(inter[subset[:-1]], clusters[subset[-1]])
                c = inter[subset]
                sums = _cluster_score_sums(state, c)
                V += sign * crv1_scale(ssc, n, K, c.n_levels, g_min) * sandwich(bread, sums.T @ sums)
        fix = len(clusters) >= 3 if spec.eigen_fix is None else spec.eigen_fix
        V, clipped = psd_eigen_fix(V, spec.label) if fix else (V, 0)
        state.vcov_eigen_fixed = clipped  # read by OLSResults.vcov_eigen_fixed
        return V, (df_resid if ssc == "linearmodels" else float(g_min - 1))
    if kind == "CR2" and getattr(state, "fe_slopes", None):
        raise ValueError("vcov={'CR2': ...} is not available with varying slopes (its leverage is that of plain "
                         "dummies); use {'CRV1': ...} or {'CRV3': ...}")
    if kind == "CR2":
        # Bell-McCaffrey with the leverage of the full dummy design and one Satterthwaite df per
        # slope (clubSandwich); no small-sample factor under any ssc preset (fastpanel.ols.cr2)
        from fastpanel.ols.cr2 import cr2_vcov

        return cr2_vcov(state, clusters[0])
    if kind == "CRV3":
        c = clusters[0]
        G = c.n_levels
        diffs = _crv3_params(state, c.codes, G) - state.params
        scale, df_t = crv3_scale(ssc, n, K, G)
        return scale * (diffs.T @ diffs), df_t
    if kind == "DK":
        t = state.extra["__time__"]
        T = t.n_levels
        if T < 2:
            raise ValueError(
                f"vcov={{'DK': ...}} (Driscoll-Kraay) needs at least 2 periods in the sample, got {T}; "
                "use 'hetero' or a clustered covariance"
            )
        lags = default_dk_lags(T) if spec.lags is None else spec.lags
        if lags >= T:
            raise ValueError(f"vcov={{'DK': {lags}}}: the lags must be below the number of periods ({T})")
        V0 = sandwich(bread, bartlett_meat(X * state.resid()[:, None], t.codes, T, lags))
        scale, df_t = dk_scale(ssc, n, K, T)
        return scale * V0, df_t
    raise ValueError(f"unknown covariance type {kind!r}")
