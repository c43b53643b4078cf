"""Panel threshold regression (Hansen 1999) with an exact one-sweep grid search.

See :func:`threshold` (formula API), :class:`ThresholdPanel` (arrays) and
:class:`ThresholdResults`. The package is named ``panel_threshold`` so that it never shadows
the function ``fastpanel.threshold``.
"""

from fastpanel.panel_threshold.model import ThresholdPanel, threshold
from fastpanel.panel_threshold.results import ThresholdResults

__all__ = ["ThresholdPanel", "ThresholdResults", "threshold"]
