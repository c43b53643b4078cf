"""The within (fixed-effects) transformation: public entry point and algorithm selection.

``within(X, ids)`` returns X minus its least-squares projection on the fixed effects given by
``ids``:

* one way: exact removal of (weighted) group means, one read of X and one write;
* two ways: exact solution of the normal equations. The dimension with more levels (A) is
  eliminated in closed form, the other (B) is solved through its n_B x n_B Schur complement
  (two reads of X, no iteration). When both balanced and unweighted, the Schur system has
  the closed-form solution gamma = r / n_A. When both dimensions are large
  (``n_B > DIRECT_MAX_LEVELS``), the Schur system is solved by preconditioned conjugate
  gradients to 1e-13 relative residual, each iteration one pass over the ids (not over X);
* three or more ways: alternating projections (one-way sweeps) accelerated with the
  Irons-Tuck (1969) extrapolation, as in fixest, until the largest change of any column,
  relative to that column's scale, is below ``tol``.

The kernels themselves live in ``fastpanel.kernels.within_<backend>``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from fastpanel._backend import Backend, kernel_module, resolve_backend
from fastpanel._validation import as_float_matrix, as_weights, nonfinite_rows
from fastpanel.factor import Factor, factorize
from fastpanel.fixed_effects import FixedEffects

__all__ = ["ConvergenceWarning", "WithinInfo", "within", "twoway_gamma", "DIRECT_MAX_LEVELS"]

#: Largest level count of the smaller dimension for which the two-way transform solves the
#: Schur system directly (an n_B x n_B dense matrix per thread).
DIRECT_MAX_LEVELS = 2000

_EMPTY_I64 = np.empty(0, dtype=np.int64)
_EMPTY_F64 = np.empty(0, dtype=np.float64)


class ConvergenceWarning(UserWarning):
    """An iterative method stopped at its iteration limit before reaching its tolerance."""


@dataclass(frozen=True)
class WithinInfo:
    """How a within transformation was computed.

    Attributes
    ----------
    method : str
        ``"oneway"``, ``"twoway-balanced"``, ``"twoway-direct"``, ``"twoway-cg"``,
        ``"alternating-projections"``, ``"kway-direct"`` or ``"kway-cg"`` (exact Schur complement
        solver for three or more dimensions, :mod:`fastpanel.kway`), ``"slopes-*"`` (varying
        slopes, :mod:`fastpanel.slopes`), or ``"none"`` (X has no columns).
    backend : str
        Backend that ran the kernels.
    n_dropped : int
        Rows excluded because of NaN/inf (only with ``drop_missing=True``).
    iterations : int
        Sweeps of alternating projections or conjugate-gradient steps (0 for direct methods).
    converged : bool
        False only when an iterative method stopped at ``maxiter``.
    max_change : float
        Final relative change of the iteration (0 for exact methods).
    n_identified : int or None
        Rank of the fixed-effect dummy matrix (identified effects, for degrees of freedom) when
        the method computes it: the exact k-way solver (``"kway-*"``), from its connected sets
        and the null directions of the reduced Schur complement; None otherwise.
    """

    method: str
    backend: str
    n_dropped: int = 0
    iterations: int = 0
    converged: bool = True
    max_change: float = 0.0
    n_identified: int | None = None


def _order_arg(f: Factor) -> np.ndarray:
    order = f.order
    return _EMPTY_I64 if order is None else order


class _PsdSolver:
    """Solutions of the consistent, singular PSD system S gamma = r, S factorised once.

    S = D_B - C' D_A^{-1} C has one zero eigenvalue per connected set of the bipartite A-B
    graph (its indicator over the B levels), and no other: S[b, b'] != 0 exactly when levels
    b and b' share an A group (every term of the sum has the same sign, so nothing cancels),
    so the connected sets are those of the pattern of S. Pinning one level per set to zero
    leaves a positive definite system, factorised by Cholesky (n_B^3 / 3 flops, against about
    9 n_B^3 for the eigendecomposition used before, 4.5 s at n_B = 1000 on a loaded two-core
    machine). Any solution gives the same transform, so the pinned one is exact up to
    rounding. Rounding can still leave the reduced matrix numerically singular (a huge
    condition number); then the pseudo-inverse on the non-negligible eigenvalues is used.
    Kept in a FixedEffects (per weight vector), so repeated transforms on the same panel skip
    the factorisation.
    """

    def __init__(self, schur: np.ndarray) -> None:
        import scipy.linalg as sla
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        schur = 0.5 * (schur + schur.T)
        n_b = schur.shape[0]
        self.n_b = n_b
        self.chol = None
        if n_b == 0:
            self.free = np.zeros(0, dtype=bool)
            return
        labels = _dense_components(schur != 0) if n_b <= _DENSE_COMPONENTS_MAX else \
            connected_components(sp.csr_matrix(schur != 0), directed=False)[1]
        pinned = np.zeros(n_b, dtype=bool)
        pinned[np.unique(labels, return_index=True)[1]] = True
        self.free = ~pinned
        reduced = schur[np.ix_(self.free, self.free)]
        try:
            if reduced.size:
                self.chol = sla.cho_factor(reduced, lower=True, check_finite=False)
                diag = np.diag(self.chol[0])
                # a pivot at rounding level relative to S's scale: numerically singular
                if diag.min() ** 2 <= n_b * 1e-13 * max(float(np.abs(np.diag(schur)).max()), 1e-300):
                    self.chol = None
                    raise np.linalg.LinAlgError("numerically singular")
            else:
                self.chol = ("empty",)
        except np.linalg.LinAlgError:
            evals, evecs = np.linalg.eigh(schur)
            cutoff = max(evals[-1], 0.0) * n_b * 1e-13
            self.inv = np.where(evals > cutoff, 1.0 / np.where(evals > cutoff, evals, 1.0), 0.0)
            self.evecs = evecs

    def __call__(self, rhs: np.ndarray) -> np.ndarray:
        if self.chol is None:
            return np.asfortranarray(self.evecs @ (self.inv[:, None] * (self.evecs.T @ rhs)))
        import scipy.linalg as sla

        out = np.zeros((self.n_b, rhs.shape[1]), order="F")
        if self.free.any():
            out[self.free] = sla.cho_solve(self.chol, rhs[self.free], check_finite=False)
        return out


#: up to this many B levels the connected sets of S's pattern come from breadth-first sweeps on
#: the dense pattern (a few vectorised steps); scipy's sparse graph routines cost more in
#: set-up than the whole transform of a small panel (0.25 ms of a 0.39 ms call at 4.5k rows)
_DENSE_COMPONENTS_MAX = 4096


def _dense_components(adj: np.ndarray) -> np.ndarray:
    """Connected-set label of each vertex of the symmetric boolean adjacency matrix ``adj``
    (labels in order of each set's smallest vertex), by breadth-first sweeps: each step marks
    every neighbour of the frontier at once."""
    n = adj.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    label = 0
    for start in range(n):
        if labels[start] >= 0:
            continue
        seen = np.zeros(n, dtype=bool)
        seen[start] = True
        frontier = seen.copy()
        while True:
            nxt = adj[frontier].any(axis=0) & ~seen
            if not nxt.any():
                break
            seen |= nxt
            frontier = nxt
        labels[seen] = label
        label += 1
    return labels


def _solve_psd(schur: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Minimum-norm solution of the consistent, singular PSD system S gamma = r (one shot)."""
    return _PsdSolver(schur)(rhs)


def _codes_kernel(X: np.ndarray, a: Factor, b: Factor | None, w: np.ndarray | None, kern: ModuleType) -> Any:
    """The transform straight from the codes (``WithinCodes``: A totals in a table, rows in
    any order and never moved), when the backend has it and the design fits it: unweighted,
    and two-way a panel (B with at most 64 levels, each (A, B) cell at most once; a repeated
    cell is found in its first pass, and None sends the caller to the general kernels)."""
    if w is not None or not hasattr(kern, "WithinCodes") or (b is not None and b.n_levels > 64):
        return None
    part = kern.WithinCodes(X, a.codes, a.n_levels, _EMPTY_I64 if b is None else b.codes,
                            0 if b is None else b.n_levels)
    return part if part.ok else None


class _Passes:
    """The two passes of the exact two-way transform: straight from the codes on panels
    (``WithinCodes``, any row order); otherwise on rows grouped by A either through the
    counting-sort permutation (rows sorted by A: no permutation at all) or, for rows in any
    other order on a backend that has it, through a radix partition of X into buckets of A
    levels (``WithinRows``: streams X instead of gathering it row by row)."""

    def __init__(self, X: np.ndarray, a: Factor, b: Factor, w: np.ndarray | None, kern: ModuleType) -> None:
        self.X, self.a, self.b, self.kern = X, a, b, kern
        self.w_arg = _EMPTY_F64 if w is None else w
        self.rows = _codes_kernel(X, a, b, w, kern)
        if self.rows is None and not a.is_sorted and hasattr(kern, "WithinRows"):
            self.rows = kern.WithinRows(X, a.codes, a.group_starts, b.codes, b.n_levels, self.w_arg)

    def pass1(self, want_schur: bool) -> tuple[np.ndarray, np.ndarray]:
        if self.rows is not None:
            return self.rows.pass1(want_schur)
        a, b = self.a, self.b
        return self.kern.twoway_pass1(self.X, _order_arg(a), a.group_starts, b.codes, b.n_levels, self.w_arg, want_schur)

    def pass2(self, gamma: np.ndarray, out: np.ndarray) -> None:
        if self.rows is not None:
            self.rows.pass2(gamma, out)
            self.rows = None  # frees the staged copy of X
            return
        a, b = self.a, self.b
        self.kern.twoway_pass2(self.X, out, _order_arg(a), a.group_starts, b.codes, gamma, self.w_arg)


def _is_balanced_schur(schur: np.ndarray, n_rows: int, n_a: int) -> bool:
    """A balanced panel with unit weights has S = n_A (I - 11'/n_B); recognising it from S costs
    nothing (S is cheap: counted level sets)."""
    n_b = schur.shape[0]
    return n_rows == n_a * n_b and np.allclose(schur, n_a * (np.eye(n_b) - 1.0 / n_b), rtol=0.0, atol=1e-12 * n_a)


def _twoway_solver(schur: np.ndarray, n_rows: int, n_a: int) -> tuple[Any, bool]:
    """A callable r -> gamma for the two-way Schur system, and whether it is the balanced
    closed form gamma = r / n_A (r sums to zero over the B levels there)."""
    if _is_balanced_schur(schur, n_rows, n_a):
        return (lambda r: np.asfortranarray(r / n_a)), True
    return _PsdSolver(schur), False


def twoway_gamma(schur: np.ndarray, r: np.ndarray, n_rows: int, n_a: int) -> tuple[np.ndarray, bool]:
    """B effects ``gamma`` (n_B, p) of the two-way Schur system ``S gamma = r``, and whether the
    balanced closed form applied (shared by the in-memory and the distributed transforms)."""
    solve, balanced = _twoway_solver(schur, n_rows, n_a)
    return solve(r), balanced


def _twoway_direct(
    X: np.ndarray, fe: FixedEffects, w: np.ndarray | None, kern: ModuleType, out: np.ndarray | None = None
) -> tuple[np.ndarray, str | None]:
    a, b = sorted(fe.factors, key=lambda f: f.n_levels, reverse=True)
    passes = _Passes(X, a, b, w, kern)
    key = f"twoway:{kern.__name__}"
    cached = fe.cached_solver(key, w)  # the Schur system depends on the codes and weights only
    dense = cached is None and _dense_schur_pays(a, b, w)  # S by BLAS instead of pair by pair
    r, schur = passes.pass1(cached is None and not dense)
    if not np.isfinite(r).all():  # NaN/inf in X reach r through its group's mean
        return X, None
    if dense:
        schur = None
        if w is None and hasattr(kern, "schur_complement") and _complement_schur_pays(a, b):
            schur = kern.schur_complement(a.codes, a.n_levels, b.codes, b.n_levels)  # None: a repeated cell
        if schur is None:
            schur = (kern.schur_dense(_order_arg(a), a.group_starts, b.codes, b.n_levels,
                                      _EMPTY_F64 if w is None else w)
                     if hasattr(kern, "schur_dense") else _schur_dense(a, b, w))
    if cached is None:
        cached = fe.store_solver(key, w, _twoway_solver(schur, X.shape[0], a.n_levels))
    solve, balanced = cached
    gamma = solve(r)
    out = np.empty_like(X, order="F") if out is None else out
    passes.pass2(gamma, out)
    return out, "twoway-balanced" if balanced else "twoway-direct"


# Entries of one dense block of the A x B weight table in the BLAS Schur assembly (32 MB).
_DENSE_BLOCK = 1 << 22
# The BLAS rank-k update runs this many times as many multiply-adds per second as the scalar
# pair-by-pair assembly (measured: 0.7 ns per pair update against ~0.03 ns per FMA of dsyrk on
# two cores); the dense assembly is chosen when it does fewer than that many times the work.
_DENSE_SPEEDUP = 16.0


def _dense_schur_pays(a: Factor, b: Factor, w: np.ndarray | None) -> bool:
    """Whether S is cheaper as a dense BLAS product than pair by pair: the pair assembly costs
    sum_a k_a^2 / 2 updates (k_a <= rows of group a), the dense one n_A n_B^2 / 2 FMAs."""
    if b.n_levels <= 64 and w is None:
        return False  # panels of at most 64 periods: the level-set patterns make S O(n)
    pairs = float(np.dot(a.counts.astype(np.float64), a.counts.astype(np.float64)))
    return pairs * _DENSE_SPEEDUP >= float(a.n_levels) * float(b.n_levels) ** 2


def _complement_schur_pays(a: Factor, b: Factor) -> bool:
    """Whether the unweighted S is cheaper from the pairs of MISSING cells of each A level
    (sum_a (n_B - k_a)^2 / 2 scattered updates plus an n_B scan per level) than by the dense
    rank-k update (n_A n_B^2 / 2 FMAs, _DENSE_SPEEDUP times cheaper each): entities seen in
    nearly every period (a 10k x 1000 panel with 10% of the cells missing: 100x fewer updates)."""
    missing = float(b.n_levels) - a.counts.astype(np.float64)
    cost = 0.5 * float(missing @ missing) + 0.25 * float(a.n_levels) * float(b.n_levels)
    return cost * _DENSE_SPEEDUP < 0.5 * float(a.n_levels) * float(b.n_levels) ** 2


def _schur_dense(a: Factor, b: Factor, w: np.ndarray | None) -> np.ndarray:
    """S = D_B - C' D_A^{-1} C through dense blocks of the A x B weight table C and BLAS.

    The rows of each block of A levels are summed into a dense (levels x n_B) table by a
    bincount, scaled by W_a^{-1/2}, and G'G is one symmetric rank-k update (numpy's matmul of
    a matrix with its own transpose calls syrk). O(n) for the tables plus n_A n_B^2 / 2 FMAs:
    on panels with many periods (n_B in the hundreds, each entity in most of them) that is
    far cheaper than the k_a^2 / 2 scattered updates per entity of the pair assembly.
    """
    n_a, n_b = a.n_levels, b.n_levels
    W_a = a.counts.astype(np.float64) if w is None else np.bincount(a.codes, w, minlength=n_a)
    d_b = b.counts.astype(np.float64) if w is None else np.bincount(b.codes, w, minlength=n_b)
    scale = np.divide(1.0, np.sqrt(W_a), out=np.zeros(n_a), where=W_a > 0)
    S = np.diag(d_b)
    per_block = max(1, _DENSE_BLOCK // n_b)
    sorted_rows = a.is_sorted
    for lo in range(0, n_a, per_block):
        hi = min(n_a, lo + per_block)
        if sorted_rows:
            rows = slice(int(a.group_starts[lo]), int(a.group_starts[hi]))
            ac, bc, wc = a.codes[rows], b.codes[rows], None if w is None else w[rows]
        elif lo == 0 and hi == n_a:
            ac, bc, wc = a.codes, b.codes, w
        else:
            mask = (a.codes >= lo) & (a.codes < hi)
            ac, bc, wc = a.codes[mask], b.codes[mask], None if w is None else w[mask]
        table = np.bincount((ac - lo) * n_b + bc, wc, minlength=(hi - lo) * n_b).astype(np.float64, copy=False)
        table = table.reshape(hi - lo, n_b)
        table *= scale[lo:hi, None]
        S -= table.T @ table
    return S


def _schur_matvec(
    v: np.ndarray, a: Factor, b: Factor, w: np.ndarray | None, kern: ModuleType
) -> np.ndarray:
    """S v for S = D_B - C' D_A^{-1} C without forming S: S v = sum over each B level of
    w * (v_B - mean_A(v_B)), one one-way pass over the rows (the codes, not X)."""
    y = np.asfortranarray(v[b.codes])
    kern.oneway(y, y, _order_arg(a), a.group_starts, _EMPTY_F64 if w is None else w)
    if w is not None:
        y *= w[:, None]
    return np.column_stack([np.bincount(b.codes, y[:, j], minlength=b.n_levels) for j in range(y.shape[1])])


def _project_range(r: np.ndarray, a: Factor, b: Factor) -> np.ndarray:
    """Project r onto the range of S: remove its mean over the B levels of each connected set.

    S is singular with null space the indicators of the connected sets of the A-B graph, and
    r is orthogonal to them in exact arithmetic; in floating point it is not (a column of
    1e8 + noise leaves rounding of 1e8 eps per row in r), and conjugate gradients on the
    inconsistent system then stall far from the solution (relative residual 0.2 after 10,000
    steps). Removing the null-space part changes the exact r by nothing. O(n) once.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n_a, n_b = a.n_levels, b.n_levels
    adj = sp.csr_matrix((np.ones(a.codes.shape[0], dtype=np.int8), (a.codes, n_a + b.codes)),
                        shape=(n_a + n_b, n_a + n_b))
    n_comp, labels_all = connected_components(adj, directed=True, connection="weak")
    labels = labels_all[n_a:]
    size = np.bincount(labels, minlength=n_comp).astype(np.float64)
    size[size == 0] = 1.0
    means = np.column_stack([np.bincount(labels, r[:, j], minlength=n_comp) for j in range(r.shape[1])]) / size[:, None]
    return r - means[labels]


def _twoway_cg(
    X: np.ndarray, fe: FixedEffects, w: np.ndarray | None, kern: ModuleType, maxiter: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray | None, int, bool, float]:
    """Two-way transform when both dimensions are large: the Schur system S gamma = r is
    solved by conjugate gradients preconditioned with D_B (Jacobi on the B block), each
    product S v costing one pass over the ids; X itself is read only twice."""
    a, b = sorted(fe.factors, key=lambda f: f.n_levels, reverse=True)
    passes = _Passes(X, a, b, w, kern)
    r, _ = passes.pass1(False)
    if not np.isfinite(r).all():
        return None, 0, True, 0.0
    r = _project_range(r, a, b)
    d_b = np.bincount(b.codes, w, minlength=b.n_levels) if w is not None else b.counts.astype(np.float64)
    inv_d = np.divide(1.0, d_b, out=np.zeros_like(d_b), where=d_b > 0)[:, None]
    gamma = np.zeros_like(r)
    res = r.copy()
    z = inv_d * res
    direction = z.copy()
    rz = np.einsum("ij,ij->j", res, z)
    r_norm = np.sqrt(np.einsum("ij,ij->j", r, r))
    r_norm[r_norm == 0] = 1.0
    # CG reaches ~1e-13 relative residual; the output error is then far below 1e-12 of X.
    goal = 1e-13
    rel = float((np.sqrt(np.einsum("ij,ij->j", res, res)) / r_norm).max())
    it = 0
    while rel > goal and it < maxiter:
        it += 1
        s_dir = _schur_matvec(direction, a, b, w, kern)
        denom = np.einsum("ij,ij->j", direction, s_dir)
        step = np.divide(rz, denom, out=np.zeros_like(rz), where=denom > 0)
        gamma += step * direction
        res -= step * s_dir
        rel = float((np.sqrt(np.einsum("ij,ij->j", res, res)) / r_norm).max())
        z = inv_d * res
        rz_new = np.einsum("ij,ij->j", res, z)
        beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
        direction = z + beta * direction
        rz = rz_new
    out = np.empty_like(X, order="F") if out is None else out
    passes.pass2(np.asfortranarray(gamma), out)
    return out, it, rel <= goal, rel


def _oneway_pass(src: np.ndarray, dst: np.ndarray, f: Factor, w_arg: np.ndarray, kern: ModuleType) -> int:
    """One one-way projection; rows not sorted by ``f`` take a scatter/gather pass in input order
    where the backend has one (the permutation gather reads X at random: 42 ms against 7 ms per
    pass at 800k x 4 shuffled rows, 20k levels). Returns the count of non-finite means."""
    scatter = getattr(kern, "oneway_scatter", None)
    if scatter is not None and not f.is_sorted:
        return scatter(src, dst, f.codes, f.n_levels, w_arg)
    return kern.oneway(src, dst, _order_arg(f), f.group_starts, w_arg)


def _sweep(src: np.ndarray, dst: np.ndarray, fe: FixedEffects, w_arg: np.ndarray, kern: ModuleType) -> np.ndarray:
    for f in fe.factors:
        _oneway_pass(src, dst, f, w_arg, kern)
        src = dst
    return dst


def _alternating_projections(
    X: np.ndarray, fe: FixedEffects, w: np.ndarray | None, kern: ModuleType, tol: float, maxiter: int
) -> tuple[np.ndarray, int, bool, float]:
    """Irons-Tuck accelerated alternating projections (data space), safeguarded.

    Every iterate x differs from X by an element F of the span of the fixed effects, and the
    within transform x* is the point of that affine set with the least weighted norm; by
    orthogonality ||x||_W^2 = ||x*||_W^2 + ||x - x*||_W^2. So the weighted norm measures the
    error exactly: plain sweeps never increase it, and an Irons-Tuck extrapolation (which can
    overshoot when the sweep operator is far from symmetric) is kept, column by column, only if
    it lowers the norm below the plain iterate's. ``maxiter`` counts sweeps.
    """
    w_arg = _EMPTY_F64 if w is None else w
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0

    def wnorm(v: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->j", v, v) if w is None else np.einsum("i,ij,ij->j", w, v, v)

    x = np.array(X, order="F", copy=True)
    gx = _sweep(x, np.empty_like(x), fe, w_arg, kern)
    ggx = np.empty_like(x)
    sweeps, change = 1, np.inf
    while sweeps < maxiter:
        _sweep(gx, ggx, fe, w_arg, kern)
        sweeps += 1
        delta_g = ggx - gx
        change = float((np.abs(delta_g).max(axis=0) / scale).max())
        if change <= tol:
            return ggx, sweeps, True, change
        if sweeps >= maxiter:
            return ggx, sweeps, False, change
        delta2 = delta_g - gx + x
        ssq = np.einsum("ij,ij->j", delta2, delta2)
        vprod = np.einsum("ij,ij->j", delta_g, delta2)
        with np.errstate(over="ignore", invalid="ignore"):
            coef = np.divide(vprod, ssq, out=np.zeros_like(ssq), where=ssq > 0)
            x_ext = ggx - coef * delta_g
            accept = np.isfinite(coef) & (wnorm(x_ext) < wnorm(ggx))
        x = np.asfortranarray(np.where(accept, x_ext, ggx))
        _sweep(x, gx, fe, w_arg, kern)
        sweeps += 1
    return gx, sweeps, False, change


def within(
    X: Any,
    ids: Any,
    *,
    weights: Any = None,
    backend: Backend | None = None,
    tol: float = 1e-10,
    maxiter: int = 10_000,
    drop_missing: bool = False,
    return_info: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, WithinInfo]:
    """Within-transform X: remove its projection on one or more sets of fixed effects.

    Parameters
    ----------
    X : array-like, shape (n,) or (n, p)
        Numeric data; several columns are transformed at once. float32 and integer input is
        upcast to float64. X is never modified.
    ids : array-like or sequence of array-like or FixedEffects
        One id array (one-way), a sequence of id arrays / a 2-D array / a DataFrame
        (multi-way), or a prepared :class:`fastpanel.FixedEffects` (reused structure). The
        sequence may hold :class:`fastpanel.VaryingSlopes` (a slope per level, fixest ``g[x]``):
        ``[firm, VaryingSlopes(province, year)]``, computed exactly by :mod:`fastpanel.slopes`.
    weights : array-like, shape (n,), optional
        Non-negative observation weights (weighted least-squares projection).
    backend : {"auto", "cpp", "numba", "cuda"}, optional
        Kernel implementation; default: the process default (see :func:`fastpanel.set_backend`).
    tol : float, default 1e-10
        Convergence tolerance of the iterative (three-or-more-way) path: the largest change of
        any column between sweeps, relative to that column's largest absolute value.
    maxiter : int, default 10000
        Limit on the sweeps (one pass of every one-way projection) of the iterative path, or on
        the conjugate-gradient steps of the large two-way path; reaching it issues a
        :class:`ConvergenceWarning` that names the tolerance achieved. Ill-conditioned designs
        (fixed effects that barely connect) converge slowly: the change per sweep then
        understates the remaining error, so tighten ``tol`` when in doubt.
    drop_missing : bool, default False
        When True, rows with NaN/inf in X or weights, or a missing id, are excluded from the
        computation; their output rows are NaN and their count is ``info.n_dropped``. When
        False such rows raise ``ValueError``.
    return_info : bool, default False
        Also return a :class:`WithinInfo` describing the method, backend and iterations.
    out : ndarray, optional
        Fortran-ordered float64 array of X's 2-D shape to write the result into; it may be X
        itself, which then is overwritten (the only case in which fastpanel modifies its
        input). Saves one copy of X on large data.

    Returns
    -------
    ndarray
        The transformed data, with the shape of X (Fortran order when 2-D).
    WithinInfo
        Only with ``return_info=True``.

    Examples
    --------
    >>> import numpy as np, fastpanel
    >>> x = np.array([1.0, 3.0, 10.0, 14.0])
    >>> fastpanel.within(x, [0, 0, 1, 1])
    array([-1.,  1., -2.,  2.])
    """
    Xf, was_1d = as_float_matrix(X, "X")
    n = Xf.shape[0]
    if out is not None:
        if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.flags.f_contiguous
                and out.shape == Xf.shape and out.flags.writeable):
            raise ValueError(
                f"out must be a writeable Fortran-ordered float64 array of shape {Xf.shape}; "
                "allocate it with np.empty(shape, order='F')"
            )
    if isinstance(ids, (list, tuple)) and any(type(i).__name__ == "VaryingSlopes" for i in ids):
        return _within_slopes(Xf, was_1d, list(ids), weights, drop_missing, return_info, out)
    fe = ids if isinstance(ids, FixedEffects) else FixedEffects(ids)  # a prepared one keeps its caches
    if fe.n_obs != n:
        raise ValueError(f"ids have {fe.n_obs} rows but X has {n}; pass one id per row of X")
    w = as_weights(weights, n)
    if isinstance(tol, bool) or not (isinstance(tol, (int, float, np.integer, np.floating)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r} must be a positive number")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"maxiter={maxiter!r} must be a positive integer")
    name = resolve_backend(backend, "within")
    kern = kernel_module(name, "within")
    if Xf.shape[1] == 0:  # nothing to transform; every backend answers the same
        empty = out if out is not None else np.empty((n, 0), order="F")
        return _finish(empty, was_1d, return_info, WithinInfo("none", name, 0, 0, True, 0.0), maxiter, tol)

    bad_ids = fe.missing_rows if any(f.has_missing for f in fe.factors) else None
    bad_w = ~np.isfinite(w) if w is not None and not np.isfinite(w).all() else None
    keep = None
    if bad_ids is None and bad_w is None:
        # Optimistic path: the kernels report non-finite group totals, which replaces a
        # separate validation pass over X; the rows are located only when something is wrong.
        report: dict = {}
        result, method, iterations, converged, change = _transform(Xf, fe, w, kern, tol, maxiter, out, report)
        if method is not None:
            info = WithinInfo(method, name, 0, iterations, converged, change, report.get("n_identified"))
            return _finish(result, was_1d, return_info, info, maxiter, tol)
        if out is not None and np.shares_memory(out, Xf):
            raise ValueError("X has NaN/inf values and out is X: the input is already overwritten; "
                             "clean X first or do not transform in place")
    bad_x = nonfinite_rows(Xf)
    bad = bad_x.copy()
    for extra in (bad_ids, bad_w):
        if extra is not None:
            bad |= extra
    n_bad = int(bad.sum())
    if n_bad == 0:
        raise FloatingPointError(
            "within: X is finite but its group sums overflow to inf; rescale X (e.g. divide by a power of 10)"
        )
    if not drop_missing:
        parts = []
        if bad_x.any():
            parts.append(f"X: {int(bad_x.sum())} rows with NaN/inf (first at row {int(np.flatnonzero(bad_x)[0])})")
        if bad_ids is not None:
            parts.append(f"ids: {int(bad_ids.sum())} missing")
        if bad_w is not None:
            parts.append(f"weights: {int(bad_w.sum())} NaN/inf")
        raise ValueError(
            f"{n_bad} rows have missing values ({'; '.join(parts)}); pass drop_missing=True "
            "to exclude them (their output is NaN and they are counted in info.n_dropped)"
        )
    if n_bad == n:
        raise ValueError("every row has a missing value in X, ids or weights: nothing to transform")
    keep = ~bad
    report = {}
    part, method, iterations, converged, change = _transform(
        np.asfortranarray(Xf[keep]), fe.subset(keep), w[keep] if w is not None else None, kern, tol, maxiter,
        None, report,
    )
    assert method is not None, "rows with NaN/inf were removed"
    full = np.full((n, part.shape[1]), np.nan, order="F") if out is None else out
    full[~keep] = np.nan
    full[keep] = part
    info = WithinInfo(method, name, n_bad, iterations, converged, change, report.get("n_identified"))
    return _finish(full, was_1d, return_info, info, maxiter, tol)


def _within_slopes(
    Xf: np.ndarray, was_1d: bool, effects: list[Any], weights: Any, drop_missing: bool, return_info: bool,
    out: np.ndarray | None,
) -> np.ndarray | tuple[np.ndarray, WithinInfo]:
    """:func:`within` with varying slopes among the effects (:mod:`fastpanel.slopes`)."""
    from fastpanel.slopes import VaryingSlopes, slopes_within

    n = Xf.shape[0]
    effs = [e if isinstance(e, VaryingSlopes) else factorize(e, f"ids[{j}]") for j, e in enumerate(effects)]
    for e in effs:
        if e.n_obs != n:
            raise ValueError(f"ids have {e.n_obs} rows but X has {n}; pass one id per row of X")
    w = as_weights(weights, n)
    bad = nonfinite_rows(Xf) if Xf.shape[1] else np.zeros(n, dtype=bool)
    for e in effs:
        f = e.factor if isinstance(e, VaryingSlopes) else e
        bad |= f.codes < 0
        if isinstance(e, VaryingSlopes):
            bad |= ~np.isfinite(e.x).all(axis=1)
    if w is not None:
        bad |= ~np.isfinite(w)
    n_bad = int(bad.sum())
    if n_bad and not drop_missing:
        raise ValueError(f"{n_bad} rows have missing values in X, ids, slope variables or weights; pass "
                         "drop_missing=True to exclude them (their output is NaN and they are counted in info.n_dropped)")
    if n_bad == n:
        raise ValueError("every row has a missing value in X, ids, slope variables or weights: nothing to transform")
    keep = ~bad
    sub = [e.subset(keep) for e in effs] if n_bad else effs
    res, sinfo = slopes_within(np.asfortranarray(Xf[keep] if n_bad else Xf), sub, None if w is None else w[keep])
    full = out if out is not None else np.empty(Xf.shape, order="F")
    if n_bad:
        full[~keep] = np.nan
        full[keep] = res
    else:
        full[...] = res
    info = WithinInfo(sinfo.method, "numpy", n_bad, sinfo.refinements, True, sinfo.residual, sinfo.n_identified)
    result = full[:, 0] if was_1d else full
    return (result, info) if return_info else result


def _transform(
    X: np.ndarray, fe: FixedEffects, w: np.ndarray | None, kern: ModuleType, tol: float, maxiter: int,
    out: np.ndarray | None = None, report: dict | None = None,
) -> tuple[np.ndarray, str | None, int, bool, float]:
    """Run the method that fits the fixed-effect structure; method None means X was not finite.

    ``out`` (optional, may be X) receives the result; the exact methods write it directly.
    ``report`` (optional) receives ``n_identified`` when the method computes the rank.
    """
    w_arg = _EMPTY_F64 if w is None else w
    if fe.n_ways == 1:
        f = fe.factors[0]
        dst = np.empty_like(X, order="F") if out is None else out
        part = None
        if not f.is_sorted:  # sorted rows: the streaming kernel below is faster (no table)
            part = _codes_kernel(X, f, None, w, kern)
            if part is None and hasattr(kern, "WithinRows"):  # weighted: partitioned
                part = kern.WithinRows(X, f.codes, f.group_starts, _EMPTY_I64, 0, w_arg)
        if part is not None:
            part.pass2(np.empty((0, 0), order="F"), dst)
            bad = part.n_nonfinite
        else:
            bad = kern.oneway(X, dst, _order_arg(f), f.group_starts, w_arg)
        if bad:
            return dst, None, 0, True, 0.0
        return dst, "oneway", 0, True, 0.0
    if fe.n_ways == 2 and min(f.n_levels for f in fe.factors) <= DIRECT_MAX_LEVELS:
        res, method = _twoway_direct(X, fe, w, kern, out)
        return res, method, 0, True, 0.0
    if fe.n_ways == 2:
        res_cg, iterations, converged, change = _twoway_cg(X, fe, w, kern, maxiter, out)
        if res_cg is None:
            return X, None, 0, True, 0.0
        return res_cg, "twoway-cg", iterations, converged, change
    first = fe.factors[0]
    probe = np.empty_like(X, order="F")
    if _oneway_pass(X, probe, first, w_arg, kern):
        return probe, None, 0, True, 0.0
    del probe
    # Three or more dimensions: exact through the Schur complement of the smaller dimensions
    # (fastpanel.kway). A sampled count of the pattern of S (no A x B table needed) tells the
    # two regimes apart: a sparse S (weakly connected designs, where sweeps crawl and their
    # stopping rule understates the error) is factorised at once; a dense one (well connected
    # designs, which sweeps solve in a dozen) is built only when it is cheap next to a few
    # sweeps, else a bounded number of accelerated sweeps goes first and the exact solver
    # (conjugate gradients on S) takes over if they do not converge. Building the A x B table
    # first for the count cost the simple design 0.075 s of its 0.26 s at 1M rows.
    from fastpanel.kway import build_structure, kway_within, schur_is_sparse

    # The assembly is an irregular sparse build followed by a sparse LU on the host: the cuda
    # backend uses the Numba CPU kernel for it (its sweeps and passes stay on the device).
    kway_kern = kernel_module("cpp" if kern.__name__.endswith("_cpp") else "numba", "kway")
    exact_first = (_schur_cost(fe) <= max(SCHUR_CHEAP_FACTOR * X.shape[0] * max(X.shape[1], 1), SCHUR_ALWAYS)
                   or schur_is_sparse(fe.factors))
    if not exact_first:
        res, iterations, converged, change = _alternating_projections(X, fe, w, kern, tol, min(maxiter, AP_BUDGET))
        if converged:
            if out is not None:
                out[...] = res
                res = out
            return res, "alternating-projections", iterations, converged, change
        del res
    key = f"kway:{kway_kern.__name__}"
    structure = fe.cached_solver(key, w)  # factorised Schur complement: codes and weights only
    if structure is None:
        structure = fe.store_solver(key, w, build_structure(fe.factors, w, kway_kern))
    res, steps = kway_within(X, structure, w, out)
    if report is not None:
        report["n_identified"] = structure.n_identified
    return res, structure.method, steps, structure.last_residual <= 1e-9, structure.last_residual


# Sweeps of accelerated alternating projections tried before the exact k-way solver, and the
# cost below which the exact solver goes first (Schur entries per data entry).
AP_BUDGET = 40
SCHUR_CHEAP_FACTOR = 4.0
SCHUR_ALWAYS = 2e6  # below this many entries the exact solver costs milliseconds: always exact


def _schur_cost(fe: FixedEffects) -> float:
    """Entries updated when building the Schur complement: sum over the groups of the largest
    dimension of (distinct other levels)^2, bounded by min(m k_a, n_B)^2."""
    A = max(fe.factors, key=lambda f: f.n_levels)
    m = fe.n_ways - 1
    n_B = sum(f.n_levels for f in fe.factors) - A.n_levels
    per_group = np.minimum(m * A.counts.astype(np.float64), float(n_B))
    return float(np.dot(per_group, per_group))


def _finish(
    out: np.ndarray, was_1d: bool, return_info: bool, info: WithinInfo, maxiter: int, tol: float
) -> np.ndarray | tuple[np.ndarray, WithinInfo]:
    if not info.converged:
        warnings.warn(
            f"within: {info.method} stopped at maxiter={maxiter} with relative change "
            f"{info.max_change:.3g} > tol={tol:g}; increase maxiter or loosen tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    result = out[:, 0] if was_1d else out
    return (result, info) if return_info else result
