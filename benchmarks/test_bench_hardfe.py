"""Three fixed effects on the public fixest benchmark designs, fastpanel against pyfixest.

Groups ``hardfe-<design>-<size>``: ``y ~ x1 | indiv + firm + year`` with n/10 individuals
observed 10 years each, n/230 firms assigned cyclically (``difficult``: firm = row mod n_firm,
a weakly connected design) or at random (``simple``). fastpanel ``feols`` (exact Schur-complement
solver, fastpanel.kway) and pyfixest ``feols`` (alternating projections) in the same group.
100k rows runs in the CI smoke run; 1M and 5M are ``large``.

Entries of the ``hardfe`` groups (``extra_info["library"]`` names them):

* ``fastpanel``: ``fastpanel.feols`` from the DataFrame, everything timed (test function name).
* ``fastpanel-demean+lstsq``: ``fastpanel.lowlevel.demean`` of [y, x...] on the (n, 3) uint32
  codes, then ``np.linalg.lstsq`` on the demeaned columns: the like-for-like peer of within-py.
* ``pyfixest``: ``pyfixest.feols`` with its default demeaner (``MapDemeaner``: Rust alternating
  projections, tol 1e-6), from the DataFrame.
* ``pyfixest+within``: ``pyfixest.feols(..., demeaner=LsmrDemeaner(backend="within"))``:
  pyfixest with the within LSMR solver (additive Schwarz preconditioner, tol 1e-8).
* ``within-py``: ``within.solve_batch(codes, [y, x...])`` (default options: adaptive
  preconditioner, tol 1e-8) then ``np.linalg.lstsq``; the codes as uint32 Fortran and the
  data as a Fortran array are built outside the timing. Convergence and iterations in
  ``extra_info``.

Group ``hardfe-difficult-10M-k10`` (``large``): the difficult design at 10M rows with k = 10
regressors (``y ~ x1 + ... + x10 | indiv + firm + year``): fastpanel ``feols``,
``fastpanel-demean+lstsq``, ``within-py`` (11 columns + lstsq) and ``pyfixest+within``, one run.
pyfixest's default MAP demeaner is left out of the k = 10 groups (measured 520 s at 1M rows on
2 cores, so hours at 10M); set ``FASTPANEL_BENCH_SLOW_PEERS=1`` to include it. Group
``hardfe-difficult-1M-k10`` (``large``): the same at 1M rows.

Group ``within-shuffled-9M``: the two-way within transform of 9M x 6 (1M entities x 10 periods,
10% of cells missing) with rows sorted by entity and in random order, and pyfixest's demean on
the shuffled rows (``large``).
"""

from __future__ import annotations

import os

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


def fixest_design(n: int, difficult: bool, seed: int = 0, k: int = 1) -> pd.DataFrame:
    """The fixest benchmark design; ``k > 1`` adds regressors x2..xk (normal, correlated with
    the firm effect) to the same y (k = 1 is the original design, unchanged)."""
    rng = np.random.default_rng(seed)
    nb_indiv = n // 10
    nb_firm = round(nb_indiv / 23)
    indiv = np.repeat(np.arange(nb_indiv), 10)
    year = np.tile(np.arange(10), nb_indiv)
    firm = np.arange(n) % nb_firm if difficult else rng.integers(0, nb_firm, n)
    x1 = rng.normal(size=n)
    y = (x1 + 0.05 * x1**2 + rng.normal(size=nb_firm)[firm] + rng.normal(size=nb_indiv)[indiv]
         + rng.normal(size=10)[year] + rng.normal(size=n))
    cols = {"y": y, "x1": x1}
    if k > 1:
        xrng = np.random.default_rng([seed, k])
        firm_shift = xrng.normal(size=nb_firm)
        for j in range(2, k + 1):
            xj = xrng.normal(size=n) + 0.5 * firm_shift[firm]
            y += 0.1 * j * xj
            cols[f"x{j}"] = xj
    cols.update({"indiv": indiv, "firm": firm, "year": year})
    return pd.DataFrame(cols)


def _fml_k(k: int) -> str:
    return "y ~ " + " + ".join(f"x{j}" for j in range(1, k + 1)) + " | indiv + firm + year"


def _codes_and_data(df: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) uint32 Fortran codes (indiv, firm, year: already dense) and [y, x1..xk] Fortran."""
    codes = np.empty((len(df), 3), dtype=np.uint32, order="F")
    for j, c in enumerate(("indiv", "firm", "year")):
        codes[:, j] = df[c].to_numpy()
    YX = np.empty((len(df), k + 1), order="F")
    for j, c in enumerate(["y"] + [f"x{i}" for i in range(1, k + 1)]):
        YX[:, j] = df[c].to_numpy()
    return codes, YX


def _lstsq_on(d: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(d[:, 1:], d[:, 0], rcond=None)[0]


def _fastpanel_demean_lstsq(codes: np.ndarray, YX: np.ndarray) -> tuple[np.ndarray, str]:
    from fastpanel.lowlevel import demean

    res = demean(YX, codes)
    return _lstsq_on(res.out), res.method


def _within_lstsq(codes: np.ndarray, YX: np.ndarray):
    import within

    res = within.solve_batch(codes, YX)
    return _lstsq_on(res.demeaned), res


def _pyfixest_within(fml: str, df: pd.DataFrame):
    import pyfixest as pf
    from pyfixest.demeaners import LsmrDemeaner

    return pf.feols(fml, df, demeaner=LsmrDemeaner(backend="within"))


def _pyfixest_coef(res) -> np.ndarray:
    return np.asarray(res.coef(), dtype=float)


def _group(n: int, design: str) -> str:
    return f"hardfe-{design}-{n // 1000}k"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("design", ["difficult", "simple"])
def test_fastpanel_feols_three_way(benchmark, size, design):
    df = fixest_design(size, design == "difficult")
    benchmark.group = _group(size, design)
    benchmark.name = "fastpanel"
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
    benchmark.name = "pyfixest"
    benchmark.extra_info["library"] = "pyfixest"
    res = benchmark.pedantic(pf.feols, args=(FML, df), rounds=1, warmup_rounds=0)
    assert res._N == len(df)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("design", ["difficult", "simple"])
def test_fastpanel_demean_lstsq_three_way(benchmark, size, design):
    df = fixest_design(size, design == "difficult")
    codes, YX = _codes_and_data(df, 1)
    benchmark.group = _group(size, design)
    benchmark.name = "fastpanel-demean+lstsq"
    benchmark.extra_info["library"] = "fastpanel-demean+lstsq"
    _fastpanel_demean_lstsq(*_codes_and_data(fixest_design(20_000, design == "difficult"), 1))  # warm
    beta, method = benchmark.pedantic(_fastpanel_demean_lstsq, args=(codes, YX), rounds=3, warmup_rounds=0)
    benchmark.extra_info["method"] = method
    benchmark.extra_info["beta_x1"] = float(beta[0])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("design", ["difficult", "simple"])
def test_pyfixest_within_feols_three_way(benchmark, size, design):
    pytest.importorskip("pyfixest.demeaners")
    pytest.importorskip("within")
    df = fixest_design(size, design == "difficult")
    benchmark.group = _group(size, design)
    benchmark.name = "pyfixest+within"
    benchmark.extra_info["library"] = "pyfixest+within"
    _pyfixest_within(FML, fixest_design(20_000, design == "difficult"))  # warm
    res = benchmark.pedantic(_pyfixest_within, args=(FML, df), rounds=1, warmup_rounds=0)
    assert res._N == len(df)
    benchmark.extra_info["beta_x1"] = float(_pyfixest_coef(res)[0])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("design", ["difficult", "simple"])
def test_within_py_three_way(benchmark, size, design):
    pytest.importorskip("within")
    df = fixest_design(size, design == "difficult")
    codes, YX = _codes_and_data(df, 1)
    benchmark.group = _group(size, design)
    benchmark.name = "within-py"
    benchmark.extra_info["library"] = "within-py"
    _within_lstsq(*_codes_and_data(fixest_design(20_000, design == "difficult"), 1))  # warm
    beta, res = benchmark.pedantic(_within_lstsq, args=(codes, YX), rounds=1 if size > 1_000_000 else 3,
                                   warmup_rounds=0)
    _within_extra(benchmark, res, beta)
    ref, _ = _fastpanel_demean_lstsq(codes, YX)
    benchmark.extra_info["beta_diff_vs_fastpanel"] = float(np.abs(beta - ref).max())


def _within_extra(benchmark, res, beta) -> None:
    benchmark.extra_info.update({
        "converged": bool(all(res.converged)), "iterations": [int(i) for i in res.iterations],
        "time_setup": float(res.time_setup), "beta_x1": float(beta[0]),
    })


# --------------------------------------------------------------------------------------------
# the difficult design with k = 10 regressors (10M rows: the target; 1M: the same)
# --------------------------------------------------------------------------------------------
K10_SIZES = [
    pytest.param(1_000_000, id="1M", marks=pytest.mark.large),
    pytest.param(10_000_000, id="10M", marks=pytest.mark.large),
]
K10 = 10


@pytest.fixture(scope="module", params=K10_SIZES)
def k10(request):
    n = request.param
    df = fixest_design(n, True, k=K10)
    codes, YX = _codes_and_data(df, K10)
    return n, df, codes, YX


def _k10_group(n: int) -> str:
    return f"hardfe-difficult-{n // 1_000_000}M-k{K10}"


def test_k10_fastpanel_feols(benchmark, k10):
    n, df, _, _ = k10
    benchmark.group = _k10_group(n)
    benchmark.name = "fastpanel"
    benchmark.extra_info["library"] = "fastpanel"
    fastpanel.feols(_fml_k(K10), fixest_design(20_000, True, k=K10))  # warm
    res = benchmark.pedantic(fastpanel.feols, args=(_fml_k(K10), df), rounds=3, warmup_rounds=0)
    assert res.nobs == len(df)
    benchmark.extra_info["beta_x1"] = float(np.asarray(res.params)[0])


def test_k10_fastpanel_demean_lstsq(benchmark, k10):
    n, _, codes, YX = k10
    benchmark.group = _k10_group(n)
    benchmark.name = "fastpanel-demean+lstsq"
    benchmark.extra_info["library"] = "fastpanel-demean+lstsq"
    _fastpanel_demean_lstsq(*_codes_and_data(fixest_design(20_000, True, k=K10), K10))  # warm
    beta, method = benchmark.pedantic(_fastpanel_demean_lstsq, args=(codes, YX), rounds=3, warmup_rounds=0)
    benchmark.extra_info.update({"method": method, "beta_x1": float(beta[0])})


def test_k10_within_py(benchmark, k10):
    pytest.importorskip("within")
    n, _, codes, YX = k10
    benchmark.group = _k10_group(n)
    benchmark.name = "within-py"
    benchmark.extra_info["library"] = "within-py"
    _within_lstsq(*_codes_and_data(fixest_design(20_000, True, k=K10), K10))  # warm
    beta, res = benchmark.pedantic(_within_lstsq, args=(codes, YX), rounds=1 if n > 1_000_000 else 2,
                                   warmup_rounds=0)
    _within_extra(benchmark, res, beta)
    ref, _ = _fastpanel_demean_lstsq(codes, YX)
    benchmark.extra_info["beta_diff_vs_fastpanel"] = float(np.abs(beta - ref).max())


def test_k10_pyfixest_within(benchmark, k10):
    pytest.importorskip("pyfixest.demeaners")
    pytest.importorskip("within")
    n, df, _, _ = k10
    benchmark.group = _k10_group(n)
    benchmark.name = "pyfixest+within"
    benchmark.extra_info["library"] = "pyfixest+within"
    _pyfixest_within(_fml_k(K10), fixest_design(20_000, True, k=K10))  # warm
    res = benchmark.pedantic(_pyfixest_within, args=(_fml_k(K10), df), rounds=1, warmup_rounds=0)
    assert res._N == len(df)
    benchmark.extra_info["beta_x1"] = float(_pyfixest_coef(res)[0])


@pytest.mark.skipif(os.environ.get("FASTPANEL_BENCH_SLOW_PEERS", "") != "1",
                    reason="pyfixest MAP on the k = 10 difficult design takes ~520 s at 1M rows; "
                           "set FASTPANEL_BENCH_SLOW_PEERS=1")
def test_k10_pyfixest_map(benchmark, k10):
    pf = pytest.importorskip("pyfixest")
    n, df, _, _ = k10
    benchmark.group = _k10_group(n)
    benchmark.name = "pyfixest"
    benchmark.extra_info["library"] = "pyfixest"
    res = benchmark.pedantic(pf.feols, args=(_fml_k(K10), df), rounds=1, warmup_rounds=0)
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
