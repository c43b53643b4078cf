"""``res.model_for(k)`` of a fit with K thresholds is the k-threshold model, field by field.

Oracle: a separate fit with ``n_thresholds=k`` (Hansen's sequential estimation runs the same
stages in both, so every field must agree exactly). Issue 19, item 1: ``model_for(1).lr_curve(1)``
of a two-threshold fit used to return the two-threshold fit's refined curve.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastpanel
from fastpanel.cli.threshold_report import shown_lr_curve

from _threshold_data import hansen_model, random_panel

TRIM = (0.05, 0.03, 0.03)


def _two_threshold_panel(seed: int, unbalanced: bool = False):
    """A panel whose regime slope jumps at q = 0.3 and again at q = 0.7 (rows shuffled)."""
    rng = np.random.default_rng(seed)
    y, X, Z, q, ent, time = random_panel(rng, 40, 8, 1, unbalanced=unbalanced)
    y = y + Z[:, 0] * (1.5 * (q > 0.3) + 1.5 * (q > 0.7))
    order = rng.permutation(y.size)
    return tuple(a[order] for a in (y, X, Z, q, ent, time))


def _assert_same_model(view, ref) -> None:
    np.testing.assert_array_equal(view.thresholds, ref.thresholds)
    assert view.ci == ref.ci
    assert len(view.ci_sets) == len(ref.ci_sets)
    for a, b in zip(view.ci_sets, ref.ci_sets):
        np.testing.assert_array_equal(a, b)
    for j in range(1, len(ref.thresholds) + 1):
        ga, la = view.lr_curve(j)
        gb, lb = ref.lr_curve(j)
        np.testing.assert_array_equal(ga, gb)
        np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(view.params.index, ref.params.index)
    # the coefficients come from the same linear fit at the same thresholds: equal to rounding
    np.testing.assert_allclose(view.params.to_numpy(), ref.params.to_numpy(), rtol=1e-12, atol=1e-14)
    for attr in ("bse", "bse_robust", "bse_cluster"):
        np.testing.assert_allclose(getattr(view, attr).to_numpy(), getattr(ref, attr).to_numpy(),
                                   rtol=1e-12, atol=1e-14)
    assert view.ssr == pytest.approx(ref.ssr, rel=1e-13)


@pytest.mark.parametrize("conventions", ["default", "hansen1999"])
@pytest.mark.parametrize("K", [1, 2, 3])
def test_model_for_equals_a_fit_with_that_many_thresholds(K, conventions):
    y, X, Z, q, ent, time = _two_threshold_panel(3)
    m = fastpanel.ThresholdPanel(y, X, Z, q, ent, time, conventions=conventions)
    kw = dict(n_boot=0, grid="exact", progress=False)
    full = m.fit(K, trim=TRIM[:K], **kw)
    for k in range(1, K + 1):
        _assert_same_model(full.model_for(k), m.fit(k, trim=TRIM[:k], **kw))
    assert len(full.model_for(0).thresholds) == 0
    with pytest.raises(ValueError, match="no threshold"):
        full.model_for(0).lr_curve(1)


def test_model_for_unbalanced_wild():
    y, X, Z, q, ent, time = _two_threshold_panel(11, unbalanced=True)
    m = fastpanel.ThresholdPanel(y, X, Z, q, ent, time)
    kw = dict(n_boot=0, grid=60, progress=False)
    full = m.fit(3, trim=TRIM, **kw)
    for k in (1, 2):
        _assert_same_model(full.model_for(k), m.fit(k, trim=TRIM[:k], **kw))


def test_model_for_one_threshold_curve_is_not_the_refined_curve():
    """The bug's symptom: the one-threshold model's curve differs from the refined first-threshold
    curve of the two-threshold fit (the refinement conditions on the second threshold)."""
    y, X, Z, q, ent, time = _two_threshold_panel(3)
    full = fastpanel.ThresholdPanel(y, X, Z, q, ent, time).fit(2, trim=TRIM[:2], n_boot=0, grid="exact",
                                                             progress=False)
    _, lr_one = full.model_for(1).lr_curve(1)
    _, lr_refined = full.lr_curve(1)
    assert np.isfinite(lr_one).all()  # no exclusion window in the one-threshold scan
    assert not np.array_equal(lr_one, lr_refined)
    # each curve is zero at its own estimate
    g = full.grid
    assert lr_one[np.searchsorted(g, full.model_for(1).thresholds[0])] == 0.0


def test_hansen_data_model_for():
    m = hansen_model()
    kw = dict(n_boot=0, trim=0.01, grid=100, progress=False)
    full = m.fit(3, **kw)
    for k in (1, 2):
        _assert_same_model(full.model_for(k), m.fit(k, **kw))


@pytest.mark.parametrize("selected", [0, 1, 2])
def test_report_plots_the_selected_models_own_curve(selected):
    y, X, Z, q, ent, time = _two_threshold_panel(3)
    full = fastpanel.ThresholdPanel(y, X, Z, q, ent, time).fit(2, trim=TRIM[:2], n_boot=0, grid="exact",
                                                             progress=False)
    full.n_selected = selected  # what the sequential tests would have chosen
    grid, lr, estimate, caption = shown_lr_curve(full)
    own = full.model_for(max(selected, 1))
    g_ref, lr_ref = own.lr_curve(1)
    np.testing.assert_array_equal(grid, g_ref)
    np.testing.assert_array_equal(lr, lr_ref)
    assert estimate == own.thresholds[0]
    assert (f"selected {selected}-threshold" in caption) if selected else ("no threshold selected" in caption)
