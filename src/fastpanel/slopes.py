"""Exact within transformation with varying slopes (fixest's ``fe[x]`` and ``fe[[x]]``).

Algorithm
---------
Each effect is a *term*: a grouping ``g`` and per-row columns ``V`` (``n x m``): ``[1]`` for a
plain fixed effect, ``[x]`` for slopes only (``fe[[x]]``), ``[1, x]`` for ``fe[x]``. Term ``t``
contributes the dummy-times-column regressors ``V[i, j] 1{g(i) = level}``, ``L_t m_t`` of them.
Terms on the same grouping are merged, and with an intercept their slope columns are centred
within each level first (same span; ``x = year`` or ``1e8 + noise`` keeps its digits).

The transform of a column ``x`` is the residual of the weighted least-squares fit of ``x`` on all
those regressors. The term with the most columns is ``A``: its regressors are block diagonal
(one ``m_A x m_A`` Gram block ``G_a`` per level), so the projection on A alone is closed form,
``P_A x = V_i G_a^+ V_a' W x_a`` within each level (a pseudo-inverse: a level where ``x`` is
constant has rank 1). The other terms are stacked into the sparse ``D_B`` (``n x n_B``) and
eliminated through the Schur complement

    S b = D_B' W (x - P_A x),    S = D_B' W D_B - M' G^+ M,    M = D_A' W D_B,

then ``e = (I - P_A)(x - D_B b)``. ``S`` is solved by a symmetric eigendecomposition
(pseudo-inverse; its null directions are the regressors that are not identified, e.g. one
constant per connected set) when ``n_B <= DENSE_MAX``, else by Jacobi-preconditioned conjugate
gradients. Iterative refinement on the normal equations ``D_B' W e = 0`` follows until their
relative residual is at rounding level. With a single term no Schur system is needed.

The rank of the whole design (``n_identified``: its degrees of freedom) is ``sum_a rank(G_a) +
rank(S)``, exact on the dense path.

Cost: O(n (m_A^2 + sum_t m_t) p) for the passes, O(nnz(M) * average B entries per A level) for
``S``, O(n_B^3) for its eigendecomposition.

Naming: ``n`` rows, ``p`` columns of ``x``; ``L`` levels, ``m`` columns per level of a term.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fastpanel.factor import Factor, factorize

__all__ = ["VaryingSlopes", "slopes_within", "SlopeInfo", "DENSE_MAX"]

DENSE_MAX = 5000  # largest Schur system solved by eigendecomposition
_REFINE_RTOL = 1e-15


class VaryingSlopes:
    """A varying-slopes effect: one slope on ``x`` per level of ``ids`` (fixest ``ids[x]``).

    Parameters
    ----------
    ids : array-like, shape (n,), or Factor
        The grouping.
    x : array-like, shape (n,) or (n, s)
        The variable(s) whose slope varies by level.
    intercept : bool, default True
        ``True``: the level's own intercept too (fixest ``ids[x]``); ``False``: slopes only
        (``ids[[x]]``).
    name : str, optional
        Used in messages and tables, e.g. ``"province[year]"``.

    Examples
    --------
    >>> fastpanel.within(X, [city, fastpanel.VaryingSlopes(province, year)])
    """

    def __init__(self, ids: Any, x: Any, *, intercept: bool = True, name: str | None = None) -> None:
        self.factor = ids if isinstance(ids, Factor) else factorize(ids, "ids of VaryingSlopes")
        xv = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x)
        if xv.ndim == 1:
            xv = xv[:, None]
        if xv.ndim != 2 or xv.shape[0] != self.factor.n_obs:
            raise ValueError(
                f"VaryingSlopes: x must have one value per row of ids ({self.factor.n_obs}), got shape {xv.shape}"
            )
        if not (np.issubdtype(xv.dtype, np.number) or xv.dtype == np.bool_):
            raise TypeError(f"VaryingSlopes: x must be numeric, got dtype {xv.dtype}")
        if xv.shape[1] == 0:
            raise ValueError("VaryingSlopes: x has no column; pass at least one slope variable")
        self.x = np.asarray(xv, dtype=np.float64)
        self.intercept = bool(intercept)
        self.name = name or f"{self.factor.name}[{'' if intercept else '['}x{'' if intercept else ']'}]"

    @property
    def n_obs(self) -> int:
        return self.factor.n_obs

    @property
    def n_slopes(self) -> int:
        return self.x.shape[1]

    def subset(self, keep: np.ndarray) -> "VaryingSlopes":
        return VaryingSlopes(self.factor.subset(keep), self.x[keep], intercept=self.intercept, name=self.name)

    def __repr__(self) -> str:
        return f"VaryingSlopes({self.name}, {self.factor.n_levels} levels, {self.n_slopes} slope(s))"


@dataclass
class SlopeInfo:
    """What :func:`slopes_within` did: the method, the design's rank, the refinement residual."""

    method: str
    n_identified: int
    rank_exact: bool
    residual: float
    refinements: int


@dataclass
class _Term:
    factor: Factor
    V: np.ndarray  # (n, m)
    name: str

    @property
    def m(self) -> int:
        return self.V.shape[1]

    @property
    def size(self) -> int:
        return self.factor.n_levels * self.m


def _level_sums(codes: np.ndarray, n_levels: int, values: np.ndarray) -> np.ndarray:
    """(L, q) sums of the columns of ``values`` (n, q) within each level."""
    out = np.empty((n_levels, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(codes, weights=values[:, j], minlength=n_levels)
    return out


def build_terms(effects: Sequence[Any], w: np.ndarray | None) -> list[_Term]:
    """Plain factors and :class:`VaryingSlopes` into merged terms (see the module docstring)."""
    groups: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for eff in effects:
        if isinstance(eff, VaryingSlopes):
            f, cols, intercept, name = eff.factor, eff.x, eff.intercept, eff.name
        else:
            f = eff if isinstance(eff, Factor) else factorize(eff, "ids")
            cols, intercept, name = None, True, f.name
        key = next((k for k in order if groups[k]["factor"] is f or np.array_equal(groups[k]["factor"].codes, f.codes)),
                   None)
        if key is None:
            key = len(order)
            order.append(key)
            groups[key] = {"factor": f, "intercept": False, "cols": [], "names": []}
        g = groups[key]
        g["intercept"] |= intercept
        if cols is not None:
            g["cols"].append(cols)
        g["names"].append(name)
    terms = []
    for k in order:
        g = groups[k]
        f = g["factor"]
        n = f.n_obs
        parts = [np.ones((n, 1))] if g["intercept"] else []
        if g["cols"]:
            X = np.column_stack(g["cols"])
            if g["intercept"]:
                # centre within each level: the span of [1, x] is unchanged, the conditioning is not
                wn = np.ones(n) if w is None else w
                tot = np.bincount(f.codes, weights=wn, minlength=f.n_levels)
                means = _level_sums(f.codes, f.n_levels, X * wn[:, None]) / np.maximum(tot, np.finfo(float).tiny)[:, None]
                X = X - means[f.codes]
            parts.append(X)
        terms.append(_Term(f, np.hstack(parts), " + ".join(dict.fromkeys(g["names"]))))
    return terms


def _block_pinv(G: np.ndarray) -> tuple[np.ndarray, int]:
    """Pseudo-inverses of the (L, m, m) PSD blocks and the sum of their ranks."""
    lam, Q = np.linalg.eigh(G)
    top = np.maximum(lam[:, -1:], np.finfo(float).tiny)
    ok = lam > 1e-12 * top
    inv = np.where(ok, 1.0 / np.where(ok, lam, 1.0), 0.0)
    return np.einsum("lij,lj,lkj->lik", Q, inv, Q), int(ok.sum())


class _AProjector:
    """``P_A``: the closed-form projection on the block-diagonal term A."""

    def __init__(self, term: _Term, w: np.ndarray | None) -> None:
        self.t = term
        self.w = w
        f, V = term.factor, term.V
        m = V.shape[1]
        Vw = V if w is None else V * w[:, None]
        G = np.empty((f.n_levels, m, m))
        for j in range(m):
            for k in range(j, m):
                G[:, j, k] = G[:, k, j] = np.bincount(f.codes, weights=Vw[:, j] * V[:, k], minlength=f.n_levels)
        self.Ginv, self.rank = _block_pinv(G)
        self.Vw = Vw

    def coef(self, X: np.ndarray) -> np.ndarray:
        """(L, m, p) level coefficients of the projection of X (n, p)."""
        f, m = self.t.factor, self.t.m
        p = X.shape[1]
        t = np.empty((f.n_levels, m, p))
        for j in range(m):
            t[:, j, :] = _level_sums(f.codes, f.n_levels, X * self.Vw[:, j:j + 1])
        return np.einsum("lij,ljp->lip", self.Ginv, t)

    def residual(self, X: np.ndarray) -> np.ndarray:
        c = self.coef(X)
        return X - np.einsum("ij,ijp->ip", self.t.V, c[self.t.factor.codes])


def _design(terms: list[_Term]) -> tuple[sp.csr_matrix, list[int]]:
    """Sparse dummy-times-column matrix of the terms (n x sum L_t m_t) and the offsets."""
    n = terms[0].factor.n_obs
    rows, cols, vals, offs = [], [], [], []
    off = 0
    for t in terms:
        offs.append(off)
        for j in range(t.m):
            rows.append(np.arange(n))
            cols.append(off + t.factor.codes * t.m + j)
            vals.append(t.V[:, j])
        off += t.size
    D = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, off))
    return D, offs


def slopes_within(
    X: np.ndarray, effects: Sequence[Any], weights: np.ndarray | None = None, *, out: np.ndarray | None = None,
) -> tuple[np.ndarray, SlopeInfo]:
    """Residual of X on the fixed effects and varying slopes ``effects`` (exact; see the module).

    Parameters
    ----------
    X : ndarray, shape (n, p)
        float64 data, no NaN (the caller cleans the sample).
    effects : sequence of Factor / id arrays / VaryingSlopes
    weights : ndarray, shape (n,), optional
        Positive weights.
    out : ndarray, optional
        Fortran float64 array of X's shape to write into (may be X).

    Returns
    -------
    (ndarray, SlopeInfo)
    """
    X = np.asarray(X, dtype=np.float64)
    one_d = X.ndim == 1
    Xm = X[:, None] if one_d else X
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    terms = build_terms(effects, w)
    ia = max(range(len(terms)), key=lambda j: (terms[j].factor.n_levels, terms[j].m))
    A = _AProjector(terms[ia], w)
    others = [t for j, t in enumerate(terms) if j != ia]
    res = A.residual(Xm)
    method, rank, exact, refinements = "slopes-closed-form", A.rank, True, 0
    DA, _ = _design([terms[ia]])
    DB = _design(others)[0] if others else None
    scale = _scale(Xm, [DA] + ([DB] if others else []), w)
    if others:
        DBw = DB if w is None else sp.diags(w) @ DB
        M = (DA.T @ DBw).tocsr()  # (L_A m_A) x n_B
        LA, mA = terms[ia].factor.n_levels, terms[ia].m
        # block-diagonal G^+ as one sparse matrix (entry (l m + i, l m + j) = Ginv[l, i, j])
        base = (np.arange(LA) * mA)[:, None, None]
        ii = np.broadcast_to(base + np.arange(mA)[None, :, None], (LA, mA, mA))
        jj = np.broadcast_to(base + np.arange(mA)[None, None, :], (LA, mA, mA))
        blocks = sp.csr_matrix((A.Ginv.ravel(), (ii.ravel(), jj.ravel())), shape=(LA * mA, LA * mA))
        S = (DB.T @ DBw - M.T @ (blocks @ M)).tocsc()
        S = 0.5 * (S + S.T)
        nB = S.shape[0]
        if nB <= DENSE_MAX:
            lam, Q = np.linalg.eigh(S.toarray())
            top = max(float(lam[-1]), np.finfo(float).tiny)
            ok = lam > 1e-11 * top
            inv = np.where(ok, 1.0 / np.where(ok, lam, 1.0), 0.0)
            def solve(r: np.ndarray) -> np.ndarray:
                return Q @ (inv[:, None] * (Q.T @ r))
            rank += int(ok.sum())
            method = "slopes-schur-dense"
        else:
            d = np.asarray(S.diagonal()).copy()
            d[d <= 0] = 1.0
            Minv = spla.LinearOperator(S.shape, matvec=lambda v: v / d)
            def solve(r: np.ndarray) -> np.ndarray:
                outb = np.empty_like(r)
                for j in range(r.shape[1]):
                    outb[:, j], _ = spla.cg(S, r[:, j], rtol=1e-14, atol=0.0, maxiter=20 * nB, M=Minv)
                return outb
            rank += nB  # an upper bound: the null directions are not counted on this path
            exact = False
            method = "slopes-schur-cg"
        # Solve, then refine on the normal equations D_B' W e = 0 until their relative residual is
        # at rounding level or stops falling (the stopping rule is the exact equations' residual).
        e, prev = res, np.inf
        for _ in range(8):
            r = DBw.T @ e
            rel = _rel(r, scale)
            if rel <= _REFINE_RTOL or rel > 0.5 * prev:
                break
            e = A.residual(e - DB @ solve(r))
            prev = rel
            refinements += 1
        res = e
    else:
        # one refinement pass of the closed form (only rounding remains after it)
        res = A.residual(res)
    resid = _rel(_normal_residual(res, [DA] + ([DB] if others else []), w), scale)
    if resid > 1e-9:
        from fastpanel.within import ConvergenceWarning

        warnings.warn(
            f"varying slopes: the normal equations are solved to a relative residual of {resid:.1e} only "
            f"({method}); the transform is not exact to rounding",
            ConvergenceWarning,
            stacklevel=2,
        )
    info = SlopeInfo(method, rank, exact, resid, refinements)
    if out is not None:
        (out[:, None] if one_d else out)[...] = res
        return out, info
    return (res[:, 0] if one_d else np.asfortranarray(res)), info


def _normal_residual(E: np.ndarray, designs: list[sp.csr_matrix], w: np.ndarray | None) -> np.ndarray:
    """``D' W E`` over every term's columns (stacked)."""
    Ew = E if w is None else E * w[:, None]
    return np.vstack([D.T @ Ew for D in designs])


def _scale(X: np.ndarray, designs: list[sp.csr_matrix], w: np.ndarray | None) -> np.ndarray:
    """``||D' W |x_j| ||`` per column: the size the normal equations would have without cancellation."""
    Xa = np.abs(X) if w is None else np.abs(X) * w[:, None]
    return np.sqrt(sum(((abs(D).T @ Xa) ** 2).sum(axis=0) for D in designs))


def _rel(r: np.ndarray, scale: np.ndarray) -> float:
    num = np.sqrt((np.asarray(r) ** 2).sum(axis=0))
    return float(np.max(num / np.maximum(scale, np.finfo(float).tiny))) if num.size else 0.0
