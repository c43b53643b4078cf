"""Results of a panel threshold regression (statsmodels names where they apply)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ThresholdResults", "bootstrap_critical_value", "bootstrap_pvalue", "lr_critical_value",
           "sequential_selection"]


# Bootstrap F statistics within this relative distance of the observed F are ties: the
# backends' floating-point paths differ by ~1e-14 relative, and a draw that reproduces the
# sample (all Rademacher weights +1 on a small panel) gives F* = F up to rounding.
TIE_RTOL = 1e-9


def bootstrap_pvalue(boot_F: np.ndarray, F: float, hansen: bool) -> float:
    """Share of bootstrap draws at least as large as ``F``.

    ``hansen=False`` (fastpanel): ties count as exceedances, ``P(F* >= F)``.
    ``hansen=True`` (Hansen's program): ``P(F* > F)``, ties not counted.
    Ties are decided with the relative tolerance ``TIE_RTOL``, so every backend agrees.
    """
    tol = TIE_RTOL * max(1.0, abs(F))
    exceed = boot_F > F + tol if hansen else boot_F >= F - tol
    return float(np.mean(exceed))


def bootstrap_critical_value(boot_F: np.ndarray, p: float, hansen: bool) -> float:
    """The ``p`` quantile of the draws: interpolated (``np.quantile``, fastpanel) or, as in
    Hansen's program, the order statistic at 1-based position ``ceil(p * B)``."""
    if not hansen:
        return float(np.quantile(boot_F, p))
    B = boot_F.shape[0]
    pos = int(np.ceil(p * B - 1e-9))  # 1-based; the guard keeps 0.95 * 100 at 95
    return float(np.sort(boot_F)[min(max(pos, 1), B) - 1])


def sequential_selection(pvalues: np.ndarray, level: float) -> int | None:
    """Hansen's (1999, section 4) sequential procedure: test 1 threshold against none; if the
    test rejects at ``level``, test 2 against 1; and so on. Returns the number of thresholds
    chosen, or None when a test needed for the decision has no bootstrap p-value."""
    chosen = 0
    for p in pvalues:
        if not np.isfinite(p):
            return None
        if p >= level:
            break
        chosen += 1
    return chosen


def lr_critical_value(level: float) -> float:
    """Hansen's (1999, eq. 16) asymptotic critical value ``c(a) = -2 ln(1 - sqrt(level))``.

    ``level`` is the confidence level (0.95 gives 7.35).
    """
    return float(-2.0 * np.log(1.0 - np.sqrt(level)))


class ThresholdResults:
    """Estimates, tests and inference of a fitted :class:`~fastpanel.ThresholdPanel`.

    Attributes
    ----------
    thresholds : ndarray, final (refined) thresholds, increasing.
    ci : list of (low, high), one per threshold, at ``ci_level``.
    ci_sets : list of ndarrays, the exact confidence sets (grid points with LR <= c).
    tests : DataFrame, one row per number of thresholds (F, p-value, critical values, SSR, draws).
    ssr0 : SSR of the model without thresholds.
    params, bse, bse_robust : Series (coefficients, OLS and White standard errors).
    nobs, df_resid, ssr, rsquared : usual meanings (transformed data).
    backend : the backend that ran the sweep.
    """

    @classmethod
    def _build(cls, model, engine, tr, seq, K, cand, windows, F_obs, boot_F, sigma2, ci_level,
               backend, bootstrap, strict, level: float = 0.05) -> ThresholdResults:
        self = cls.__new__(cls)
        self.model, self.n_thresholds, self.backend = model, K, backend
        self.bootstrap, self.ci_level, self.grid = bootstrap, ci_level, cand
        self.conventions = model.conventions
        self._time_labels = None
        self.ssr0 = float(seq.ssr0[0])
        # each final threshold with the SSR curve it was estimated from (Hansen's refinement)
        if K == 1:
            stages = [("1", 1)]
        elif K == 2:
            stages = [("1r", 2), ("2", 2)]
        else:
            stages = [("1r", 2), ("2", 2), ("3", 3)]
        entries = []
        crit = lr_critical_value(ci_level)
        for stage, k in stages:
            i = int(seq.idx[stage][0])
            S = seq.curves[stage][0]
            Smin = float(S[i])
            s2 = float(sigma2(np.array([Smin]), k)[0])
            LR = (S - Smin) / s2
            # The sweep's S(g) carry an absolute error of ~eps e0'e0 (a difference of two large
            # numbers); divided by sigma^2 it is the LR's error. Only the minimised SSRs are
            # recomputed exactly (scan._polish), not the whole curve: say when it matters.
            lr_error = 10 * np.finfo(float).eps * self.ssr0 / s2 if s2 > 0 else np.inf
            if lr_error > 1e-3:
                warnings.warn(
                    f"the model fits almost perfectly (SSR {Smin:.3g} of {self.ssr0:.3g}): the LR curve of the "
                    f"threshold at {cand[i]:.6g}, and so its confidence set, may be off by ~{lr_error:.2g}; "
                    "the estimates and F statistics are recomputed exactly", RuntimeWarning, stacklevel=3)
            inside = cand[LR <= crit]
            entries.append((cand[i], LR, inside))
        entries.sort(key=lambda e: e[0])
        self.thresholds = np.array([e[0] for e in entries])
        self._lr = [e[1] for e in entries]
        self.ci_sets = [e[2] for e in entries]
        self.ci = [(float(s.min()), float(s.max())) for s in self.ci_sets]
        self._ci_crit = crit
        rows = []
        ssr_keys = {1: "1", 2: "2", 3: "3"}
        for k in range(1, K + 1):
            Fb = boot_F[k - 1]
            nb = Fb.shape[0]
            rows.append({
                "n_thresholds": k,
                "F": F_obs[k - 1],
                "pvalue": bootstrap_pvalue(Fb, F_obs[k - 1], strict) if nb else np.nan,
                "crit10": bootstrap_critical_value(Fb, 0.90, strict) if nb else np.nan,
                "crit5": bootstrap_critical_value(Fb, 0.95, strict) if nb else np.nan,
                "crit1": bootstrap_critical_value(Fb, 0.99, strict) if nb else np.nan,
                "ssr": float(seq.ssr[ssr_keys[k]][0]),
                "n_boot": nb,
            })
        self.tests = pd.DataFrame(rows).set_index("n_thresholds")
        self.boot_F = boot_F
        self._fit_params(tr, strict)
        self._tr, self._strict = tr, strict
        # estimates of the model with k thresholds, k = 1..K (Hansen's sequence: the model with
        # two thresholds uses the refined first one)
        idx = {k: sorted(float(cand[int(seq.idx[st][0])]) for st in sts) for k, sts in
               {1: ["1"], 2: ["1r", "2"], 3: ["1r", "2", "3"]}.items() if k <= K}
        self._thresholds_by_k = {0: [], **idx}
        # LR curves and confidence sets of the model with k thresholds, from the SSR curve of each
        # of its estimates (the model with k < K thresholds has its own curves: the first
        # threshold's unrefined scan for k = 1, not the refined curve of the K-threshold fit)
        sigma_k = {"1": 1, "1r": 2, "2": 2, "3": 3}
        self._ci_by_k, self._lr_by_k = {}, {0: []}
        for k, sts in {1: ["1"], 2: ["1r", "2"], 3: ["1r", "2", "3"]}.items():
            if k <= K:
                curves = []
                for st in sts:
                    i = int(seq.idx[st][0])
                    S = seq.curves[st][0]
                    LR = (S - S[i]) / float(sigma2(np.array([S[i]]), sigma_k[st])[0])
                    curves.append((float(cand[i]), LR, cand[LR <= crit]))
                curves.sort(key=lambda e: e[0])
                self._ci_by_k[k] = [c for _, _, c in curves]
                self._lr_by_k[k] = [lr for _, lr, _ in curves]
        self.selection_level = float(level)
        self.n_selected = sequential_selection(self.tests["pvalue"].to_numpy(), level)
        return self

    def thresholds_for(self, k: int) -> np.ndarray:
        """Threshold estimates of the model with ``k`` thresholds (0 .. n_thresholds)."""
        if k not in self._thresholds_by_k:
            raise ValueError(f"k={k!r}: this fit estimated models with 0 to {self.n_thresholds} thresholds")
        return np.array(self._thresholds_by_k[k])

    def model_for(self, k: int) -> "ThresholdResults":
        """The fit restricted to the model with ``k`` thresholds (its thresholds, confidence
        sets, LR curves, coefficients and standard errors, each equal to those of a fit with
        ``n_thresholds=k``; the tests and bootstrap draws of every number are shared).
        ``res.model_for(res.n_selected)`` is the model chosen by the sequential tests."""
        from copy import copy

        view = copy(self)
        view.thresholds = self.thresholds_for(k)
        view.ci_sets = list(self._ci_by_k.get(k, []))
        view._lr = list(self._lr_by_k[k])
        view.ci = [(float(c.min()), float(c.max())) for c in view.ci_sets]
        view._fit_params(self._tr, self._strict)
        return view

    def params_for(self, k: int) -> pd.DataFrame:
        """Coefficients of the model with ``k`` thresholds: estimate and OLS, White and
        entity-clustered standard errors (the selected model is ``params_for(res.n_selected)``)."""
        view = self.model_for(k)
        return pd.DataFrame({"coef": view.params, "se (OLS)": view.bse, "se (White)": view.bse_robust,
                             "se (cluster)": view.bse_cluster})

    def _fit_params(self, tr, strict: bool) -> None:
        # the model computes the fit's pieces: in memory from its arrays, on Dask by reductions
        fit = self.model._linear_fit(tr, list(self.thresholds), strict)
        names, coef, k = fit["names"], fit["coef"], fit["coef"].shape[0]
        self.nobs = fit["nobs"]
        #: rows deleted for missing values by the formula front end (0 for the array API)
        self.n_dropped = 0
        self.dropped_regressors = list(getattr(self.model, "dropped_regressors", []))
        # hansen1999: e'e / (n(T-1) - n - k) (Hansen's printed s.e.); default: n T - n_fe - k
        self.df_resid = self.nobs - tr.n_absorbed - k
        self.ssr = fit["ssr"]
        self.rsquared = 1.0 - self.ssr / fit["yty"] if fit["yty"] > 0 else np.nan
        XtXinv = fit["XtXinv"]
        self._cov = {"nonrobust": XtXinv * (self.ssr / self.df_resid)}
        self._cov["robust"] = XtXinv @ fit["meat"] @ XtXinv
        G = tr.n_entities
        adj = G / (G - 1) * (self.nobs - 1) / (self.nobs - k) if G > 1 else 1.0
        self._cov["cluster"] = adj * XtXinv @ fit["cluster_meat"] @ XtXinv
        #: transformed residuals (None for a fit on Dask: they stay on the workers)
        self.resid = fit["resid"]
        self.param_names = names
        self.params = pd.Series(coef, index=names, name="params")
        self.bse = pd.Series(np.sqrt(np.diag(self._cov["nonrobust"])), index=names, name="bse")
        self.bse_robust = pd.Series(np.sqrt(np.diag(self._cov["robust"])), index=names, name="bse_robust")

    # -- inference on the coefficients ---------------------------------------------------------
    def cov_params(self, cov_type: str = "nonrobust") -> pd.DataFrame:
        """Covariance of the coefficients: "nonrobust" (OLS), "robust" (White) or "cluster" (entity)."""
        if cov_type not in self._cov:
            raise ValueError(f"cov_type={cov_type!r}: choose 'nonrobust', 'robust' or 'cluster'")
        return pd.DataFrame(self._cov[cov_type], index=self.param_names, columns=self.param_names)

    @property
    def bse_cluster(self) -> pd.Series:
        """Entity-clustered standard errors (CR1)."""
        return pd.Series(np.sqrt(np.diag(self._cov["cluster"])), index=self.param_names, name="bse_cluster")

    @property
    def tvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        from scipy import stats

        return pd.Series(2 * stats.t.sf(np.abs(self.tvalues), self.df_resid), index=self.param_names)

    def conf_int(self, alpha: float = 0.05, cov_type: str = "nonrobust") -> pd.DataFrame:
        """Coefficient confidence intervals from the t distribution."""
        from scipy import stats

        se = np.sqrt(np.diag(self._cov[cov_type]))
        t = stats.t.ppf(1 - alpha / 2, self.df_resid)
        return pd.DataFrame({"lower": self.params - t * se, "upper": self.params + t * se})

    # -- thresholds -----------------------------------------------------------------------------
    def lr_curve(self, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Grid and LR(g) for the k-th threshold (1-based, order of ``thresholds``).

        Candidates removed by the exclusion window around other thresholds have LR = inf.
        """
        if not 1 <= k <= len(self.thresholds):
            if not len(self.thresholds):
                raise ValueError("this model has no threshold, so no LR curve: use res.model_for(1).lr_curve(1) "
                                 "for the one-threshold model's")
            raise ValueError(f"k={k!r} must be between 1 and {len(self.thresholds)}")
        return self.grid.copy(), self._lr[k - 1].copy()

    def plot_lr(self, k: int = 1, ax: Any = None):
        """Plot LR(g) with the critical-value line (Hansen 1999, Figure 1). Needs matplotlib."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - optional extra
            raise ImportError("plot_lr needs matplotlib: pip install matplotlib") from exc
        g, lr = self.lr_curve(k)
        if ax is None:
            _, ax = plt.subplots()
        ok = np.isfinite(lr)
        ax.plot(g[ok], lr[ok], label=f"LR(gamma), threshold {k}")
        ax.axhline(self._ci_crit, linestyle="--", color="k", label=f"{self.ci_level:.0%} critical value")
        ax.set_xlabel(f"threshold parameter ({self.model.q_name})")
        ax.set_ylabel("likelihood ratio")
        ax.legend()
        return ax

    def regime_shares(self) -> pd.DataFrame:
        """Share of entities in each regime by period (Hansen 1999, Table 4)."""
        m = self.model
        if not m.has_time:
            raise ValueError("regime shares by period need the period of each row: fit with time= (the period ids)")
        edges = np.concatenate(([-np.inf], self.thresholds, [np.inf]))
        strict = self.conventions == "hansen1999"
        counts = m._regime_counts(edges, strict)  # (periods, regimes) row counts
        used = np.flatnonzero(counts.sum(axis=0) > 0)
        counts = counts[:, used]
        tab = pd.DataFrame(counts / counts.sum(axis=1, keepdims=True), columns=[f"regime {c + 1}" for c in used])
        if self._time_labels is not None and len(self._time_labels) == len(tab):
            tab.index = self._time_labels
        tab.index.name = "period"
        return tab

    def summary(self) -> str:
        """Text summary: thresholds with confidence intervals, F tests, coefficients."""
        k = self.n_thresholds if self.n_selected is None else self.n_selected
        lines = ["Panel threshold regression (Hansen 1999)",
                 f"conventions: {self.conventions}   backend: {self.backend}   "
                 f"nobs: {self.nobs}   rows dropped (missing values or ids): {self.n_dropped}   "
                 f"bootstrap: {self.bootstrap}",
                 *([f"dropped regressors (collinear or absorbed): {', '.join(self.dropped_regressors)}"]
                   if self.dropped_regressors else []), "",
                 "Threshold tests (bootstrap):", self.tests.to_string(float_format=lambda v: f"{v:.4g}"), "",
                 self.selection_text(), ""]
        if k == 0:
            lines.append("Model shown: no threshold (linear fixed-effects model).")
        else:
            lines.append(f"Model shown: {k} threshold(s); thresholds ({self.ci_level:.0%} LR confidence set):")
            for g, cs in zip(self.thresholds_for(k), self._ci_by_k[k]):
                note = "   (the LR confidence set is this single grid point)" if cs.shape[0] == 1 else ""
                lines.append(f"  {g:12.6g}   [{cs.min():.6g}, {cs.max():.6g}]{note}")
        lines += ["", "Coefficients:", self.params_for(k).to_string(float_format=lambda v: f"{v:.6g}")]
        return "\n".join(lines)

    def selection_text(self) -> str:
        """One sentence: how Hansen's sequential tests chose ``n_selected``."""
        lvl = f"{self.selection_level:.0%}" if self.selection_level * 100 == round(self.selection_level * 100) \
            else f"{self.selection_level:g}"
        if self.n_selected is None:
            return (f"Sequential selection at {lvl}: not available (no bootstrap p-values; set n_boot > 0); "
                    f"the model with {self.n_thresholds} threshold(s) is shown.")
        steps = []
        for k, p in self.tests["pvalue"].items():
            verdict = "rejects" if p < self.selection_level else "does not reject"
            steps.append(f"{k} vs {k - 1}: p = {p:.3g} {verdict}")
            if p >= self.selection_level:
                break
        return f"Sequential selection at {lvl}: {self.n_selected} threshold(s) ({'; '.join(steps)})."

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<ThresholdResults thresholds={np.round(self.thresholds, 6).tolist()} backend={self.backend!r}>"
