"""Results of a fixed-effects OLS fit, with statsmodels' attribute names and table renderings."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from fastpanel.ols import covariance as cov

__all__ = ["OLSResults"]


class OLSResults:
    """Estimates, inference and fit statistics of :func:`fastpanel.feols` / :class:`PanelOLS`.

    Attributes
    ----------
    params, bse, tvalues, pvalues : pandas.Series
        Indexed by regressor name.
    nobs : int
        Observations used (after NaN rows, ``n_dropped``, and singletons, ``n_singletons``).
    df_resid : float
        ``nobs`` minus slopes minus fixed-effect degrees of freedom (of the ``ssc`` preset).
    ssr, rsquared, rsquared_within, rsquared_adj, fvalue, f_pvalue : float
    backend : str
        Kernel backend that ran the within transform (``"numpy"`` without fixed effects).
    """

    def __init__(self, state: Any, spec: cov.VcovSpec, ssc: str) -> None:
        self._state = state
        self.vcov_spec = spec
        self.ssc = ssc
        #: number of clusters of each cluster variable (in the sample used), e.g. {"city": 336}
        self.n_clusters = {str(c): int(state.extra[f"__cluster__{c}"].n_levels) for c in spec.clusters
                           if f"__cluster__{c}" in state.extra}
        # A fit summarised out of core (fastpanel.distributed) brings its covariance along.
        pre = getattr(state, "vcov", None)
        V, df_t = pre if pre is not None else cov.compute_vcov(state, spec, ssc)
        self._cov = V
        # The per-coefficient Series (params, bse, tvalues, pvalues, df_t) are built on first
        # access from these arrays, on one shared Index: pandas' constructors are most of a small
        # fit's fixed cost, and a FitCollection holds many results few of which are all read.
        self._names = list(state.names)
        self._df_t_raw = df_t
        self._bse_arr = np.sqrt(np.maximum(np.diagonal(V), 0.0))
        self.nobs = state.nobs
        self.n_dropped = state.n_dropped
        self.nobs_dropped = state.n_dropped
        self.n_singletons = state.n_singletons
        #: rows of the whole data that are in no ``split``/``by`` group (missing group value)
        self.n_missing_split = 0
        self.ssr = state.ssr
        self.backend = state.backend
        self.dropped_regressors = list(state.dropped)
        self.dependent = state.yname
        self.fixed_effects = list(state.fe_names) + [vs.name for vs in getattr(state, "fe_slopes", [])]
        fe_df = state.fe_df_exact if ssc == "statsmodels" else state.fe_df_fixest
        self.df_model = state.k + fe_df - (1 if state.has_intercept else 0)
        self.df_resid = float(state.nobs - state.k - fe_df)
        self.rsquared = 1.0 - state.ssr / state.tss if state.tss > 0 else np.nan
        self.rsquared_within = 1.0 - state.ssr / state.tss_within if state.tss_within > 0 else np.nan
        # With no residual degrees of freedom left under the reported convention (clustered
        # covariances may still have some), the adjusted R2 and the F test are undefined.
        has_df = self.df_resid > 0
        self.rsquared_adj = 1.0 - (1.0 - self.rsquared) * (state.nobs - 1) / self.df_resid if has_df else np.nan
        # Classical F test that every slope (not the intercept) is zero, given the effects.
        k_f = state.k - (1 if state.has_intercept else 0)
        base = state.tss_within if state.fe_factors else state.tss
        if k_f > 0 and state.ssr > 0 and has_df:
            self.fvalue = ((base - state.ssr) / k_f) / (state.ssr / self.df_resid)
            self.f_pvalue = float(special.fdtrc(k_f, self.df_resid, self.fvalue))
        else:
            self.fvalue = self.f_pvalue = np.nan

    @cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self._names)

    @cached_property
    def df_t(self) -> Any:
        """Degrees of freedom of the t distribution: a float, or a Series aligned with params
        (CR2's Satterthwaite df, one per coefficient)."""
        d = self._df_t_raw
        return pd.Series(np.asarray(d, dtype=float), index=self._index, name="df") if np.ndim(d) else d

    @cached_property
    def params(self) -> pd.Series:
        return pd.Series(self._state.params, index=self._index, name="coef")

    @cached_property
    def bse(self) -> pd.Series:
        return pd.Series(self._bse_arr, index=self._index, name="std err")

    @cached_property
    def _tv_arr(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self._state.params, dtype=float) / self._bse_arr

    @cached_property
    def tvalues(self) -> pd.Series:
        return pd.Series(self._tv_arr, index=self._index, name="t")

    @cached_property
    def pvalues(self) -> pd.Series:
        # 2 P(T_df > |t|): special.stdtr is what stats.t.sf evaluates, without its argument checks
        p = 2 * special.stdtr(np.asarray(self._df_t_raw, dtype=float), -np.abs(self._tv_arr))
        return pd.Series(p, index=self._index, name="P>|t|")

    # -- statsmodels-style accessors ------------------------------------------------------------
    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of the coefficients."""
        return pd.DataFrame(self._cov, index=self.params.index, columns=self.params.index)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Confidence intervals (t distribution with ``df_t`` degrees of freedom, per coefficient
        when ``df_t`` is a Series)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha!r} must lie in (0, 1)")
        q = stats.t.ppf(1 - alpha / 2, np.asarray(self.df_t))
        lo = self.params - q * self.bse
        hi = self.params + q * self.bse
        return pd.DataFrame({"lower": lo, "upper": hi})

    def wald_test(self, R: Any, r: Any = None, *, distribution: str | None = None) -> Any:
        """Wald (chi2) or F test of ``R b = r``, e.g. ``res.wald_test("x1 = x2, x3 = 0")``: see
        :func:`fastpanel.ols.wald.wald_test` for the forms of ``R`` and the conventions."""
        from fastpanel.ols.wald import wald_test

        return wald_test(self, R, r, distribution=distribution)

    def f_test(self, R: Any, r: Any = None) -> Any:
        """F test of ``R b = r``: :meth:`wald_test` with ``distribution="F"``."""
        return self.wald_test(R, r, distribution="F")

    @property
    def vcov_eigen_fixed(self) -> int:
        """Eigenvalues of the CRV1 covariance clipped at zero by the CGM eigenvalue fix (0: none;
        see :mod:`fastpanel.ols.covariance`)."""
        return int(getattr(self._state, "vcov_eigen_fixed", 0))

    @property
    def vcov_label(self) -> str:
        return self.vcov_spec.label

    def wildboottest(self, param: str | None = None, **kwargs: Any) -> Any:
        """Wild cluster bootstrap test of ``param = r`` or ``R b = r``: see
        :func:`fastpanel.ols.wildboot.wildboottest` for the arguments."""
        from fastpanel.ols.wildboot import wildboottest

        return wildboottest(self, param, **kwargs)

    @cached_property
    def f_poolability(self) -> dict[str, float]:
        """F test that all fixed effects are zero (pooled OLS with an intercept vs this model).

        ``F = ((SSR_pooled - SSR) / d1) / (SSR / df_resid)`` with ``d1`` the fixed-effect degrees
        of freedom less the intercept.
        """
        s = self._state
        if not s.fe_factors:
            return {"stat": np.nan, "pvalue": np.nan, "df_num": 0, "df_denom": self.df_resid}
        if s.X_raw is None:  # transformed in place: the pooled fit was solved from moments
            if s.pooled_ssr is None:
                from fastpanel.ols.model import _pooled_ssr

                s.pooled_ssr = _pooled_ssr(s.pooled_moments)
            ssr_pooled = float(s.pooled_ssr)
        else:
            # Centred first (the intercept absorbs it): with a column of 1e6 + noise, the raw
            # [1, x] is ill-conditioned and lstsq lost 5e-6 of the pooled SSR.
            wn = np.ones(s.nobs) if s.weights is None else s.weights
            Xr = s.X_raw - (wn @ s.X_raw) / wn.sum()
            ones = np.ones((s.nobs, 1))
            Z = np.hstack([ones, Xr])
            y = s.y_raw - (wn @ s.y_raw) / wn.sum()
            if s.weights is not None:
                sw = np.sqrt(s.weights)
                Z, y = Z * sw[:, None], y * sw
            beta = np.linalg.lstsq(Z, y, rcond=None)[0]
            r = y - Z @ beta
            ssr_pooled = float(r @ r)
        d1 = (s.fe_df_exact if self.ssc == "statsmodels" else s.fe_df_fixest) - 1
        stat = ((ssr_pooled - s.ssr) / d1) / (s.ssr / self.df_resid)
        return {"stat": stat, "pvalue": float(stats.f.sf(stat, d1, self.df_resid)), "df_num": d1, "df_denom": self.df_resid}

    # -- fixed effects, fitted values, predictions (fastpanel.ols.fixef) ---------------------------
    def fixef(self) -> Any:
        """The estimated fixed effects per level (R fixest's normalisation: one reference level of
        each dimension after the first per connected set is 0), as a mapping name -> Series with
        ``references`` and ``n_components``; see :mod:`fastpanel.ols.fixef`."""
        from fastpanel.ols.fixef import fixed_effect_estimates

        if getattr(self, "_fixef", None) is None:
            self._fixef = fixed_effect_estimates(self._state)
        return self._fixef

    @cached_property
    def resid(self) -> pd.Series:
        """Residuals of the estimation sample (``y`` minus slopes minus fixed effects)."""
        from fastpanel.ols.fixef import residuals

        return pd.Series(residuals(self._state), name="resid")

    @cached_property
    def fittedvalues(self) -> pd.Series:
        """Fitted values of the estimation sample (slopes plus fixed effects)."""
        from fastpanel.ols.fixef import fitted_values

        return pd.Series(fitted_values(self._state), name="fitted")

    def predict(self, newdata: Any = None, *, fixef: bool = True) -> np.ndarray:
        """Predictions: ``fittedvalues`` for ``newdata=None``; else ``X_new b`` plus each row's fixed
        effects (NaN for a level not seen in the fit; ``fixef=False`` for ``X_new b`` only).

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows with the formula's regressors and, unless ``fixef=False``, the fixed-effect columns.
        fixef : bool, default True

        Returns
        -------
        numpy.ndarray
        """
        from fastpanel.ols.fixef import predict

        if newdata is None:
            return self.fittedvalues.to_numpy()
        est = self.fixef() if fixef and self._state.fe_factors else None
        return predict(self._state, est, newdata, fixef)

    # -- tables ------------------------------------------------------------------------------
    def to_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """Coefficient table: estimate, std. error, t, p and the confidence interval (and the df
        of each t test when they differ by coefficient, as CR2's Satterthwaite df do)."""
        ci = self.conf_int(alpha)
        frame = pd.DataFrame(
            {
                "coef": self.params,
                "std err": self.bse,
                "t": self.tvalues,
                "P>|t|": self.pvalues,
                f"[{alpha / 2:g}": ci["lower"],
                f"{1 - alpha / 2:g}]": ci["upper"],
            }
        )
        if isinstance(self.df_t, pd.Series):
            frame.insert(3, "df", self.df_t)
        return frame

    def _info_rows(self) -> list[tuple[str, str]]:
        rows = [
            ("Dep. variable", self.dependent),
            ("Observations", f"{self.nobs:,}"),
            ("NaN rows dropped", f"{self.n_dropped:,}"),
            ("Singletons dropped", f"{self.n_singletons:,}"),
            *([("Missing split value", f"{self.n_missing_split:,} rows (in no group)")] if self.n_missing_split else []),
            ("Fixed effects", " + ".join(self.fixed_effects) or "none"),
            ("Covariance", f"{self.vcov_label} (ssc={self.ssc})"),
            ("R-squared", f"{self.rsquared:.4f}"),
            ("R-squared (within)", f"{self.rsquared_within:.4f}"),
            ("Adj. R-squared", f"{self.rsquared_adj:.4f}"),
            ("F statistic", f"{self.fvalue:.4f} (p = {self.f_pvalue:.4g})"),
            ("Backend", self.backend),
        ]
        return rows

    def summary(self) -> str:
        """Plain-text summary (header, coefficient table, fit statistics)."""
        head = "\n".join(f"{k:<20}{v}" for k, v in self._info_rows())
        table = self.to_frame().to_string(float_format=lambda v: f"{v:.6g}")
        rule = "=" * max(len(line) for line in table.splitlines())
        boots = getattr(self, "wildboot_results", None) or {}
        tail = "".join(f"\n{b}" for b in boots.values())  # wild cluster bootstrap tests run on this fit
        return f"Fixed-effects OLS\n{rule}\n{head}\n{rule}\n{table}\n{rule}{tail}"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<OLSResults {self.dependent} ~ {', '.join(self.params.index)}; nobs={self.nobs}, vcov={self.vcov_label}>"

    def to_markdown(self) -> str:
        """Markdown (GitHub) table of the coefficients followed by the fit statistics."""
        frame = self.to_frame()
        cols = ["", *frame.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
        for name, row in frame.iterrows():
            lines.append("| " + " | ".join([str(name), *(f"{v:.6g}" for v in row)]) + " |")
        lines.append("")
        lines += [f"- {k}: {v}" for k, v in self._info_rows()]
        return "\n".join(lines)

    def to_latex(self) -> str:
        """LaTeX ``tabular`` of the coefficients (booktabs rules)."""
        frame = self.to_frame()
        esc = _latex_escape
        lines = [
            "\\begin{tabular}{l" + "r" * len(frame.columns) + "}",
            "\\toprule",
            " & " + " & ".join(esc(c) for c in frame.columns) + " \\\\",
            "\\midrule",
        ]
        for name, row in frame.iterrows():
            lines.append(esc(str(name)) + " & " + " & ".join(f"{v:.6g}" for v in row) + " \\\\")
        lines += ["\\midrule", f"Observations & \\multicolumn{{{len(frame.columns)}}}{{r}}{{{self.nobs}}} \\\\",
                  f"$R^2$ & \\multicolumn{{{len(frame.columns)}}}{{r}}{{{self.rsquared:.4f}}} \\\\",
                  "\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines)

    def to_html(self) -> str:
        """HTML rendering (fit statistics and the coefficient table)."""
        import html

        info = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in self._info_rows())
        return f"<table>{info}</table>" + self.to_frame().to_html(float_format=lambda v: f"{v:.6g}")

    def _repr_html_(self) -> str:
        return self.to_html()


def _latex_escape(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"), ("$", "\\$")):
        text = text.replace(a, b)
    return text
