"""Adapters that make other libraries compute with fastpanel.

* :mod:`fastpanel.compat.pyfixest` -- ``install()`` routes every pyfixest (0.60.x) fixed-effects
  demeaning through :func:`fastpanel.lowlevel.demean`; ``uninstall()`` restores pyfixest's own.

Nothing is imported or patched until a submodule is used: ``import fastpanel.compat`` is free.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["pyfixest"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
