"""Keep fastpanel's own test run out of the vendored pyfixest suite.

``pyfixest_v0_60/`` is pyfixest's test suite, run only by ``run_pyfixest_suite.py`` (in
subprocesses with its own configuration); fastpanel's ``python -m pytest`` must not collect it.
"""

collect_ignore = ["pyfixest_v0_60", "run_pyfixest_suite.py", "_pyfixest_suite_plugin.py"]
