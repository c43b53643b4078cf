"""Estimated fixed effects, fitted values and predictions of a fixed-effects OLS fit.

Algorithm
---------
With ``r = y - X b`` the untransformed residual of the slopes on the estimation sample, the
fitted fixed-effect part is its projection ``p = r - within(r)`` on the dummies (one exact
within transform). The effects are recovered from ``p``, which lies exactly in their span:

* one way: ``alpha_g`` is the (constant) value of ``p`` on level g;
* two ways: ``p_i = a_{g(i)} + c_{h(i)}``. In each connected set of the bipartite level graph
  one level of the second dimension is the reference (its effect 0: the first level in sort
  order, as R fixest's ``fixef`` does); a breadth-first walk over the graph then gives every
  other effect by one subtraction along an edge (exact to rounding);
* three or more: least squares on the dummies with one reference per extra dimension and
  connected set, solved by LSQR to ``1e-14``; fixest warns that references may not make these
  effects unique, and so does this (``FixefEstimates.exact`` is False).

``fittedvalues = y - e`` and ``resid = e`` with ``e`` the transformed residuals (unweighted scale).
``predict(newdata)`` is ``X_new b`` plus each row's effects; a level not seen in the fit has no
effect and gives NaN (R fixest), unless ``fixef=False`` asks for ``X_new b`` only.

Cost: one within transform of one column, O(n) for the walk.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components, shortest_path

__all__ = ["FixefEstimates", "fixed_effect_estimates", "fitted_values", "residuals", "predict"]


@dataclass
class FixefEstimates(Mapping):
    """The estimated fixed effects: ``est["city"]`` is a Series indexed by the city labels.

    Attributes
    ----------
    references : dict of str -> list
        Levels whose effect was set to 0 to identify the others (one per connected set for the
        second and later dimensions; none for the first).
    n_components : int
        Connected sets of the fixed-effect graph (1 for one way).
    exact : bool
        True for one and two ways (recovered exactly); False for three or more (LSQR).
    """

    effects: dict[str, pd.Series]
    references: dict[str, list] = field(default_factory=dict)
    n_components: int = 1
    exact: bool = True

    def __getitem__(self, key: str) -> pd.Series:
        return self.effects[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.effects)

    def __len__(self) -> int:
        return len(self.effects)

    def to_frame(self) -> pd.DataFrame:
        """Long table: fixed effect, level, estimate, reference flag."""
        rows = []
        for name, s in self.effects.items():
            refs = set(self.references.get(name, []))
            rows += [(name, lvl, float(v), lvl in refs) for lvl, v in s.items()]
        return pd.DataFrame(rows, columns=["fixed_effect", "level", "estimate", "reference"])


def _raw(state: Any) -> tuple[np.ndarray, np.ndarray]:
    if state.raw_fn is None:
        raise ValueError("this fit keeps no way to rebuild its data (e.g. a fit summarised out of core); "
                         "fit in memory with feols or PanelOLS to get fixed effects and predictions")
    y, X = state.raw_fn()
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    if state.row_keep is not None:
        y, X = y[state.row_keep], X[state.row_keep]
    return y, X[:, state.kept_idx]


def _check(state: Any) -> None:
    if not state.fe_factors:
        raise ValueError("the model has no fixed effects; its intercept is in params")
    if getattr(state, "fe_slopes", None):
        raise ValueError("fixef() with varying slopes is not implemented; the slopes' coefficients are part of "
                         "the within transform")


def _projection(state: Any) -> np.ndarray:
    """``p = r - within(r)``: the fixed-effect part of the slopes' raw residual."""
    from fastpanel.fixed_effects import FixedEffects
    from fastpanel.within import within

    y, X = _raw(state)
    r = y - X @ state.params if state.k else y.copy()
    r0 = r - r[0]  # the effects absorb the shift; the transform then works on the spread
    e = within(r0, FixedEffects(state.fe_factors), weights=state.weights)
    return r - e


def fixed_effect_estimates(state: Any) -> FixefEstimates:
    """See the module docstring."""
    _check(state)
    p = _projection(state)
    factors = state.fe_factors
    names = state.fe_names
    if len(factors) == 1:
        f = factors[0]
        tot = np.bincount(f.codes, minlength=f.n_levels)
        alpha = np.bincount(f.codes, weights=p, minlength=f.n_levels) / tot
        return FixefEstimates({names[0]: pd.Series(alpha, index=f.levels, name=names[0])})
    if len(factors) == 2:
        return _two_way(p, factors, names)
    return _k_way(p, factors, names)


def _two_way(p: np.ndarray, factors: list, names: list[str]) -> FixefEstimates:
    a, b = factors
    nA, nB = a.n_levels, b.n_levels
    # one edge per (a, b) pair present, valued by the mean of p on its rows (equal up to rounding)
    key = a.codes.astype(np.int64) * nB + b.codes
    uniq, inv = np.unique(key, return_inverse=True)
    pv = np.bincount(inv, weights=p, minlength=uniq.size) / np.bincount(inv, minlength=uniq.size)
    ea, eb = uniq // nB, uniq % nB
    # bipartite graph: nodes 0..nA-1 (a levels), nA..nA+nB-1 (b levels); one extra node joined to
    # the reference of each connected set makes the walk a single breadth-first search
    g = sp.coo_matrix((np.ones(uniq.size), (ea, nA + eb)), shape=(nA + nB,) * 2).tocsr()
    n_comp, comp = connected_components(g + g.T, directed=False)
    bcomp = comp[nA:]
    first_b = np.full(n_comp, -1)
    order_b = np.arange(nB)[::-1]
    first_b[bcomp[order_b]] = order_b  # the first b level (in sort order) of each set
    roots = nA + first_b
    top = nA + nB
    rows = np.concatenate([ea, nA + eb, np.full(n_comp, top)])
    cols = np.concatenate([nA + eb, ea, roots])
    graph = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(top + 1,) * 2).tocsr()
    order, pred = breadth_first_order(graph, top, directed=False, return_predecessors=True)
    depth = shortest_path(graph, indices=top, unweighted=True, directed=False).astype(np.int64)
    val = np.zeros(top + 1)
    for d in range(2, int(depth.max()) + 1):  # depth 1: the references (effect 0)
        nodes = order[depth[order] == d]
        par = pred[nodes]
        is_a = nodes < nA
        ai = np.where(is_a, nodes, par)
        bi = np.where(is_a, par, nodes) - nA
        e = np.searchsorted(uniq, ai.astype(np.int64) * nB + bi)
        val[nodes] = pv[e] - val[par]  # a = p - c, or c = p - a
    refs = list(b.levels[first_b])
    eff = {names[0]: pd.Series(val[:nA], index=a.levels, name=names[0]),
           names[1]: pd.Series(val[nA:top], index=b.levels, name=names[1])}
    return FixefEstimates(eff, {names[0]: [], names[1]: refs}, int(n_comp), True)


def _k_way(p: np.ndarray, factors: list, names: list[str]) -> FixefEstimates:
    import scipy.sparse.linalg as spla

    n = p.size
    offs = np.cumsum([0] + [f.n_levels for f in factors])
    rows = np.concatenate([np.arange(n)] * len(factors))
    cols = np.concatenate([f.codes + o for f, o in zip(factors, offs[:-1])])
    D = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, offs[-1]))
    G = (D.T @ D).tocsr()
    n_comp, comp = connected_components(G, directed=False)
    drop, refs = [], {nm: [] for nm in names}
    for k, (f, o) in enumerate(zip(factors[1:], offs[1:-1]), start=1):
        for c in range(n_comp):
            lv = np.flatnonzero(comp[o:o + f.n_levels] == c)
            if lv.size:
                drop.append(o + int(lv[0]))
                refs[names[k]].append(f.levels[lv[0]])
    keep = np.setdiff1d(np.arange(offs[-1]), drop)
    sol = spla.lsqr(D[:, keep], p, atol=1e-14, btol=1e-14, iter_lim=20 * offs[-1])[0]
    val = np.zeros(offs[-1])
    val[keep] = sol
    err = np.abs(D @ val - p).max() / max(np.abs(p).max(), np.finfo(float).tiny)
    warnings.warn(
        f"with {len(factors)} fixed effects, one reference per extra dimension and connected set may not make the "
        f"effects unique (R fixest warns the same); they reproduce the fitted effects to {err:.1e} relative",
        UserWarning,
        stacklevel=3,
    )
    eff = {nm: pd.Series(val[o:o + f.n_levels], index=f.levels, name=nm) for nm, f, o in zip(names, factors, offs[:-1])}
    return FixefEstimates(eff, refs, int(n_comp), False)


def residuals(state: Any) -> np.ndarray:
    """Residuals on the estimation sample (``e`` of the transformed fit, on the data's scale)."""
    u = state.resid()
    return u / np.sqrt(state.weights) if state.weights is not None else u.copy()


def fitted_values(state: Any) -> np.ndarray:
    """``y - resid`` on the estimation sample: slopes plus fixed effects."""
    y, _ = _raw(state)
    return y - residuals(state)


def predict(state: Any, est: FixefEstimates | None, newdata: Any, fixef: bool) -> np.ndarray:
    """``X_new b`` plus each row's fixed effects (NaN for a level not seen in the fit)."""
    if getattr(state, "design_fn", None) is None:
        raise ValueError("predict(newdata) needs a fit from a formula (feols): PanelOLS fits do not know how to "
                         "build X from a frame; compute X_new @ params yourself")
    new = newdata if isinstance(newdata, pd.DataFrame) else pd.DataFrame(newdata)
    X = np.asarray(state.design_fn(new), dtype=np.float64)
    out = X[:, state.kept_idx] @ state.params if state.k else np.zeros(len(new))
    if not fixef or not state.fe_factors:
        return out
    for name in state.fe_names:
        if name not in new.columns:
            raise ValueError(f"newdata has no column {name!r} (a fixed effect of the fit); pass it, or "
                             "predict(newdata, fixef=False) for the slopes' part only")
        s = est[name]
        out = out + s.reindex(new[name].to_numpy()).to_numpy(dtype=np.float64)  # unseen level: NaN
    return out
