"""Results of a 2SLS fit with fixed effects: :class:`IVResults` (OLSResults plus the first stage and
the IV diagnostics of :mod:`fastpanel.ols.iv_diagnostics`)."""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from fastpanel.ols import covariance as cov
from fastpanel.ols import iv_diagnostics as diag
from fastpanel.ols.results import OLSResults

__all__ = ["IVResults"]

WEAK_F = 10.0  # Staiger-Stock rule of thumb for the first-stage F


class IVResults(OLSResults):
    """Estimates, inference and diagnostics of a 2SLS fit (``feols("y ~ x | fe | d ~ z")``, :class:`PanelIV`).

    Everything of :class:`OLSResults` (``params``, ``bse``, ``cov_params()``, ``wald_test``,
    ``summary()``, ...) for the second stage, with the covariance of the 2SLS estimator
    (:mod:`fastpanel.ols.iv`). ``ssr`` and the R-squared use the structural residuals
    ``y - X b`` (the R-squared can be negative); ``fvalue`` is the Wald F test that every slope
    but the intercept is zero, under the fit's covariance.

    Attributes
    ----------
    exog_names, endog_names, instrument_names : list of str
        Kept exogenous regressors, endogenous regressors and excluded instruments.
    first_stage : dict of str -> OLSResults
        OLS of each endogenous regressor on the exogenous regressors and the instruments, with the
        same effects, sample, covariance type and preset.
    first_stage_f : pandas.Series
        Partial F of the excluded instruments in each first stage.
    kp_rk_wald, kp_rk_wald_f, kp_rk_df, kp_rk_pvalue : float
        Kleibergen-Paap rk Wald statistic (chi2 with ``kp_rk_df`` df), ``/ L``, p-value.
    sw_f : pandas.Series
        Sanderson-Windmeijer conditional F of each endogenous regressor.
    """

    def __init__(self, state: Any, spec: cov.VcovSpec, ssc: str, *, check_weak: bool = True) -> None:
        if spec.kind == "CR2":
            raise ValueError(
                "vcov={'CR2': ...} is not available for IV (2SLS) fits: Bell-McCaffrey's adjustment is "
                "defined for least squares; use {'CRV1': ...} or {'CRV3': ...}"
            )
        super().__init__(state, spec, ssc)
        self.exog_names = list(state.exog_names)
        self.endog_names = list(state.endog_names)
        self.instrument_names = list(state.instrument_names)
        k = state.k
        slopes = [j for j, nm in enumerate(state.names) if not (state.has_intercept and nm == "Intercept")]
        if slopes and self.df_resid > 0:
            R = np.zeros((len(slopes), k))
            R[np.arange(len(slopes)), slopes] = 1.0
            try:
                ft = self.wald_test(R, distribution="F")
                self.fvalue, self.f_pvalue = float(ft.stat), float(ft.pvalue)
            except ValueError:  # a covariance that is not positive definite (multiway CRV1): undefined
                self.fvalue = self.f_pvalue = np.nan
        else:
            self.fvalue = self.f_pvalue = np.nan
        if check_weak:
            self._warn_if_weak()

    # -- first stage -------------------------------------------------------------------------
    @cached_property
    def first_stage(self) -> dict[str, OLSResults]:
        return {d: OLSResults(st, self.vcov_spec, self.ssc) for d, st in diag.first_stage_states(self._state).items()}

    @cached_property
    def first_stage_f(self) -> pd.Series:
        return diag.first_stage_f(self.first_stage, self._state)

    @cached_property
    def _kp(self) -> tuple[float, int]:
        st = self._state
        iz = diag._z_block(st)
        own = {d: r.cov_params().to_numpy() for d, r in self.first_stage.items()}
        V_pi = diag.joint_pi_cov(st, self.vcov_spec, self.ssc, own)
        Pi_Z = np.column_stack([self.first_stage[d].params.to_numpy()[iz] for d in self.endog_names])
        return diag.kleibergen_paap(st, Pi_Z, V_pi)

    @property
    def kp_rk_wald(self) -> float:
        return self._kp[0]

    @property
    def kp_rk_df(self) -> int:
        return self._kp[1]

    @property
    def kp_rk_wald_f(self) -> float:
        return self._kp[0] / len(self.instrument_names)

    @property
    def kp_rk_pvalue(self) -> float:
        return diag.chi2_sf(self._kp[0], self._kp[1])

    @cached_property
    def sw_f(self) -> pd.Series:
        return diag.sanderson_windmeijer(self._state, self.vcov_spec, self.ssc)

    def dwh(self, distribution: str | None = None) -> Any:
        """Durbin-Wu-Hausman test (control-function form) that the endogenous regressors are
        exogenous, under the fit's covariance; ``distribution`` as in :meth:`wald_test`.

        Returns
        -------
        WaldTestResult
        """
        return diag.durbin_wu_hausman(self._state, self.vcov_spec, self.ssc, distribution)

    def _warn_if_weak(self) -> None:
        if len(self.endog_names) == 1:
            F = float(self.first_stage_f.iloc[0])
            what = f"first-stage F of {self.endog_names[0]!r} is {F:.3g}"
        else:
            F = self.kp_rk_wald_f
            what = f"Kleibergen-Paap rk Wald F of {', '.join(map(repr, self.endog_names))} is {F:.3g}"
        if not np.isfinite(F):
            warnings.warn(
                f"the {what} under {self.vcov_label}: that covariance of the first stage is not positive "
                "definite, so instrument strength could not be checked; use a one-way covariance to check it",
                _weak_warning(),
                stacklevel=4,
            )
        elif F < WEAK_F:
            warnings.warn(
                f"weak instruments ({', '.join(self.instrument_names)}): the {what} (under {self.vcov_label}), "
                f"below {WEAK_F:g}; 2SLS is then biased towards OLS and its t tests over-reject: use "
                "stronger instruments or weak-IV robust inference",
                _weak_warning(),
                stacklevel=4,
            )

    # -- not defined for 2SLS ------------------------------------------------------------------
    @property
    def f_poolability(self) -> dict[str, float]:  # type: ignore[override]
        raise ValueError("f_poolability (the F test of the fixed effects) is an OLS test; it is not defined for IV fits")

    def wildboottest(self, param: str | None = None, **kwargs: Any) -> Any:
        raise ValueError(
            "the wild cluster bootstrap of fastpanel is the one of OLS (WCR/WCU); IV fits need the wild "
            "restricted efficient bootstrap, which is not implemented: use vcov={'CRV1': ...} or CRV3"
        )

    # -- rendering -----------------------------------------------------------------------------
    def _info_rows(self) -> list[tuple[str, str]]:
        rows = super()._info_rows()
        rows = [r for r in rows if r[0] != "F statistic"]
        fs = ", ".join(f"{d}: {v:.4g}" for d, v in self.first_stage_f.items())
        extra = [
            ("Endogenous", ", ".join(self.endog_names)),
            ("Instruments", ", ".join(self.instrument_names)),
            ("First-stage F", fs),
        ]
        if len(self.endog_names) > 1:
            extra.append(("KP rk Wald F", f"{self.kp_rk_wald_f:.4g}"))
        extra.append(("Wald F (slopes)", f"{self.fvalue:.4f} (p = {self.f_pvalue:.4g})"))
        return rows[:6] + extra + rows[6:]

    def summary(self) -> str:
        return super().summary().replace("Fixed-effects OLS", "IV (2SLS) with fixed effects", 1)

    def __repr__(self) -> str:
        return (f"<IVResults {self.dependent} ~ {', '.join(self.params.index)} (endogenous: "
                f"{', '.join(self.endog_names)}); nobs={self.nobs}, vcov={self.vcov_label}>")


def _weak_warning() -> type:
    from fastpanel.ols.iv import WeakInstrumentWarning

    return WeakInstrumentWarning
