"""Batched bootstrap of the threshold F tests (Hansen 1999, section 3.2).

Under the null of ``k - 1`` thresholds the transformed data are rebuilt as
``y* = fitted_null + e*`` and the whole sequential estimation is re-run for every replicate.
Only ``y`` changes between replicates, so the engine's sort, cut positions and y-free running
sums are shared; a batch of replicates costs one residualisation (a BLAS product) and one
O(n) sweep per stage and replicate. The draws come from ``np.random.default_rng(seed)`` in
NumPy and are handed to the kernels, so every backend gives the same p-values for a seed.

* ``"residual"``: whole entity blocks of null residuals resampled with replacement
  (balanced panels).
* ``"wild"``: one weight per entity multiplies its residual block: Rademacher (+-1),
  Mammen's two-point, or Webb's six-point distribution.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from fastpanel.panel_threshold.scan import ThresholdEngine, run_sequence

__all__ = ["draw_bootstrap", "bootstrap_statistics"]

_WILD = ("rademacher", "mammen", "webb")


def draw_bootstrap(rng: np.random.Generator, kind: str, weights: str, n_boot: int, n_entities: int) -> np.ndarray:
    """Draws for ``n_boot`` replicates: entity indices (residual) or entity weights (wild)."""
    if kind == "residual":
        return rng.integers(0, n_entities, size=(n_boot, n_entities))
    if weights == "rademacher":
        return rng.integers(0, 2, size=(n_boot, n_entities)) * 2.0 - 1.0
    if weights == "mammen":
        s5 = np.sqrt(5.0)
        p = (s5 + 1) / (2 * s5)
        return np.where(rng.random((n_boot, n_entities)) < p, -(s5 - 1) / 2, (s5 + 1) / 2)
    if weights == "webb":
        vals = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
        return vals[rng.integers(0, 6, size=(n_boot, n_entities))]
    raise ValueError(f"weights={weights!r}: choose one of {', '.join(_WILD)}")


def _progress(total: int, enabled: bool, desc: str):
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, leave=False)


def bootstrap_statistics(engine: ThresholdEngine, k: int, fitted: np.ndarray, resid: np.ndarray,
                         draws: np.ndarray, kind: str, windows: tuple[int, ...],
                         statistic: Callable, *, chunk: int | None = None, progress: bool = False,
                         hansen: bool = False) -> np.ndarray:
    """F statistics of the k-th test on every bootstrap replicate.

    Parameters
    ----------
    engine : the precomputed sweep.
    k : number of thresholds under the alternative.
    fitted, resid : (n_out,) transformed fitted values and residuals of the null model.
    draws : (R, N) output of :func:`draw_bootstrap`.
    kind : "residual" or "wild".
    windows : exclusion windows per stage.
    statistic : ``statistic(seq, k) -> (R,)`` F statistics from a :class:`SequenceResult`.
    chunk : replicates per batch; by default as many as keep each (replicate x observation)
        and (replicate x candidate) array of a batch near 128 MB (at most 64).
    progress : show a tqdm bar when stderr is a terminal.
    hansen : follow Hansen's program: its exclusion windows, and in the third test's draws the
        first threshold unrefined with the third stage's window around the second.

    Returns
    -------
    (R,) bootstrap F statistics.
    """
    tr = engine.transform
    ent_t = tr.entity[tr.keep]
    R = draws.shape[0]
    if chunk is None:
        # A batch holds several (chunk x n) and (chunk x G) float64 arrays: bound their size so
        # that a 1M-observation panel with an exact grid stays within a few hundred MB.
        chunk = int(np.clip(16_000_000 // max(tr.n_out, engine.n_candidates, 1), 1, 64))
    out = np.empty(R)
    bar = _progress(R, progress, f"bootstrap F{k}")
    if kind == "residual":
        blocks = resid.reshape(tr.n_entities, -1)
    for start in range(0, R, chunk):
        d = draws[start:start + chunk]
        if kind == "residual":
            Estar = blocks[d].reshape(d.shape[0], -1).T
        else:
            Estar = resid[:, None] * d[:, ent_t].T
        Ystar = fitted[:, None] + Estar
        U, ee = engine.residual_u(Ystar)
        if hansen and k == 3:
            seq = run_sequence(engine, U, ee, k, windows, hansen=True, refine=False, window2=windows[2], Yt=Ystar)
        else:
            seq = run_sequence(engine, U, ee, k, windows, hansen=hansen, Yt=Ystar)
        out[start:start + d.shape[0]] = statistic(seq, k)
        if bar is not None:
            bar.update(d.shape[0])
    if bar is not None:
        bar.close()
    return out
