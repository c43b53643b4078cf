"""Fixed-effects OLS: :func:`feols` (formulas), :class:`PanelOLS` (arrays), :func:`etable`.

Modules: ``formula`` (formula parsing, pandas/polars input, ``split=``), ``model`` (cleaning,
within transform, solve), ``covariance`` (covariance types and small-sample presets, with
their exact formulas), ``results`` (results object and renderings), ``etable``.
"""

from __future__ import annotations

from fastpanel.ols.etable import ETable, etable
from fastpanel.ols.formula import MissingSplitWarning, feols
from fastpanel.ols.model import CollinearityWarning, PanelOLS
from fastpanel.ols.results import OLSResults

__all__ = ["feols", "PanelOLS", "etable", "ETable", "OLSResults", "CollinearityWarning", "MissingSplitWarning"]
