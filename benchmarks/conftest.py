"""Benchmark data: generated panels, built once per module and size.

The panel of the issue's speed targets: ``n_entities`` entities x 10 periods, 10% of the
(entity, period) cells deleted at random (so the panel is unbalanced), 6 float64 columns,
rows in the natural panel layout (sorted by entity, then period), X Fortran-ordered.
Sizes are named by the number of cells before deletion.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import numpy as np
import pytest

N_PERIODS = 10
N_COLUMNS = 6
MISSING = 0.10

#: name -> number of entities. Only the first is run by default / in CI smoke runs.
SIZES = {"100k": 10_000, "1M": 100_000, "10M": 1_000_000}
LARGE = {"1M", "10M"}


def size_params() -> list:
    """``pytest.param`` per size; the big ones carry ``pytest.mark.large``."""
    return [
        pytest.param(name, id=name, marks=[pytest.mark.large] if name in LARGE else [])
        for name in SIZES
    ]


def gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None and os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0")


@dataclass
class Panel:
    name: str
    X: np.ndarray  # (n, 6) float64, Fortran order
    entity: np.ndarray  # int64 ids
    time: np.ndarray  # int64 ids
    flist: np.ndarray  # (n, 2) uint64, the form pyfixest's demean takes

    @property
    def n(self) -> int:
        return self.X.shape[0]


def make_panel(name: str, seed: int = 12345) -> Panel:
    """Generate the benchmark panel of size ``name`` (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    n_entities = SIZES[name]
    cells = n_entities * N_PERIODS
    keep = rng.random(cells) >= MISSING
    rows = np.flatnonzero(keep)
    entity = (rows // N_PERIODS).astype(np.int64)
    time = (rows % N_PERIODS).astype(np.int64)
    n = rows.size
    X = np.empty((n, N_COLUMNS), order="F")
    alpha = rng.normal(size=n_entities)
    gamma = rng.normal(size=N_PERIODS)
    for j in range(N_COLUMNS):  # column by column: no (n, 6) temporaries
        col = X[:, j]  # contiguous in Fortran order
        rng.standard_normal(out=col)
        col += alpha[entity] * (j + 1) + gamma[time]
    flist = np.empty((n, 2), dtype=np.uint64)
    flist[:, 0] = entity
    flist[:, 1] = time
    return Panel(name, X, entity, time, flist)


@pytest.fixture(scope="module", params=size_params())
def panel(request: pytest.FixtureRequest) -> Panel:
    """The benchmark panel, generated once per module and size."""
    return make_panel(request.param)


@pytest.fixture(scope="session", name="make_panel")
def make_panel_fixture():
    """The panel generator itself, for tests that need data outside the ``panel`` sizes."""
    return make_panel


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print, per group, each entry's time relative to ``fastpanel-cpp`` (min and median).

    A ratio above 1 means the entry is that many times slower than fastpanel's cpp backend;
    for the ``floor-*`` entries the inverse (fastpanel / floor) is how far fastpanel is from the
    memory-bandwidth floor.
    """
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", True) or not session.benchmarks:
        return
    groups: dict[str, list] = {}
    for bench in session.benchmarks:
        if bench.stats and bench.stats.rounds:
            groups.setdefault(bench.group or "", []).append(bench)
    terminalreporter.section("ratios to fastpanel-cpp (min / median)")
    for group, items in sorted(groups.items()):
        ref = next((b for b in items if b.name == "fastpanel-cpp"), None)
        if ref is None:
            continue
        terminalreporter.write_line(f"{group}:")
        for b in sorted(items, key=lambda b: b.stats.min):
            terminalreporter.write_line(
                f"  {b.name:<28} min {b.stats.min * 1e3:10.2f} ms  x{b.stats.min / ref.stats.min:7.2f}   "
                f"median {b.stats.median * 1e3:10.2f} ms  x{b.stats.median / ref.stats.median:7.2f}"
            )
