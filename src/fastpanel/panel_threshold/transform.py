"""The fixed linear transform ``A`` of the threshold model and its quadratic form ``A'A``.

Rows are sorted by entity and, within an entity, by time. Three transforms:

* one-way within ``D`` (``conventions="default"``), any panel;
* one-way within followed by deleting each entity's last period (``conventions="hansen1999"``,
  Hansen 1999 section 6): ``A = S D``;
* two-way within (``time_effects=True``): balanced, ``D = I - P_entity - P_period + J/n``;
  unbalanced, ``D = I - P_entity - M_E D_T S^+ D_T' M_E`` (exact, through the period block's
  Schur complement ``S``, as in :func:`fastpanel.within`);
* more effects (``extra``: further id arrays, e.g. region-by-year): the same formula with
  ``D_T`` replaced by the stacked dummies ``O`` of every effect but the entity's,
  ``D = I - P_entity - M_E O S^+ O' M_E``, ``S = O' M_E O`` (the k-way Schur complement of
  :mod:`fastpanel.kway`); the transform itself is :func:`fastpanel.within` on all the effects.

``A'A`` is described for the scan kernels as a diagonal ``h`` plus low-rank per-group terms
(see ``fastpanel.kernels.threshold_numba``):
one-way: ``h = 1``, entity groups, ``C = -1/T_i``;
drop-last: ``D E D = E - (J E + E J)/T + (T-1) J / T^2`` with ``E`` = diag(not last), so
``h = E``, weights ``(1, E)``, ``C = [[(T-1)/T^2, -1/T], [-1/T, 0]]``;
two-way balanced: ``h = 1``, entity ``-1/T``, period ``-1/N``, one global group ``+1/(NT)``;
two-way unbalanced: entity ``-1/T_i`` and one global group with T weight vectors and ``-S^+``;
more effects: the same with K = (levels of the other effects) weight vectors.
"""

from __future__ import annotations

import functools

import numpy as np

from fastpanel.fixed_effects import FixedEffects
from fastpanel.within import within

__all__ = ["PanelTransform"]


class PanelTransform:
    """Transform ``A`` for rows sorted by (entity, time).

    Parameters
    ----------
    entity : (n,) int64 codes 0..N-1, non-decreasing.
    time : (n,) int64 period codes 0..T-1 (used by two-way effects).
    drop_last : bool
        Delete each entity's last row after demeaning (Hansen's convention).
    time_effects : bool
        Two-way (entity and period) effects, balanced or not.
    backend : str, optional
        Backend of the within kernels that apply the demeaning (default: the process default).
    extra : list of (n,) int64 code arrays, optional
        Further fixed effects (levels 0..L-1 each), absorbed beside entity (and period) effects.
    """

    #: Largest number of levels of the effects other than the entity's (the scan kernels carry one
    #: weight per level and row, and S^+ is dense) when extra effects are absorbed.
    MAX_OTHER_LEVELS = 2000

    def __init__(self, entity: np.ndarray, time: np.ndarray, *, drop_last: bool, time_effects: bool,
                 backend: str | None = None, extra: list[np.ndarray] | None = None):
        self.entity = np.asarray(entity, dtype=np.int64)
        self.time = np.asarray(time, dtype=np.int64)
        self.n = self.entity.shape[0]
        self.n_entities = int(self.entity.max()) + 1 if self.n else 0
        self.counts = np.bincount(self.entity, minlength=self.n_entities).astype(np.float64)
        self.drop_last = drop_last
        self.time_effects = time_effects
        self.n_periods = int(self.time.max()) + 1 if self.n else 0
        if time_effects and drop_last:
            raise ValueError("time_effects=True is not available with conventions='hansen1999'")
        starts = np.concatenate(([0], np.cumsum(self.counts).astype(np.int64)))
        self.starts = starts
        self.is_last = np.zeros(self.n, dtype=bool)
        self.is_last[starts[1:] - 1] = True
        self.keep = ~self.is_last if drop_last else np.ones(self.n, dtype=bool)
        self.n_out = int(self.keep.sum())
        self.backend = backend
        self.extra = [np.asarray(c, dtype=np.int64) for c in (extra or [])]
        if self.extra and drop_last:
            raise ValueError("extra fixed effects are not available with conventions='hansen1999'")
        ids = ([self.entity, self.time] if time_effects else [self.entity]) + self.extra
        self._fe = FixedEffects(ids)
        if self.extra:
            others = ([self.time] if time_effects else []) + self.extra
            k_other = sum(int(c.max()) + 1 for c in others)
            if k_other > self.MAX_OTHER_LEVELS or 2 * self.n * k_other > 2.5e8:
                raise ValueError(
                    f"the fixed effects besides the entity's have {k_other} levels on {self.n} rows; the threshold "
                    f"model absorbs at most {self.MAX_OTHER_LEVELS} of them exactly, and at most 1.25e8 (rows x "
                    "levels): use an effect with fewer levels")

    @functools.cached_property
    def is_balanced(self) -> bool:
        """Every (entity, period) cell exactly once: the closed-form two-way quadratic form applies."""
        if self.n != self.n_entities * self.n_periods:
            return False
        return bool(np.unique(self.entity * max(self.n_periods, 1) + self.time).shape[0] == self.n)

    # -- the transform and its adjoint ---------------------------------------------------------
    def _demean(self, M: np.ndarray) -> np.ndarray:
        # The within kernels: one-way, or the exact balanced two-way closed form, all columns
        # at once in one or two reads of M.
        M2 = M.reshape(self.n, -1)
        return within(M2, self._fe, backend=self.backend).reshape(M.shape)

    def apply(self, M: np.ndarray) -> np.ndarray:
        """``A M`` for ``M`` of shape (n,) or (n, p)."""
        out = self._demean(np.asarray(M, dtype=np.float64))
        return out[self.keep] if self.drop_last else out

    def adjoint(self, V: np.ndarray) -> np.ndarray:
        """``A' V`` for ``V`` of shape (n_out,) or (n_out, p)."""
        V = np.asarray(V, dtype=np.float64)
        if self.drop_last:
            full = np.zeros((self.n,) + V.shape[1:])
            full[self.keep] = V
            V = full
        return self._demean(V)

    # -- the quadratic form A'A for the kernels ------------------------------------------------
    def quadratic_form(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(h, grp, cw, C)`` describing ``A'A`` (see the module docstring)."""
        n, N = self.n, self.n_entities
        T = self.counts
        if self.drop_last:
            h = self.keep.astype(np.float64)
            grp = self.entity.reshape(n, 1).copy()
            cw = np.stack([np.ones(n), h], axis=1).reshape(n, 1, 2)
            C = np.empty((N, 2, 2))
            C[:, 0, 0] = (T - 1.0) / T**2
            C[:, 0, 1] = C[:, 1, 0] = -1.0 / T
            C[:, 1, 1] = 0.0
            return h, grp, cw, C
        h = np.ones(n)
        if self.extra:
            return self._other_effects_form()
        if not self.time_effects:
            return h, self.entity.reshape(n, 1).copy(), np.ones((n, 1, 1)), (-1.0 / T).reshape(N, 1, 1)
        Tn = self.n_periods
        if self.is_balanced:
            grp = np.stack([self.entity, N + self.time, np.full(n, N + Tn)], axis=1).astype(np.int64)
            C = np.concatenate([np.full(N, -1.0 / Tn), np.full(Tn, -1.0 / N), [1.0 / (N * Tn)]])
            return h, grp, np.ones((n, 3, 1)), C.reshape(-1, 1, 1)
        return self._other_effects_form()  # O = the period dummies

    def _other_codes(self) -> tuple[np.ndarray, int]:
        """(n, m) stacked level of each row in every effect but the entity's, and their total K."""
        others = ([self.time] if self.time_effects else []) + self.extra
        sizes = [int(c.max()) + 1 for c in others]
        offsets = np.cumsum([0] + sizes)
        return np.column_stack([c + o for c, o in zip(others, offsets[:-1])]), int(offsets[-1])

    @functools.cached_property
    def _other_schur(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cells, share, S)``: the entity x other-level table, its rows over T_i, and
        ``S = O' M_E O`` (dense K x K; K is at most MAX_OTHER_LEVELS)."""
        codes, K = self._other_codes()
        N, T = self.n_entities, self.counts
        cells = np.zeros((N, K))
        for d in range(codes.shape[1]):
            np.add.at(cells, (self.entity, codes[:, d]), 1.0)
        gram = np.zeros((K, K))  # O'O: the co-occurrence counts of the other levels
        for d1 in range(codes.shape[1]):
            for d2 in range(codes.shape[1]):
                np.add.at(gram, (codes[:, d1], codes[:, d2]), 1.0)
        share = cells / T[:, None]
        return cells, share, gram - cells.T @ share

    def _other_effects_form(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A'A = I - P_E - M_E O S^+ O' M_E for entity effects plus other effects (unbalanced
        periods, extra effects), ``O`` their stacked dummies and ``S = O' M_E O`` their Schur
        complement. Entity groups carry ``-1/T_i`` on their plain sums (weight vector 0); one
        global group carries ``-S^+`` on the K sums ``v_k(a) = (O' M_E a)_k
        = sum_j a_j (O_jk - c_{i_j k} / T_{i_j})``, so every term is still a running sum updated
        per observation."""
        n, N = self.n, self.n_entities
        codes, K = self._other_codes()
        _, share, schur = self._other_schur
        cw = np.zeros((n, 2, K))
        cw[:, 0, 0] = 1.0
        for d in range(codes.shape[1]):
            cw[np.arange(n), 1, codes[:, d]] += 1.0
        cw[:, 1, :] -= share[self.entity]
        C = np.zeros((N + 1, K, K))
        C[:N, 0, 0] = -1.0 / self.counts
        C[N] = -np.linalg.pinv(schur, rcond=1e-12, hermitian=True)
        grp = np.stack([self.entity, np.full(n, N)], axis=1).astype(np.int64)
        return np.ones(n), grp, cw, C

    @property
    def n_absorbed(self) -> int:
        """Number of fixed-effect parameters absorbed by the transform (for degrees of freedom):
        with extra effects, the rank of their dummies (entity levels plus the rank of S)."""
        if self.extra:
            ev = np.linalg.eigvalsh(self._other_schur[2])
            return self.n_entities + int(np.count_nonzero(ev > max(ev[-1], 0.0) * ev.shape[0] * 1e-12))
        return self.n_entities + (self.n_periods - 1 if self.time_effects else 0)
