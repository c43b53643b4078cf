"""fastpanel.PanelOLS against linearmodels PanelOLS defaults (ssc="linearmodels")."""

from __future__ import annotations

import numpy as np
import pytest

import fastpanel
from _ols_data import assert_close, panel

lm = pytest.importorskip("linearmodels")

DATA = {"balanced": panel(balanced=True), "unbalanced": panel(seed=1)}
EFFECTS = {"entity": (True, False), "time": (False, True), "both": (True, True)}
XS = ["x1", "x2"]


def _ours(df, effects, vcov, weights):
    ent, tim = EFFECTS[effects]
    model = fastpanel.PanelOLS(
        df.y, df[XS], df.entity, df.year, entity_effects=ent, time_effects=tim,
        weights=None if weights is None else df[weights],
    )
    return model.fit(vcov=vcov, ssc="linearmodels")


def _ref(df, effects, weights, cov_type, **cov_config):
    ent, tim = EFFECTS[effects]
    d = df.set_index(["entity", "year"])
    mod = lm.PanelOLS(d.y, d[XS], entity_effects=ent, time_effects=tim, weights=None if weights is None else d[weights])
    return mod.fit(cov_type=cov_type, **cov_config)


CASES = {
    "iid": ("unadjusted", {}),
    "HC1": ("robust", {}),
    "CRV1-entity": ("clustered", {"cluster_entity": True}),
    "CRV1-time": ("clustered", {"cluster_time": True}),
    "CRV1-both": ("clustered", {"cluster_entity": True, "cluster_time": True}),
    "DK": ("kernel", {}),
    "DK-1": ("kernel", {"bandwidth": 1}),
}
OURS = {
    "iid": "iid", "HC1": "HC1", "CRV1-entity": {"CRV1": "entity"}, "CRV1-time": {"CRV1": "time"},
    "CRV1-both": {"CRV1": "entity+time"}, "DK": {"DK": None}, "DK-1": {"DK": 1},
}


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("effects", list(EFFECTS))
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("weights", [None, "w"])
def test_matches_linearmodels(data, effects, case, weights):
    df = DATA[data]
    ours = _ours(df, effects, OURS[case], weights)
    cov_type, cfg = CASES[case]
    ref = _ref(df, effects, weights, cov_type, **cfg)
    assert_close(ours.params, ref.params[XS])
    assert_close(ours.bse, ref.std_errors[XS])
    # linearmodels' rsquared is the R2 after removing the model's effects (our rsquared_within)
    assert_close(ours.rsquared_within, ref.rsquared, rtol=1e-7)
    assert ours.nobs == ref.nobs


def test_cluster_on_other_variable():
    df = DATA["unbalanced"]
    ours = fastpanel.PanelOLS(df.y, df[XS], df.entity, df.year).fit(vcov={"CRV1": df.region.to_numpy()}, ssc="linearmodels")
    d = df.set_index(["entity", "year"])
    ref = lm.PanelOLS(d.y, d[XS], entity_effects=True).fit(cov_type="clustered", clusters=d[["region"]])
    assert_close(ours.bse, ref.std_errors[XS])


def test_dk_default_lags_follow_linearmodels_rule():
    df = panel(n_entities=20, n_periods=30, balanced=True, seed=4)
    ours = fastpanel.PanelOLS(df.y, df[XS], df.entity, df.year, time_effects=True).fit(vcov={"DK": None}, ssc="linearmodels")
    d = df.set_index(["entity", "year"])
    ref = lm.PanelOLS(d.y, d[XS], entity_effects=True, time_effects=True).fit(cov_type="kernel")
    assert_close(ours.bse, ref.std_errors[XS])
    assert np.floor(4 * (30 / 100) ** (2 / 9)) == 3
