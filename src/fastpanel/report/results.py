"""Uniform views of fitted models for reports: coefficient frames and JSON-ready dicts.

Works with any results object that uses statsmodels' names (``params``, ``bse``, ``pvalues``,
``conf_int()``, ``nobs``), so fastpanel's OLS and threshold results, and statsmodels' own,
render the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["coef_frame", "model_dict", "split_models", "to_jsonable", "iv_dict", "iv_text"]


def _series(value: Any, index: pd.Index | None = None) -> pd.Series:
    if isinstance(value, pd.Series):
        return value.astype(float)
    return pd.Series(np.asarray(value, dtype=float).ravel(), index=index)


def coef_frame(result: Any, truth: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Coefficient table of a fitted model.

    Parameters
    ----------
    result : results object
        Has ``params``, ``bse`` and ideally ``pvalues`` and ``conf_int()``.
    truth : mapping, optional
        True values by coefficient name; adds ``true`` and ``covered`` columns.

    Returns
    -------
    pandas.DataFrame
        Index: coefficient names; columns ``estimate, se, pvalue, ci_low, ci_high``
        (+ ``true, covered``).
    """
    params = _series(result.params)
    index = params.index
    bse = _series(result.bse, index)
    pvalues = _series(getattr(result, "pvalues", np.full(len(params), np.nan)), index)
    frame = pd.DataFrame({"estimate": params, "se": bse, "pvalue": pvalues})
    try:
        ci = result.conf_int()
        ci = ci if isinstance(ci, pd.DataFrame) else pd.DataFrame(np.asarray(ci), index=index)
        frame["ci_low"] = ci.iloc[:, 0].astype(float).to_numpy()
        frame["ci_high"] = ci.iloc[:, 1].astype(float).to_numpy()
    except (AttributeError, TypeError, NotImplementedError):
        frame["ci_low"] = params - 1.959963984540054 * bse
        frame["ci_high"] = params + 1.959963984540054 * bse
    if truth is not None:
        frame["true"] = [float(truth[name]) if name in truth else np.nan for name in frame.index]
        frame["covered"] = [
            bool(lo <= t <= hi) if not math.isnan(t) else None
            for lo, t, hi in zip(frame["ci_low"], frame["true"], frame["ci_high"])
        ]
    return frame


def split_models(result: Any) -> list[tuple[str, Any]]:
    """(label, result) pairs from a single fit or a split fit (dict, list or container).

    A multiple-estimation :class:`~fastpanel.ols.FitCollection` gives one pair per model (its
    label, e.g. ``"y1 ~ x1 | f1"``); a split fit of one (a dict of collections) gives
    ``"<group>: <label>"`` pairs.
    """
    if hasattr(result, "params"):
        return [("", result)]
    if isinstance(result, Mapping):
        pairs = []
        for k, v in result.items():
            if not hasattr(v, "params") and hasattr(v, "models") and not callable(v.models):
                pairs += [(f"{k}: {label}", r) for label, r in split_models(v)]
            else:
                pairs.append((str(k), v))
        return pairs
    for attr in ("models", "results", "fits"):
        inner = getattr(result, attr, None)
        if inner is not None and not callable(inner):
            return split_models(inner)
    if hasattr(result, "items") and callable(result.items):
        return [(str(k), v) for k, v in result.items()]
    if isinstance(result, (list, tuple)) or hasattr(result, "__iter__"):
        pairs = []
        for i, item in enumerate(result):
            if isinstance(item, tuple) and len(item) == 2 and not hasattr(item, "params"):
                pairs.append((str(item[0]), item[1]))
            else:
                label = getattr(item, "split_value", None) or getattr(item, "label", None) or str(i)
                pairs.append((str(label), item))
        return pairs
    raise TypeError(f"cannot read fitted models from {type(result).__name__}")


def _scalar(result: Any, name: str) -> Any:
    value = getattr(result, name, None)
    if callable(value) or value is None:
        return None
    try:
        return to_jsonable(value)
    except TypeError:
        return None


def model_dict(result: Any, truth: Mapping[str, float] | None = None) -> dict[str, Any]:
    """A JSON-ready description of one fitted model."""
    frame = coef_frame(result, truth)
    out: dict[str, Any] = {
        "coefficients": {
            name: {k: to_jsonable(v) for k, v in row.items()} for name, row in frame.iterrows()
        },
    }
    for name in ("nobs", "df_resid", "ssr", "rsquared", "rsquared_within", "rsquared_adj",
                 "fvalue", "f_pvalue", "backend", "vcov", "formula"):
        value = _scalar(result, name)
        if value is not None:
            out[name] = value
    if hasattr(result, "endog_names") and hasattr(result, "first_stage_f"):  # an IV (2SLS) fit
        out["iv"] = iv_dict(result)
    return out


def iv_dict(result: Any) -> dict[str, Any]:
    """The IV part of a 2SLS fit: variables, first-stage F, Kleibergen-Paap and Sanderson-Windmeijer
    F (several endogenous regressors), Durbin-Wu-Hausman."""
    out: dict[str, Any] = {
        "endogenous": list(result.endog_names),
        "instruments": list(result.instrument_names),
        "first_stage_f": to_jsonable(result.first_stage_f),
    }
    if len(result.endog_names) > 1:
        out["kp_rk_wald_f"] = to_jsonable(result.kp_rk_wald_f)
        out["sanderson_windmeijer_f"] = to_jsonable(result.sw_f)
    try:
        dwh = result.dwh()
        out["durbin_wu_hausman"] = {"stat": to_jsonable(dwh.stat), "pvalue": to_jsonable(dwh.pvalue),
                                    "distribution": dwh.dist_label}
    except ValueError as exc:  # e.g. a covariance that leaves the control-function test undefined
        out["durbin_wu_hausman"] = {"error": str(exc)}
    return out


def iv_text(result: Any) -> str:
    """One line on the IV part of a 2SLS fit (empty for other fits)."""
    if not (hasattr(result, "endog_names") and hasattr(result, "first_stage_f")):
        return ""
    d = iv_dict(result)
    fs = ", ".join(f"{k} {v:.4g}" for k, v in d["first_stage_f"].items())
    parts = [f"IV (2SLS): endogenous {', '.join(d['endogenous'])}; instruments {', '.join(d['instruments'])}; "
             f"first-stage F: {fs}"]
    if "kp_rk_wald_f" in d:
        parts.append(f"Kleibergen-Paap rk Wald F {d['kp_rk_wald_f']:.4g}")
    dwh = d["durbin_wu_hausman"]
    if "stat" in dwh:
        parts.append(f"Durbin-Wu-Hausman {dwh['distribution']} = {dwh['stat']:.4g} (p = {dwh['pvalue']:.4g})")
    return "; ".join(parts)


def to_jsonable(value: Any) -> Any:
    """Convert NumPy/pandas scalars and containers to plain JSON types (NaN -> None)."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.DataFrame):
        return {str(k): to_jsonable(v) for k, v in value.to_dict(orient="index").items()}
    if isinstance(value, pd.Series):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")
