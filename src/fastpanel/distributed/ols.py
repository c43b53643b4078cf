"""Fixed-effects OLS on a Dask DataFrame: the in-memory ``feols`` split at its global steps.

Algorithm
---------
The rows are shuffled once on the entity column (every partition then holds whole entities)
and persisted on the workers.
Each round maps a small function over the partitions and adds the returned arrays in partition
order on the client (the same numbers for any number of workers):

1. cleaning: rows with NaN/inf values or missing ids are dropped and counted; singletons are
   dropped iteratively as in memory (entity counts are local; the period counts are summed
   across partitions each round, and each partition replays the earlier rounds' counts);
2. moments of ``[y, X]`` (weighted totals, means, centred cross-products, combined exactly by
   the parallel-axis rule): total and pooled sums of squares, the collinearity scale;
3. two-way effects only: the period block's Schur pieces ``S_p, r_p`` (as ``within_dask``),
   then ``gamma = S^+ r``;
4. the Gram matrix of the transformed, sqrt(w)-scaled ``[y, X]``: the slopes by the in-memory
   Cholesky solve with the same collinearity rule;
5. the residuals' statistics: SSR, ``sum_i s_i s_i'`` (HC), the cluster cross-products of the
   entity and (entity, period) cell score sums (local), the period score sums (T x k, for
   period clusters and Driscoll-Kraay), and whether the effects are nested in the clusters.

Everything that crosses the network per partition is O(k^2 + T k + T^2) numbers. The covariance
factors are the in-memory ones (``fastpanel.ols.covariance``). Results equal the in-memory fit
of the same rows to rounding (1e-10 in the tests).

Supported: ``"y ~ x1 + x2 | entity"`` or ``"... | entity + period"`` with regressors named by
column or by row-wise formula terms (``np.log(x)``, ``x1:x2``; not ``C(x)``); vcov ``iid``, ``HC0``, ``HC1``, ``HC2``/``HC3`` (entity effects only: the leverage adds
``w_i / W_g``), ``{"CRV1": g}`` / ``{"CRV1": "g1+g2"}`` with clusters among the fixed effects,
``{"CRV3": entity}`` (entity effects only: leave-one-cluster-out slopes from the global Gram
matrix, per partition), ``{"DK": lags}`` (``time=`` a period column); every ``ssc`` preset
(statsmodels' two-way df count the connected sets of the entity-period graph, from the period
pairs each partition's entities link). IV formulas (``| d ~ z``) continue in
:mod:`fastpanel.distributed.iv`. Anything else raises a ``ValueError``
that names what is supported.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastpanel.distributed.within import _period_codes, _require_dask, period_apply, period_schur, within_kernels
from fastpanel.factor import factorize
from fastpanel.ols import covariance as cov
from fastpanel.ols.formula import _design, _parse, _required
from fastpanel.ols.model import CollinearityWarning, _pooled_ssr, _solve
from fastpanel.ols.results import OLSResults
from fastpanel.within import DIRECT_MAX_LEVELS, twoway_gamma, within

__all__ = ["feols_dask", "SUPPORTED"]

SUPPORTED = ("on Dask, feols supports 'y ~ x1 + x2 | entity' or 'y ~ x1 + x2 | entity + period' with regressors "
             "named by column or row-wise terms (np.log(x), x1:x2; not C(x)); vcov 'iid', 'HC0', 'HC1', "
             "'HC2'/'HC3' (entity effects only), {'CRV1': fixed effect(s)}, "
             "{'CRV3': entity} (entity effects only) or {'DK': lags} with time=; ssc 'fixest', 'linearmodels' or "
             "'statsmodels'; IV ('| d ~ z') with variables named by column and vcov 'iid', 'HC0', 'HC1', "
             "CRV1 or DK")


@dataclass
class _Levels:
    """What the results need of a factor of the distributed fit: its level count."""

    n_levels: int


@dataclass
class _Spec:
    y: str
    xs: list[str]
    entity: str
    period: str | None
    time: str | None  # period column of Driscoll-Kraay (may be the period effect's)
    weights: str | None
    periods: np.ndarray | None  # sorted global levels of the period effect
    times: np.ndarray | None  # sorted global levels of time
    drop_singletons: bool


@dataclass
class DaskFitState:
    """The summary a distributed fit leaves: what OLSResults reads, and the covariance."""

    yname: str
    names: list[str]
    params: np.ndarray
    bread: np.ndarray
    ssr: float
    tss_within: float
    tss: float
    nobs: int
    n_dropped: int
    n_singletons: int
    fe_factors: list[_Levels]
    fe_names: list[str]
    dropped: list[str]
    backend: str
    pooled_ssr: float
    vcov: tuple[np.ndarray, float] | None = None
    n_components: int = 1  # connected sets of the entity-period graph (two-way fits)
    extra: dict[str, Any] = field(default_factory=dict)
    has_intercept: bool = False
    weights: None = None
    X_raw: None = None
    y_raw: None = None

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def fe_df_fixest(self) -> int:
        return sum(f.n_levels for f in self.fe_factors) - (len(self.fe_factors) - 1)

    @property
    def fe_df_exact(self) -> int:
        """Rank of the dummies: L_E (one way), L_E + L_T - c (two ways, c connected sets)."""
        if len(self.fe_factors) == 1:
            return self.fe_factors[0].n_levels
        return self.fe_factors[0].n_levels + self.fe_factors[1].n_levels - self.n_components


# -- per-partition steps ------------------------------------------------------------------------
def _clean(part: pd.DataFrame, sp: _Spec, history: list[np.ndarray]) -> dict:
    """The partition's rows after NaN and singleton removal (replaying ``history``, the global
    period counts of the earlier rounds)."""
    cols = [sp.y] + sp.xs
    Z = part[cols].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(Z).all(axis=1)
    w = None
    if sp.weights is not None:
        w = part[sp.weights].to_numpy(dtype=np.float64, na_value=np.nan)
        ok &= np.isfinite(w)
    ent = factorize(part[sp.entity].to_numpy(), sp.entity).codes
    ok &= ent >= 0
    per = _period_codes(part, sp.period, sp.periods) if sp.period else None
    if per is not None:
        ok &= per >= 0
    tim = _period_codes(part, sp.time, sp.times) if sp.time else None
    if tim is not None:
        ok &= tim >= 0
    n_nan = int((~ok).sum())
    keep = ok.copy()
    if sp.drop_singletons:
        steps = history if sp.period else history[:1]
        for counts in steps:
            e_counts = np.bincount(ent[keep], minlength=ent.max(initial=-1) + 1)
            single = keep & (e_counts[np.maximum(ent, 0)] == 1)
            if per is not None:
                single |= keep & (counts[np.maximum(per, 0)] == 1)
            keep &= ~single
    out = {"Z": np.asfortranarray(Z[keep]), "ent": factorize(ent[keep], sp.entity), "n_nan": n_nan, "keep": keep,
           "n_kept": int(keep.sum()), "n_ok": int(ok.sum()), "w": None if w is None else w[keep],
           "per": None if per is None else per[keep], "tim": None if tim is None else tim[keep]}
    if out["w"] is not None and (out["w"] <= 0).any():
        out["bad_weights"] = int((out["w"] <= 0).sum())
    return out


def _period_counts(part: pd.DataFrame, sp: _Spec, history: list[np.ndarray]) -> dict:
    c = _clean(part, sp, history)
    n_p = sp.periods.size if sp.period else 0
    return {"n_nan": c["n_nan"], "n_kept": c["n_kept"], "n_ok": c["n_ok"], "bad_weights": c.get("bad_weights", 0),
            "counts": np.bincount(c["per"], minlength=n_p) if sp.period else np.zeros(0)}


def _moments(part: pd.DataFrame, sp: _Spec, history: list[np.ndarray]) -> dict:
    c = _clean(part, sp, history)
    Z, w = c["Z"], c["w"]
    ww = np.ones(Z.shape[0]) if w is None else w
    W = float(ww.sum())
    mean = (ww @ Z) / W if W > 0 else np.zeros(Z.shape[1])
    Zc = Z - mean
    return {"W": W, "mean": mean, "C": (Zc * ww[:, None]).T @ Zc, "n_entities": c["ent"].n_levels}


def _schur(part: pd.DataFrame, sp: _Spec, history: list[np.ndarray], center: np.ndarray) -> dict:
    c = _clean(part, sp, history)
    n_t = sp.periods.size
    if c["n_kept"] == 0:
        return {"r": np.zeros((n_t, center.size)), "S": np.zeros((n_t, n_t))}
    r, S = period_schur(np.asfortranarray(c["Z"] - center), c["ent"], c["per"], n_t, c["w"])
    return {"r": r, "S": S}


def _transformed(part: pd.DataFrame, sp: _Spec, history: list[np.ndarray], center: np.ndarray,
                 gamma: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """The partition's transformed, sqrt(w)-scaled [y, X] (exactly the in-memory transform)."""
    c = _clean(part, sp, history)
    Z = np.asfortranarray(c["Z"] - center)  # the effects absorb constants: work near zero
    if c["n_kept"] == 0:
        return Z, c
    if gamma is None:
        out = within(Z, c["ent"].codes, weights=c["w"])
    else:
        out = period_apply(Z, c["ent"], c["per"], gamma, c["w"])
    if c["w"] is not None:
        out = out * np.sqrt(c["w"])[:, None]
    return out, c


def _gram(part: pd.DataFrame, sp: _Spec, history, center, gamma) -> np.ndarray:
    Zt, _ = _transformed(part, sp, history, center, gamma)
    return Zt.T @ Zt


def _crv3_cross(X: np.ndarray, yt: np.ndarray, codes: np.ndarray, n_groups: int, A: np.ndarray, b: np.ndarray,
                beta: np.ndarray) -> np.ndarray:
    """sum over this partition's clusters g of (b_(-g) - b)(b_(-g) - b)', with
    b_(-g) = (A - X_g'X_g)^{-1} (X'y - X_g'y_g) equilibrated as in memory (the fixed effects are
    nested in the clusters, so removing one leaves the others' transformed data unchanged)."""
    k = X.shape[1]
    outer = np.zeros((n_groups, k, k))
    np.add.at(outer, codes, X[:, :, None] * X[:, None, :])
    xy = cov.group_sums(X * yt[:, None], codes, n_groups)
    d = 1.0 / np.sqrt(np.maximum(np.diag(A), np.finfo(float).tiny))
    Ag = (A[None] - outer) * d[None, :, None] * d[None, None, :]
    rhs = (b[None] - xy) * d[None]
    diffs = d[None] * np.linalg.solve(Ag, rhs[..., None])[..., 0] - beta[None]
    return diffs.T @ diffs


def _score_stats(part: pd.DataFrame, sp: _Spec, history, center, gamma, beta: np.ndarray, kept: list[int],
                 kind: str, bread: np.ndarray, A: np.ndarray, b: np.ndarray, lin: list | None = None) -> dict:
    """The partition's residual statistics. ``lin`` (IV and its auxiliary regressions): a list of
    (M, c), the regressors ``Zt M`` and residuals ``Zt c`` of each regression as linear maps of
    the transformed ``[y, X]``; their scores are stacked side by side, and ``ssr`` holds each
    regression's residual cross-products (a matrix)."""
    Zt, c = _transformed(part, sp, history, center, gamma)
    if lin is None:
        X = Zt[:, 1:][:, kept]
        u = Zt[:, 0] - X @ beta
        s = X * u[:, None]
        ssr: Any = float(u @ u)
    else:
        U = np.column_stack([Zt @ cv for _, cv in lin]) if lin else np.zeros((Zt.shape[0], 0))
        s = np.hstack([(Zt @ M) * U[:, [j]] for j, (M, _) in enumerate(lin)])
        ssr = U.T @ U
    ent = c["ent"]
    e_sums = cov.group_sums(s, ent.codes, ent.n_levels)
    out = {"ssr": ssr, "hc": s.T @ s, "entity": e_sums.T @ e_sums}
    if kind in ("HC2", "HC3"):  # leverage: the slopes' part plus the entity effects' w_i / W_g
        w = np.ones(X.shape[0]) if c["w"] is None else c["w"]
        lev = np.einsum("ij,jk,ik->i", X, bread, X) + w / np.bincount(ent.codes, w, minlength=ent.n_levels)[ent.codes]
        one_minus = 1.0 - lev
        out["leverage_one"] = int((one_minus <= 1e-12).sum())
        if not out["leverage_one"]:
            sc = s / (np.sqrt(one_minus) if kind == "HC2" else one_minus)[:, None]
            out["hc"] = sc.T @ sc
    if kind == "CRV3":
        out["crv3"] = _crv3_cross(X, Zt[:, 0], ent.codes, ent.n_levels, A, b, beta)
    if sp.period:
        n_t = sp.periods.size
        z = cov.group_sums(s, c["per"], n_t)
        cell = factorize(ent.codes * np.int64(n_t) + c["per"], "cell")
        cs = cov.group_sums(s, cell.codes, cell.n_levels)
        first = np.full(ent.n_levels, -1, dtype=np.int64)
        first[ent.codes] = c["per"]
        pairs = np.unique(ent.codes * np.int64(n_t) + c["per"])
        # edges between the periods each entity links (its first period to each other one): the
        # connected sets of the whole entity-period graph are those of the periods' union
        links = np.unique(first[ent.codes] * np.int64(n_t) + c["per"])
        out.update(period_sums=z, cell=cs.T @ cs, n_cells=cell.n_levels,
                   entity_one_period=bool((first[ent.codes] == c["per"]).all()),
                   entities_per_period=np.bincount(pairs % n_t, minlength=n_t),
                   period_links=np.column_stack([links // n_t, links % n_t]))
    if sp.time:
        out["time_sums"] = cov.group_sums(s, c["tim"], sp.times.size)
        out["time_counts"] = np.bincount(c["tim"], minlength=sp.times.size)
    return out


_Y_COLUMN = "__fastpanel_y__"


def _design_frame(part: pd.DataFrame, lhs: str, rhs: str, extra: list[str], names: list[str] | None = None
                  ) -> pd.DataFrame:
    """The partition's dependent variable and regressors by the in-memory design code (formula
    terms evaluated row by row), with the id, weight and time columns carried along."""
    if len(part) == 0 and names is not None:
        cols = {_Y_COLUMN: pd.Series(dtype=np.float64), **{n: pd.Series(dtype=np.float64) for n in names}}
        return pd.DataFrame(cols).assign(**{c: part[c] for c in extra})
    with np.errstate(all="ignore"):  # log of <= 0 gives NaN: those rows are dropped and counted
        y, X, got, _, _ = _design(lhs, rhs, part, True)
    if names is not None and got != names:
        raise ValueError(f"the formula's terms differ between partitions ({got} vs {names})")
    out = pd.DataFrame(X, columns=got, index=part.index)
    out.insert(0, _Y_COLUMN, y)
    for c in extra:
        out[c] = part[c].to_numpy()
    return out


def _period_components(links: np.ndarray, present: np.ndarray) -> int:
    """Connected sets of the entity-period graph, from the period pairs that entities link."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    T = present.size
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(T, T))
    _, labels = connected_components(graph, directed=False)
    return int(np.unique(labels[present]).size)


def _vcov_context(spec: cov.VcovSpec, ssc: str, sc: list[dict], state: Any, fes: list[str], period: str | None,
                  n_entities: int, n_periods: int, epp: np.ndarray | None) -> dict:
    """What the covariance of every regression on the fit's sample shares: the cluster counts
    (checked, and recorded on ``state.extra``), which effects are nested in the clusters, the
    connected sets of the entity-period graph."""
    clustered = spec.kind in ("CRV1", "CRV3")
    cluster_levels = {fes[0]: n_entities}
    if period:
        cluster_levels[period] = n_periods
    for c in spec.clusters:
        if cluster_levels[c] < 2:
            raise ValueError(f"cluster variable {c!r} has a single cluster in the sample; clustered standard errors "
                             "need at least two clusters (use 'HC1' instead)")
        state.extra[f"__cluster__{c}"] = _Levels(cluster_levels[c])
    nested = []
    if clustered:
        test = all if ssc == "linearmodels" else any
        nest = {(fes[0], fes[0]): True}
        if period:
            nest[(fes[0], period)] = all(s["entity_one_period"] for s in sc)
            nest[(period, period)] = True
            nest[(period, fes[0])] = bool((epp[epp > 0] == 1).all())
        nested = [test(nest[(f, c)] for c in spec.clusters) for f in fes]
    if period:
        state.n_components = _period_components(np.concatenate([s["period_links"] for s in sc]), epp > 0)
    levels = [n_entities] + ([n_periods] if period else [])
    return {"clustered": clustered, "cluster_levels": cluster_levels, "nested": nested, "levels": levels,
            "fes": fes, "period": period, "n_entities": n_entities}


def _assemble_vcov(spec: cov.VcovSpec, ssc: str, ctx: dict, sc: list[dict], bread: np.ndarray, ssr: float, k: int,
                   state: Any, sl: slice = slice(None)) -> tuple[np.ndarray, Any]:
    """The covariance (and t df) of a regression with ``k`` coefficients from the summed partition
    statistics ``sc``: its scores are the columns ``sl`` of the stacked scores, ``bread`` its
    ``(X'X)^{-1}`` (or 2SLS bread), ``ssr`` its sum of squared residuals. The small-sample factors
    are the in-memory ones (``fastpanel.ols.covariance``)."""
    n = state.nobs
    fes, period, levels, cluster_levels = ctx["fes"], ctx["period"], ctx["levels"], ctx["cluster_levels"]
    if ssc == "statsmodels":
        K = k + state.fe_df_exact
    else:
        K = cov.k_total(k, levels, ssc, ctx["clustered"], ctx["nested"] or [False] * len(levels))
    cov.check_residual_df(n, k, K, state.fe_df_fixest, lambda: state.fe_df_exact)
    df_resid = float(n - K)
    if spec.kind == "iid":
        return ssr / (n - K) * bread, df_resid
    if spec.kind.startswith("HC"):
        lev_one = sum(s.get("leverage_one", 0) for s in sc)
        if lev_one:
            raise ValueError(f"vcov='{spec.kind}': {lev_one} observations have leverage 1, so {spec.kind} is "
                             "undefined; use 'HC1' or a clustered covariance")
        meat = sum(s["hc"] for s in sc)[sl, sl]
        return cov.hc_scale(spec.kind, ssc, n, K) * cov.sandwich(bread, meat), df_resid
    if spec.kind == "CRV3":
        scale, df_t = cov.crv3_scale(ssc, n, K, ctx["n_entities"])
        return scale * sum(s["crv3"] for s in sc), df_t
    if spec.kind == "CRV1":
        meats = {fes[0]: sum(s["entity"] for s in sc)[sl, sl]}
        if period:
            z = np.sum([s["period_sums"] for s in sc], axis=0)[:, sl]
            meats[period] = z.T @ z
        g_min = min(cluster_levels[c] for c in spec.clusters)
        parts = [(meats[c], cluster_levels[c], 1.0) for c in spec.clusters]
        if len(spec.clusters) == 2:
            parts.append((sum(s["cell"] for s in sc)[sl, sl], sum(s["n_cells"] for s in sc), -1.0))
        V = np.zeros_like(bread)
        for meat, G, sign in parts:
            V += sign * cov.crv1_scale(ssc, n, K, G, g_min) * cov.sandwich(bread, meat)
        if spec.eigen_fix:  # off by default for one- and two-way (as in memory)
            V, state.vcov_eigen_fixed = cov.psd_eigen_fix(V, spec.label)
        return V, (df_resid if ssc == "linearmodels" else float(g_min - 1))
    # DK
    z = np.sum([s["time_sums"] for s in sc], axis=0)[:, sl]
    z = z[np.sum([s["time_counts"] for s in sc], axis=0) > 0]  # the periods in the sample, in order
    T = z.shape[0]
    if T < 2:
        raise ValueError(f"vcov={{'DK': ...}} (Driscoll-Kraay) needs at least 2 periods in the sample, got {T}")
    lags = cov.default_dk_lags(T) if spec.lags is None else spec.lags
    if lags >= T:
        raise ValueError(f"vcov={{'DK': {lags}}}: the lags must be below the number of periods ({T})")
    meat = cov.bartlett_meat(z, np.arange(T), T, lags)
    scale, df_t = cov.dk_scale(ssc, n, K, T)
    return scale * cov.sandwich(bread, meat), df_t


# -- orchestration ------------------------------------------------------------------------------
def _run(dask: Any, ddf: Any, fn: Any, *args: Any) -> list:
    """fn(partition, *args) on every partition; results in partition order."""
    return list(dask.compute(*[dask.delayed(fn)(p, *args) for p in ddf.to_delayed()]))


def _levels(ddf: Any, col: str) -> np.ndarray:
    values = ddf[col].dropna().unique().compute().to_numpy()
    try:
        return np.sort(values)
    except TypeError:  # mixed types: order by their text
        return np.array(sorted(values, key=str), dtype=object)


def feols_dask(fml: str, ddf: Any, vcov: Any = "iid", *, weights: str | None = None, ssc: str = "fixest",
               time: str | None = None, drop_singletons: bool = True, collin_tol: float = 1e-10,
               progress: Any = None) -> OLSResults:
    """``fastpanel.feols`` on a Dask DataFrame (see the module docstring for what is supported).

    Parameters are those of :func:`fastpanel.feols`, and ``progress``: an optional callable
    that receives a line of text as each round starts. The computation runs on the current Dask
    client, or Dask's default scheduler when there is none.
    """
    say = progress if progress is not None else (lambda _msg: None)
    dask, dd = _require_dask()
    spec = cov.parse_vcov(vcov)
    if spec.kind == "CR2":
        # The CR2 adjustment (I - H_gg)^(-1/2) of a cluster needs that cluster's rows together with
        # the leverage of the whole dummy design; it is no sum of per-partition statistics.
        raise ValueError(
            "vcov={'CR2': ...} is not available on Dask: CR2 needs, for every cluster, the inverse square root "
            "of its n_g x n_g block of I - H (the hat matrix of the whole design), which is not a sum over "
            "partitions of small statistics as CRV1's score sums are; fit in memory (fastpanel.feols on a "
            "pandas DataFrame), or use CRV1/CRV3 on Dask"
        )
    if ssc not in cov.SSC_PRESETS:
        raise ValueError(f"ssc={ssc!r} is not a preset; use one of {cov.SSC_PRESETS}")
    lhs, rhs, fes, iv = _parse(fml)
    if any("[" in f for f in fes):
        raise ValueError(f"formula {fml!r}: varying slopes ('g[x]', 'g[[x]]') are not available on Dask yet; "
                         "fit in memory with fastpanel.feols on a pandas DataFrame")
    if not 1 <= len(fes) <= 2:
        raise ValueError(f"formula {fml!r}: " + SUPPORTED)
    xs = [t.strip() for t in rhs.split("+") if t.strip() not in ("", "0", "1")]
    iv_names = None
    if iv is not None:
        # IV: the columns [y, E, Z, D] go through the OLS rounds as the regressors (cleaned together)
        from fastpanel.distributed.iv import check_iv_request

        endog = [t.strip() for t in iv[0].split("+") if t.strip()]
        inst = [t.strip() for t in iv[1].split("+") if t.strip()]
        check_iv_request(fml, spec, fes, xs, endog, inst, ddf.columns)
        iv_names = (list(xs), inst, endog)
        xs = xs + inst + endog
    plain = all(t in ddf.columns for t in [lhs] + xs)
    needed = ([lhs] + xs) if plain else _required(f"{lhs} ~ {rhs}")
    names = needed + fes + [c for c in (weights, time) if c] + [str(c) for c in spec.clusters]
    missing = [c for c in dict.fromkeys(names) if c not in ddf.columns]
    if missing:
        raise ValueError(f"column(s) {missing} are not in the Dask DataFrame; " + SUPPORTED)
    extra_cols = list(dict.fromkeys(fes + [c for c in (weights, time) if c]))
    y_col = lhs
    if not plain:
        # Row-wise formula terms (np.log(x), x1:x2, I(x**2)) are built per partition by the
        # in-memory design code; categorical terms need the levels of the whole data: refused.
        if "C(" in rhs or "C(" in lhs:
            raise ValueError(f"formula {fml!r}: categorical terms C(...) are not available on Dask (their levels "
                             "span partitions); add dummy columns first, or " + SUPPORTED)
        sample = ddf[needed + extra_cols].head(20, npartitions=-1)
        with np.errstate(all="ignore"):
            xs = list(_design(lhs, rhs, sample, True)[2])  # the term names (they do not depend on the rows)
        meta = _design_frame(sample.iloc[:0], lhs, rhs, extra_cols, xs)
        ddf = ddf[needed + extra_cols].map_partitions(_design_frame, lhs, rhs, extra_cols, xs, meta=meta)
        y_col = _Y_COLUMN
    if spec.kind not in ("iid", "HC0", "HC1", "HC2", "HC3", "CRV1", "CRV3", "DK"):
        raise ValueError(f"vcov={vcov!r}: " + SUPPORTED)
    if spec.kind in ("HC2", "HC3") and len(fes) > 1:
        raise ValueError(f"vcov='{spec.kind}' needs the leverage of the fixed effects, computed exactly for one "
                         "fixed-effect dimension; use 'HC1' or a clustered covariance with several dimensions")
    if spec.kind == "CRV3" and (len(fes) > 1 or tuple(spec.clusters) != (fes[0],)):
        raise ValueError("vcov={'CRV3': ...} on Dask: clusters by the (only) entity effect, whose fixed effects are "
                         "nested in the clusters; " + SUPPORTED)
    if len(spec.clusters) > 2:
        # Only the fixed effects can be cluster variables on Dask (their score sums are local to
        # the entity shuffle or of period size), and a Dask fit has at most two of them. Clusters
        # outside the effects would send each partition's sums per cluster level, up to one
        # row per observation for fine intersections, instead of O(k^2 + T k) numbers.
        raise ValueError(f"vcov={vcov!r}: clustering on {len(spec.clusters)} variables is not available on Dask: "
                         "its cluster variables must be among the fixed effects, of which a Dask fit has at "
                         "most two (entity, period), and the sums of the intersections of other columns do not "
                         "stay small per partition; fit in memory (a pandas DataFrame) for 3+-way clustering, "
                         "or " + SUPPORTED)
    if any(c not in fes for c in spec.clusters):
        raise ValueError(f"vcov={vcov!r}: the cluster variables must be among the fixed effects {fes}; " + SUPPORTED)
    if spec.kind == "DK" and time is None:
        raise ValueError("vcov={'DK': lags} needs the period column: pass time='year' (the column name)")
    keep_cols = list(dict.fromkeys([y_col] + xs + extra_cols))
    # Shuffled once and kept on the workers (spilled to their disks beyond their memory limit):
    # each round below reads the persisted partitions instead of reading and shuffling again. A
    # lost worker's partitions are recomputed from the graph (the same rows, the same numbers).
    source = ddf[keep_cols]  # the lazy recipe (no data held): the wild bootstrap's cell round re-reads it
    ddf = source.shuffle(on=fes[0]).persist()
    period = fes[1] if len(fes) == 2 else None
    periods = _levels(ddf, period) if period else None
    if periods is not None and periods.size > DIRECT_MAX_LEVELS:
        raise ValueError(f"the period effect {period!r} has {periods.size} levels; at most {DIRECT_MAX_LEVELS}: "
                         + SUPPORTED)
    sp = _Spec(y_col, xs, fes[0], period, time, weights, periods,
               _levels(ddf, time) if time else None, drop_singletons)

    # 1. cleaning (singletons: rounds until the global period counts stop changing)
    say(f"round 1/5: shuffling {ddf.npartitions} partitions by {fes[0]!r}, dropping missing values and singletons")
    history: list[np.ndarray] = []
    stats = _run(dask, ddf, _period_counts, sp, history)
    bad_w = sum(s["bad_weights"] for s in stats)
    if bad_w:
        raise ValueError(f"weights column {weights!r} has {bad_w} rows <= 0; analytic weights must be positive")
    n_total_ok = sum(s["n_ok"] for s in stats)
    n_nan = sum(s["n_nan"] for s in stats)
    n_kept = sum(s["n_kept"] for s in stats)
    if drop_singletons:
        while True:
            counts = np.sum([s["counts"] for s in stats], axis=0) if period else np.zeros(0)
            history = history + [counts]
            stats = _run(dask, ddf, _period_counts, sp, history)
            n_now = sum(s["n_kept"] for s in stats)
            if n_now == n_kept or not period:
                n_kept = n_now
                break
            n_kept = n_now
    if n_kept == 0:
        raise ValueError("no rows are left after dropping rows with missing values and singletons")

    # 2. moments
    say("round 2/5: moments")
    mom = _run(dask, ddf, _moments, sp, history)
    W = sum(m["W"] for m in mom)
    mean = sum(m["W"] * m["mean"] for m in mom) / W
    C = sum(m["C"] + m["W"] * np.outer(m["mean"] - mean, m["mean"] - mean) for m in mom)
    n_entities = sum(m["n_entities"] for m in mom)

    # 3. period effects
    say("round 3/5: period effects" if period else "round 3/5: (no period effects)")
    gamma = None
    if period:
        parts = _run(dask, ddf, _schur, sp, history, mean)
        S = sum(p["S"] for p in parts)
        r = sum(p["r"] for p in parts)
        gamma, _ = twoway_gamma(S, r, n_kept, n_entities)

    # 4. slopes
    say("round 4/5: Gram matrix and slopes")
    gram = sum(_run(dask, ddf, _gram, sp, history, mean, gamma))
    if iv_names is not None:
        from fastpanel.distributed.iv import finish_iv

        return finish_iv(dask, ddf, sp, history, mean, gamma, gram, C, spec=spec, ssc=ssc, collin_tol=collin_tol,
                         lhs=lhs, exog=iv_names[0], inst=iv_names[1], endog=iv_names[2], fes=list(fes),
                         period=period, n_kept=n_kept, n_nan=n_nan, n_total_ok=n_total_ok, n_entities=n_entities,
                         say=say)
    params, bread, kept = _solve(None, None, np.diag(C)[1:].copy(), xs, collin_tol, gram)
    dropped = [xs[j] for j in range(len(xs)) if j not in kept]
    if dropped:
        warnings.warn(f"dropped {len(dropped)} regressor(s) collinear with other regressors or absorbed by the fixed "
                      f"effects: {', '.join(dropped)}; their coefficients are not identified (remove them to silence "
                      "this warning)", CollinearityWarning, stacklevel=2)
    kept_names = [xs[j] for j in kept]

    # 5. residual statistics and the covariance
    say("round 5/5: residuals and covariance")
    A, b = gram[1:, 1:][np.ix_(kept, kept)], gram[1:, 0][kept]
    sc = _run(dask, ddf, _score_stats, sp, history, mean, gamma, params, kept, spec.kind, bread, A, b)
    ssr = sum(s["ssr"] for s in sc)
    epp = np.sum([s["entities_per_period"] for s in sc], axis=0) if period else None
    n_periods = int((epp > 0).sum()) if period else 0  # period levels left in the sample
    levels = [n_entities] + ([n_periods] if period else [])
    state = DaskFitState(
        yname=lhs, names=kept_names, params=params, bread=bread, ssr=ssr, tss_within=float(gram[0, 0]),
        tss=float(C[0, 0]), nobs=n_kept, n_dropped=n_nan, n_singletons=n_total_ok - n_kept,
        fe_factors=[_Levels(L) for L in levels], fe_names=list(fes), dropped=dropped,
        backend=within_kernels()[0], pooled_ssr=_pooled_ssr(C),
    )
    from fastpanel.distributed.wildboot import cell_recipe

    state.wild_cells = cell_recipe(dask, source, sp, history, mean, gamma, params, kept)
    ctx = _vcov_context(spec, ssc, sc, state, fes, period, n_entities, n_periods, epp)
    V, df_t = _assemble_vcov(spec, ssc, ctx, sc, bread, ssr, state.k, state)
    state.vcov = (V, df_t)
    return OLSResults(state, spec, ssc)

