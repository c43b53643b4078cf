"""Dynamic panel threshold regression (Seo and Shin 2016): first-differenced GMM with a
threshold found by grid search over the GMM objective, the kink-constrained variant and the
bootstrap sup-Wald linearity test (Seo, Kim and Kim 2019)."""

from fastpanel.dynamic_panel.gmm import InstrumentWarning
from fastpanel.dynamic_panel.model import DroppedEntitiesWarning, dynamic_threshold
from fastpanel.dynamic_panel.results import DynamicThresholdResults, LinearityTest

__all__ = ["DroppedEntitiesWarning", "DynamicThresholdResults", "InstrumentWarning", "LinearityTest", "dynamic_threshold"]
