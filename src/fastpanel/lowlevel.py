"""The stable low-level API: integer codes in, float arrays out, for libraries built on fastpanel.

Everything here takes and returns NumPy arrays (no pandas, no formulas) and is covered by the
stability promise in ``docs/lowlevel.md``: names, signatures and the meaning of every result
field stay within a major ``API_VERSION``; additions raise the minor version.

* :func:`demean` -- the within (fixed-effects) transformation of one or many columns, from
  integer codes or a prepared :class:`FixedEffects`; exact for any number of dimensions
  (closed form one-way, Schur complement two-way, sparse Schur solver three or more ways).
  Cost: O(n p) for one and two ways (two reads of X and one write), plus the factorisation.
* :class:`FixedEffects` (``FixedEffects.from_codes``) -- the factorisation, computed once and
  reused: group permutations, and per weight vector the two-way Schur eigendecomposition
  or the k-way factorised Schur complement.
* :func:`threads` -- the kernels' thread count for a block, restored afterwards.

Naming: ``n`` rows, ``p`` columns of ``x``, ``k`` fixed-effect dimensions; ``codes`` is (n, k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastpanel._backend import Backend, threads
from fastpanel.fixed_effects import FixedEffects
from fastpanel.within import within

__all__ = ["API_VERSION", "DemeanResult", "FixedEffects", "demean", "threads"]

#: (major, minor) of this API; see docs/lowlevel.md for what each part promises.
API_VERSION: tuple[int, int] = (1, 0)


@dataclass
class DemeanResult:
    """The within-transformed data and how it was computed.

    Attributes
    ----------
    out : ndarray of float64
        The transformed data, with the shape of ``x`` (the ``out`` array when one was passed).
    method : str
        The algorithm (``WithinInfo.method``: ``"oneway"``, ``"twoway-direct"``,
        ``"twoway-balanced"``, ``"twoway-cg"``, ``"kway-direct"``, ``"kway-cg"``,
        ``"alternating-projections"``, ``"none"``).
    backend : str
        The kernels that ran (``"cpp"``, ``"numba"``, ``"cuda"``).
    converged : bool
        False only when an iterative step stopped at ``maxiter`` (a ``ConvergenceWarning`` was
        issued too). The one- and two-way direct methods always converge.
    iterations : int
        Conjugate-gradient steps, sweeps or refinement steps (0 for the direct methods).
    """

    out: np.ndarray
    method: str
    backend: str
    converged: bool
    iterations: int
    _fe: FixedEffects = field(repr=False)
    _x: np.ndarray | None = field(repr=False)
    _weights: np.ndarray | None = field(repr=False)
    _n_identified: int | None = field(default=None, repr=False)
    _residual: float | None = field(default=None, repr=False)

    @property
    def n_identified(self) -> int:
        """Identified fixed effects: the rank of the dummy matrix of all dimensions.

        One way: the number of levels. Two ways: ``n_A + n_B`` minus the connected sets of the
        bipartite graph. Three or more ways: from the exact solver (connected sets and the null
        directions of the reduced Schur complement). Computed on first access for one and two
        ways (O(n)).
        """
        if self._n_identified is None:
            self._n_identified = self._fe.n_identified()
        return self._n_identified

    @property
    def residual(self) -> float:
        """The exact residual certificate of the result, computed on first access.

        ``max_j ||D' W e_j||_2 / ||D' W |x_j| ||_2``: the normal equations of the least-squares
        fit on the dummies of every dimension, evaluated on the output ``e = out`` (every group
        sum of ``w e`` is zero for the exact transform), relative to the same group sums of
        ``|x|``, the scale of the rounding in the data. A value near 1e-16 means the output is
        the exact transform to the precision of the input. When the call ran in place
        (``out`` was ``x``) the input is gone and ``|out|`` is the scale, a stricter measure.
        Costs one bincount per dimension and column; read it before overwriting ``out``.
        """
        if self._residual is None:
            self._residual = _certificate(self.out, self._x, self._fe, self._weights)
        return self._residual


def _group_sum_norms(v: np.ndarray, fe: FixedEffects, w: np.ndarray | None) -> np.ndarray:
    """``||D' W v_j||_2`` for each column j, D the stacked dummies of every dimension."""
    wv = v if w is None else v * w[:, None]
    total = np.zeros(v.shape[1])
    for f in fe.factors:
        for j in range(v.shape[1]):
            s = np.bincount(f.codes, weights=wv[:, j], minlength=f.n_levels)
            total[j] += float(s @ s)
    return np.sqrt(total)


def _certificate(out: np.ndarray, x: np.ndarray | None, fe: FixedEffects, w: np.ndarray | None) -> float:
    e = out.reshape(out.shape[0], -1)
    if e.shape[1] == 0 or e.shape[0] == 0:
        return 0.0
    scale_src = e if x is None else x.reshape(x.shape[0], -1)
    num = _group_sum_norms(e, fe, w)
    den = _group_sum_norms(np.abs(scale_src), fe, w)
    ok = den > 0
    return float(np.max(np.where(ok, num / np.where(ok, den, 1.0), 0.0)))


def _as_fixed_effects(codes: Any) -> FixedEffects:
    if isinstance(codes, FixedEffects):
        return codes
    arr = np.asarray(codes)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"codes must be an integer array of shape (n,) or (n, k) or a FixedEffects, got dtype {arr.dtype}; "
            "code other ids with fastpanel.FixedEffects(ids) first"
        )
    return FixedEffects.from_codes(arr)


def demean(
    x: Any,
    codes: Any,
    weights: Any = None,
    *,
    out: np.ndarray | None = None,
    backend: Backend | None = None,
    tol: float = 1e-10,
    maxiter: int = 10_000,
) -> DemeanResult:
    """Within-transform the columns of ``x``: subtract their projection on the fixed effects.

    Parameters
    ----------
    x : array-like, shape (n,) or (n, p)
        Data, any memory order. float64 is used as is; float32 and integer input are
        converted to float64 and computed in float64 (the result is float64). x is read only,
        unless it is also ``out``.
    codes : integer array of shape (n,) or (n, k), or FixedEffects
        The level of each row in each fixed-effect dimension, any integer dtype and order
        (:meth:`FixedEffects.from_codes`), or a prepared :class:`FixedEffects`, which reuses
        its factorisation (the way to call this in a loop).
    weights : array-like, shape (n,), optional
        Non-negative observation weights (weighted least-squares projection).
    out : ndarray of float64, optional
        Array of x's shape to write the result into; it may be ``x`` itself (in place). A
        Fortran-ordered ``out`` is written directly; another layout costs one copy.
    backend : {"auto", "cpp", "numba", "cuda"}, optional
        Kernels to use; default the process default (:func:`fastpanel.set_backend`).
    tol, maxiter : float, int
        Used only where an iterative step runs (three or more dimensions with a well connected
        design try accelerated sweeps before the exact solver, which then takes over; the
        large two-way Schur system is solved by conjugate gradients). The one- and two-way
        direct methods are exact and ignore both.

    Returns
    -------
    DemeanResult
        ``out``, ``method``, ``backend``, ``converged``, ``iterations``, and on first access
        ``residual`` (the exact certificate) and ``n_identified``.

    Raises
    ------
    ValueError
        Shapes disagree, x, codes or weights have NaN/inf or negative values, or ``out`` is
        not a writeable float64 array of x's shape.
    TypeError
        ``codes`` is not an integer array or a FixedEffects.

    Examples
    --------
    >>> import numpy as np
    >>> from fastpanel.lowlevel import demean
    >>> codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 1]], dtype=np.uint32)
    >>> x = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    >>> res = demean(x, codes)
    >>> res.method, bool(res.residual < 1e-14)
    ('twoway-direct', True)
    """
    fe = _as_fixed_effects(codes)
    xa = np.asarray(x)
    if xa.dtype != np.float64:
        if not (np.issubdtype(xa.dtype, np.floating) or np.issubdtype(xa.dtype, np.integer)) or xa.dtype == np.bool_:
            raise TypeError(f"x must be a numeric array, got dtype {xa.dtype}")
        xa = xa.astype(np.float64)
    if xa.ndim not in (1, 2):
        raise ValueError(f"x must have shape (n,) or (n, p), got {xa.shape}")
    in_place = out is not None and np.shares_memory(out, np.asarray(x))
    direct_out = None
    if out is not None:
        if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == xa.shape
                and out.flags.writeable):
            raise ValueError(
                f"out must be a writeable float64 array of x's shape {xa.shape}, got "
                f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}"
            )
        if out.flags.f_contiguous and (out.ndim == 2 or out.flags.c_contiguous):
            direct_out = out if out.ndim == 2 else out[:, None]
    if in_place and direct_out is not None and not xa.flags.f_contiguous:
        direct_out = None  # x is read in Fortran order; writing into it first would corrupt it
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    result, info = within(xa, fe, weights=w, backend=backend, tol=tol, maxiter=maxiter, return_info=True,
                          out=direct_out)
    if out is not None and direct_out is None:
        out[...] = result
        result = out
    elif out is not None:
        result = out
    return DemeanResult(
        out=result, method=info.method, backend=info.backend, converged=info.converged,
        iterations=info.iterations, _fe=fe, _x=None if in_place else xa, _weights=w,
        _n_identified=info.n_identified,
    )
