"""pytest plugin for run_pyfixest_suite.py: installs fastpanel's demeaner and records outcomes.

Loaded with ``-p _pyfixest_suite_plugin`` (this directory on PYTHONPATH) in both runs of the
vendored pyfixest suite. With ``FASTPANEL_PYFIXEST_INSTALL=1`` it calls
``fastpanel.compat.pyfixest.install()`` at configure time, before any test module is imported.
It writes every test's outcome (by node id) and fastpanel's call counters to the JSON file
named by ``FASTPANEL_PYFIXEST_RESULTS``.
"""

from __future__ import annotations

import json
import os
from typing import Any

_OUTCOMES: dict[str, str] = {}
_INSTALL = os.environ.get("FASTPANEL_PYFIXEST_INSTALL") == "1"


def pytest_configure(config: Any) -> None:
    if _INSTALL:
        import fastpanel.compat.pyfixest as compat

        compat.install()


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _OUTCOMES[f"{report.nodeid}::<collection>"] = "error"


def pytest_runtest_logreport(report: Any) -> None:
    node = report.nodeid
    xfail = hasattr(report, "wasxfail")
    if report.when == "setup":
        if report.failed:
            _OUTCOMES[node] = "error"
        elif report.skipped:
            _OUTCOMES[node] = "xfailed" if xfail else "skipped"
    elif report.when == "call":
        if report.passed:
            _OUTCOMES[node] = "xpassed" if xfail else "passed"
        elif report.failed:
            _OUTCOMES[node] = "failed"
        else:
            _OUTCOMES[node] = "xfailed" if xfail else "skipped"
    elif report.when == "teardown" and report.failed:
        _OUTCOMES[node] = "error"


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("FASTPANEL_PYFIXEST_RESULTS")
    if not path:
        return
    info: dict[str, Any] = {"outcomes": _OUTCOMES, "install_requested": _INSTALL, "exitstatus": int(exitstatus)}
    if _INSTALL:
        import fastpanel.compat.pyfixest as compat

        info["installed_at_end"] = compat.installed()
        info["fastpanel_stats"] = compat.stats()
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=1, sort_keys=True)
