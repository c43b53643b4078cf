"""fastpanel.feols against pyfixest feols (ssc="fixest", pyfixest's default ssc)."""

from __future__ import annotations

import numpy as np
import pytest

import fastpanel
from _ols_data import assert_close, panel

pf = pytest.importorskip("pyfixest")

DATA = {"balanced": panel(balanced=True), "unbalanced": panel(seed=1)}
MODELS = ["y ~ x1 + x2 | entity + year", "y ~ x1 + x2 + np.log(x3) | entity", "y ~ x1 + x2 + x1:x2"]
VCOVS = ["iid", "hetero", {"CRV1": "entity"}, {"CRV1": "region"}, {"CRV1": "cl"}, {"CRV1": "entity+year"}, {"CRV1": "region+cl"}]


def _compare(fml, df, vcov, weights=None):
    ours = fastpanel.feols(fml, df, vcov=vcov, weights=weights)
    ref = pf.feols(fml, df, vcov=vcov, weights=weights)
    assert list(ours.params.index) == list(ref.coef().index)
    assert_close(ours.params, ref.coef())
    assert_close(ours.bse, ref.se())
    assert_close(ours.tvalues, ref.tstat())
    # pyfixest computes 2 * (1 - cdf), exact only to about 1e-15 absolute
    np.testing.assert_allclose(ours.pvalues, ref.pvalue(), rtol=1e-6, atol=1e-12)
    assert ours.nobs == ref._N


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("fml", MODELS)
@pytest.mark.parametrize("vcov", VCOVS, ids=str)
@pytest.mark.parametrize("weights", [None, "w"])
def test_matches_pyfixest(data, fml, vcov, weights):
    _compare(fml, DATA[data], vcov, weights)


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("fml,cluster", [
    ("y ~ x1 + x2 | entity", "entity"),  # fixed effect nested in the cluster: fast path
    ("y ~ x1 + x2 | entity", "region"),
    ("y ~ x1 + x2 | entity + year", "region"),  # year not nested: leave-one-cluster-out refits
    ("y ~ x1 + x2 + x1:x2", "cl"),
])
def test_crv3_matches_pyfixest(data, weights, fml, cluster):
    _compare(fml, DATA[data], {"CRV3": cluster}, weights)


@pytest.mark.parametrize("vcov", ["HC2", "HC3"])
def test_hc23_cross_section_matches_pyfixest(vcov):
    _compare("y ~ x1 + x2 + x1:x2", DATA["unbalanced"], vcov)


def test_singletons_dropped_like_pyfixest():
    df = panel(seed=3)
    df = df.iloc[3:].reset_index(drop=True)  # entity 0 may now be a singleton
    df.loc[len(df)] = df.iloc[-1]
    df.loc[len(df) - 1, ["entity", "year"]] = [999, 2003]  # a new singleton entity
    ours = fastpanel.feols("y ~ x1 + x2 | entity + year", df, vcov={"CRV1": "entity"})
    ref = pf.feols("y ~ x1 + x2 | entity + year", df, vcov={"CRV1": "entity"})
    assert ours.n_singletons >= 1
    assert ours.nobs == ref._N
    assert_close(ours.bse, ref.se())
