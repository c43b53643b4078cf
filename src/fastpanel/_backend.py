"""Backend selection and thread control.

A backend names the implementation of the compiled kernels: ``"cpp"`` (pybind11 + OpenMP,
``fastpanel._core``), ``"numba"`` (CPU, parallel), ``"cuda"`` (numba.cuda). ``"auto"`` picks
cuda when a real GPU is present, else cpp, else numba. A backend named explicitly is never
replaced by another: if it cannot run, :class:`BackendUnavailableError` says why.

The process default comes from :func:`set_backend`, the :func:`use_backend` context manager,
or the ``FASTPANEL_BACKEND`` environment variable, in that order of precedence.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes.util
import functools
import importlib
import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Literal, get_args

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available_backends",
    "get_backend",
    "get_num_threads",
    "resolve_backend",
    "set_backend",
    "set_num_threads",
    "threads",
    "use_backend",
]

Backend = Literal["auto", "cpp", "numba", "cuda"]
BACKENDS: tuple[str, ...] = get_args(Backend)
ENV_VAR = "FASTPANEL_BACKEND"


class BackendUnavailableError(RuntimeError):
    """A backend that was asked for by name cannot run on this machine."""


def _validate(name: object, argument: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"{argument}={name!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    return name.lower()


_process_default: str | None = None
_context_default: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastpanel_backend", default=None
)


def set_backend(name: Backend) -> None:
    """Set the process-wide default backend.

    Parameters
    ----------
    name : {"auto", "cpp", "numba", "cuda"}
        Backend used when a function is called with ``backend=None``.
    """
    global _process_default
    _process_default = _validate(name, "name")


def get_backend() -> str:
    """Return the default backend name in force (possibly ``"auto"``)."""
    ctx = _context_default.get()
    if ctx is not None:
        return ctx
    if _process_default is not None:
        return _process_default
    env = os.environ.get(ENV_VAR)
    if env:
        return _validate(env, f"environment variable {ENV_VAR}")
    return "auto"


@contextlib.contextmanager
def use_backend(name: Backend) -> Iterator[None]:
    """Context manager that sets the default backend inside a ``with`` block.

    Examples
    --------
    >>> import fastpanel
    >>> with fastpanel.use_backend("numba"):
    ...     pass
    """
    token = _context_default.set(_validate(name, "name"))
    try:
        yield
    finally:
        _context_default.reset(token)


def _cpp_status() -> tuple[bool, str]:
    try:
        importlib.import_module("fastpanel._core")
    except ImportError as exc:  # pragma: no cover - depends on the build
        return False, (
            f"the compiled module fastpanel._core is not importable ({exc}); reinstall with "
            "'pip install .' from a source tree with a C++17 compiler"
        )
    return True, "ok"


def _numba_status() -> tuple[bool, str]:
    if importlib.util.find_spec("numba") is None:
        return False, "numba is not installed; 'pip install numba'"
    return True, "ok"


def _cuda_simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@functools.lru_cache(maxsize=1)
def _real_gpu_present() -> bool:
    # Cheap check first so that "auto" does not import numba on machines without a driver.
    if ctypes.util.find_library("cuda") is None and not os.path.exists("/usr/lib/x86_64-linux-gnu/libcuda.so.1"):
        return False
    if _cuda_simulator() or importlib.util.find_spec("numba") is None:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - any driver failure means "no usable GPU"
        return False


def _cuda_status() -> tuple[bool, str]:
    ok, why = _numba_status()
    if not ok:
        return False, why
    if _cuda_simulator():
        return True, "ok (NUMBA_ENABLE_CUDASIM=1: CUDA simulator on the CPU)"
    if _real_gpu_present():
        return True, "ok"
    return False, (
        "no CUDA GPU is usable (numba.cuda.is_available() is False); install an NVIDIA driver "
        "and CUDA toolkit, or set NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels on the CPU "
        "simulator (for testing only)"
    )


_STATUS = {"cpp": _cpp_status, "numba": _numba_status, "cuda": _cuda_status}


def available_backends() -> dict[str, tuple[bool, str]]:
    """Report which backends can run here.

    Returns
    -------
    dict
        ``{name: (available, reason)}`` for ``"cpp"``, ``"numba"`` and ``"cuda"``.
    """
    return {name: check() for name, check in _STATUS.items()}


def resolve_backend(backend: Backend | None = None, concept: str | None = None) -> str:
    """Turn ``backend`` (or the default in force) into a concrete backend name.

    Parameters
    ----------
    backend : {"auto", "cpp", "numba", "cuda"} or None
        ``None`` uses the default (see :func:`get_backend`).
    concept : str, optional
        Kernel concept (``"within"``, ``"threshold"``): a backend must implement it
        (``fastpanel.kernels.<concept>_<backend>`` exists) to be chosen or accepted.

    Returns
    -------
    str
        ``"cpp"``, ``"numba"`` or ``"cuda"``.

    Raises
    ------
    BackendUnavailableError
        If a backend named explicitly cannot run, or ``"auto"`` finds none.
    """
    name = get_backend() if backend is None else _validate(backend, "backend")
    if name != "auto":
        ok, why = _STATUS[name]()
        if ok and concept is not None and not _implements(name, concept):
            ok, why = False, f"it has no {concept!r} kernels in this version of fastpanel"
        if not ok:
            raise BackendUnavailableError(f"backend {name!r} cannot run: {why}")
        return name
    preference = ("cuda", "cpp", "numba") if _real_gpu_present() else ("cpp", "numba")
    for candidate in preference:
        if _STATUS[candidate]()[0] and (concept is None or _implements(candidate, concept)):
            return candidate
    raise BackendUnavailableError(
        "no backend can run: " + "; ".join(f"{k}: {v[1]}" for k, v in available_backends().items())
    )


def _implements(name: str, concept: str) -> bool:
    return importlib.util.find_spec(f"fastpanel.kernels.{concept}_{name}") is not None


_num_threads: int | None = None


def set_num_threads(n: int) -> None:
    """Set the number of threads used by the OpenMP (cpp) and Numba kernels.

    Parameters
    ----------
    n : int
        Positive thread count. Numba caps it at its ``NUMBA_NUM_THREADS`` launch value.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer number of threads")
    _num_threads = n
    if _cpp_status()[0]:
        from fastpanel import _core

        _core.set_num_threads(n)
    import sys

    if "numba" in sys.modules:
        _apply_numba_threads()


# A count set by ``threads(n)`` for the current thread (and the tasks it spawns through
# contextvars), which takes precedence over the process-wide ``_num_threads``.
_thread_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("fastpanel_threads", default=None)


def _apply_numba_threads() -> None:
    n = _thread_override.get()
    n = _num_threads if n is None else n
    if n is None:
        return
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the kernels called from this thread on ``n`` threads, then restore the previous count.

    OpenMP's thread count (the cpp backend) and Numba's are per calling thread, so the setting
    applies to kernels launched from the thread that entered the block and to nothing else:
    other Python threads keep their own count while the block runs, and on exit (also through
    an exception) the calling thread's previous OpenMP and Numba counts are put back.

    Parameters
    ----------
    n : int
        Positive thread count (Numba caps it at its ``NUMBA_NUM_THREADS`` launch value).

    Examples
    --------
    >>> import fastpanel
    >>> with fastpanel.threads(1):
    ...     fastpanel.get_num_threads()
    1
    """
    import sys

    if isinstance(n, bool) or not isinstance(n, (int,)) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer number of threads")
    core = None
    if _cpp_status()[0]:
        from fastpanel import _core as core
    omp_before = int(core.get_num_threads()) if core is not None else None
    numba_before = None
    if "numba" in sys.modules:
        import numba

        numba_before = int(numba.get_num_threads())
    token = _thread_override.set(n)
    try:
        if core is not None:
            core.set_num_threads(n)
        if "numba" in sys.modules:
            _apply_numba_threads()
        yield
    finally:
        _thread_override.reset(token)
        if core is not None and omp_before is not None:
            core.set_num_threads(omp_before)
        if "numba" in sys.modules:
            import numba

            if numba_before is not None:
                numba.set_num_threads(numba_before)
            else:  # Numba was loaded inside the block: back to the process setting
                fallback = _thread_override.get() or _num_threads or numba.config.NUMBA_NUM_THREADS
                numba.set_num_threads(min(fallback, numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """Return the thread count the kernels called from this thread use."""
    override = _thread_override.get()
    if override is not None:
        return override
    if _num_threads is not None:
        return _num_threads
    if _cpp_status()[0]:
        from fastpanel import _core

        return int(_core.get_num_threads())
    return os.cpu_count() or 1


def kernel_module(name: str, concept: str) -> ModuleType:
    """Import ``fastpanel.kernels.<concept>_<name>`` (a backend's implementation of a concept)."""
    module = importlib.import_module(f"fastpanel.kernels.{concept}_{name}")
    if name in ("numba", "cuda"):
        _apply_numba_threads()
    return module
