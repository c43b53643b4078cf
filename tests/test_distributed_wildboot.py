"""The wild cluster bootstrap of a fit on Dask equals the in-memory one (same draws, keyed by label).

The Dask fit keeps a recipe, not the data: ``wildboottest`` runs one more round that returns
the pseudo-rows of each (entity, period) cell (``fastpanel.distributed.wildboot``), then the
in-memory algorithm on them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.distributed.wildboot import pseudo_rows

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")


def _panel(seed: int, G: int = 12, T: int = 6, per: int = 8) -> pd.DataFrame:
    """G entities (provinces) with many rows per (entity, year) cell, in random order, gaps."""
    rng = np.random.default_rng(seed)
    n = G * T * per
    df = pd.DataFrame({"prov": rng.integers(0, G, n) * 7 + 3, "year": rng.integers(2000, 2000 + T, n)})
    eta = rng.normal(size=G * 7 + 3)[df.prov]
    df["x1"] = rng.normal(size=n) + 0.5 * eta + 1e3
    df["x2"] = rng.normal(size=n) * 1e-3
    df["y"] = 0.1 * df.x1 + 50 * df.x2 + eta + rng.normal(size=n)
    df["w"] = rng.uniform(0.5, 2.0, n)
    return df.sample(frac=0.9, random_state=seed).reset_index(drop=True)


def test_pseudo_rows_reproduce_every_cell_gram():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(500, 5)) * np.array([1e3, 1.0, 1e-3, 1.0, 1.0])
    cells = rng.integers(0, 40, 500)
    rows, cell = pseudo_rows(M, cells, 40)
    for c in range(40):
        want = M[cells == c].T @ M[cells == c]
        got = rows[cell == c].T @ rows[cell == c]
        scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
        assert np.abs(got - want).max() <= 1e-13 * scale.max() and (np.abs(got - want) / scale).max() < 1e-13


@pytest.mark.parametrize("fe", ["prov", "prov + year"])
@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("btype", ["11", "31"])
def test_dask_wildboot_equals_in_memory(dask_client, fe, weights, btype):
    df = _panel(1)
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    if btype == "31" and fe != "prov":
        btype = "11"  # the jackknife needs the effects nested in the clusters
    kw = dict(B=999, seed=5, bootstrap_type=btype, return_draws=True)
    want = fastpanel.feols(f"y ~ x1 + x2 | {fe}", df, vcov={"CRV1": "prov"}, weights=weights)
    got = fastpanel.feols(f"y ~ x1 + x2 | {fe}", ddf, vcov={"CRV1": "prov"}, weights=weights)
    a = want.wildboottest("x1", **kw)
    b = got.wildboottest("x1", **kw)
    assert b.statistic == pytest.approx(a.statistic, rel=1e-9)
    np.testing.assert_allclose(b.draws, a.draws, rtol=1e-8, atol=1e-10)
    assert b.pvalue == a.pvalue and b.B == a.B


def test_dask_wildboot_period_clusters_and_full_enumeration(dask_client):
    df = _panel(2)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    want = fastpanel.feols("y ~ x1 + x2 | prov + year", df, vcov={"CRV1": "year"})
    got = fastpanel.feols("y ~ x1 + x2 | prov + year", ddf, vcov={"CRV1": "year"})
    a = want.wildboottest("x2", B=9999, return_draws=True)
    b = got.wildboottest("x2", B=9999, return_draws=True)
    assert a.full_enumeration and b.full_enumeration and a.B == 2 ** 6
    np.testing.assert_allclose(b.draws, a.draws, rtol=1e-8, atol=1e-10)
    assert b.pvalue == a.pvalue
