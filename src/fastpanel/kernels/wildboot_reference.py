"""Plain NumPy oracle of the wild cluster bootstrap kernels (test reference, not a backend).

Algorithm (Roodman, MacKinnon, Nielsen and Webb 2019, "Fast and wild", section 3)
    After one pass over the data the bootstrap statistic of draw ``b`` is a function of the
    bootstrap-cluster weights ``v_b`` (length G) alone:

        n_b = N v_b                                   (q,)   numerator  R (beta*_b - beta_0)
        z_hb = K_h v_b                                (q,)   R A^-1 (bootstrap score of error cluster h)
        D_b = sum_h c_h z_hb z_hb'                    (q, q) R V*_b R'
        stat_b = n_b / sqrt(D_b)  (q = 1, a t statistic)  or  n_b' D_b^-1 n_b  (q > 1, Wald)

    ``N`` (q x G) and ``K`` (H q x G, rows of error cluster h at ``h q .. h q + q - 1``) are
    built once by :mod:`fastpanel.ols.wildboot`; ``c_h`` carries the small-sample factor and
    the inclusion-exclusion sign of multiway clustering. Cost per draw O((q + H q) G): never
    O(n).

Weights come from a counter-based generator, identical in every backend: draw ``b`` (counted
from 1) and bootstrap cluster ``g`` with key ``ent_g`` give the 64 bits
``mix(mix(ent_g + b * golden) + ent_g)`` (SplitMix64's finaliser ``mix``), so a draw does not
depend on the row order, the partitioning or the number of threads. Kinds: 0 Rademacher,
1 Mammen, 2 Webb, 3 standard normal (Box-Muller), 4 full enumeration (draw ``d`` counted from 0
is the binary expansion of ``d``, most significant bit first, 0 -> -1 and 1 -> +1: the order of
``itertools.product([-1, 1], repeat=G)``).

``wild_stats_lr`` takes ``K = P + U V'`` (P sparse in CSR form, U (H q x r), V (G x r)): with the
fixed effects nested in the clusters ``P`` holds the score sums of the cells and ``U V'`` the
rank-k term ``-R A^-1 H_h A^-1 S'``, so a draw costs O(nnz(P) + (H q + G) r) instead of O(H q G).

Naming: ``G`` bootstrap clusters, ``H`` error-cluster rows (over all inclusion-exclusion
terms), ``q`` restrictions, ``B`` (``count``) draws starting at draw ``start``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "mix64", "draw_weights", "stats_from_weights", "wild_stats", "wild_stats_lr", "dense_k"]

#: weight distributions by kernel code
KINDS = {"rademacher": 0, "mammen": 1, "webb": 2, "norm": 3, "enumeration": 4}

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
NORM_SALT = np.uint64(0xD1B54A32D192ED03)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijection of uint64; wrap-around arithmetic intended)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(bits: np.ndarray) -> np.ndarray:
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # [0, 1)


def draw_weights(ent: np.ndarray, kind: int, start: int, count: int) -> np.ndarray:
    """Weights of draws ``start .. start + count - 1``: a (count, G) array."""
    ent = np.asarray(ent, dtype=np.uint64)
    G = ent.shape[0]
    if kind == 4:
        d = np.arange(start, start + count, dtype=np.int64)[:, None]
        shift = np.arange(G - 1, -1, -1, dtype=np.int64)[None, :]
        return ((d >> shift) & 1).astype(np.float64) * 2.0 - 1.0
    b = np.arange(start + 1, start + count + 1, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        bits = mix64(mix64(ent[None, :] + b * GOLDEN) + ent[None, :])
    if kind == 0:
        return (bits >> np.uint64(63)).astype(np.float64) * 2.0 - 1.0
    u = _uniform(bits)
    if kind == 1:
        s5 = np.sqrt(5.0)
        return np.where(u < (s5 + 1) / (2 * s5), -(s5 - 1) / 2, (s5 + 1) / 2)
    if kind == 2:
        vals = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
        return vals[np.minimum((u * 6).astype(np.int64), 5)]
    if kind == 3:
        u2 = _uniform(mix64(bits ^ NORM_SALT))
        return np.sqrt(-2.0 * np.log1p(-u)) * np.cos(2.0 * np.pi * u2)
    raise ValueError(f"unknown weight kind {kind}")


def stats_from_weights(num: np.ndarray, K: np.ndarray, scale: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Statistics of the draws whose weights are the rows of ``V`` (B, G)."""
    q = num.shape[0]
    n = V @ num.T  # (B, q)
    Z = (V @ K.T).reshape(V.shape[0], -1, q)  # (B, H, q)
    D = np.einsum("h,bhi,bhj->bij", scale, Z, Z)
    if q == 1:
        den = D[:, 0, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, n[:, 0] / np.sqrt(np.where(den > 0, den, 1.0)), np.nan)
    out = np.full(V.shape[0], np.nan)
    for b in range(V.shape[0]):
        try:
            c = np.linalg.cholesky(D[b])
        except np.linalg.LinAlgError:
            continue
        y = np.linalg.solve(c, n[b])
        out[b] = y @ y
    return out


def wild_stats(num: np.ndarray, K: np.ndarray, scale: np.ndarray, ent: np.ndarray, kind: int,
               start: int, count: int) -> np.ndarray:
    """Statistics of draws ``start .. start + count - 1`` (see the module docstring)."""
    return stats_from_weights(num, K, scale, draw_weights(ent, kind, start, count))


def dense_k(m: int, G: int, indptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, U: np.ndarray,
            V: np.ndarray) -> np.ndarray:
    """``K = P + U V'`` as a dense (m, G) matrix, ``P`` given in CSR form (``indptr, cols, vals``)."""
    K = U @ V.T if U.shape[1] else np.zeros((m, G))
    rows = np.repeat(np.arange(m), np.diff(indptr))
    np.add.at(K, (rows, cols), vals)
    return K


def wild_stats_lr(num: np.ndarray, indptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, U: np.ndarray,
                  V: np.ndarray, scale: np.ndarray, ent: np.ndarray, kind: int, start: int, count: int) -> np.ndarray:
    """:func:`wild_stats` with ``K = P + U V'`` (sparse plus low rank r): O(nnz(P) + (H q + G) r) per draw."""
    K = dense_k(U.shape[0], num.shape[1], indptr, cols, vals, U, V)
    return wild_stats(num, K, scale, ent, kind, start, count)
