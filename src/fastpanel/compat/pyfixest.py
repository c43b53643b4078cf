"""Make pyfixest demean through fastpanel: ``install()`` once, every estimation follows.

pyfixest (https://github.com/py-econometrics/pyfixest) sweeps the fixed effects out of the
data with its own iterative solvers (alternating projections, or LSMR) before every
regression. This module replaces that step, in place, with :func:`fastpanel.lowlevel.demean`,
which is exact (closed form one way, a Schur complement two ways, a sparse Schur solver three or
more ways), so pyfixest's estimates become the exact fixed-effects estimates, independent of
``fixef_tol``.

What is patched (module attributes, looked up by pyfixest at call time):

* ``pyfixest.estimation.internals.demean_.dispatch_demean`` -- the one dispatch point of every
  backend (``MapDemeaner`` rust/numba/jax, ``LsmrDemeaner`` within/torch/cupy), called by
  ``demean_model`` (``feols``, IV's both stages, ``feols`` inside ``did2s``, ``lpdid``, ...);
* the same name as imported into ``pyfixest.estimation.models.fepois_`` and ``...feglm_``
  (the IRLS loops of ``fepois`` and ``feglm``, which demean once per iteration);
* the public helper ``demean(x, flist, weights, tol, maxiter)``: in ``pyfixest.core.demean``,
  ``pyfixest.core`` and ``pyfixest.estimation``.

Not patched: ``pyfixest.estimation.post_estimation.ritest.demean``. pyfixest's fast
randomisation-inference path (``ritest(..., choose_algorithm="fast")``) calls it from inside
Numba-compiled code, which cannot call a Python function (patching it made all 20 of the
suite's ritest cases fail with a Numba typing error), so that path keeps pyfixest's Numba MAP
demeaner; ``choose_algorithm="slow"`` refits with ``feols`` and so runs on fastpanel.

:func:`uninstall` puts every original object back (the very same objects). Code that bound one
of these functions to a name of its own *before* :func:`install` (``from pyfixest.core import
demean``) keeps pyfixest's.

The contract (pyfixest 0.60's, kept):

* ``demean(x, flist, weights, tol=1e-06, maxiter=10_000) -> (out, success)``: ``x`` (n, p),
  any float or integer dtype, any order; ``flist`` (n, k) integer codes (pyfixest passes
  uint64/uintp; any integer dtype works, and so do integral floats); ``weights`` (n,). ``out`` is
  a new C-ordered float64 (n, p) array (``x`` is not modified); ``success`` is a bool.
  Extensions: a 1-D ``x`` (returned 1-D), a 1-D ``flist`` (one factor), ``weights=None``.
* ``dispatch_demean(x, flist, weights, demeaner, cached_preconditioner=None)
  -> (out, success, None)``: the third element, pyfixest's LSMR preconditioner, is always
  ``None`` (there is none), so ``fit.preconditioner`` is ``None`` and a passed
  ``cached_preconditioner`` / ``LsmrDemeaner(preconditioner=...)`` is not used. pyfixest's
  warnings for an unsupported ``preconditioner`` string are still issued.

``tol`` and ``maxiter``: the one- and two-way direct methods are exact and ignore both.
fastpanel iterates only in two places (the conjugate-gradient solve of a large two-way Schur
system, accelerated sweeps tried before the exact three-or-more-way solver); there ``maxiter``
is pyfixest's (``fixef_maxiter``, passed through) and the tolerance is
``min(pyfixest's tol, 1e-10)``: pyfixest's ``fixef_tol`` (default 1e-6) is a stopping rule for
*its* solvers and never loosens fastpanel's. ``success`` is fastpanel's ``converged`` flag:
False only when such an iterative step stopped at ``maxiter``, and then pyfixest raises its
usual "Demeaning failed after ... iterations" error. So ``fixef_tol`` no longer changes the
estimates, and a small ``fixef_maxiter`` fails only where fastpanel really iterates.

Factorisation reuse: the fixed effects built from ``flist`` (the grouping, and per weight
vector the Schur factorisations) are cached, keyed on the codes' contents (shape, dtype and
every element, compared with a stored copy: O(n k), never a stale entry), so the IRLS loops of
``fepois``/``feglm`` and repeated ``feols`` calls on one sample factorise once.
:func:`clear_cache` frees it; :func:`uninstall` does too.

Supported pyfixest versions: 0.60.x (the patched names are private to pyfixest and may change
in any release); :func:`install` raises ``ImportError`` for others unless
``allow_untested=True``.

Examples
--------
>>> import fastpanel.compat.pyfixest as fp_pf                      # doctest: +SKIP
>>> fp_pf.install()                                               # doctest: +SKIP
>>> import pyfixest as pf                                         # doctest: +SKIP
>>> fit = pf.feols("Y ~ X1 | f1 + f2 + f3", data=pf.get_data())   # doctest: +SKIP
>>> fp_pf.uninstall()                                             # doctest: +SKIP
>>> with fp_pf.use_fastpanel():                                   # doctest: +SKIP
...     fit = pf.fepois("Y ~ X1 | f1", data=pf.get_data(model="Fepois"))
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "SUPPORTED_VERSIONS",
    "clear_cache",
    "demean",
    "dispatch_demean",
    "install",
    "installed",
    "stats",
    "uninstall",
    "use_fastpanel",
]

#: The pyfixest versions this adapter was tested with (``major.minor`` prefixes).
SUPPORTED_VERSIONS: tuple[str, ...] = ("0.60",)

#: fastpanel's own tolerance where it iterates; pyfixest's may only tighten it.
_FASTPANEL_TOL = 1e-10

#: Codes arrays kept in the factorisation cache (most recently used first).
_CACHE_SIZE = 8

_LOCK = threading.RLock()
#: (module name, attribute) -> the original object, while installed.
_ORIGINALS: dict[tuple[str, str], Any] = {}
_STATS = {"calls": 0, "cache_hits": 0, "cache_misses": 0}


# --------------------------------------------------------------------------------------------
# the demeaning


class _CodesCache:
    """Most-recently-used cache: integer codes (by contents) -> :class:`FixedEffects`."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: list[tuple[np.ndarray, Any]] = []
        self._lock = threading.Lock()

    def get(self, codes: np.ndarray) -> Any:
        from fastpanel.fixed_effects import FixedEffects

        with self._lock:
            for i, (stored, fe) in enumerate(self._entries):
                if stored.shape == codes.shape and stored.dtype == codes.dtype and np.array_equal(stored, codes):
                    if i:
                        self._entries.insert(0, self._entries.pop(i))
                    _STATS["cache_hits"] += 1
                    return fe
            fe = FixedEffects.from_codes(codes)
            stored = np.array(codes, copy=True)
            stored.flags.writeable = False
            self._entries.insert(0, (stored, fe))
            del self._entries[self.maxsize:]
            _STATS["cache_misses"] += 1
            return fe

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_CACHE = _CodesCache(_CACHE_SIZE)


def _as_codes(flist: Any, n: int) -> np.ndarray:
    codes = np.asarray(flist)
    if codes.ndim == 1:
        codes = codes[:, None]
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ValueError(f"flist must have shape (n, k) with k >= 1, got {np.shape(flist)}")
    if codes.shape[0] != n:
        raise ValueError(f"flist has {codes.shape[0]} rows but x has {n}")
    if codes.dtype == np.bool_ or not np.issubdtype(codes.dtype, np.integer):
        if not np.issubdtype(codes.dtype, np.floating):
            raise TypeError(f"flist must hold integer codes, got dtype {codes.dtype}")
        as_int = codes.astype(np.int64)
        if not np.array_equal(as_int, codes):
            raise ValueError("flist must hold integer codes; it has non-integral or non-finite values")
        codes = as_int
    return codes


def _demean(x: Any, flist: Any, weights: Any, *, tol: float, maxiter: int) -> tuple[np.ndarray, bool]:
    """fastpanel's exact within transform behind pyfixest's calling convention."""
    from fastpanel.lowlevel import demean as fp_demean

    xa = np.asarray(x)
    if xa.dtype != np.float64:
        xa = xa.astype(np.float64)
    if xa.ndim not in (1, 2):
        raise ValueError(f"x must have shape (n, p) or (n,), got {xa.shape}")
    n = xa.shape[0]
    codes = _as_codes(flist, n)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.size != n or (w.ndim > 1 and max(w.shape) != n):
            raise ValueError(f"weights must have shape ({n},), got {w.shape}")
        w = w.reshape(n)
        if (w == 1.0).all():  # pyfixest passes ones for unweighted fits: take the unweighted path
            w = None
    fe = _CACHE.get(codes)
    res = fp_demean(xa, fe, w, tol=min(float(tol), _FASTPANEL_TOL), maxiter=int(maxiter))
    out = res.out
    if out is xa or np.shares_memory(out, xa):  # never hand back (a view of) the caller's data
        out = out.copy()
    if not out.flags.c_contiguous:
        out = np.ascontiguousarray(out)
    with _LOCK:
        _STATS["calls"] += 1
    return out, bool(res.converged)


def demean(
    x: np.ndarray,
    flist: np.ndarray,
    weights: np.ndarray | None = None,
    tol: float = 1e-06,
    maxiter: int = 10_000,
) -> tuple[np.ndarray, bool]:
    """pyfixest's ``demean`` contract, computed exactly by :func:`fastpanel.lowlevel.demean`.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, p) or (n,)
        Data; any float or integer dtype (computed in float64), any order. Not modified.
    flist : numpy.ndarray, shape (n, k) or (n,)
        Integer codes of the fixed effects, one column per factor (any integer dtype; need not
        be dense).
    weights : numpy.ndarray, shape (n,), optional
        Non-negative observation weights; None (or all ones) for an unweighted transform.
    tol : float, default 1e-06
        Moot for the exact direct methods; where fastpanel iterates it uses
        ``min(tol, 1e-10)``.
    maxiter : int, default 10_000
        Iteration limit of fastpanel's iterative steps (unused by the direct methods).

    Returns
    -------
    tuple[numpy.ndarray, bool]
        The demeaned data (a new C-ordered float64 array of x's shape) and whether it converged
        (always True for the direct methods).

    Raises
    ------
    ValueError
        Shapes disagree; x or weights have NaN/inf; negative weights or codes.
    TypeError
        ``flist`` does not hold integer codes.
    """
    return _demean(x, flist, weights, tol=tol, maxiter=maxiter)


def _requested_tol(demeaner: Any) -> float:
    from pyfixest.demeaners import LsmrDemeaner

    if isinstance(demeaner, LsmrDemeaner):
        return float(max(demeaner.fixef_atol, demeaner.fixef_btol))
    return float(demeaner.fixef_tol)


def dispatch_demean(
    x: np.ndarray,
    flist: np.ndarray,
    weights: np.ndarray | None,
    demeaner: Any,
    cached_preconditioner: Any = None,
) -> tuple[np.ndarray, bool, None]:
    """pyfixest's ``dispatch_demean`` contract, for every configured backend, via fastpanel.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, p)
        Data.
    flist : numpy.ndarray, shape (n, k)
        Integer codes of the fixed effects.
    weights : numpy.ndarray or None
        Observation weights.
    demeaner : pyfixest.MapDemeaner or pyfixest.LsmrDemeaner
        The fit's demeaner configuration: only ``fixef_maxiter`` and the tolerance (see the
        module notes) are used; the backend is always fastpanel's.
    cached_preconditioner : pyfixest.Preconditioner, optional
        Accepted and ignored (fastpanel's solvers are direct; no preconditioner exists).

    Returns
    -------
    tuple[numpy.ndarray, bool, None]
        The demeaned data, the convergence flag, and ``None`` (no preconditioner).
    """
    from pyfixest.demeaners import LsmrDemeaner, MapDemeaner

    if not isinstance(demeaner, (MapDemeaner, LsmrDemeaner)):
        raise TypeError(f"Unsupported demeaner type: {type(demeaner)!r}")
    if isinstance(demeaner, LsmrDemeaner) and isinstance(demeaner.preconditioner, str):
        # pyfixest warns about a preconditioner its chosen backend does not support; keep that
        # argument check (the result is irrelevant here: no preconditioner is used).
        resolve = getattr(_module("pyfixest.estimation.internals.demean_"), "_resolve_preconditioner", None)
        if resolve is not None:
            resolve(demeaner.backend, demeaner.preconditioner)
    out, success = _demean(x, flist, weights, tol=_requested_tol(demeaner), maxiter=demeaner.fixef_maxiter)
    return out, success, None


# --------------------------------------------------------------------------------------------
# installing


#: (module, attribute, replacement, required): the attributes :func:`install` replaces.
_TARGETS: tuple[tuple[str, str, Callable[..., Any], bool], ...] = (
    ("pyfixest.estimation.internals.demean_", "dispatch_demean", dispatch_demean, True),
    ("pyfixest.estimation.models.fepois_", "dispatch_demean", dispatch_demean, True),
    ("pyfixest.estimation.models.feglm_", "dispatch_demean", dispatch_demean, True),
    ("pyfixest.core.demean", "demean", demean, True),
    ("pyfixest.core", "demean", demean, True),
    ("pyfixest.estimation", "demean", demean, True),
)


def _module(name: str) -> Any:
    import sys

    mod = sys.modules.get(name)
    return mod if mod is not None else importlib.import_module(name)


def _pyfixest_version() -> str:
    try:
        import pyfixest
    except ImportError as exc:
        raise ImportError(
            "fastpanel.compat.pyfixest needs pyfixest (tested with 0.60.x): pip install 'pyfixest==0.60.*'"
        ) from exc
    try:
        from importlib.metadata import version

        return version("pyfixest")
    except Exception:  # pragma: no cover - metadata missing (vendored copy)
        return str(getattr(pyfixest, "__version__", "unknown"))


def _check_version(allow_untested: bool) -> None:
    found = _pyfixest_version()
    if ".".join(found.split(".")[:2]) in SUPPORTED_VERSIONS:
        return
    if not allow_untested:
        raise ImportError(
            f"fastpanel.compat.pyfixest supports pyfixest {', '.join(v + '.x' for v in SUPPORTED_VERSIONS)}; "
            f"found pyfixest {found}. It patches pyfixest internals that may differ in this version: "
            "install a supported pyfixest, or call install(allow_untested=True) at your own risk."
        )
    warnings.warn(
        f"fastpanel.compat.pyfixest: pyfixest {found} is untested (supported: "
        f"{', '.join(v + '.x' for v in SUPPORTED_VERSIONS)})", UserWarning, stacklevel=3)


def install(*, allow_untested: bool = False) -> None:
    """Route pyfixest's fixed-effects demeaning through fastpanel (idempotent).

    Parameters
    ----------
    allow_untested : bool, default False
        Patch a pyfixest version outside :data:`SUPPORTED_VERSIONS` too (a warning is issued).

    Raises
    ------
    ImportError
        pyfixest is not installed, its version is not supported, or one of the patched names
        is missing (a pyfixest whose internals changed); nothing is patched then.
    """
    with _LOCK:
        if _ORIGINALS:
            return
        _check_version(allow_untested)
        plan: list[tuple[Any, str, Any, Callable[..., Any]]] = []
        for mod_name, attr, replacement, required in _TARGETS:
            try:
                mod = _module(mod_name)
            except ImportError:
                if required:
                    raise
                continue
            if not hasattr(mod, attr):
                if required:
                    raise ImportError(
                        f"pyfixest has no {mod_name}.{attr}: this pyfixest's internals differ from "
                        f"the supported versions ({', '.join(SUPPORTED_VERSIONS)}); nothing was patched"
                    )
                continue
            original = getattr(mod, attr)
            plan.append((mod, attr, original, replacement))
        for mod, attr, original, replacement in plan:
            _ORIGINALS[(mod.__name__, attr)] = original
            setattr(mod, attr, replacement)


def uninstall() -> None:
    """Restore pyfixest's own demeaning (the original objects); a no-op when not installed.

    Also empties the factorisation cache.
    """
    with _LOCK:
        for (mod_name, attr), original in list(_ORIGINALS.items()):
            setattr(_module(mod_name), attr, original)
        _ORIGINALS.clear()
        _CACHE.clear()


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    with _LOCK:
        return bool(_ORIGINALS)


@contextlib.contextmanager
def use_fastpanel(*, allow_untested: bool = False) -> Iterator[None]:
    """Context manager: fastpanel demeans inside the block, pyfixest's own after it.

    Nests, and leaves an :func:`install` made before the block in place; on exit (also through
    an exception) it uninstalls only what it installed.
    """
    with _LOCK:
        was_installed = installed()
        install(allow_untested=allow_untested)
    try:
        yield
    finally:
        if not was_installed:
            uninstall()


def clear_cache() -> None:
    """Drop the cached fixed-effects factorisations."""
    _CACHE.clear()


def stats() -> dict[str, int]:
    """Counters since import: demean ``calls`` served by fastpanel, factorisation cache hits and
    misses, and the number of ``cached`` codes arrays now held."""
    with _LOCK:
        return {**_STATS, "cached": len(_CACHE)}
