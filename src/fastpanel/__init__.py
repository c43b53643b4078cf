"""fastpanel: fast panel-data econometrics.

The within (fixed-effects) transformation on C++/OpenMP, Numba and CUDA kernels, with a thin
Python API that uses statsmodels' names. ``import fastpanel`` loads no JIT compiler: Numba
compiles on first use of its backend and caches the result.
"""

from __future__ import annotations

from fastpanel._backend import (
    Backend,
    BackendUnavailableError,
    available_backends,
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
    threads,
    use_backend,
)
from fastpanel.factor import Factor, factorize
from fastpanel.fixed_effects import FixedEffects
from fastpanel.panel import PanelIndex
from fastpanel.within import ConvergenceWarning, WithinInfo, within

__version__ = "0.1.0"

# Estimators and tools that pull in heavy dependencies (formulaic, pandas, numba) load on first
# attribute access, which keeps `import fastpanel` fast.
_LAZY = {
    "feols": "fastpanel.ols",
    "PanelOLS": "fastpanel.ols",
    "PanelIV": "fastpanel.ols",
    "VaryingSlopes": "fastpanel.slopes",
    "IVResults": "fastpanel.ols",
    "etable": "fastpanel.ols",
    "threshold": "fastpanel.panel_threshold",
    "ThresholdPanel": "fastpanel.panel_threshold",
    "ThresholdResults": "fastpanel.panel_threshold",
    "dynamic_threshold": "fastpanel.dynamic_panel",
    "DynamicThresholdResults": "fastpanel.dynamic_panel",
    "datasets": "fastpanel.datasets",
    "lowlevel": "fastpanel.lowlevel",
    "compat": "fastpanel.compat",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fastpanel' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = module if name in ("datasets", "lowlevel", "compat") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_LAZY))

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "ConvergenceWarning",
    "Factor",
    "FixedEffects",
    "PanelIndex",
    "WithinInfo",
    "available_backends",
    "factorize",
    "get_backend",
    "get_num_threads",
    "set_backend",
    "set_num_threads",
    "threads",
    "use_backend",
    "within",
    "__version__",
    *_LAZY,
]
