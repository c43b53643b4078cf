"""Figures for reports: the LR(gamma) curve of a threshold model and a coefficient plot.

matplotlib is imported lazily and figures are drawn on the Agg canvas without pyplot, so
reports build on headless machines, the user's own backend is left alone and ``import fastpanel``
never loads matplotlib. Figures are returned as PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["lr_curve_arrays", "lr_plot_png", "coef_plot_png", "hansen_critical_value", "objective_plot_png"]


def _figure(figsize: tuple[float, float]) -> Any:
    """A bare matplotlib Figure drawn by the Agg canvas: no pyplot, no global backend switch."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is an optional extra
        raise ImportError("plots need matplotlib: pip install 'fastpanel[plot]'") from exc
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def hansen_critical_value(level: float = 0.95) -> float:
    """Hansen (2000) critical value of the LR statistic: -2 ln(1 - sqrt(level))."""
    return -2.0 * math.log(1.0 - math.sqrt(level))


def lr_curve_arrays(curve: Any) -> tuple[np.ndarray, np.ndarray]:
    """(grid, LR) arrays from what ``ThresholdResults.lr_curve(k)`` returns.

    Accepts a (grid, lr) pair, a DataFrame (columns named like gamma/grid/threshold and lr,
    else the first two), a Series indexed by gamma, a mapping, or an object with ``grid`` /
    ``lr`` attributes.
    """
    if isinstance(curve, pd.DataFrame):
        cols = {str(c).lower(): c for c in curve.columns}
        g = next((cols[c] for c in ("gamma", "grid", "threshold", "q", "value") if c in cols),
                 curve.columns[0])
        lr = next((cols[c] for c in ("lr", "lr_stat", "statistic") if c in cols), curve.columns[-1])
        return curve[g].to_numpy(float), curve[lr].to_numpy(float)
    if isinstance(curve, pd.Series):
        return curve.index.to_numpy(float), curve.to_numpy(float)
    if isinstance(curve, Mapping):
        keys = {str(k).lower(): k for k in curve}
        g = next(keys[c] for c in ("gamma", "grid", "threshold") if c in keys)
        lr = next(keys[c] for c in ("lr", "lr_stat") if c in keys)
        return np.asarray(curve[g], float), np.asarray(curve[lr], float)
    for g_attr, lr_attr in (("grid", "lr"), ("gamma", "lr")):
        if hasattr(curve, g_attr) and hasattr(curve, lr_attr):
            return np.asarray(getattr(curve, g_attr), float), np.asarray(getattr(curve, lr_attr), float)
    grid, lr = curve
    return np.asarray(grid, float), np.asarray(lr, float)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def lr_plot_png(grid: np.ndarray, lr: np.ndarray, *, estimate: float | None = None,
                truth: float | None = None, level: float = 0.95, xlabel: str = "threshold",
                title: str | None = None) -> bytes:
    """Hansen's Figure 1: LR(gamma) with the critical-value line, as PNG bytes.

    Parameters
    ----------
    grid, lr : array
        Candidate thresholds and the LR statistic at each.
    estimate, truth : float, optional
        Vertical markers for the estimate and the true threshold.
    level : float, default 0.95
        Confidence level of the horizontal critical-value line.
    xlabel, title : str, optional
    """
    order = np.argsort(grid)
    fig = _figure((6.4, 3.6))
    ax = fig.subplots()
    ax.plot(grid[order], lr[order], color="#1f4e79", lw=1.4, label="LR(γ)")
    crit = hansen_critical_value(level)
    ax.axhline(crit, color="#b22222", ls="--", lw=1, label=f"{level:.0%} critical value ({crit:.2f})")
    if estimate is not None:
        ax.axvline(estimate, color="#1f4e79", ls=":", lw=1, label=f"estimate {estimate:.4g}")
    if truth is not None:
        ax.axvline(truth, color="#2e8b57", ls="-.", lw=1, label=f"true value {truth:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("LR statistic")
    # Keep the region around the critical value readable: a curve that rises to hundreds
    # would flatten the confidence set into the axis.
    finite = np.isfinite(lr)
    top = float(lr[finite].max()) if finite.any() else crit
    if top > 4 * crit:
        ax.set_ylim(0, 4 * crit)
        ax.set_ylabel(f"LR statistic (axis cut at {4 * crit:.1f}; max {top:.3g})")
        # and the x axis around the points below the cut, if they are a small part of the grid
        near = grid[finite & (lr <= 4 * crit)]
        span = float(np.ptp(grid)) if grid.size else 0.0
        if near.size and span > 0 and np.ptp(near) < 0.5 * span:
            pad = max(0.5 * float(np.ptp(near)), 0.02 * span)
            ax.set_xlim(float(near.min()) - pad, float(near.max()) + pad)
    else:
        ax.set_ylim(0, max(top, crit) * 1.15)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def objective_plot_png(grid: np.ndarray, objective: np.ndarray, *, estimate: float | None = None,
                       wald: np.ndarray | None = None, xlabel: str = "threshold",
                       title: str | None = None) -> bytes:
    """The GMM objective J(gamma) of the dynamic threshold model over its grid (and, on a
    second axis, the Wald statistic of no regime effect at each point), as PNG bytes."""
    order = np.argsort(grid)
    fig = _figure((6.4, 3.6))
    ax = fig.subplots()
    ax.plot(grid[order], objective[order], color="#1f4e79", lw=1.4, label="GMM objective J(γ)")
    if estimate is not None:
        ax.axvline(estimate, color="#1f4e79", ls=":", lw=1, label=f"estimate {estimate:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("second-step GMM objective")
    handles, labels = ax.get_legend_handles_labels()
    if wald is not None:
        ax2 = ax.twinx()
        ax2.plot(grid[order], wald[order], color="#b22222", lw=1, ls="--", label="Wald(γ), no regime effect")
        ax2.set_ylabel("Wald statistic")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if title:
        ax.set_title(title)
    ax.legend(handles, labels, frameon=False, fontsize=8)
    return _png(fig)


def coef_plot_png(rows: Sequence[tuple[str, float, float, float, float | None]], *,
                  title: str | None = None, xlabel: str = "estimate (95% CI)") -> bytes:
    """Dot-and-whisker plot with true values, as PNG bytes.

    Parameters
    ----------
    rows : sequence of (label, estimate, ci_low, ci_high, true or None)
    title, xlabel : str, optional
    """
    fig = _figure((6.4, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, (label, est, lo, hi, true) in zip(y, rows):
        ax.plot([lo, hi], [yi, yi], color="#1f4e79", lw=1.6)
        ax.plot([est], [yi], "o", color="#1f4e79", ms=5)
        if true is not None and not math.isnan(true):
            ax.plot([true], [yi], "x", color="#b22222", ms=7, mew=1.8)
    ax.plot([], [], "o", color="#1f4e79", label="estimate and 95% CI")
    ax.plot([], [], "x", color="#b22222", mew=1.8, label="true value")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="best")
    return _png(fig)
