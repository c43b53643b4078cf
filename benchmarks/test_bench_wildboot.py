"""Wild cluster bootstrap (WCR11, Rademacher) on fixed-effects OLS: fastpanel vs ``wildboottest``.

The peer is the PyPI package ``wildboottest`` (``WildboottestCL``), the engine behind pyfixest's
``Feols.wildboottest``. Both entries of a group test H0: coefficient of ``x1`` = 0 on the same
data in the same run:

* ``fastpanel-<backend>``: ``res.wildboottest("x1", ...)`` on a fit made in setup; only the
  bootstrap is timed (the one pass over the data, the draws, the p-value).
* ``wildboottest``: its whole test given the design (``WildboottestCL(...)`` then
  ``get_scores / get_weights / get_numer / get_denom / get_tboot / get_vcov / get_tstat /
  get_pvalue``, the sequence pyfixest runs). The design is built in setup, as pyfixest would
  hand it over: with the fixed effects as one-hot dummy columns (``_model_matrix_one_hot``)
  where the dummy count is small, and within-transformed (demeaned) X and y for the 1M-row
  case with 100k firm effects (see :func:`_demeaned_design`).

Groups (``B`` draws, ``G`` clusters, firms nested in the clusters):

| group | rows | G | effects | B | peer design |
|---|---|---|---|---|---|
| ``wildboot-31x10k`` | 10,000 (500 firms x 20 years) | 31 | firm + year | 99,999 | dummies (521 columns) |
| ``wildboot-500x1M`` (``large``) | 1,000,000 (100k firms x 10 years) | 500 | firm | 9,999 | demeaned |
| ``wildboot-smoke-31x1k`` | 1,000 (50 firms x 20 years) | 31 | firm + year | 999 | dummies |
| ``wildboot-smoke-50x10k`` | 10,000 (1,000 firms x 10 years) | 50 | firm | 999 | demeaned |

Full enumeration does not happen (2^31 and 2^50 exceed every B), so both libraries draw
random Rademacher weights from their own generators: the p-values agree up to Monte Carlo
error only (sd of the difference of two independent p-values ``sqrt(2 p (1 - p) / B)``).
Both are recorded in ``extra_info`` (``pvalue``, ``pvalue_fastpanel``, ``pvalue_wildboottest``,
``pvalue_diff``, ``pvalue_diff_mc_sd``) and the test asserts they agree within 5 such sd.
The t statistics differ by the small-sample factor ``(N-1)/(N-K)`` only (the peer's K counts
the columns it gets, every dummy included; fastpanel's fixest preset counts a nested effect as
one); the test checks this to 1e-8. The factor leaves the bootstrap p-value unchanged (the
data's t and every draw's t carry it alike).

Run: ``pytest benchmarks/test_bench_wildboot.py [-m large]``; the ratio section printed at the
end (``conftest.py``) gives peer time / fastpanel time (min and median).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

import fastpanel

wbt = pytest.importorskip("wildboottest.wildboottest")


@dataclass(frozen=True)
class Case:
    name: str
    G: int
    n_firms: int
    n_years: int
    twoway: bool
    B: int
    peer_design: str  # "dummies" or "demeaned"
    fp_rounds: int
    peer_rounds: int


CASES = [
    pytest.param(Case("31x10k", 31, 500, 20, True, 99_999, "dummies", 10, 3), id="31x10k"),
    pytest.param(Case("500x1M", 500, 100_000, 10, False, 9_999, "demeaned", 5, 1), id="500x1M",
                 marks=pytest.mark.large),
    pytest.param(Case("smoke-31x1k", 31, 50, 20, True, 999, "dummies", 10, 3), id="smoke-31x1k"),
    pytest.param(Case("smoke-50x10k", 50, 1_000, 10, False, 999, "demeaned", 10, 3), id="smoke-50x10k"),
]
SEED = 1


@dataclass
class Data:
    case: Case
    df: pd.DataFrame
    fml: str
    res: object  # the fastpanel fit (setup, not timed)
    X_peer: np.ndarray  # the design the peer receives
    y_peer: np.ndarray
    cluster: np.ndarray
    backend: str
    pvalues: dict = field(default_factory=dict)


def _panel(c: Case, seed: int = 0) -> pd.DataFrame:
    """Firms x years, firms nested in G clusters (firm mod G); x1 and the error carry a
    cluster component; the true coefficient of x1 is 0 (H0 true)."""
    rng = np.random.default_rng(seed)
    firm = np.repeat(np.arange(c.n_firms, dtype=np.int64), c.n_years)
    year = np.tile(np.arange(c.n_years, dtype=np.int64), c.n_firms)
    g = firm % c.G
    n = firm.size
    x1 = rng.normal(size=n) + rng.normal(size=c.G)[g]
    x2 = rng.normal(size=n)
    y = (0.5 * x2 + rng.normal(size=c.n_firms)[firm] + (rng.normal(size=c.n_years)[year] if c.twoway else 0.0)
         + rng.normal(size=c.G)[g] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "firm": firm, "year": year, "g": g})


def _dummy_design(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """[x1, x2, firm dummies, year dummies without the first]: the fixed effects as one-hot
    columns, as pyfixest's ``_model_matrix_one_hot`` hands them to wildboottest."""
    firm, year = df.firm.to_numpy(), df.year.to_numpy()
    nf, ny = int(firm.max()) + 1, int(year.max()) + 1
    X = np.zeros((len(df), 2 + nf + ny - 1))
    X[:, 0], X[:, 1] = df.x1.to_numpy(), df.x2.to_numpy()
    rows = np.arange(len(df))
    X[rows, 2 + firm] = 1.0
    keep = year > 0
    X[rows[keep], 2 + nf + year[keep] - 1] = 1.0
    return X, df.y.to_numpy()


def _demeaned_design(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Within-transformed (firm-demeaned) [x1, x2] and y.

    This is what the peer needs to be feasible at all: 100k firm dummies at 1M rows would be a
    dense 1M x 100k matrix (800 GB), and wildboottest forms k x k cross products. It is
    equivalent for the slopes (Frisch-Waugh-Lovell) and, because the firm effects are nested in
    the bootstrap clusters, for the cluster scores and the bootstrap draws as well (demeaning
    within firms does not mix clusters), so the WCR11 test of x1 is the same test.
    """
    Z = fastpanel.within(np.column_stack([df.y.to_numpy(), df.x1.to_numpy(), df.x2.to_numpy()]),
                         df.firm.to_numpy())
    return np.ascontiguousarray(Z[:, 1:]), np.ascontiguousarray(Z[:, 0])


def _peer(X: np.ndarray, y: np.ndarray, cluster: np.ndarray, B: int, seed: int):
    """wildboottest's whole WCR11 test, the calls pyfixest's ``Feols.wildboottest`` makes."""
    R = np.zeros(X.shape[1])
    R[0] = 1.0
    boot = wbt.WildboottestCL(X=X, Y=y, cluster=cluster, R=R, B=B, seed=seed)
    boot.get_scores(bootstrap_type="11", impose_null=True)
    boot.get_weights(weights_type="rademacher")
    boot.get_numer()
    boot.get_denom()
    boot.get_tboot()
    boot.get_vcov()
    boot.get_tstat()
    boot.get_pvalue(pval_type="two-tailed")
    return boot


def _fastpanel(res, B: int):
    return res.wildboottest("x1", B=B, weights="rademacher", impose_null=True, bootstrap_type="11", seed=SEED)


@pytest.fixture(scope="session")
def _warm_peer():
    """One small peer run: numba's first compilation (LLVM start-up) is not timed. The peer
    still compiles its inner ``compute_denom`` closure on every call: that is its real cost."""
    rng = np.random.default_rng(0)
    X, y, g = rng.normal(size=(200, 2)), rng.normal(size=200), np.repeat(np.arange(20), 10)
    _peer(X, y, g, 99, 0)


@pytest.fixture(scope="module", params=CASES)
def data(request) -> Data:
    c: Case = request.param
    df = _panel(c)
    fml = "y ~ x1 + x2 | firm + year" if c.twoway else "y ~ x1 + x2 | firm"
    res = fastpanel.feols(fml, df, vcov={"CRV1": "g"})
    backend = _fastpanel(res, 99).backend  # warm (kernels, caches)
    X, y = _dummy_design(df) if c.peer_design == "dummies" else _demeaned_design(df)
    return Data(c, df, fml, res, X, y, df.g.to_numpy(), backend)


def test_fastpanel(benchmark, data: Data):
    c = data.case
    benchmark.group = f"wildboot-{c.name}"
    benchmark.name = f"fastpanel-{data.backend}"
    wb = benchmark.pedantic(_fastpanel, args=(data.res, c.B), rounds=c.fp_rounds, warmup_rounds=0)
    assert not wb.full_enumeration and wb.B == c.B and wb.n_boot_clusters == c.G
    assert wb.statistic == pytest.approx(float(data.res.tvalues["x1"]), rel=1e-10)
    data.pvalues["fastpanel"] = wb.pvalue
    benchmark.extra_info.update(library="fastpanel", backend=wb.backend, B=c.B, G=c.G, n=len(data.df),
                                effects="firm + year" if c.twoway else "firm", pvalue=wb.pvalue,
                                statistic=wb.statistic)


def test_wildboottest(benchmark, data: Data, _warm_peer):
    c = data.case
    benchmark.group = f"wildboot-{c.name}"
    benchmark.name = "wildboottest"
    boot = benchmark.pedantic(_peer, args=(data.X_peer, data.y_peer, data.cluster, c.B, SEED),
                              rounds=c.peer_rounds, warmup_rounds=0)
    p_peer = float(boot.pvalue)
    t_peer = float(np.ravel(boot.t_stat)[0])
    assert not boot.full_enumeration and boot.B == c.B
    # fastpanel's p-value of the same run (computed again if its entry was deselected: cheap)
    wb = _fastpanel(data.res, c.B)
    p_fp = data.pvalues.get("fastpanel", wb.pvalue)
    # independent random draws: the p-values differ by Monte Carlo error only
    p_bar = 0.5 * (p_fp + p_peer)
    mc_sd = math.sqrt(2.0 * max(p_bar * (1.0 - p_bar), 1.0 / c.B) / c.B)
    benchmark.extra_info.update(
        library="wildboottest", peer_design=c.peer_design, peer_columns=int(data.X_peer.shape[1]), B=c.B, G=c.G,
        n=len(data.df), pvalue=p_peer, pvalue_wildboottest=p_peer, pvalue_fastpanel=p_fp,
        pvalue_diff=p_peer - p_fp, pvalue_diff_mc_sd=mc_sd, statistic=t_peer, statistic_fastpanel=wb.statistic,
    )
    assert abs(p_peer - p_fp) <= 5.0 * mc_sd, (p_peer, p_fp, mc_sd)
    # Same test, different small-sample factor (N-1)/(N-K): fastpanel's fixest preset counts the
    # 2 slopes, 1 for the firm effects (nested in the clusters) and n_years - 1 for the year
    # effects; the peer counts the columns it gets (the 2 slopes, plus every dummy), so
    # t_peer = t_fastpanel * sqrt((N - K_peer) / (N - K_fastpanel)) exactly; the p-values differ by
    # Monte Carlo error only (the factor multiplies the data's t and every draw's t alike).
    n = len(data.df)
    K_fp = 2 + 1 + (c.n_years - 1 if c.twoway else 0)
    K_peer = data.X_peer.shape[1]
    assert t_peer == pytest.approx(wb.statistic * math.sqrt((n - K_peer) / (n - K_fp)), rel=1e-8)
