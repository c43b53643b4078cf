"""The ``fastpanel`` command line.

Sub-commands: ``demo`` (the three standard analyses on the embedded SYNTHETIC city panel, with
a report folder), ``info`` (panel structure of a file), ``fit`` (fixed-effects OLS),
``threshold`` (Hansen panel threshold model) and ``bench`` (the benchmark suite with ratios to
the peers). Exit codes: 0 success, 1 data or estimation error (one-line message; ``--debug``
shows the traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from fastpanel.cli._common import CLIError, add_global_options, apply_global_options, stderr

__all__ = ["main", "build_parser", "CLIError"]

_EXAMPLES = """\
examples:
  fastpanel demo --out report/            three analyses on the built-in synthetic city panel
  fastpanel info data.csv --entity city --time year
  fastpanel fit data.parquet "np.log(gdp) ~ np.log(computing) | city + year" --vcov CRV1:city
  fastpanel threshold data.dta "lgdp ~ lk | city" --threshold-var storage --regime lcloud --boot 300
  fastpanel bench --quick --json bench.json --compare baseline.json
"""

_COMMANDS = ("demo", "info", "fit", "threshold", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastpanel`` command (sub-commands registered lazily)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="fastpanel", description="Fast panel-data econometrics from the command line.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from fastpanel import __version__

    parser.add_argument("--version", action="version", version=f"fastpanel {__version__}")
    add_global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        module = importlib.import_module(f"fastpanel.cli.{name}")
        module.register(sub)
    return parser


def _install_warning_printer() -> None:
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        stderr(f"fastpanel: warning: {message}")

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 data/estimation error, 2 usage).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    _install_warning_printer()
    try:
        apply_global_options(args)
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # output piped into `head` and friends
        return 0
    except KeyboardInterrupt:
        stderr("fastpanel: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's contract: one line, exit 1
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, (CLIError, ValueError, TypeError, KeyError, OSError,
                                ArithmeticError, RuntimeError, ImportError)):
            message = f"{type(exc).__name__}: {message}"
        stderr(f"fastpanel: error: {message}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
