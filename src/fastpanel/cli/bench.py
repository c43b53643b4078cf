"""``fastpanel bench``: run benchmarks/ with the peers side by side and compare ratios.

Runs pytest-benchmark on the repository's ``benchmarks/`` directory (found next to the package
sources; a wheel installation does not ship it), writes the pytest-benchmark JSON, prints a
Markdown table of ratios fastpanel / peer per benchmark group (below 1: fastpanel is faster),
and with ``--compare OLD.json`` exits with code 1 when a ratio is more than 10% worse than in
the saved run. Ratios to a peer timed in the same run are what hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastpanel.cli._common import CLIError, add_global_options, check_output, echo

__all__ = ["register", "run", "benchmark_dir", "ratio_rows", "ratio_table", "regressions"]

TOLERANCE = 0.10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="run the benchmark suite with peers; compare ratios to a saved run",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=("examples:\n  fastpanel bench --quick --json bench.json\n"
                "  fastpanel bench --quick --json new.json --compare baseline.json"))
    p.add_argument("--quick", action="store_true",
                   help="skip the large sizes (pytest -m \"not large\")")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write the pytest-benchmark JSON here (default: a temporary file)")
    p.add_argument("--compare", default=None, metavar="PATH",
                   help="saved pytest-benchmark JSON; exit 1 when a ratio worsens by >10%%")
    p.add_argument("--markdown", default=None, metavar="PATH",
                   help="also write the ratio table to PATH")
    p.add_argument("--force", action="store_true", help="overwrite existing --json/--markdown files")
    p.add_argument("-k", default=None, metavar="EXPR", help="pytest -k expression")
    add_global_options(p, suppress=True)
    p.set_defaults(handler=run)


def benchmark_dir() -> Path:
    """The ``benchmarks/`` directory of the source tree fastpanel is imported from."""
    import fastpanel

    root = Path(fastpanel.__file__).resolve().parent
    for candidate in (root.parents[1] / "benchmarks", root.parent / "benchmarks"):
        if candidate.is_dir() and any(candidate.glob("test_bench_*.py")):
            return candidate
    raise CLIError("the benchmark suite (benchmarks/test_bench_*.py) is not available: fastpanel "
                   f"is imported from {root}, an installation without the repository; run "
                   "`fastpanel bench` from a source checkout (pip install -e .)")


def _is_fastpanel(bench: dict[str, Any]) -> bool:
    extra = bench.get("extra_info") or {}
    label = str(extra.get("library") or extra.get("impl") or extra.get("implementation") or "")
    if label:
        return label.lower() == "fastpanel"
    return "fastpanel" in str(bench.get("name", "")).lower()


def _label(bench: dict[str, Any]) -> str:
    extra = bench.get("extra_info") or {}
    label = extra.get("library") or extra.get("impl") or extra.get("implementation")
    return str(label) if label else str(bench.get("name", "?")).removeprefix("test_")


def ratio_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (group, fastpanel benchmark, peer benchmark): medians and their ratio."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for bench in payload.get("benchmarks", []):
        groups.setdefault(str(bench.get("group") or bench.get("name")), []).append(bench)
    rows = []
    for group, benches in sorted(groups.items()):
        ours = [b for b in benches if _is_fastpanel(b)]
        peers = [b for b in benches if not _is_fastpanel(b)]
        for mine in ours:
            for peer in peers:
                a, b = mine["stats"]["median"], peer["stats"]["median"]
                rows.append({"group": group, "fastpanel": _label(mine), "peer": _label(peer),
                             "fastpanel_s": a, "peer_s": b, "ratio": a / b if b > 0 else float("inf")})
    return rows


def ratio_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the ratio rows (ratio < 1: fastpanel faster)."""
    out = ["| group | fastpanel | peer | fastpanel (ms) | peer (ms) | ratio | speed-up |",
           "|:---|:---|:---|---:|---:|---:|---:|"]
    for r in rows:
        speedup = 1 / r["ratio"] if r["ratio"] > 0 else float("inf")
        out.append(f"| {r['group']} | {r['fastpanel']} | {r['peer']} | {1e3 * r['fastpanel_s']:.3f} "
                   f"| {1e3 * r['peer_s']:.3f} | {r['ratio']:.4f} | {speedup:.1f}x |")
    if not rows:
        out.append("| (no group has both a fastpanel and a peer benchmark) | | | | | | |")
    return "\n".join(out)


def regressions(new: list[dict[str, Any]], old: list[dict[str, Any]],
                tolerance: float = TOLERANCE) -> list[str]:
    """Messages for ratios that got worse than ``(1 + tolerance)`` times the saved ratio."""
    saved = {(r["group"], r["fastpanel"], r["peer"]): r["ratio"] for r in old}
    out = []
    for r in new:
        before = saved.get((r["group"], r["fastpanel"], r["peer"]))
        if before is not None and r["ratio"] > before * (1 + tolerance):
            out.append(f"{r['group']}: {r['fastpanel']} / {r['peer']} ratio {r['ratio']:.4f} vs "
                       f"{before:.4f} saved (+{100 * (r['ratio'] / before - 1):.0f}%)")
    return out


def _load_json(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CLIError(f"file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise CLIError(f"could not read {path} as pytest-benchmark JSON: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    inputs = (args.compare,) if args.compare else ()
    check_output(args.json, "--json", inputs=inputs, force=args.force)
    check_output(args.markdown, "--markdown", inputs=inputs, force=args.force)
    old = _load_json(args.compare) if args.compare else None
    bench_dir = benchmark_dir()
    with tempfile.TemporaryDirectory() as tmp:
        json_path = Path(args.json) if args.json else Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "pytest", str(bench_dir), "--benchmark-only",
               f"--benchmark-json={json_path}", "-p", "no:cacheprovider",
               "-q" if args.quiet else "-v"]
        if args.quick:
            cmd += ["-m", "not large"]
        if args.k:
            cmd += ["-k", args.k]
        env = dict(os.environ)
        if args.backend:
            env["FASTPANEL_BACKEND"] = args.backend
        if args.threads:
            env["OMP_NUM_THREADS"] = env["NUMBA_NUM_THREADS"] = str(args.threads)
        echo(args, "running: " + " ".join(cmd))
        code = subprocess.call(cmd, cwd=bench_dir.parent, env=env)
        if code not in (0, 5):
            raise CLIError(f"the benchmark run failed (pytest exit code {code})")
        if not json_path.exists():
            raise CLIError("the benchmark run wrote no JSON (no benchmarks collected?)")
        payload = _load_json(str(json_path))
    rows = ratio_rows(payload)
    table = ratio_table(rows)
    echo(args, table, force=True)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if old is not None:
        worse = regressions(rows, ratio_rows(old))
        for line in worse:
            echo(args, f"slower: {line}", force=True)
        if worse:
            raise CLIError(f"{len(worse)} benchmark ratio(s) worse by more than "
                           f"{TOLERANCE:.0%} than in {args.compare}")
    return 0
