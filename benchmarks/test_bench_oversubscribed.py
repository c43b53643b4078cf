"""Speed of the two-way transform when other processes share the cores (oversubscription).

Groups ``oversubscribed-<case>``: the same transform timed alone (``<tool>-alone``) and while
one CPU-bound competitor per core runs (``<tool>-loaded``: ``python -c "while True: pass"``,
``os.cpu_count()`` of them, killed when the test ends, also on failure). With ``c`` cores and
``c`` competitors a fair scheduler gives a ``c``-thread program half the machine, so about 2x
is the slowdown to expect; much more means threads wait on each other at barriers while a
descheduled thread holds them up (OpenMP spin-waiting burns the waiting thread's slice).

Tools: ``fastpanel-cpp`` and ``fastpanel-numba`` (``fastpanel.lowlevel.demean`` from the codes,
``backend=``), ``pyfixest-demean`` (Rust, rayon) and ``within-py`` (Rust, rayon). The loaded
test first times the transform alone (``alone_min``, ``alone_median`` in ``extra_info``, same
rounds), then starts the competitors and times it again; ``slowdown_min`` and
``slowdown_median`` are loaded / alone.

Cases: ``1Mx10x6-shuffled`` (9M rows, the issue's shape) and ``100kx10x6-sorted`` (0.9M rows:
short parallel regions, where waiting at barriers weighs most). Both ``large``.

Group ``oversubscribed-env-<case>``: the OpenMP wait policy, which libgomp reads at start-up,
so each variant is a fresh process (this file run as a script, ``--probe``) that times the
fastpanel cpp transform alone, against the busy loops, and against a second process running
the same transform in a loop under the same setting (two OpenMP programs, each with a thread
per core: where spin-waiting at barriers would hurt most), under ``OMP_WAIT_POLICY`` /
``GOMP_SPINCOUNT`` settings; the recorded time is the whole subprocess and means nothing, the
numbers are in ``extra_info`` (``slowdown_*`` against the busy loops, ``slowdown_self_*``
against the second copy). By hand::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/test_bench_oversubscribed.py --probe 1Mx10x6-shuffled cpp
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from test_bench_shapes import Shape, make_case  # noqa: E402

CASES = {
    "1Mx10x6-shuffled": Shape(1_000_000, 10, 6, False, False),
    "100kx10x6-sorted": Shape(100_000, 10, 6, True, False),
}
#: rounds per case (the short transforms need more to see through the noise of a shared machine)
ROUNDS = {"1Mx10x6-shuffled": 5, "100kx10x6-sorted": 15}
ENV_VARIANTS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "spincount-0": {"GOMP_SPINCOUNT": "0"},
    "spincount-10k": {"GOMP_SPINCOUNT": "10000"},
}


@contextmanager
def competitors(n: int | None = None, kind: str = "busy", case_name: str | None = None):
    """CPU-bound competitors, killed on exit: ``busy``: ``n`` (default one per core) Python
    busy loops; ``self``: one other process running the same fastpanel cpp transform in a loop
    (an OpenMP program with as many threads as cores: two such programs spin against each
    other at their barriers)."""
    if n is None:
        n = os.cpu_count() or 1
    if kind == "busy":
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        wait = 0.3
    else:
        procs = [subprocess.Popen([sys.executable, __file__, "--spin", case_name or "", "cpp"],
                                  stdout=subprocess.DEVNULL)]
        wait = 4.0 if case_name and case_name.startswith("1M") else 1.5  # its data generation
    try:
        time.sleep(wait)  # let them reach the loop
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _runner(tool: str, case):
    """A zero-argument callable doing the transform with ``tool`` on ``case`` (warmed up)."""
    if tool.startswith("fastpanel"):
        from fastpanel.lowlevel import demean

        backend = tool.split("-", 1)[1]
        small = make_case(Shape(200, 5, case.shape.p, case.shape.sorted, False))
        demean(small.X, small.codes, backend=backend)  # JIT / thread pool start-up
        fn = lambda: demean(case.X, case.codes, backend=backend).out  # noqa: E731
    elif tool == "pyfixest-demean":
        from pyfixest.core import demean

        w = np.ones(case.n)
        fn = lambda: demean(case.X, case.flist, w, 1e-8, 100_000)[0]  # noqa: E731
    elif tool == "within-py":
        import within

        fn = lambda: within.solve_batch(case.codes, case.X).demeaned  # noqa: E731
    else:
        raise ValueError(tool)
    fn()  # one untimed call at full size (first-touch of the output, caches)
    return fn


def _times(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


@pytest.fixture(scope="module", params=[pytest.param(k, id=k, marks=pytest.mark.large) for k in CASES])
def oversub_case(request):
    return request.param, make_case(CASES[request.param])


TOOLS = ["fastpanel-cpp", "fastpanel-numba", "pyfixest-demean", "within-py"]


def _skip_missing(tool: str) -> None:
    if tool == "pyfixest-demean":
        pytest.importorskip("pyfixest.core")
    if tool == "within-py":
        pytest.importorskip("within")


def _rounds(tool: str, name: str) -> int:
    return ROUNDS[name] if tool.startswith("fastpanel") else 2


@pytest.mark.parametrize("tool", TOOLS)
def test_alone(benchmark, oversub_case, tool):
    _skip_missing(tool)
    name, case = oversub_case
    benchmark.group = f"oversubscribed-{name}"
    benchmark.name = f"{tool}-alone"
    fn = _runner(tool, case)
    benchmark.pedantic(fn, rounds=_rounds(tool, name), warmup_rounds=0, iterations=1)
    benchmark.extra_info.update({"n": case.n, "p": case.shape.p, "competitors": 0})


@pytest.mark.parametrize("tool", TOOLS)
def test_loaded(benchmark, oversub_case, tool):
    _skip_missing(tool)
    name, case = oversub_case
    benchmark.group = f"oversubscribed-{name}"
    benchmark.name = f"{tool}-loaded"
    fn = _runner(tool, case)
    alone = _times(fn, _rounds(tool, name))
    n_comp = os.cpu_count() or 1
    with competitors(n_comp):
        benchmark.pedantic(fn, rounds=_rounds(tool, name), warmup_rounds=0, iterations=1)
    st = benchmark.stats.stats if hasattr(benchmark.stats, "stats") else benchmark.stats
    benchmark.extra_info.update({
        "n": case.n, "p": case.shape.p, "competitors": n_comp,
        "alone_min": min(alone), "alone_median": statistics.median(alone),
        "slowdown_min": st.min / min(alone), "slowdown_median": st.median / statistics.median(alone),
    })


@pytest.mark.parametrize("variant", list(ENV_VARIANTS))
def test_omp_env(benchmark, oversub_case, variant):
    """fastpanel cpp alone and loaded in a fresh process with an OpenMP wait-policy setting."""
    name, _ = oversub_case
    benchmark.group = f"oversubscribed-env-{name}"
    benchmark.name = f"fastpanel-cpp-{variant}"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(ENV_VARIANTS[variant])

    def probe() -> dict:
        proc = subprocess.run([sys.executable, __file__, "--probe", name, "cpp"], env=env,
                              capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    res = benchmark.pedantic(probe, rounds=1, iterations=1)
    benchmark.extra_info.update({"env": ENV_VARIANTS[variant], **res})
    print(f"\n{name} {variant}: alone {res['alone_min']:.3f} s, loaded {res['loaded_min']:.3f} s "
          f"(x{res['slowdown_min']:.2f} min, x{res['slowdown_median']:.2f} median), against itself "
          f"{res['vs_self_min']:.3f} s (x{res['slowdown_self_min']:.2f} min, x{res['slowdown_self_median']:.2f} median)")


def _probe(name: str, backend: str, rounds: int | None = None) -> dict:
    """Alone, against busy loops (one per core), and against a second copy of itself."""
    rounds = rounds or ROUNDS[name]
    case = make_case(CASES[name])
    fn = _runner(f"fastpanel-{backend}", case)
    alone = _times(fn, rounds)
    with competitors():
        loaded = _times(fn, rounds)
    with competitors(kind="self", case_name=name):
        vs_self = _times(fn, rounds)
    return {
        "alone": alone, "loaded": loaded, "vs_self": vs_self,
        "alone_min": min(alone), "loaded_min": min(loaded), "vs_self_min": min(vs_self),
        "slowdown_min": min(loaded) / min(alone),
        "slowdown_median": statistics.median(loaded) / statistics.median(alone),
        "slowdown_self_min": min(vs_self) / min(alone),
        "slowdown_self_median": statistics.median(vs_self) / statistics.median(alone),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
    }


def _spin(name: str, backend: str) -> None:
    """The ``self`` competitor: the same transform, forever (killed by the parent)."""
    case = make_case(CASES[name])
    fn = _runner(f"fastpanel-{backend}", case)
    while True:
        fn()


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--probe":
        print(json.dumps(_probe(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)))
    elif len(sys.argv) >= 4 and sys.argv[1] == "--spin":
        _spin(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"usage: {sys.argv[0]} --probe <{'|'.join(CASES)}> <cpp|numba> [rounds]")
