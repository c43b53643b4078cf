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
  Mammen's two-point, or Webb's six-point distribution. The weights come from a counter-based
  generator (:func:`wild_weights`): weight ``(test, replicate, entity)`` is a hash of the seed,
  the test, the replicate number and the entity's label, so the draws do not depend on the row
  order, on how the entities are coded, or on how the rows are split across Dask partitions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from fastpanel.kernels.wildboot_reference import mix64
from fastpanel.panel_threshold.scan import ThresholdEngine, run_sequence

__all__ = ["draw_bootstrap", "bootstrap_statistics", "entity_keys", "seed_value", "wild_weights"]

_WILD = ("rademacher", "mammen", "webb")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# SplitMix64's finaliser, shared with the linear wild bootstrap's kernels (one definition)
_mix = mix64


def entity_keys(labels: np.ndarray) -> np.ndarray:
    """A 64-bit key per entity label, the same for the same label in any frame or partition.

    Integers (and floats with integral values, so that 5 and 5.0 agree) are keyed by their
    value; other labels by their text (``pandas.util.hash_array``, a fixed-key SipHash).
    """
    import pandas as pd

    arr = np.asarray(labels)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) \
            and np.all(np.abs(arr) < 2.0 ** 62):
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iub":
        return _mix(arr.astype(np.int64).view(np.uint64) ^ np.uint64(0x5851F42D4C957F2D))
    return pd.util.hash_array(arr.astype(str).astype(object), categorize=False).astype(np.uint64)


def seed_value(seed: int | np.random.SeedSequence | None) -> int:
    """The integer seed of the counter-based generator (a fresh one when ``seed`` is None)."""
    if seed is None:
        seed = np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(2, np.uint64)[0])
    return int(seed) % 2 ** 64


def wild_weights(seed: int, test: int, start: int, count: int, keys: np.ndarray, weights: str) -> np.ndarray:
    """Wild-bootstrap weights of replicates ``start .. start + count - 1`` of test ``test``.

    Parameters
    ----------
    seed : integer seed (:func:`seed_value`).
    test : number of thresholds under the alternative (each test draws its own weights).
    start, count : the replicates drawn.
    keys : (N,) uint64 :func:`entity_keys` of the entities.
    weights : "rademacher", "mammen" or "webb".

    Returns
    -------
    (count, N) float64 weights; replicate ``b``, entity ``e`` is a function of
    ``(seed, test, b, key_e)`` only (a counter-based generator, as in Salmon et al. 2011).
    """
    if weights not in _WILD:
        raise ValueError(f"weights={weights!r}: choose one of {', '.join(_WILD)}")
    base = _mix(_mix(np.uint64(seed)) ^ np.uint64(test))
    ent = _mix(np.asarray(keys, dtype=np.uint64) ^ base)
    b = np.arange(start + 1, start + count + 1, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        bits = _mix(_mix(ent[None, :] + b * _GOLDEN) + ent[None, :])
    if weights == "rademacher":
        return (bits >> np.uint64(63)).astype(np.float64) * 2.0 - 1.0
    u = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # uniform on [0, 1)
    if weights == "mammen":
        s5 = np.sqrt(5.0)
        return np.where(u < (s5 + 1) / (2 * s5), -(s5 - 1) / 2, (s5 + 1) / 2)
    vals = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
    return vals[np.minimum((u * 6).astype(np.int64), 5)]


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
