"""C++/OpenMP implementation of the within kernels (``fastpanel._core``).

See ``csrc/within.cpp`` for the algorithm. Argument conventions shared by every backend:
``X`` and ``out`` are Fortran-ordered float64 (n, p); ``order`` is the int64 permutation that
groups rows by level, or an empty array when rows are already sorted; ``group_starts`` has
n_groups + 1 int64 offsets; ``weights`` is float64 (n,) or empty for unit weights.
"""

from __future__ import annotations

import numpy as np

from fastpanel import _core

#: Rows in any order, partitioned once by A level (``csrc/within_rows.cpp``):
#: ``WithinRows(X, codes_a, starts_a, codes_b, n_b, weights)``; ``.pass1(want_schur)`` returns
#: ``(r, S)`` of the two-way Schur system, ``.pass2(gamma, out)`` writes ``X - alpha_A - gamma_B``
#: in the input row order, ``.n_nonfinite`` counts non-finite A totals. ``n_b = 0``: one-way.
WithinRows = _core.WithinRows

#: Panels in any row order, straight from the codes (``csrc/within_codes.cpp``): unweighted,
#: ``WithinCodes(X, codes_a, n_a, codes_b, n_b)`` with ``n_b <= 64``; ``.ok`` is False when an
#: (A, B) cell holds several rows (then use the kernels above); else the interface of
#: ``WithinRows``. ``n_b = 0``: one-way.
WithinCodes = _core.WithinCodes

__all__ = ["WithinCodes", "WithinRows", "oneway", "oneway_scatter", "schur_complement", "schur_dense",
           "twoway_pass1", "twoway_pass2"]


def oneway(X: np.ndarray, out: np.ndarray, order: np.ndarray, group_starts: np.ndarray, weights: np.ndarray) -> int:
    """Write ``X`` minus weighted group means into ``out`` (``out`` may be ``X``).

    Returns the number of (group, column) totals that are not finite (0 unless X has NaN/inf).
    """
    return _core.within_oneway(X, out, order, group_starts, weights)


def twoway_pass1(
    X: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    n_b: int,
    weights: np.ndarray,
    want_schur: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``r`` (n_b, p) and the Schur matrix (n_b, n_b; empty unless ``want_schur``)."""
    return _core.within_twoway_pass1(X, order, group_starts, codes_b, int(n_b), weights, bool(want_schur))


def oneway_scatter(X: np.ndarray, out: np.ndarray, codes: np.ndarray, n_levels: int, weights: np.ndarray) -> int:
    """``out = X`` minus weighted means by level, rows in any order (``csrc/oneway_scatter.cpp``):
    two streamed passes with a per-level table instead of gathering each level's rows through the
    sort permutation. Returns the number of non-finite (level, column) means."""
    return _core.within_oneway_scatter(X, out, codes, int(n_levels), weights)


def schur_dense(order: np.ndarray, group_starts: np.ndarray, codes_b: np.ndarray, n_b: int,
                weights: np.ndarray) -> np.ndarray:
    """The two-way Schur matrix S = D_B - C' D_A^{-1} C (n_b x n_b) by dense rank-k updates
    (``csrc/schur_dense.cpp``): n_A n_B^2 / 2 FMAs, for panels whose entities are seen in most of
    many periods, where the pair-by-pair assembly of ``twoway_pass1`` is slower."""
    return _core.within_schur_dense(order, group_starts, codes_b, int(n_b), weights)


def schur_complement(codes_a: np.ndarray, n_a: int, codes_b: np.ndarray, n_b: int) -> np.ndarray | None:
    """The unweighted two-way Schur matrix from the pairs of cells each A level LACKS
    (``csrc/schur_dense.cpp``): sum_a (n_B - k_a)^2 / 2 updates, for panels whose entities are
    seen in most of many periods. None when a cell holds two rows (use :func:`schur_dense`)."""
    return _core.within_schur_complement(codes_a, int(n_a), codes_b, int(n_b))


def twoway_pass2(
    X: np.ndarray,
    out: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    gamma: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Write ``X - alpha_A - gamma_B`` into ``out`` given the B effects ``gamma`` (n_b, p)."""
    _core.within_twoway_pass2(X, out, order, group_starts, codes_b, gamma, weights)
