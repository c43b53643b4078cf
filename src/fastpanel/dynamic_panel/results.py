"""Results of a dynamic panel threshold fit (statsmodels names where they apply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["DynamicThresholdResults", "LinearityTest"]


@dataclass
class LinearityTest:
    """Bootstrap sup-Wald test of no threshold effect (the ``restricted`` coefficients zero).

    ``statistic`` is the largest Wald statistic over the grid, ``pvalue`` the share of fast
    bootstrap draws (Seo, Kim and Kim 2019) strictly above it, ``critical_values`` the
    order statistics of the draws at 90, 95 and 99%, ``wald`` the statistic at each grid point.
    """

    statistic: float
    pvalue: float
    n_boot: int
    boot_stats: np.ndarray = field(repr=False)
    wald: np.ndarray = field(repr=False)
    critical_values: dict = field(default_factory=dict)
    #: the coefficients restricted to zero (the regime parameters; see ``kink_test``)
    restricted: list = field(default_factory=list)
    #: "shifts" (jump model), "kink" (the kink slope) or "xthenreg" (xthenreg's kink statistic)
    kink_test: str = "shifts"


@dataclass
class DynamicThresholdResults:
    """Two-step first-differenced GMM estimates of a dynamic panel threshold model."""

    params: pd.Series
    cov: np.ndarray
    threshold: float
    grid: np.ndarray
    objective: np.ndarray          # second-step GMM objective at each grid point
    objective_first: np.ndarray    # first-step objective
    first_step_threshold: float
    nobs: int                      # transformed equations used
    n_entities: int
    n_instruments: int
    n_dropped: int
    n_level_rows: int
    j_stat: float
    j_df: int
    kink: bool
    lags: int
    transform: str
    bandwidth: float
    y_name: str
    q_name: str
    slope_names: list[str]
    linearity_test: LinearityTest | None = None
    instrument_names: list[str] = field(default_factory=list, repr=False)
    collapse: bool = False
    conventions: str = "default"
    #: Arellano and Bond's (1991) m_j of the differenced residuals: {1: (z, p), 2: (z, p)}
    ar_tests: dict = field(default_factory=dict)

    # ----- statsmodels-style accessors -------------------------------------------------
    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.clip(np.diag(self.cov), 0, None)), index=self.params.index)

    @property
    def tvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series(2 * stats.norm.sf(np.abs(self.tvalues.to_numpy())), index=self.params.index)

    @property
    def threshold_se(self) -> float:
        return float(self.bse["threshold"])

    @property
    def j_pvalue(self) -> float:
        return float(stats.chi2.sf(self.j_stat, self.j_df)) if self.j_df > 0 else float("nan")

    def cov_params(self) -> pd.DataFrame:
        return pd.DataFrame(self.cov, index=self.params.index, columns=self.params.index)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Normal (Wald) intervals; for the threshold, Seo and Shin's (2016) asymptotic normal one."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha!r} must lie in (0, 1)")
        z = stats.norm.ppf(1 - alpha / 2)
        se = self.bse
        return pd.DataFrame({"lower": self.params - z * se, "upper": self.params + z * se})

    @property
    def regimes(self) -> pd.DataFrame:
        """Coefficients below and above the threshold, with standard errors (delta method).

        Jump model: ``lower = b``, ``upper = b + d`` per regressor and the intercept shift
        ``d_0`` (the lower regime's intercept is absorbed by the entity effects). Kink model:
        the slope of ``(q - threshold)`` above the threshold.
        """
        V = self.cov
        k = len(self.slope_names)
        rows = []
        if self.kink:
            rows.append({"term": f"({self.q_name} - threshold)+", "lower": 0.0, "lower_se": 0.0,
                         "upper": self.params.iloc[k], "upper_se": np.sqrt(V[k, k])})
            for i, name in enumerate(self.slope_names):
                rows.append({"term": name, "lower": self.params.iloc[i], "lower_se": np.sqrt(V[i, i]),
                             "upper": self.params.iloc[i], "upper_se": np.sqrt(V[i, i])})
        else:
            rows.append({"term": "intercept shift", "lower": 0.0, "lower_se": 0.0,
                         "upper": self.params.iloc[k], "upper_se": np.sqrt(V[k, k])})
            for i, name in enumerate(self.slope_names):
                j = k + 1 + i
                rows.append({"term": name, "lower": self.params.iloc[i], "lower_se": np.sqrt(V[i, i]),
                             "upper": self.params.iloc[i] + self.params.iloc[j],
                             "upper_se": np.sqrt(max(V[i, i] + V[j, j] + 2 * V[i, j], 0.0))})
        return pd.DataFrame(rows).set_index("term")

    def summary(self) -> str:
        """Text summary: the model, the threshold, the coefficients, the regimes and the tests."""
        kind = "kink" if self.kink else "jump"
        trans = {"fd": "first differences", "fod": "forward orthogonal deviations"}[self.transform]
        lines = [
            "Dynamic panel threshold regression (Seo and Shin 2016), two-step GMM",
            f"Dependent variable: {self.y_name}    threshold variable: {self.q_name}    model: {kind}"
            + (f"    conventions: {self.conventions}" if self.conventions != "default" else ""),
            f"Entities: {self.n_entities}    equations ({trans}): {self.nobs}    instruments: {self.n_instruments}"
            + (" (collapsed)" if self.collapse else ""),
        ]
        if self.n_dropped:
            lines.append(f"Rows dropped for missing values: {self.n_dropped}")
        ci = self.conf_int()
        lines.append(f"Threshold: {self.threshold:.6g}  (se {self.threshold_se:.4g}; 95% CI "
                     f"[{ci.loc['threshold', 'lower']:.6g}, {ci.loc['threshold', 'upper']:.6g}]; first step "
                     f"{self.first_step_threshold:.6g}; grid of {self.grid.size} points)")
        lines.append("")
        header = f"{'':<24}{'coef':>12}{'std err':>12}{'z':>9}{'P>|z|':>9}{'[0.025':>12}{'0.975]':>12}"
        lines += [header, "-" * len(header)]
        se, t, p = self.bse, self.tvalues, self.pvalues
        for name in self.params.index:
            lines.append(f"{name:<24}{self.params[name]:>12.5g}{se[name]:>12.4g}{t[name]:>9.3f}{p[name]:>9.3f}"
                         f"{ci.loc[name, 'lower']:>12.5g}{ci.loc[name, 'upper']:>12.5g}")
        lines += ["", "Regimes (upper = lower + shift):"]
        reg = self.regimes
        lines.append(f"{'':<24}{'below':>12}{'(se)':>10}{'above':>12}{'(se)':>10}")
        for name, row in reg.iterrows():
            lines.append(f"{str(name):<24}{row['lower']:>12.5g}{row['lower_se']:>10.4g}{row['upper']:>12.5g}"
                         f"{row['upper_se']:>10.4g}")
        lines.append("")
        if self.j_df > 0:
            lines.append(f"Hansen J (overidentification): {self.j_stat:.4g}, df {self.j_df}, p = {self.j_pvalue:.4g}")
        if self.ar_tests:
            lines.append("Arellano-Bond serial correlation of the differenced residuals: " + "; ".join(
                f"AR({j}) z = {z:.4g}, p = {pv:.4g}" for j, (z, pv) in sorted(self.ar_tests.items())))
        lt = self.linearity_test
        if lt is not None:
            cv = ", ".join(f"{int(round(100 * k))}%: {v:.4g}" for k, v in lt.critical_values.items())
            lines.append(f"Linearity test (sup-Wald, fast bootstrap, {lt.n_boot} draws): {lt.statistic:.4g}, "
                         f"p = {lt.pvalue:.4g}; critical values {cv}")
            if self.kink:
                what = ("xthenreg's statistic: " if lt.kink_test == "xthenreg" else "") + " = ".join(lt.restricted) + " = 0"
                lines.append(f"  restriction: {what}")
        else:
            lines.append("Linearity test: not run (n_boot=0)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary for JSON output."""
        lt = self.linearity_test
        return {
            "model": "dynamic_threshold", "kink": self.kink, "transform": self.transform, "lags": self.lags,
            "threshold": self.threshold, "threshold_se": self.threshold_se,
            "params": {k: float(v) for k, v in self.params.items()},
            "bse": {k: float(v) for k, v in self.bse.items()},
            "nobs": self.nobs, "n_entities": self.n_entities, "n_instruments": self.n_instruments,
            "n_dropped": self.n_dropped, "j_stat": self.j_stat, "j_df": self.j_df,
            "conventions": self.conventions, "bandwidth": self.bandwidth,
            "ar_tests": {f"AR({j})": {"z": z, "pvalue": pv} for j, (z, pv) in sorted(self.ar_tests.items())},
            "linearity_test": None if lt is None else {"statistic": lt.statistic, "pvalue": lt.pvalue,
                                                       "n_boot": lt.n_boot, "restricted": list(lt.restricted),
                                                       "kink_test": lt.kink_test,
                                                       "critical_values": {str(k): v for k, v in
                                                                           lt.critical_values.items()}},
            "grid": self.grid.tolist(), "objective": self.objective.tolist(),
        }
