"""Orchestration of the threshold sweep: one-time precomputation and sequential estimation.

:class:`ThresholdEngine` does everything that does not depend on ``y`` once (transform of the
base regressors, sort by the threshold variable, cut positions of the candidates, the y-free
running sums ``K_cc(g)`` and ``P(g)``). Each call of :meth:`ThresholdEngine.scan` then costs
one O(n) sweep per replicate (see ``fastpanel.kernels.threshold_numba``).
:func:`run_sequence` is Hansen's sequential procedure for a batch of replicates: first
threshold; second given the first; refinement of the first given the second (Bai 1997); third
given both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastpanel._backend import kernel_module
from fastpanel.panel_threshold.transform import PanelTransform

__all__ = ["SequenceResult", "ThresholdEngine", "run_sequence"]

# Entries of a residualisation batch from which BLAS beats the kernel's loop form.
_BLAS_MIN = 2_000_000


class ThresholdEngine:
    """Precomputed state of the sweep for one data set (rows sorted by entity, time).

    Parameters
    ----------
    transform : PanelTransform
    B : (n, k) base regressors (regime-independent ``X`` and the regime variables ``Z``).
    Z : (n, pz) regime variables.
    q : (n,) threshold variable.
    candidates : (G,) increasing candidate thresholds.
    strict : bool
        Lower regime is ``q < g`` (Hansen's code) instead of ``q <= g``.
    backend : str
        ``"numba"``, ``"cpp"`` or ``"cuda"``.
    """

    def __init__(self, transform: PanelTransform, B: np.ndarray, Z: np.ndarray, q: np.ndarray,
                 candidates: np.ndarray, *, strict: bool, backend: str = "numba"):
        self.transform = transform
        self.backend = backend
        self.kernel = kernel_module(backend, "threshold")
        Bt = transform.apply(B)
        # unit-norm columns: same fit, far better conditioned B'B (Q, Q^2, Q^3 in Hansen's model)
        norms = np.linalg.norm(Bt, axis=0)
        norms[norms == 0] = 1.0
        self.Bt = np.asfortranarray(Bt / norms)
        self.Qb = np.ascontiguousarray(np.linalg.qr(self.Bt)[0])
        Rb = np.linalg.qr(self.Bt, mode="r")
        Rinv = np.linalg.inv(Rb)
        self.Binv = np.ascontiguousarray(Rinv @ Rinv.T)
        self._Z, self._q, self._strict = Z, q, strict
        self.order = np.argsort(q, kind="stable")
        self.q_sorted = q[self.order]
        self.candidates = np.asarray(candidates, dtype=np.float64)
        side = "left" if strict else "right"
        self.cuts = np.searchsorted(self.q_sorted, self.candidates, side=side).astype(np.int64)
        self.zs = np.ascontiguousarray(Z[self.order])
        h, grp, cw, C = transform.quadratic_form()
        self.h = np.ascontiguousarray(h[self.order])
        self.grp = np.ascontiguousarray(grp[self.order])
        self.cw = np.ascontiguousarray(cw[self.order])
        self.C = np.ascontiguousarray(C)
        As = np.ascontiguousarray(transform.adjoint(self.Bt)[self.order])
        self.H, Q0, self.P = self.kernel.precompute(self.zs, self.h, self.grp, self.cw, self.C, As, self.cuts)
        self.Kcc = np.ascontiguousarray(Q0 - np.einsum("gkp,kl,glq->gpq", self.P, self.Binv, self.P))

    @property
    def n_candidates(self) -> int:
        return self.candidates.shape[0]

    def residual_u(self, Yt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``u = A' M_B y~`` (R, n; threshold order) and ``e0'e0`` for transformed ``Yt`` (n_out, R)."""
        Yt = Yt.reshape(Yt.shape[0], -1)
        if Yt.size >= _BLAS_MIN:
            # Large batches: two GEMMs (Qb' Y, then Y - Qb C) at BLAS speed, kept in Fortran
            # order (one column per replicate) for the within kernels of the adjoint; the
            # kernel's loop form serves the many small products where BLAS threads only spin.
            Yf = np.asfortranarray(Yt)
            coef = self.Qb.T @ Yf
            E0 = Yf - (coef.T @ self.Qb.T).T
            ee = np.einsum("ij,ij->j", E0, E0)
        else:
            E0, ee = self.kernel.residualize(self.Qb, np.ascontiguousarray(Yt))
        V = np.asarray(self.transform.adjoint(E0))
        V = V.reshape(V.shape[0], -1)
        # (R, n) in threshold order: a gather along the contiguous axis of each replicate.
        U = np.take(V.T, self.order, axis=1)
        return U, ee

    def exact_ssr(self, yt: np.ndarray, idx: list[int]) -> float:
        """SSR of the transformed ``yt`` (n_out,) on the base regressors and the regime columns
        of the thresholds ``candidates[idx]``, by a direct least-squares fit (QR).

        The sweep computes ``S = e0'e0 - (quadratic form)``, which loses ``eps e0'e0 / S`` relative
        when a model fits almost perfectly; this recomputation has no such cancellation.
        """
        cols = [self.Bt]
        for g in sorted(self.candidates[i] for i in idx):
            below = self._q < g if self._strict else self._q <= g
            W = self.transform.apply(self._Z * below[:, None])
            cols.append(W / np.maximum(np.linalg.norm(W, axis=0), np.finfo(float).tiny))
        D = np.column_stack(cols)
        Q, _ = np.linalg.qr(D)
        r = yt - Q @ (Q.T @ yt)
        return float(r @ r)

    def scan(self, U: np.ndarray, ee: np.ndarray, fixed_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """S(g) (R, G) and S_F (R,) for each replicate given its fixed thresholds (R, m)."""
        fixed_idx = np.ascontiguousarray(fixed_idx, dtype=np.int64).reshape(U.shape[0], -1)
        return self.kernel.scan_batch(U, ee, self.cuts, fixed_idx, self.zs, self.h, self.grp,
                                      self.cw, self.C, self.H, self.Kcc, self.P, self.Binv)


@dataclass
class SequenceResult:
    """Sequential estimates for a batch of R replicates (candidate indices and SSRs)."""

    ssr0: np.ndarray
    idx: dict[str, np.ndarray] = field(default_factory=dict)
    ssr: dict[str, np.ndarray] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)


def _argmin_excluding(S: np.ndarray, fixed: list[np.ndarray], window: int, hansen: bool = False) -> np.ndarray:
    """Arg-min of each row of S over the candidates outside the window around every fixed index.

    fastpanel (``hansen=False``): the window is symmetric, ``|j - f| <= window``.
    Hansen's program (``hansen=True``): with ``nn = f`` grid values below the fixed threshold
    and ``qnt = window``, it excludes the 1-based positions ``nn - qnt <= i < nn + qnt``, i.e.
    the 0-based ``f - qnt - 1 <= j <= f + qnt - 2``.
    """
    S = S.copy()
    G = S.shape[1]
    cols = np.arange(G)
    for f in fixed:
        if hansen:
            d = cols[None, :] - f[:, None]
            S[(d >= -window - 1) & (d <= window - 2)] = np.inf
        else:
            S[np.abs(cols[None, :] - f[:, None]) <= window] = np.inf
    return np.argmin(S, axis=1), S


# When a minimised SSR is below this share of e0'e0, the sweep's difference of two nearly equal
# numbers keeps fewer than ~10 digits: the SSR is recomputed directly (see exact_ssr).
_CANCELLATION = 1e-3


def _polish(engine: ThresholdEngine, Yt: np.ndarray | None, ee: np.ndarray, ssr: np.ndarray,
            idx_sets: list[np.ndarray]) -> np.ndarray:
    """Replace the SSRs of ill-conditioned replicates by their direct recomputation, so that
    every backend reports the same statistic to ~1e-12."""
    if Yt is None:
        return ssr
    bad = np.flatnonzero(ssr < _CANCELLATION * ee)
    if bad.size == 0:
        return ssr
    ssr = ssr.copy()
    for r in bad:
        ssr[r] = engine.exact_ssr(Yt[:, r], [int(ix[r]) for ix in idx_sets])
    return ssr


def run_sequence(engine: ThresholdEngine, U: np.ndarray, ee: np.ndarray, n_thresholds: int,
                 windows: tuple[int, ...], *, keep_curves: bool = False, hansen: bool = False,
                 refine: bool = True, window2: int | None = None, Yt: np.ndarray | None = None) -> SequenceResult:
    """Hansen's sequential estimation for every replicate (row of ``U``).

    Stages: ``"1"`` first threshold; ``"2"`` second given the first; ``"1r"`` first refined
    given the second; ``"3"`` third given the refined first and the second. ``windows[k]`` is the
    exclusion half-width (in candidate indices) around thresholds already fixed at stage k+1.
    ``hansen`` selects the shape of the exclusion window of Hansen's program (see
    :func:`_argmin_excluding`). ``refine=False`` keeps the first threshold unrefined (``"1r"`` is
    then ``"1"`` with the SSR of stage ``"2"``), and ``window2`` replaces the window of stage
    2: Hansen's program does both in the bootstrap of the third test. ``Yt`` (n_out, R), the
    transformed replicates, lets near-perfect fits have their SSRs recomputed exactly.
    """
    R = U.shape[0]
    rows = np.arange(R)
    out = SequenceResult(ssr0=ee.copy())
    S1, _ = engine.scan(U, ee, np.zeros((R, 0), dtype=np.int64))
    i1 = np.argmin(S1, axis=1)
    out.idx["1"], out.ssr["1"] = i1, _polish(engine, Yt, ee, S1[rows, i1], [i1])
    if keep_curves:
        out.curves["1"] = S1
    if n_thresholds >= 2:
        S2, _ = engine.scan(U, ee, i1[:, None])
        i2, S2m = _argmin_excluding(S2, [i1], windows[1] if window2 is None else window2, hansen)
        out.idx["2"], out.ssr["2"] = i2, _polish(engine, Yt, ee, S2[rows, i2], [i1, i2])
        if refine:
            S1r, _ = engine.scan(U, ee, i2[:, None])
            i1r, S1rm = _argmin_excluding(S1r, [i2], windows[1], hansen)
            out.idx["1r"], out.ssr["1r"] = i1r, _polish(engine, Yt, ee, S1r[rows, i1r], [i1r, i2])
        else:
            i1r = i1
            out.idx["1r"], out.ssr["1r"] = i1, out.ssr["2"]
        if keep_curves:
            out.curves["2"] = S2m
            if refine:
                out.curves["1r"] = S1rm
    if n_thresholds >= 3:
        fixed = np.stack([i1r, i2], axis=1)
        S3, _ = engine.scan(U, ee, fixed)
        i3, S3m = _argmin_excluding(S3, [i1r, i2], windows[2], hansen)
        out.idx["3"], out.ssr["3"] = i3, _polish(engine, Yt, ee, S3[rows, i3], [i1r, i2, i3])
        if keep_curves:
            out.curves["3"] = S3m
    return out
