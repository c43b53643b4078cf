"""Panel threshold regression (Hansen 1999) with an exact one-sweep grid search.

See :func:`threshold` (formula API), :class:`ThresholdPanel` (arrays) and
:class:`ThresholdResults`.

``fastpanel.threshold`` is both this package and the formula function: once any submodule
(``fastpanel.threshold.scan``, ...) has been imported, Python binds the package itself to the
attribute ``fastpanel.threshold``. The package is therefore made callable and forwards calls
to :func:`threshold`, so ``fastpanel.threshold("y ~ x | id", data, ...)`` always works.
"""

import sys
import types

from fastpanel.threshold.model import ThresholdPanel, threshold
from fastpanel.threshold.results import ThresholdResults

__all__ = ["ThresholdPanel", "ThresholdResults", "threshold"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # noqa: D102 - forwards to threshold()
        return threshold(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
