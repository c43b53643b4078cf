"""Two-way within transform on a grid of panel shapes: fastpanel, pyfixest and within-py.

One pytest-benchmark group per shape, ``shapes-<N>x<T>x<p>-<sorted|shuffled>-<unweighted|weighted>``
(``N`` entities, ``T`` periods, ``p`` columns; ``1M`` = 1,000,000 entities, ``1k`` = 1,000).

Data (deterministic, seed 12345): the ``N x T`` cells of a panel, 10% of them deleted at random
(so it is unbalanced), ``p`` float64 columns in Fortran order, each standard normal plus an
entity offset (scaled by the column number) plus a period offset, so both effects matter.
``sorted``: rows by entity, then period (the natural panel layout); ``shuffled``: the same rows
in a random order. ``weighted``: observation weights uniform on [0.5, 2].

Entries of every group (the same data, in the same process):

* ``fastpanel-cpp``: fastpanel from the integer codes, ``fastpanel.lowlevel.demean(X, codes,
  weights=w)`` (before that module existed: ``fastpanel.within`` on the code columns); the
  (n, 2) codes are the uint32 Fortran array within-py gets. Its coding of the codes is timed.
* ``fastpanel-cpp-prepared``: a ``FixedEffects.from_codes(codes)`` built once, outside the
  timing, and reused (the cost for an estimator that transforms several matrices).
* ``fastpanel-cpp-ids``: ``fastpanel.within(X, [entity_id, period_id], weights=w)`` from raw
  ids (scattered int64 entity ids, years as period ids): factorisation included.
* ``pyfixest-demean``: ``pyfixest.core.demean`` (pyfixest 0.60's Rust alternating projections),
  ids as its (n, 2) uint64 matrix (not timed), tol 1e-8, maxiter 100,000.
* ``within-py``: ``within.solve_batch(codes, X, weights=w)`` (LSMR, adaptive diagonal/Schwarz
  preconditioner, default options: tol 1e-8, maxiter 1000), codes as uint32 Fortran (its
  preferred form; the conversion is not timed). Setup (design + preconditioner) is timed.
* ``within-py-prepared``: a ``within.Solver(within.Design(codes), weights=w)`` built once,
  outside the timing; ``solver.solve_batch(X)`` timed.

``extra_info`` records n, N, T, p, sorted, weighted, fastpanel's method, the peers' convergence
and iterations, and ``maxdiff``: the largest absolute difference from fastpanel's result
(a check that every entry computed the same transform).

Grid (``CASES``; the design is documented in benchmarks/README.md): eight (N, T) shapes from
1k x 5 to 1M x 10 (entities 1e3..1e6, periods 5..1000, at most 1e7 cells) crossed with sorted /
shuffled x unweighted / weighted at p = 6; p = 1 on all eight shapes and p = 20 on the five
shapes of at most 5e6 cells (shuffled, unweighted). Every case above 1e5 rows is ``large``; the
1k x 5 cases (4,500 rows) run in the CI smoke run. ``QUICK_CASES`` is the reduced grid of
``benchmarks/make_table.py --quick``, selected by ``FASTPANEL_SHAPES=quick`` in the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastpanel
from fastpanel import FixedEffects

try:  # the low-level API (from codes); before it existed, fastpanel.within on the codes
    from fastpanel.lowlevel import demean as _fp_lowlevel_demean
except ImportError:  # pragma: no cover - depends on the library version
    _fp_lowlevel_demean = None

MISSING = 0.10
SEED = 12345
PYFIXEST_TOL = 1e-8
PYFIXEST_MAXITER = 100_000

#: the (N entities, T periods) shapes of the grid
SHAPES = [
    (1_000_000, 5), (1_000_000, 10), (100_000, 10), (100_000, 100),
    (10_000, 100), (10_000, 1000), (1_000, 1000), (1_000, 5),
]
#: shapes small enough (<= 5e6 cells) for p = 20 within the ~1 GB per case budget
SHAPES_P20 = [(N, T) for N, T in SHAPES if N * T <= 5_000_000]
#: above this many rows a case is ``large`` (not in the CI smoke run)
LARGE_ROWS = 100_000


def _label(v: int) -> str:
    for unit, s in ((1_000_000, "M"), (1_000, "k")):
        if v >= unit and v % unit == 0:
            return f"{v // unit}{s}"
    return str(v)


@dataclass(frozen=True)
class Shape:
    N: int
    T: int
    p: int
    sorted: bool
    weighted: bool

    @property
    def id(self) -> str:
        return (f"{_label(self.N)}x{self.T}x{self.p}-{'sorted' if self.sorted else 'shuffled'}-"
                f"{'weighted' if self.weighted else 'unweighted'}")

    @property
    def group(self) -> str:
        return f"shapes-{self.id}"

    @property
    def expected_rows(self) -> float:
        return self.N * self.T * (1 - MISSING)


def _grid() -> list[Shape]:
    cases = [Shape(N, T, 6, s, w) for N, T in SHAPES for s in (False, True) for w in (False, True)]
    cases += [Shape(N, T, 1, False, False) for N, T in SHAPES]
    cases += [Shape(N, T, 20, False, False) for N, T in SHAPES_P20]
    return cases


CASES = _grid()
#: the reduced grid of ``make_table.py --quick``: every axis at its extremes, about 2 minutes
QUICK_CASES = [
    Shape(1_000, 5, 6, False, False), Shape(1_000, 5, 6, True, True),
    Shape(100_000, 10, 6, False, False), Shape(100_000, 10, 6, True, True),
    Shape(10_000, 100, 1, False, False), Shape(1_000, 1000, 20, False, False),
    Shape(1_000_000, 10, 6, False, False),
]


def _selected() -> list[Shape]:
    return QUICK_CASES if os.environ.get("FASTPANEL_SHAPES", "") == "quick" else CASES


def case_params() -> list:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.large] if c.expected_rows > LARGE_ROWS else [])
        for c in _selected()
    ]


@dataclass
class Case:
    shape: Shape
    X: np.ndarray  # (n, p) float64, Fortran order
    codes: np.ndarray  # (n, 2) uint32, Fortran order: entity code, period code (within-py, fastpanel)
    flist: np.ndarray  # (n, 2) uint64, C order (pyfixest)
    entity_id: np.ndarray  # int64, scattered raw ids
    period_id: np.ndarray  # int64, years
    weights: np.ndarray | None
    _ref: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def reference(self) -> np.ndarray:
        """fastpanel's result, computed once (untimed), for the ``maxdiff`` check."""
        if self._ref is None:
            self._ref = fastpanel.within(self.X, [self.entity_id, self.period_id], weights=self.weights)
        return self._ref

    def maxdiff(self, out: np.ndarray) -> float:
        return float(np.abs(np.asarray(out) - self.reference()).max())


def make_case(shape: Shape, seed: int = SEED) -> Case:
    """Generate the data of one grid case (deterministic in ``seed`` and the shape)."""
    rng = np.random.default_rng([seed, shape.N, shape.T])
    N, T = shape.N, shape.T
    keep = rng.random(N * T) >= MISSING
    cells = np.flatnonzero(keep)
    del keep
    if not shape.sorted:
        cells = cells[rng.permutation(cells.size)]
    e = (cells // T).astype(np.int64)
    t = (cells % T).astype(np.int64)
    del cells
    n = e.size
    alpha = rng.normal(size=N)
    gamma = rng.normal(size=T)
    X = np.empty((n, shape.p), order="F")
    crng = np.random.default_rng([seed, shape.N, shape.T, 1])  # columns: same data for every p
    for j in range(shape.p):
        col = X[:, j]
        crng.standard_normal(out=col)
        col += alpha[e] * (j + 1)
        col += gamma[t]
    codes = np.empty((n, 2), dtype=np.uint32, order="F")
    codes[:, 0] = e
    codes[:, 1] = t
    flist = np.empty((n, 2), dtype=np.uint64)
    flist[:, 0] = e
    flist[:, 1] = t
    scatter = rng.permutation(N).astype(np.int64) * 7919 + 1_000_000_007  # raw ids: not codes
    entity_id = scatter[e]
    period_id = t + 1000
    weights = rng.uniform(0.5, 2.0, size=n) if shape.weighted else None
    return Case(shape, X, codes, flist, entity_id, period_id, weights)


_warmed = False


def _warm_all() -> None:
    """First calls of every library on a tiny panel (thread pools, lazy imports)."""
    global _warmed
    if _warmed:
        return
    c = make_case(Shape(200, 5, 2, False, True))
    for w in (None, c.weights):
        _fp_from_codes(c.X, c.codes, w)
        fastpanel.within(c.X, [c.entity_id, c.period_id], weights=w)
    try:
        from pyfixest.core import demean

        demean(c.X, c.flist, np.ones(c.n), PYFIXEST_TOL, PYFIXEST_MAXITER)
    except ImportError:
        pass
    try:
        import within

        within.solve_batch(c.codes, c.X)
    except ImportError:
        pass
    _warmed = True


@pytest.fixture(scope="module", params=case_params())
def case(request: pytest.FixtureRequest) -> Case:
    """One grid case, generated once per module (pytest runs a case's tests together)."""
    _warm_all()
    return make_case(request.param)


def _fp_from_codes(X: np.ndarray, codes, w: np.ndarray | None) -> tuple[np.ndarray, str]:
    if _fp_lowlevel_demean is not None:
        res = _fp_lowlevel_demean(X, codes, weights=w)
        return res.out, res.method
    ids = codes if isinstance(codes, FixedEffects) else [codes[:, 0], codes[:, 1]]
    out, info = fastpanel.within(X, ids, weights=w, return_info=True)
    return out, info.method


def _prepare(codes: np.ndarray):
    if hasattr(FixedEffects, "from_codes"):
        return FixedEffects.from_codes(codes)
    return FixedEffects([codes[:, 0], codes[:, 1]])


def _rounds(case: Case, kind: str) -> tuple[int, int]:
    """(rounds, warmup_rounds): fastpanel 5 + 1 warm-up; the slower peers fewer on big cases."""
    cells = case.n * case.shape.p
    if kind == "fastpanel":
        return (5, 1) if cells > 1e6 else (15, 1)
    if cells > 2e7:
        return 1, 0
    return (2, 0) if cells > 1e6 else (5, 0)


def _info(benchmark, case: Case, **extra) -> None:
    s = case.shape
    benchmark.extra_info.update({
        "n": case.n, "N": s.N, "T": s.T, "p": s.p, "sorted": s.sorted, "weighted": s.weighted,
        "shape": s.id, **extra,
    })


def _run(benchmark, case: Case, kind: str, fn, *args, **kwargs):
    rounds, warmup = _rounds(case, kind)
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=rounds, warmup_rounds=warmup, iterations=1)


# --------------------------------------------------------------------------------------------
# fastpanel
# --------------------------------------------------------------------------------------------
def test_shapes_fastpanel_codes(benchmark, case: Case) -> None:
    benchmark.group = case.shape.group
    benchmark.name = "fastpanel-cpp"
    out, method = _run(benchmark, case, "fastpanel", _fp_from_codes, case.X, case.codes, case.weights)
    _info(benchmark, case, method=method, api="lowlevel.demean" if _fp_lowlevel_demean else "within(codes)",
          threads=fastpanel.get_num_threads(), maxdiff=case.maxdiff(out))
    assert out.shape == case.X.shape


def test_shapes_fastpanel_prepared(benchmark, case: Case) -> None:
    benchmark.group = case.shape.group
    benchmark.name = "fastpanel-cpp-prepared"
    fe = _prepare(case.codes)
    out, method = _run(benchmark, case, "fastpanel", _fp_from_codes, case.X, fe, case.weights)
    _info(benchmark, case, method=method, maxdiff=case.maxdiff(out))


def test_shapes_fastpanel_ids(benchmark, case: Case) -> None:
    benchmark.group = case.shape.group
    benchmark.name = "fastpanel-cpp-ids"
    out, info = _run(benchmark, case, "fastpanel", fastpanel.within, case.X, [case.entity_id, case.period_id],
                     weights=case.weights, return_info=True)
    _info(benchmark, case, method=info.method, backend=info.backend, maxdiff=case.maxdiff(out))


# --------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------
def test_shapes_pyfixest(benchmark, case: Case) -> None:
    demean = pytest.importorskip("pyfixest.core").demean
    benchmark.group = case.shape.group
    benchmark.name = "pyfixest-demean"
    w = np.ones(case.n) if case.weights is None else case.weights
    out, converged = _run(benchmark, case, "peer", demean, case.X, case.flist, w, PYFIXEST_TOL, PYFIXEST_MAXITER)
    _info(benchmark, case, converged=bool(converged), tol=PYFIXEST_TOL, maxdiff=case.maxdiff(out))
    assert converged


def _within_info(benchmark, case: Case, res) -> None:
    conv = list(res.converged)
    _info(benchmark, case, converged=all(conv), iterations=[int(i) for i in res.iterations],
          time_setup=float(res.time_setup), maxdiff=case.maxdiff(res.demeaned))


def test_shapes_within(benchmark, case: Case) -> None:
    within = pytest.importorskip("within")
    benchmark.group = case.shape.group
    benchmark.name = "within-py"
    res = _run(benchmark, case, "peer", within.solve_batch, case.codes, case.X, weights=case.weights)
    _within_info(benchmark, case, res)


def test_shapes_within_prepared(benchmark, case: Case) -> None:
    within = pytest.importorskip("within")
    benchmark.group = case.shape.group
    benchmark.name = "within-py-prepared"
    solver = within.Solver(within.Design(case.codes), weights=case.weights)
    solver.solve_batch(case.X[:, :1])  # an Adaptive solver builds its Schwarz map on first need
    res = _run(benchmark, case, "peer", solver.solve_batch, case.X)
    _within_info(benchmark, case, res)
