"""Shared pieces of the command line: the error type, global options, printing helpers."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["CLIError", "add_global_options", "apply_global_options", "check_output", "echo", "MISSING_FEATURE"]

MISSING_FEATURE = (
    "{what} is not available in this installation of fastpanel (module {module} is missing)"
)


class CLIError(Exception):
    """A data or estimation problem: printed as one line, exit code 1."""


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add --backend/--threads/--seed/--quiet/--debug to ``parser``.

    On sub-commands the defaults are suppressed so that an option given before the
    sub-command name (``fastpanel --quiet demo``) is not reset by the sub-parser.
    """
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    group = parser.add_argument_group("global options")
    group.add_argument("--backend", choices=["auto", "cpp", "numba", "cuda"], default=default(None),
                       help="compute backend (default: FASTPANEL_BACKEND or auto)")
    group.add_argument("--threads", type=_positive_int, default=default(None), metavar="N",
                       help="number of CPU threads for OpenMP and Numba")
    group.add_argument("--seed", type=int, default=default(None), metavar="S",
                       help="random seed (data generation, bootstrap)")
    group.add_argument("--quiet", "-q", action="store_true", default=default(False),
                       help="print only results and errors; no progress bars")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="show full tracebacks on errors")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def apply_global_options(args: argparse.Namespace) -> None:
    """Apply --backend and --threads process-wide."""
    import fastpanel

    if args.backend is not None:
        fastpanel.set_backend(args.backend)
    if args.threads is not None:
        fastpanel.set_num_threads(args.threads)


def echo(args: argparse.Namespace, *parts: Any, force: bool = False) -> None:
    """Print to stdout unless --quiet (``force`` prints anyway: results)."""
    if force or not getattr(args, "quiet", False):
        print(*parts, flush=True)


def stderr(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def check_output(path: str | None, option: str, *, inputs: tuple[str, ...] = (), force: bool = False,
                 directory: bool = False) -> None:
    """Refuse an output path before any work is done: never an input file (also through a
    link), never an existing file unless ``--force``, and only in a writable folder."""
    if path is None:
        return
    target = os.path.abspath(path)
    for src in inputs:
        same = os.path.realpath(target) == os.path.realpath(src)
        if not same and os.path.exists(target) and os.path.exists(src):
            same = os.path.samefile(target, src)
        if same:
            raise CLIError(f"{option} {path} is the input data file; choose another output path "
                           "(fastpanel never overwrites its input)")
    if os.path.isdir(target) and not directory:
        raise CLIError(f"{option} {path} is a folder; give a file name")
    if os.path.exists(target) and not directory and not force:
        raise CLIError(f"{option} {path} exists; pass --force to overwrite it")
    parent = os.path.dirname(target) or "."
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{option} {path}: the folder {parent} is not writable")
