"""Reports for papers: tables (text, Markdown, LaTeX, HTML), figures (PNG) and report folders.

matplotlib is needed only for figures and is imported on first use.
"""

from __future__ import annotations

from fastpanel.report.document import Report, ReportWriteError, check_output_dir
from fastpanel.report.plots import (
    coef_plot_png,
    hansen_critical_value,
    lr_curve_arrays,
    lr_plot_png,
    objective_plot_png,
)
from fastpanel.report.results import coef_frame, model_dict, split_models, to_jsonable
from fastpanel.report.tables import coef_table, frame_table, render, side_by_side, stars

__all__ = [
    "Report",
    "ReportWriteError",
    "check_output_dir",
    "coef_frame",
    "coef_plot_png",
    "coef_table",
    "frame_table",
    "hansen_critical_value",
    "lr_curve_arrays",
    "lr_plot_png",
    "objective_plot_png",
    "model_dict",
    "render",
    "side_by_side",
    "split_models",
    "stars",
    "to_jsonable",
]
