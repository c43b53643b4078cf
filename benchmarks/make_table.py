"""Run the shape grid, the hard fixed-effects cases and the oversubscription checks, and write
``docs/benchmarks.md``: one command, every peer in the same run.

Usage (from the repository root, in the dev environment)::

    python benchmarks/make_table.py            # full grid, ~30 min on 2 cores
    python benchmarks/make_table.py --quick    # reduced grid (development), a few minutes
    python benchmarks/make_table.py --from-json out.json   # only rewrite the page from a saved run

The pytest-benchmark JSON of the run is kept next to the page (``--json``, default
``.benchmarks/make_table-<full|quick>.json``, git-ignored) so the page can be rebuilt without rerunning.
Times in the page are the **minimum** over rounds (least disturbed by other processes); the
ratios are given on the minimum and, in parentheses, on the median.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: the issue's targets on every shape (fastpanel from codes against each peer, on the minimum)
TARGET_PYFIXEST = 8.0
TARGET_WITHIN = 2.0

SHAPES_SELECT = "test_shapes"
HARDFE_FULL = "(three_way and (100k or 1M)) or k10"
HARDFE_QUICK = "(three_way and 100k) or (k10 and 1M)"
OVERSUB = "test_alone or test_loaded or test_omp_env"


# --------------------------------------------------------------------------------------------
# machine
# --------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict:
    import fastpanel

    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    return {
        "cpu": _cpu_model(), "cores": cores, "usable_cores": usable, "ram_gib": _ram_gib(),
        "os": platform.platform(), "python": platform.python_version(),
        "fastpanel": _version("fastpanel"), "fastpanel_git": _git(), "pyfixest": _version("pyfixest"),
        "within-py": _version("within-py"), "numpy": _version("numpy"),
        "fastpanel_threads": fastpanel.get_num_threads(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY",
                                           "GOMP_SPINCOUNT", "RAYON_NUM_THREADS") if k in os.environ},
    }


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def run_benchmarks(json_path: Path, quick: bool, oversub: bool, extra: list[str]) -> dict:
    files = ["benchmarks/test_bench_shapes.py", "benchmarks/test_bench_hardfe.py"]
    select = [SHAPES_SELECT, HARDFE_QUICK if quick else HARDFE_FULL]
    if oversub:
        files.append("benchmarks/test_bench_oversubscribed.py")
        select.append(OVERSUB)
    cmd = [sys.executable, "-m", "pytest", *files, "-m", "", "-k", " or ".join(f"({s})" for s in select),
           "-p", "no:cacheprovider", "-q", "--benchmark-columns=min,median,rounds",
           f"--benchmark-json={json_path}", *extra]
    env = dict(os.environ)
    if quick:
        env["FASTPANEL_SHAPES"] = "quick"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    print("running:", " ".join(cmd), flush=True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    if not json_path.exists():
        sys.exit(f"pytest exited with {rc} and wrote no {json_path}")
    run = {"command": " ".join(["python", "benchmarks/make_table.py"] + (["--quick"] if quick else [])),
           "pytest_rc": rc, "wall_s": wall, "loadavg_start": load0, "loadavg_end": load1,
           "quick": quick, "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": machine_info()}
    data = json.loads(json_path.read_text())
    data["make_table"] = run
    json_path.write_text(json.dumps(data, indent=1))
    return data


# --------------------------------------------------------------------------------------------
# page
# --------------------------------------------------------------------------------------------
def _fmt_t(s: float | None) -> str:
    if s is None:
        return "–"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.01:
        return f"{s * 1e3:.0f} ms"
    if s >= 0.001:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e3:.2f} ms"


def _ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt_r(r_min: float | None, r_med: float | None, target: float | None = None) -> str:
    if r_min is None:
        return "–"
    mark = ""
    if target is not None:
        mark = " ✅" if r_min >= target else " ❌"
    return f"{r_min:.1f}x ({r_med:.1f}x){mark}"


def _index(data: dict) -> dict[str, dict[str, dict]]:
    groups: dict[str, dict[str, dict]] = {}
    for b in data.get("benchmarks", []):
        name = b.get("extra_info", {}).get("library") if b["name"].startswith("test_") else b["name"]
        groups.setdefault(b["group"] or "", {})[name or b["name"]] = b
    return groups


def _st(b: dict | None, key: str) -> float | None:
    return None if b is None else b["stats"][key]


def _shape_key(group: str, e: dict) -> tuple:
    x = next(iter(e.values()))["extra_info"]
    return (-x["N"] * x["T"], -x["N"], x["p"], x.get("sorted", False), x.get("weighted", False))


def shapes_section(groups: dict) -> tuple[list[str], list[str]]:
    rows, misses = [], []
    shape_groups = {g: e for g, e in groups.items() if g.startswith("shapes-") and "fastpanel-cpp" in e}
    head = ("| shape (N x T x p, rows, weights) | rows n | fastpanel method | fastpanel (codes) | prepared | "
            "raw ids | pyfixest | within-py | within-py prepared | pyfixest / fastpanel | "
            "within-py / fastpanel |")
    rows += [head, "|---|---:|---|" + "---:|" * 8]
    for g in sorted(shape_groups, key=lambda g: _shape_key(g, shape_groups[g])):
        e = shape_groups[g]
        fp = e["fastpanel-cpp"]
        x = fp["extra_info"]
        pf, wi = e.get("pyfixest-demean"), e.get("within-py")
        r_pf = _ratio(_st(pf, "min"), _st(fp, "min")), _ratio(_st(pf, "median"), _st(fp, "median"))
        r_wi = _ratio(_st(wi, "min"), _st(fp, "min")), _ratio(_st(wi, "median"), _st(fp, "median"))
        conv = []
        for peer, b in (("pyfixest", pf), ("within-py", wi)):
            if b is not None and not b["extra_info"].get("converged", True):
                conv.append(f"{peer} did not converge")
        label = g[len("shapes-"):] + (" ⚠ " + ", ".join(conv) if conv else "")
        rows.append(
            f"| {label} | {x['n']:,} | {x.get('method', '?')} | {_fmt_t(_st(fp, 'min'))} | "
            f"{_fmt_t(_st(e.get('fastpanel-cpp-prepared'), 'min'))} | {_fmt_t(_st(e.get('fastpanel-cpp-ids'), 'min'))} | "
            f"{_fmt_t(_st(pf, 'min'))} | {_fmt_t(_st(wi, 'min'))} | {_fmt_t(_st(e.get('within-py-prepared'), 'min'))} | "
            f"{_fmt_r(*r_pf, TARGET_PYFIXEST)} | {_fmt_r(*r_wi, TARGET_WITHIN)} |"
        )
        why = []
        if r_pf[0] is not None and r_pf[0] < TARGET_PYFIXEST:
            why.append(f"pyfixest {r_pf[0]:.1f}x < {TARGET_PYFIXEST:g}x")
        if r_wi[0] is not None and r_wi[0] < TARGET_WITHIN:
            why.append(f"within-py {r_wi[0]:.1f}x < {TARGET_WITHIN:g}x")
        if why:
            misses.append(f"`{g[len('shapes-'):]}` ({', '.join(why)})")
    return rows, misses


HARDFE_ORDER = ["fastpanel", "fastpanel-demean+lstsq", "pyfixest", "pyfixest+within", "within-py"]


def hardfe_section(groups: dict) -> list[str]:
    hg = {g: e for g, e in groups.items() if g.startswith("hardfe-")}
    if not hg:
        return []
    head = ("| group | rows | " + " | ".join(HARDFE_ORDER) + " | within-py / fastpanel-demean+lstsq | "
            "within-py / fastpanel | pyfixest+within / fastpanel | pyfixest / fastpanel |")
    rows = [head, "|---|---:|" + "---:|" * (len(HARDFE_ORDER) + 4)]

    def key(g):
        parts = g.split("-")
        size = parts[2]
        mult = 1_000_000 if size.endswith("M") else 1_000
        return (parts[1], "k10" in g, int(size[:-1]) * mult)

    for g in sorted(hg, key=key):
        e = hg[g]
        n = next((b["extra_info"].get("n") for b in e.values() if "n" in b["extra_info"]), None)
        size = g.split("-")[2]
        n = n or int(size[:-1]) * (1_000_000 if size.endswith("M") else 1_000)
        fp, fpd, pf = e.get("fastpanel"), e.get("fastpanel-demean+lstsq"), e.get("pyfixest")
        pfw, wi = e.get("pyfixest+within"), e.get("within-py")

        def r(a, b, target=None):
            return _fmt_r(_ratio(_st(a, "min"), _st(b, "min")), _ratio(_st(a, "median"), _st(b, "median")), target)

        note = ""
        if wi is not None and not wi["extra_info"].get("converged", True):
            note = " ⚠ within-py did not converge"
        rows.append(
            f"| {g}{note} | {n:,} | " + " | ".join(_fmt_t(_st(e.get(k), "min")) for k in HARDFE_ORDER)
            + f" | {r(wi, fpd, TARGET_WITHIN)} | {r(wi, fp, TARGET_WITHIN)} | {r(pfw, fp)} | {r(pf, fp)} |"
        )
    return rows


def oversub_section(groups: dict) -> list[str]:
    out = []
    og = {g: e for g, e in groups.items() if g.startswith("oversubscribed-") and not g.startswith("oversubscribed-env-")}
    if og:
        out += ["| case | tool | alone (min) | loaded (min) | slowdown min (median) |", "|---|---|---:|---:|---:|"]
        for g in sorted(og):
            for name, b in sorted(og[g].items()):
                if not name.endswith("-loaded"):
                    continue
                x = b["extra_info"]
                out.append(f"| {g[len('oversubscribed-'):]} | {name[:-len('-loaded')]} | {_fmt_t(x['alone_min'])} | "
                           f"{_fmt_t(b['stats']['min'])} | {x['slowdown_min']:.2f}x ({x['slowdown_median']:.2f}x) |")
    eg = {g: e for g, e in groups.items() if g.startswith("oversubscribed-env-")}
    if eg:
        out += ["", "OpenMP wait policy (fastpanel cpp, each variant a fresh process):", "",
                "| case | environment | alone (min) | vs busy loops (min) | slowdown min (median) | "
                "vs a 2nd copy of itself (min) | slowdown min (median) |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for g in sorted(eg):
            for name, b in eg[g].items():
                x = b["extra_info"]
                env = ", ".join(f"{k}={v}" for k, v in x.get("env", {}).items()) or "default"
                selfc = (f"{_fmt_t(x['vs_self_min'])} | {x['slowdown_self_min']:.2f}x ({x['slowdown_self_median']:.2f}x)"
                         if "vs_self_min" in x else "– | –")
                out.append(f"| {g[len('oversubscribed-env-'):]} | {env} | {_fmt_t(x['alone_min'])} | "
                           f"{_fmt_t(x['loaded_min'])} | {x['slowdown_min']:.2f}x ({x['slowdown_median']:.2f}x) | {selfc} |")
    return out


DESIGN = """\
**Shape grid** (`benchmarks/test_bench_shapes.py`, groups `shapes-<N>x<T>x<p>-<order>-<weights>`):
the two-way (entity + period) within transform. Data: the N x T cells of a panel, 10% deleted
at random (unbalanced), p float64 columns (Fortran order), each standard normal plus an entity
offset and a period offset; `sorted` = rows by entity then period, `shuffled` = the same rows in
random order; `weighted` = weights uniform on [0.5, 2]. Deterministic (seed 12345).
Grid: (N, T) in {1M x 5, 1M x 10, 100k x 10, 100k x 100, 10k x 100, 10k x 1000, 1k x 1000,
1k x 5} (entities 1e3..1e6, periods 5..1000, at most 1e7 cells) crossed with sorted/shuffled x
unweighted/weighted at p = 6; p = 1 on all eight shapes and p = 20 on the five shapes of at most
5e6 cells (shuffled, unweighted).

Entries, same data and process:
* **fastpanel (codes)**: `fastpanel.lowlevel.demean(X, codes, weights=w)`, codes the (n, 2)
  uint32 Fortran matrix within-py gets (their coding is timed); **prepared**: the same with a
  `FixedEffects.from_codes(codes)` built outside the timing; **raw ids**:
  `fastpanel.within(X, [entity_id, period_id], weights=w)` from scattered int64 ids (factorisation
  timed). fastpanel is exact (direct solve).
* **pyfixest**: `pyfixest.core.demean(X, flist_uint64, w, tol=1e-8, maxiter=100_000)` (pyfixest's
  Rust alternating projections; ids given as its uint64 matrix, not timed).
* **within-py**: `within.solve_batch(codes_uint32_F, X, weights=w)`, default options (LSMR, tol
  1e-8, adaptive diagonal -> Schwarz preconditioner); setup timed. **within-py prepared**:
  `within.Solver(within.Design(codes), weights=w)` built (and its preconditioner escalated on
  one column) outside the timing, `solver.solve_batch(X)` timed.
* Every entry's result is checked against fastpanel's (`extra_info["maxdiff"]` in the JSON).
* Rounds: fastpanel 5 (+1 warm-up; 15 on small cases), peers 1-2 on large cases (5 on small).

**Hard fixed effects** (`benchmarks/test_bench_hardfe.py`, groups `hardfe-<design>-<size>`):
`y ~ x1 | indiv + firm + year` on the fixest benchmark designs (`difficult`: firm = row mod
n_firm, weakly connected; `simple`: random firms), and `hardfe-difficult-<size>-k10`:
`y ~ x1 + ... + x10 | indiv + firm + year` on the difficult design. Entries: **fastpanel**
(`fastpanel.feols` from a DataFrame, everything timed), **fastpanel-demean+lstsq**
(`fastpanel.lowlevel.demean` of [y, X] on the (n, 3) codes + `np.linalg.lstsq`),
**pyfixest** (`pyfixest.feols`, default MAP demeaner; left out of the k = 10 groups: 520 s at 1M
rows on this machine), **pyfixest+within** (`pyfixest.feols(..., demeaner=LsmrDemeaner(backend="within"))`),
**within-py** (`within.solve_batch(codes, [y, X])` + `np.linalg.lstsq`; codes and the
Fortran data built outside the timing). The like-for-like ratio for within-py is against
fastpanel-demean+lstsq (both: demean then least squares, from codes).

**Oversubscription** (`benchmarks/test_bench_oversubscribed.py`): the transform alone and while one
CPU-bound process per core (`python -c "while True: pass"`) competes; ~2x is what sharing the
cores fairly costs.
"""


def write_page(data: dict, path: Path) -> None:
    run = data.get("make_table", {})
    m = run.get("machine") or machine_info()
    groups = _index(data)
    shape_rows, misses = shapes_section(groups)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `" + run.get("command", "python benchmarks/make_table.py") + "` (do not edit by hand).",
        "",
        "## Machine and run",
        "",
        f"* CPU: {m['cpu']}, {m['cores']} logical cores ({m['usable_cores']} usable), "
        f"RAM {m['ram_gib']:.0f} GiB" if m.get("ram_gib") else f"* CPU: {m['cpu']}, {m['cores']} cores",
        f"* {m['os']}, Python {m['python']}",
        f"* fastpanel {m['fastpanel']} (git {m['fastpanel_git']}, {m['fastpanel_threads']} threads), "
        f"pyfixest {m['pyfixest']}, within-py {m['within-py']}, numpy {m['numpy']}",
        f"* environment: {', '.join(f'{k}={v}' for k, v in m['env'].items()) or 'no thread variables set'}",
    ]
    if run:
        lines += [
            f"* date: {run['date']}; wall time of the run: {run['wall_s'] / 60:.1f} min; pytest exit code {run['pytest_rc']}",
            f"* load average (1, 5, 15 min) at the start: {', '.join(f'{v:.2f}' for v in run['loadavg_start'])}; "
            f"at the end: {', '.join(f'{v:.2f}' for v in run['loadavg_end'])} (a load above the core count "
            "means other work shared the machine)",
        ]
    lines += [
        "* times: **minimum** over the rounds; ratios peer / fastpanel on the minimum, and in "
        "parentheses on the median. Targets: pyfixest / fastpanel >= 8x and within-py / fastpanel "
        ">= 2x on every shape (✅ met, ❌ missed).",
        "",
        "## Design",
        "",
        DESIGN,
        "## Two-way within transform on a grid of shapes",
        "",
        *shape_rows,
        "",
    ]
    n_shapes = max(len(shape_rows) - 2, 0)
    if misses:
        lines += [f"Targets missed on {len(misses)} of {n_shapes} shapes: " + "; ".join(misses) + ".", ""]
    elif n_shapes:
        lines += [f"Both targets met on all {n_shapes} shapes.", ""]
    hard = hardfe_section(groups)
    if hard:
        lines += ["## Three fixed effects (fixest benchmark designs)", "", *hard, ""]
    over = oversub_section(groups)
    if over:
        lines += ["## Oversubscription (one competing CPU-bound process per core)", "", *over, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced grid (development)")
    ap.add_argument("--no-oversub", action="store_true", help="leave out the oversubscription checks")
    ap.add_argument("--json", type=Path, help="where to keep the pytest-benchmark JSON")
    ap.add_argument("--from-json", type=Path, help="do not run: rebuild the page from this JSON")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args(argv)
    if a.from_json:
        data = json.loads(a.from_json.read_text())
    else:
        json_path = a.json or ROOT / ".benchmarks" / f"make_table-{'quick' if a.quick else 'full'}.json"
        data = run_benchmarks(json_path, a.quick, oversub=not (a.quick or a.no_oversub), extra=a.pytest_args)
    write_page(data, a.out)


if __name__ == "__main__":
    main()
