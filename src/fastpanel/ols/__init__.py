"""Fixed-effects OLS: :func:`feols` (formulas), :class:`PanelOLS` (arrays), :func:`etable`.

Modules: ``formula`` (formula parsing, pandas/polars input, ``split=``), ``model`` (cleaning,
within transform, solve), ``covariance`` (covariance types and small-sample presets, with
their exact formulas), ``results`` (results object and renderings), ``wald`` (Wald and F tests of ``R b = r``),
``etable``; ``multi`` (multiple estimation: several outcomes, ``sw``/``csw`` steps, :class:`FitCollection`); ``iv``, ``iv_results``, ``iv_diagnostics`` (2SLS with fixed effects).
"""

from __future__ import annotations

from fastpanel.ols.etable import ETable, etable
from fastpanel.ols.covariance import NonPSDCovarianceWarning
from fastpanel.ols.formula import MissingSplitWarning, feols
from fastpanel.ols.iv import PanelIV, WeakInstrumentWarning
from fastpanel.ols.iv_results import IVResults
from fastpanel.ols.model import CollinearityWarning, PanelOLS
from fastpanel.ols.multi import FitCollection
from fastpanel.ols.results import OLSResults
from fastpanel.ols.wald import WaldTestResult, wald_test

__all__ = ["feols", "FitCollection", "PanelOLS", "PanelIV", "IVResults", "WeakInstrumentWarning", "etable", "ETable", "OLSResults", "CollinearityWarning", "MissingSplitWarning",
           "NonPSDCovarianceWarning", "wald_test", "WaldTestResult"]
