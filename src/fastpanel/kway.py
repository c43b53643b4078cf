"""Exact within transformation for three or more fixed-effect dimensions (Schur complement).

Algorithm
---------
The within transform of a column ``x`` is the residual of the weighted least-squares fit of
``x`` on the dummies of every dimension, ``x = D_A a + D_B b + e``. ``A`` is the dimension with
the most levels; ``B = (B_1, ..., B_m)`` are the others, their levels stacked into one index
space of size ``n_B``. Eliminating ``a`` in closed form (group means) leaves the ``n_B x n_B``
Schur system

    S b = r,    S = D_B' W D_B - M' W_A^{-1} M,    r = D_B' W (x - xbar_A),

with ``M = D_A' W D_B`` (the A x B table of weights) and ``W_A`` the weight of each A group.
``S`` is built once as a sparse matrix (one pass over the rows and one sparse product whose
cost is ``sum_a k_a^2`` for A groups of ``k_a`` rows); it is small next to the data. Then
``e = x - D_B b - alpha_A`` with ``alpha_a`` the A-group mean of ``x - D_B b``.

``S`` is singular: in each connected set of the fixed-effect graph (mobility group) one
constant per B dimension moves into the A effects. Those directions are pinned (one level of
each B dimension per connected set is set to zero), which leaves the output unchanged and the
reduced system nonsingular for the designs met in practice; the rank is checked. The reduced
system is solved by a sparse LU factorisation (exact, few fill-ins on weakly connected,
band-like designs where iterative methods crawl) or, when ``S`` is dense-ish (well connected
designs, where it converges in a few dozen steps), by Jacobi-preconditioned conjugate
gradients. Either way the answer is polished by iterative refinement on the normal equations
until their relative residual is at rounding level (1e-13) or stops falling; it is reported
(``WithinInfo.max_change``) and a ``ConvergenceWarning`` is raised above 1e-9. The stopping
rule is the residual of the exact equations, never the change per sweep.

Cost: O(n m) for the passes over the data, O(sum_a (m k_a)^2) for ``S``, plus the solve on
``n_B`` unknowns. Rows in any order cost the same (every pass is a gather or a bincount).

Naming: ``n`` rows, ``p`` columns; ``A`` the eliminated dimension, ``B`` the stacked others;
arrays ending ``_B`` have one entry per stacked B level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

from fastpanel.factor import Factor

__all__ = ["KwayStructure", "kway_within"]

# Sparse LU when S has at most this many nonzeros per row on average; CG otherwise.
_LU_MAX_DENSITY = 64
_REFINE_RTOL = 1e-13


@dataclass
class KwayStructure:
    """Everything about the fixed effects that does not depend on X (computed once)."""

    A: Factor
    B_codes: np.ndarray  # (n, m) stacked B level of each row and dimension
    n_B: int
    W_A: np.ndarray  # (n_A,) weight of each A group
    S: sp.csr_matrix  # (n_B, n_B) Schur complement
    free: np.ndarray  # stacked B levels kept as unknowns (the pinned ones removed)
    n_components: int  # connected sets of the fixed-effect graph
    n_identified: int  # identified effects (rank of the dummy matrix)
    solver: object  # callable: reduced right-hand sides -> solution
    method: str
    last_residual: float = 0.0  # relative residual of the normal equations after the last solve


_RIDGE = 1e-12  # relative shift of the factorised matrix (see build_structure)


def _stack_B(factors: list[Factor]) -> tuple[np.ndarray, int]:
    offsets = np.cumsum([0] + [f.n_levels for f in factors])
    codes = np.empty((factors[0].n_obs, len(factors)), dtype=np.int64)
    for j, f in enumerate(factors):
        codes[:, j] = f.codes + offsets[j]
    return codes, int(offsets[-1])


def build_structure(factors: list[Factor], w: np.ndarray | None) -> KwayStructure:
    """Schur complement, connected sets and factorisation for the given fixed effects."""
    order = np.argsort([-f.n_levels for f in factors], kind="stable")
    A = factors[order[0]]
    Bf = [factors[i] for i in order[1:]]
    B_codes, n_B = _stack_B(Bf)
    n, m = B_codes.shape
    wv = np.ones(n) if w is None else w
    W_A = np.bincount(A.codes, weights=wv, minlength=A.n_levels)
    rows = np.repeat(np.arange(n), m)
    cols = B_codes.ravel()
    DB = sp.csr_matrix((np.repeat(wv, m), (rows, cols)), shape=(n, n_B))  # W D_B
    DBu = sp.csr_matrix((np.ones(n * m), (rows, cols)), shape=(n, n_B))
    M = sp.csr_matrix((np.repeat(wv, m), (np.repeat(A.codes, m), cols)), shape=(A.n_levels, n_B))
    inv_WA = np.where(W_A > 0, 1.0 / np.where(W_A > 0, W_A, 1.0), 0.0)
    S = (DBu.T @ DB - M.T @ sp.diags(inv_WA) @ M).tocsr()
    S = 0.5 * (S + S.T)
    S.sum_duplicates()
    # Connected sets of the fixed-effect graph: A groups join the B levels of their rows.
    graph = (M.T @ M).tocsr() + sp.identity(n_B, format="csr")
    n_comp, labels = connected_components(graph, directed=False)
    # Pin one level of each B dimension in each connected set (the first one met).
    dim_of = np.repeat(np.arange(m), [f.n_levels for f in Bf])
    key = labels * m + dim_of
    _, first = np.unique(key, return_index=True)
    free = np.setdiff1d(np.arange(n_B), first)
    Sr = S[free][:, free].tocsc()
    n_identified = A.n_levels + free.size
    density = Sr.nnz / max(free.size, 1)
    if free.size == 0:
        def solver(R):  # noqa: E306 - every B level pinned: nothing to solve
            return np.zeros((0, R.shape[1]))
        method = "kway-direct"
    elif density <= _LU_MAX_DENSITY:
        # LU of S + eps I: exact after refinement (kway_within) even when S is singular beyond
        # the connected sets (two dimensions that are functions of each other's parity, nested
        # dimensions): the right-hand side lies in the range of S, where each refinement step
        # shrinks the error by eps / (lambda + eps); directions in the null space of S do not
        # change the output.
        mean_diag = float(np.mean(Sr.diagonal()))
        eps = _RIDGE * mean_diag if mean_diag > 0 else 1.0  # S = 0: every B effect absorbed
        lu = spla.splu((Sr + eps * sp.identity(Sr.shape[0], format="csc")).tocsc(), permc_spec="MMD_AT_PLUS_A",
                       diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        solver = lu.solve
        method = "kway-direct"
    else:
        diag = Sr.diagonal()
        pre = spla.LinearOperator(Sr.shape, matvec=lambda v: v / diag, dtype=np.float64)

        def solver(R):
            out = np.empty_like(R)
            for j in range(R.shape[1]):
                out[:, j], _ = spla.cg(Sr, R[:, j], rtol=1e-14, atol=0.0, maxiter=max(1000, 2 * Sr.shape[0]), M=pre)
            return out
        method = "kway-cg"
    return KwayStructure(A=A, B_codes=B_codes, n_B=n_B, W_A=W_A, S=Sr.tocsr(), free=free, n_components=int(n_comp),
                         n_identified=int(n_identified), solver=solver, method=method)


def kway_within(X: np.ndarray, st: KwayStructure, w: np.ndarray | None, out: np.ndarray | None = None,
                max_refine: int = 20) -> tuple[np.ndarray, int]:
    """Exact within transform of the columns of ``X`` (n, p). Returns (result, refinement steps)."""
    n, p = X.shape
    m = st.B_codes.shape[1]
    a = st.A.codes
    wv = np.ones(n) if w is None else w
    inv_WA = np.where(st.W_A > 0, 1.0 / np.where(st.W_A > 0, st.W_A, 1.0), 0.0)
    res = np.empty((n, p), order="F") if out is None else out
    R = np.empty((st.free.size, p))
    for j in range(p):
        x = X[:, j]
        xa = np.bincount(a, weights=wv * x, minlength=st.A.n_levels) * inv_WA
        e = wv * (x - xa[a])
        r = np.zeros(st.n_B)
        for d in range(m):
            r += np.bincount(st.B_codes[:, d], weights=e, minlength=st.n_B)
        R[:, j] = r[st.free]
    Rn = np.linalg.norm(R, axis=0)
    b = st.solver(R)
    steps = 0
    # Iterative refinement on the normal equations until the relative residual is at rounding
    # level (1e-13), or stops falling (rounding of S b bounds it when S is singular).
    prev = np.inf
    for steps in range(1, max_refine + 1):
        resid = R - st.S @ b
        rel = float((np.linalg.norm(resid, axis=0) / np.maximum(Rn, np.finfo(float).tiny)).max())
        if rel <= _REFINE_RTOL or rel > 0.1 * prev:
            break
        prev = rel
        b = b + st.solver(resid)
    st.last_residual = min(rel, prev)
    full = np.zeros((st.n_B, p))
    full[st.free] = b
    for j in range(p):
        x = X[:, j]
        fit_B = full[st.B_codes[:, 0], j].copy()
        for d in range(1, m):
            fit_B += full[st.B_codes[:, d], j]
        u = x - fit_B
        alpha = np.bincount(a, weights=wv * u, minlength=st.A.n_levels) * inv_WA
        res[:, j] = u - alpha[a]
    return res, steps
