"""Naive per-grid-point threshold regression: the test oracle and the benchmark peer.

Algorithm: for every candidate ``g`` rebuild the regressors ``[B, Z*1(regimes of the fixed
thresholds), Z*1(q in lower regime of g)]``, apply the transform ``A`` and solve least squares
from scratch: O(G n k^2) per curve. This is what the tools the issue cites (xthreg, pdR, Hansen's
GAUSS code) do; fastpanel's sweep must give the same S(g) to rounding error.

Naming: ``apply`` is a callable computing ``A M`` for an (n, p) array; ``strict`` selects the
lower regime ``q < g`` (Hansen's code) instead of ``q <= g``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["ssr_curve_naive", "sequence_naive"]


def _indicator(q: np.ndarray, g: float, strict: bool) -> np.ndarray:
    return (q < g) if strict else (q <= g)


def ssr_curve_naive(apply: Callable[[np.ndarray], np.ndarray], yt: np.ndarray, B: np.ndarray,
                    Z: np.ndarray, q: np.ndarray, candidates: np.ndarray,
                    fixed: Sequence[float] = (), *, strict: bool = False) -> np.ndarray:
    """S(g) for every candidate by one least-squares fit per candidate.

    Parameters
    ----------
    apply : callable, the transform A.
    yt : (n_out,) transformed dependent variable ``A y``.
    B : (n, k) base regressors (untransformed), Z : (n, pz), q : (n,).
    candidates : (G,) thresholds; fixed : thresholds held fixed.
    strict : lower regime ``q < g``.

    Returns
    -------
    (G,) residual sums of squares.
    """
    Z = Z.reshape(Z.shape[0], -1)
    base = [B] + [Z * _indicator(q, f, strict)[:, None] for f in fixed]
    out = np.empty(len(candidates))
    for i, g in enumerate(candidates):
        R = apply(np.column_stack(base + [Z * _indicator(q, g, strict)[:, None]]))
        coef, *_ = np.linalg.lstsq(R, yt, rcond=None)
        e = yt - R @ coef
        out[i] = e @ e
    return out


def sequence_naive(apply: Callable[[np.ndarray], np.ndarray], yt: np.ndarray, B: np.ndarray,
                   Z: np.ndarray, q: np.ndarray, candidates: np.ndarray, n_thresholds: int,
                   windows: Sequence[int], *, strict: bool = False) -> dict[str, tuple[int, float]]:
    """Hansen's sequential estimation with per-point regressions (stage -> (index, SSR))."""
    G = len(candidates)
    idx = np.arange(G)
    out: dict[str, tuple[int, float]] = {}
    S1 = ssr_curve_naive(apply, yt, B, Z, q, candidates, strict=strict)
    i1 = int(np.argmin(S1))
    out["1"] = (i1, float(S1[i1]))
    if n_thresholds >= 2:
        S2 = ssr_curve_naive(apply, yt, B, Z, q, candidates, [candidates[i1]], strict=strict)
        S2[np.abs(idx - i1) <= windows[1]] = np.inf
        i2 = int(np.argmin(S2))
        out["2"] = (i2, float(S2[i2]))
        S1r = ssr_curve_naive(apply, yt, B, Z, q, candidates, [candidates[i2]], strict=strict)
        S1r[np.abs(idx - i2) <= windows[1]] = np.inf
        i1r = int(np.argmin(S1r))
        out["1r"] = (i1r, float(S1r[i1r]))
    if n_thresholds >= 3:
        S3 = ssr_curve_naive(apply, yt, B, Z, q, candidates, [candidates[i1r], candidates[i2]],
                             strict=strict)
        for f in (i1r, i2):
            S3[np.abs(idx - f) <= windows[2]] = np.inf
        i3 = int(np.argmin(S3))
        out["3"] = (i3, float(S3[i3]))
    return out
