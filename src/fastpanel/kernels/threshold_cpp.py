"""C++/OpenMP implementation of the panel threshold kernels (``fastpanel._core``).

Same functions, arguments and results as ``threshold_numba`` (see that module and
``csrc/threshold.cpp`` for the algorithm, cost and naming). Arrays are passed as the engine
prepares them: C-contiguous float64 (int64 for ``grp``, ``cuts`` and ``fixed_idx``); the
compiled code checks shapes and layout and raises ``ValueError`` on a mismatch. Replicates are
processed in parallel (OpenMP, ``fastpanel.set_num_threads``) with the GIL released.
"""

from __future__ import annotations

import numpy as np

from fastpanel import _core

__all__ = ["precompute", "residualize", "scan_batch"]


def precompute(zs: np.ndarray, h: np.ndarray, grp: np.ndarray, cw: np.ndarray, C: np.ndarray,
               As: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y-free sweep: ``H`` (diagonal part of Q(Z_g, Z_g)), ``Q0 = Q(Z_g, Z_g)`` and ``P(g)``.

    Parameters
    ----------
    zs : (n, pz) regime variables in threshold order.
    h : (n,) diagonal weights of A'A.
    grp : (n, n_gr) int64 group ids (one global id space over all groupings).
    cw : (n, n_gr, nc) weights of the group terms.
    C : (n_groups, nc, nc) group coefficient matrices.
    As : (n, k) rows of ``A' B~`` in threshold order.
    cuts : (G,) increasing lower-regime sizes.

    Returns
    -------
    H, Q0 : (G, pz, pz); P : (G, k, pz).
    """
    return _core.threshold_precompute(zs, h, grp, cw, C, As, cuts)


def residualize(Qb: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E = Y - Qb Qb' Y`` and the column sums of squares, parallel over replicates.

    Parameters
    ----------
    Qb : (n, k) orthonormal basis of the transformed base regressors.
    Y : (n, R) transformed responses, one column per replicate.

    Returns
    -------
    E : (n, R); ee : (R,).
    """
    return _core.threshold_residualize(Qb, Y)


def scan_batch(U: np.ndarray, ee: np.ndarray, cuts: np.ndarray, fixed_idx: np.ndarray, zs: np.ndarray,
               h: np.ndarray, grp: np.ndarray, cw: np.ndarray, C: np.ndarray, H: np.ndarray,
               Kcc: np.ndarray, P: np.ndarray, Binv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S(g) for every candidate and every replicate given its fixed thresholds.

    Parameters
    ----------
    U : (R, n) ``u = A' e0`` per replicate (one row each), threshold order.
    ee : (R,) ``e0' e0`` per replicate.
    cuts : (G,) lower-regime sizes of the candidates.
    fixed_idx : (R, m) int64 candidate indices of the thresholds held fixed.
    zs, h, grp, cw, C : see :func:`precompute`.
    H : (G, pz, pz) diagonal part of Q(Z_g, Z_g) from :func:`precompute`.
    Kcc : (G, pz, pz) ``Q0 - P' B^-1 P``.
    P : (G, k, pz).
    Binv : (k, k) ``(B~'B~)^-1``.

    Returns
    -------
    S : (R, G) residual sums of squares (``S_F`` where the candidate adds nothing).
    SF : (R,) residual sum of squares with the fixed thresholds only.
    """
    return _core.threshold_scan_batch(U, ee, cuts, fixed_idx, zs, h, grp, cw, C, H, Kcc, P, Binv)
