"""Three fixed effects on the public fixest benchmark designs, fastpanel against pyfixest.

Groups ``hardfe-<design>-<size>``: ``y ~ x1 | indiv + firm + year`` with n/10 individuals
observed 10 years each, n/230 firms assigned cyclically (``difficult``: firm = row mod n_firm,
a weakly connected design) or at random (``simple``). fastpanel ``feols`` (exact Schur-complement
solver, fastpanel.kway) and pyfixest ``feols`` (alternating projections) in the same group.
100k rows runs in the CI smoke run; 1M and 5M are ``large``.

Group ``within-shuffled-9M``: the two-way within transform of 9M x 6 (1M entities x 10 periods,
10% of cells missing) with rows sorted by entity and in random order, and pyfixest's demean on
the shuffled rows (``large``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel

SIZES = [
    pytest.param(100_000, id="100k"),
    pytest.param(1_000_000, id="1M", marks=pytest.mark.large),
    pytest.param(5_000_000, id="5M", marks=pytest.mark.large),
]
FML = "y ~ x1 | indiv + firm + year"


def fixest_design(n: int, difficult: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nb_indiv = n // 10
    nb_firm = round(nb_indiv / 23)
    indiv = np.repeat(np.arange(nb_indiv), 10)
    year = np.tile(np.arange(10), nb_indiv)
    firm = np.arange(n) % nb_firm if difficult else rng.integers(0, nb_firm, n)
    x1 = rng.normal(size=n)
    y = (x1 + 0.05 * x1**2 + rng.normal(size=nb_firm)[firm] + rng.normal(size=nb_indiv)[indiv]
         + rng.normal(size=10)[year] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x1": x1, "indiv": indiv, "firm": firm, "year": year})


def _group(n: int, design: str) -> str:
    return f"hardfe-{design}-{n // 1000}k"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("design", ["difficult", "simple"])
def test_fastpanel_feols_three_way(benchmark, size, design):
    df = fixest_design(size, design == "difficult")
    benchmark.group = _group(size, design)
    benchmark.extra_info["library"] = "fastpanel"
    fastpanel.feols(FML, fixest_design(20_000, design == "difficult"))  # warm (a prefix of 5M rows is all singletons)
    res = benchmark.pedantic(fastpanel.feols, args=(FML, df), rounds=3, warmup_rounds=0)
    assert res.nobs == len(df)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("design", ["difficult", "simple"])
def test_pyfixest_feols_three_way(benchmark, size, design):
    pf = pytest.importorskip("pyfixest")
    df = fixest_design(size, design == "difficult")
    benchmark.group = _group(size, design)
    benchmark.extra_info["library"] = "pyfixest"
    res = benchmark.pedantic(pf.feols, args=(FML, df), rounds=1, warmup_rounds=0)
    assert res._N == len(df)


@pytest.fixture(scope="module")
def shuffled_panel():
    rng = np.random.default_rng(0)
    N, T = 1_000_000, 10
    e = np.repeat(np.arange(N), T)
    t = np.tile(np.arange(T), N)
    keep = rng.uniform(size=N * T) > 0.1
    e, t = e[keep], t[keep]
    X = np.asfortranarray(rng.normal(size=(e.size, 6)))
    p = rng.permutation(e.size)
    return X, e, t, np.asfortranarray(X[p]), e[p], t[p]


@pytest.mark.large
@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_fastpanel_within_row_order(benchmark, shuffled_panel, order):
    X, e, t, Xs, es, ts = shuffled_panel
    args = (X, [e, t]) if order == "sorted" else (Xs, [es, ts])
    benchmark.group = "within-shuffled-9M"
    benchmark.extra_info["library"] = "fastpanel"
    benchmark.pedantic(fastpanel.within, args=args, rounds=5, warmup_rounds=1)


@pytest.mark.large
def test_pyfixest_demean_shuffled(benchmark, shuffled_panel):
    demean = pytest.importorskip("pyfixest.core").demean
    _, _, _, Xs, es, ts = shuffled_panel
    flist = np.column_stack([es, ts]).astype(np.uint64)
    w = np.ones(Xs.shape[0])
    benchmark.group = "within-shuffled-9M"
    benchmark.extra_info["library"] = "pyfixest"
    benchmark.pedantic(demean, args=(np.ascontiguousarray(Xs), flist, w), kwargs={"tol": 1e-8}, rounds=3)
