"""Panel threshold regression (Hansen 1999) on a Dask DataFrame: the in-memory sweep split at its sums.

Algorithm
---------
The rows are shuffled once on the entity column, prepared (cleaned, sorted by entity and
period, threshold order and wild-weight keys attached) and persisted, so that every partition
holds whole entities: the within transform ``A`` (entity effects, optionally Hansen's deleted last
period) is block diagonal and each partition applies its own block exactly. With period effects
``A`` is the in-memory two-way transform split at its global step (``within_dask``): the period
Schur system ``S`` is summed once, and each matrix the fit transforms (the data, a design, the
residuals of a batch) gets its period effects ``S^+ r`` from one more reduction of its period
sums; in ``A'A`` the period block ``-O'M_E S^+ M_E O`` is a quadratic form in global running sums
of the period weights, added on the client. The sweep of ``fastpanel.kernels.threshold_numba``
then splits into additive sums and a small combination:

1. survey: rows dropped for missing values (counted), duplicate (entity, period) pairs, entity
   counts, the moments and the within Gram matrix of ``[Z, X]`` (the collinearity rule of the
   in-memory fit), and the Gram matrix of ``A [X, Z, y]`` (column scales and ``(B~'B~)^-1``);
   the global candidate grid from the counts of the distinct values of ``q``: merged on the
   client when they are few (``GATHER_DISTINCT_MAX``), else sorted by a distributed sort
   (only the candidates reach the client);
2. y-free sums per candidate ``g``: ``H(g)``, ``Q(Z_g, Z_g)``, ``P(g)`` (``precompute`` on the
   partition's rows with the partition's cut positions of the global candidates), added;
   ``K_cc = Q - P' B^-1 P`` on the client;
3. per batch of replicates (the observed ``y`` or wild-bootstrap draws): ``B~'y`` (one round),
   then one round per stage of Hansen's sequence (the first also returns ``e0'e0``): the partition's
   ``r_c(g) = Z_g' A' e0`` and the group part of ``Q(Z_g, Z_f)`` for the fixed thresholds
   (``scan_sums``), added, and ``S(g)`` for every candidate on the client (``scan_combine``,
   the in-memory kernel's second half);
4. the coefficients of the final model and their covariances from a TSQR (the R factors of the
   partitions' transformed design, stacked and factored again) and one round of meats.

The stages reuse the in-memory sequence (``run_sequence``: windows, Hansen's variants,
refinement) with an engine whose scans are these rounds. The wild weights come from the
counter-based generator of ``fastpanel.panel_threshold.bootstrap`` (keyed by seed, test,
replicate and entity label), so the draws, and therefore the p-values, are those of the
in-memory fit of the same rows for any partitioning or worker count. Partial sums are added
in a fixed binary tree over the partitions (the same numbers for any number of workers).

What crosses the network per partition: O(G pz (k + pz)) numbers once, then per batch of R
replicates and stage O(R G m pz^2) (G candidates, m fixed thresholds); the data never leave
the workers after the shuffle.

Supported: entity effects (``"y ~ x | entity"``), and period effects (``"y ~ x | entity +
year"``, ``conventions="default"``, at most 2000 periods); conventions ``"default"`` and
``"hansen1999"`` (with ``time=``); the wild bootstrap. Further absorbed effects and the residual
bootstrap (which moves whole entity blocks between partitions) raise a ``ValueError`` that says so.

Naming: ``part`` one partition (pandas), ``loc`` its rows prepared (:class:`_Local`), ``reps``
a batch of replicates (:class:`_Replicates`), ``G`` candidates, ``k`` base regressors
``[X, Z]``, ``pz`` regime variables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from fastpanel.distributed.within import _period_codes, _require_dask, period_apply, period_schur
from fastpanel.factor import factorize
from fastpanel.kernels import threshold_numba as kern
from fastpanel.panel_threshold.bootstrap import entity_keys, seed_value, wild_weights
from fastpanel.panel_threshold.grid import quantile_positions
from fastpanel.panel_threshold.model import (candidates, design_names, f_statistics, finish_candidates,
                                             fit_options, parse_formula, regime_design, select_regressors)
from fastpanel.panel_threshold.results import ThresholdResults
from fastpanel.panel_threshold.scan import run_sequence
from fastpanel.panel_threshold.transform import PanelTransform
from fastpanel.within import DIRECT_MAX_LEVELS, twoway_gamma, within

__all__ = ["threshold_dask", "SUPPORTED"]

SUPPORTED = ("on Dask, threshold supports 'y ~ x1 + x2 | entity' or 'y ~ x1 + x2 | entity + period' (entity "
             "effects, and period effects with conventions='default', at most 2000 periods; regressors named by "
             "column or row-wise terms such as np.log(x)), conventions 'default' or 'hansen1999' (with time=), and "
             "bootstrap='wild'; further absorbed effects and the residual bootstrap need the in-memory fit "
             "(fastpanel.threshold on a pandas frame)")


@dataclass(frozen=True)
class _TSpec:
    """What every partition needs to prepare its rows (the same for every round)."""

    y: str
    xs: tuple[str, ...]
    zs: tuple[str, ...]
    q: str
    entity: str
    time: str | None
    times: np.ndarray | None
    drop_last: bool
    strict: bool
    two_way: bool = False  # period effects too (time the period column)


@dataclass(frozen=True)
class _Glob:
    """Client-side results every later round needs."""

    keep_x: tuple[int, ...]
    norms: np.ndarray  # column norms of A [X_kept, Z]
    Binv: np.ndarray  # (B~'B~)^-1 of the unit-norm columns
    cand: np.ndarray  # global candidates
    gamma: np.ndarray | None = None  # two-way: period effects (T, .) of the columns [X, Z, y]


@dataclass(frozen=True)
class _Replicates:
    """A batch of transformed dependent variables, rebuilt on each partition from its rows.

    ``kind="observed"``: the data's ``y``. ``kind="wild"``: ``fitted + resid * w`` for the null
    model with thresholds ``null`` (slopes ``null_coef``), weights of replicates ``start ..
    start + count - 1`` of test ``test``; ``select`` keeps some of them (the exact SSR of one).
    ``beta`` is ``B^-1 B~'Y`` once known (the partial-out coefficients).
    """

    kind: str
    count: int = 1
    test: int = 0
    start: int = 0
    seed: int = 0
    weights: str = "rademacher"
    null: tuple[float, ...] = ()
    null_coef: np.ndarray | None = None
    select: tuple[int, ...] | None = None
    beta: np.ndarray | None = None
    null_gamma: np.ndarray | None = None  # two-way: period effects of the null model's design
    e_gamma: np.ndarray | None = None  # two-way: period effects of e0 (T, R), for u = A' e0

    @property
    def shape(self) -> tuple[int, int]:
        # run_sequence reads U.shape[0] (replicates) and Yt[:, r] (one replicate)
        return (self.size, self.size)

    @property
    def size(self) -> int:
        return self.count if self.select is None else len(self.select)

    def __getitem__(self, key: Any) -> _Replicates:
        r = key[1] if isinstance(key, tuple) else key
        rows = tuple(range(self.count)) if self.select is None else self.select
        return replace(self, select=(rows[int(r)],), beta=None if self.beta is None else self.beta[:, [int(r)]],
                       e_gamma=None if self.e_gamma is None else self.e_gamma[:, [int(r)]])


_ENT, _KEY, _QPOS, _OK = "__fastpanel_ent__", "__fastpanel_key__", "__fastpanel_qpos__", "__fastpanel_ok__"


def _prepare(part: pd.DataFrame, sp: _TSpec) -> pd.DataFrame:
    """The partition's rows ready for every round, computed once after the shuffle and persisted:
    complete rows first, sorted by (entity, period), with their dense entity code, the entity
    label's key of the wild weights and the position of each row in threshold order; rows
    with a missing value or id last (``_OK`` False: counted, never used)."""
    vals = part[[sp.y, sp.q, *sp.zs, *sp.xs]].to_numpy(dtype=np.float64, na_value=np.nan)
    ent_raw = part[sp.entity].to_numpy()
    ok = np.isfinite(vals).all(axis=1) & (factorize(ent_raw, sp.entity).codes >= 0)
    tim = np.zeros(len(part), dtype=np.int64)
    if sp.time:
        tf = factorize(part[sp.time].to_numpy(), sp.time)  # sorted levels: codes in period order
        ok &= tf.codes >= 0
        tim = tf.codes
    ent = factorize(ent_raw[ok], sp.entity)
    codes = ent.codes.astype(np.int64)
    order = np.lexsort((tim[ok], codes)) if sp.time else np.argsort(codes, kind="stable")
    rows = np.concatenate([np.flatnonzero(ok)[order], np.flatnonzero(~ok)])
    n_ok = order.shape[0]
    out = pd.DataFrame(vals[rows], columns=[sp.y, sp.q, *sp.zs, *sp.xs], index=part.index[rows])
    out[sp.entity] = ent_raw[rows]
    if sp.time:
        out[sp.time] = part[sp.time].to_numpy()[rows]
    pad = np.full(rows.shape[0] - n_ok, -1, dtype=np.int64)
    out[_ENT] = np.concatenate([codes[order], pad])
    out[_KEY] = np.concatenate([entity_keys(ent.levels)[codes[order]], pad.astype(np.uint64)])
    out[_QPOS] = np.concatenate([np.argsort(vals[rows[:n_ok], 1], kind="stable"), pad])
    out[_OK] = np.arange(rows.shape[0]) < n_ok
    return out


class _Local:
    """One prepared partition's complete rows (sorted by entity, period) and their transform."""

    def __init__(self, part: pd.DataFrame, sp: _TSpec):
        ok = part[_OK].to_numpy()
        n = int(ok.sum())
        self.n_nan = int(ok.shape[0] - n)
        pz = len(sp.zs)
        vals = part[[sp.y, sp.q, *sp.zs, *sp.xs]].to_numpy(dtype=np.float64)[:n]
        self.y, self.q = vals[:, 0], vals[:, 1]
        self.Z, self.X = vals[:, 2:2 + pz], vals[:, 2 + pz:]
        self.ent = part[_ENT].to_numpy()[:n]
        self.qorder = part[_QPOS].to_numpy()[:n]
        self.time = _period_codes(part.iloc[:n], sp.time, sp.times) if sp.time else np.zeros(n, dtype=np.int64)
        self.n = n
        self.sp = sp
        if n:
            # the one-way transform: the entity blocks of A'A; with period effects the period
            # terms are added from global sums (see _DaskEngine) and the transform is
            # period_apply with the period effects of each matrix
            self.tr = PanelTransform(self.ent, self.time, drop_last=sp.drop_last, time_effects=False)
            self.keys = part[_KEY].to_numpy()[:n][self.tr.starts[:-1]]  # one per entity, in code order
            self.entity_label = lambda e: part[sp.entity].iloc[int(self.tr.starts[e])]
            if sp.two_way:
                self.fac = factorize(self.ent, sp.entity)

    def apply(self, M: np.ndarray, gamma: np.ndarray | None) -> np.ndarray:
        """``A M``: one-way (and Hansen's deleted last period), or two-way with the period
        effects ``gamma`` of M's columns (the in-memory second pass)."""
        if not self.sp.two_way:
            return self.tr.apply(M)
        M2 = np.asfortranarray(np.asarray(M, dtype=np.float64).reshape(self.n, -1))
        out = period_apply(M2, self.fac, self.time, np.asfortranarray(gamma.reshape(gamma.shape[0], -1)), None)
        return out.reshape(M.shape)

    def adjoint(self, V: np.ndarray, gamma: np.ndarray | None) -> np.ndarray:
        """``A' V`` (two-way: A is a symmetric projection, so ``A V`` with V's period effects)."""
        return self.tr.adjoint(V) if not self.sp.two_way else self.apply(V, gamma)

    def period_sums(self, M: np.ndarray) -> np.ndarray:
        """``r_p`` of the period Schur system for M's columns (two-way; see within_dask)."""
        M2 = np.asfortranarray(np.asarray(M, dtype=np.float64).reshape(self.n, -1))
        return period_schur(M2, self.fac, self.time, self.sp.times.size, None)[0]

    def base_columns(self, g: _Glob) -> list[int]:
        """Positions of ``[X_kept, Z]`` among the survey's columns ``[X, Z, y]``."""
        kx = self.X.shape[1]
        return list(g.keep_x) + list(range(kx, kx + self.Z.shape[1]))

    def base(self, g: _Glob) -> np.ndarray:
        """Unit-norm transformed base regressors ``B~`` (the in-memory engine's columns)."""
        B = np.column_stack([self.X[:, list(g.keep_x)], self.Z])
        gam = None if g.gamma is None else g.gamma[:, self.base_columns(g)]
        return self.apply(B, gam) / g.norms

    def design(self, g: _Glob, thresholds: Sequence[float]) -> np.ndarray:
        return regime_design(self.X[:, list(g.keep_x)], self.Z, self.q, list(thresholds), self.sp.strict)

    def replicates(self, reps: _Replicates, g: _Glob) -> np.ndarray:
        """(n_out, R) transformed dependent variables of the batch."""
        yt = self.apply(self.y, None if g.gamma is None else g.gamma[:, -1])
        if reps.kind == "observed":
            return yt[:, None]
        fitted = self.apply(self.design(g, reps.null), reps.null_gamma) @ reps.null_coef
        resid = yt - fitted
        w = wild_weights(reps.seed, reps.test, reps.start, reps.count, self.keys, reps.weights)
        if reps.select is not None:
            w = w[list(reps.select)]
        ent_t = self.tr.entity[self.tr.keep]
        return fitted[:, None] + resid[:, None] * w[:, ent_t].T

    def sweep_arrays(self, g: _Glob) -> tuple:
        """Threshold order, the quadratic form of A'A and the cut positions of the candidates."""
        qorder = self.qorder
        h, grp, cw, C = self.tr.quadratic_form()
        side = "left" if self.sp.strict else "right"
        cuts = np.searchsorted(self.q[qorder], g.cand, side=side).astype(np.int64)
        return (qorder, np.ascontiguousarray(self.Z[qorder]), np.ascontiguousarray(h[qorder]),
                np.ascontiguousarray(grp[qorder]), np.ascontiguousarray(cw[qorder]), np.ascontiguousarray(C), cuts)


# -- per-partition rounds ------------------------------------------------------------------------
def _survey(part: pd.DataFrame, sp: _TSpec) -> dict:
    """Round 1: counts, duplicate keys, the distinct values of q, the moments of [Z, X] and,
    with period effects, the period Schur pieces of [X, Z, y]."""
    loc = _Local(part, sp)
    p = len(sp.zs) + len(sp.xs)
    T = sp.times.size if sp.time else 0
    out = {"n_nan": loc.n_nan, "n": loc.n, "n_entities": 0, "max_count": 0, "min_count": np.inf, "dup": 0,
           "dup_example": None, "W": 0.0, "n_distinct": 0, "mean": np.zeros(p), "C": np.zeros((p, p)), "n_out": 0,
           "same": np.ones((len(sp.zs), len(sp.xs)), dtype=bool), "per_period": np.zeros(T, dtype=np.int64)}
    if sp.two_way:
        out.update(S=np.zeros((T, T)), r=np.zeros((T, p + 1)))
    if loc.n == 0:
        return out
    counts = np.bincount(loc.ent)
    out.update(n_entities=counts.shape[0], max_count=int(counts.max()), min_count=int(counts.min()))
    if sp.time:
        out["per_period"] = np.bincount(loc.time, minlength=T)
        key = loc.ent * (int(loc.time.max()) + 1) + loc.time
        dup = np.flatnonzero(np.diff(key) == 0)
        if dup.size:
            out["dup"] = int(dup.size)
            out["dup_example"] = (loc.entity_label(loc.ent[dup[0]]), sp.times[loc.time[dup[0]]])
            return out  # the period system needs unique (entity, period) pairs
    out["n_distinct"] = int(np.unique(loc.q).size)
    B = np.column_stack([loc.Z, loc.X])  # the in-memory collinearity rule: Z first
    mean = B.mean(axis=0)
    out.update(W=float(loc.n), mean=mean, C=(B - mean).T @ (B - mean))
    out["n_out"] = loc.tr.n_out
    out["same"] = np.array([[np.array_equal(loc.Z[:, j], loc.X[:, i]) for i in range(loc.X.shape[1])]
                            for j in range(loc.Z.shape[1])], dtype=bool).reshape(len(sp.zs), len(sp.xs))
    if sp.two_way:
        M = np.asfortranarray(np.column_stack([loc.X, loc.Z, loc.y]))
        out["r"], out["S"] = period_schur(M, loc.fac, loc.time, T, None)
    return out


def _grams(part: pd.DataFrame, sp: _TSpec, gamma: np.ndarray | None) -> dict:
    """Round 2: the Gram matrices of the transformed, shifted [Z, X] (the collinearity rule)
    and of the transformed [X, Z, y] (the engine's columns, as in memory)."""
    loc = _Local(part, sp)
    p = len(sp.zs) + len(sp.xs)
    if loc.n == 0:
        return {"gram_within": np.zeros((p, p)), "gram": np.zeros((p + 1, p + 1))}
    kx = len(sp.xs)
    zx = list(range(kx, kx + len(sp.zs))) + list(range(kx))  # [Z, X] among [X, Z, y]
    B = np.column_stack([loc.Z, loc.X])
    if sp.two_way:  # the shift leaves the period effects unchanged (the entity means absorb it)
        Bt = loc.apply(B - B[0], gamma[:, zx])
    else:
        Bt = within(B - B[0], loc.ent)  # shifted: the effects absorb constants, the transform keeps the digits
    M = loc.apply(np.column_stack([loc.X, loc.Z, loc.y]), gamma)
    return {"gram_within": Bt.T @ Bt, "gram": M.T @ M}


def _precompute(part: pd.DataFrame, sp: _TSpec, g: _Glob) -> dict:
    """The y-free sums of the entity blocks (and, two-way, the period weights' running sums)."""
    loc = _Local(part, sp)
    G, pz, k = g.cand.shape[0], len(sp.zs), g.norms.shape[0]
    out = {"H": np.zeros((G, pz, pz)), "Q0": np.zeros((G, pz, pz)), "P": np.zeros((G, k, pz))}
    if sp.two_way:
        out["s"] = np.zeros((G, sp.times.size, pz))
    if loc.n == 0:
        return out
    qorder, zs, h, grp, cw, C, cuts = loc.sweep_arrays(g)
    Bs = loc.base(g)
    As = np.ascontiguousarray((Bs if sp.two_way else loc.tr.adjoint(Bs))[qorder])  # two-way: A B~ = B~
    out["H"], out["Q0"], out["P"] = kern.precompute(zs, h, grp, cw, C, As, cuts)
    if sp.two_way:
        out["s"] = kern.period_prefix(zs, np.ascontiguousarray(loc.time[qorder]), np.ascontiguousarray(loc.ent[qorder]),
                                      loc.tr.starts, loc.time, cuts, sp.times.size)
    return out


def _design_period_sums(part: pd.DataFrame, sp: _TSpec, g: _Glob, thresholds: tuple[float, ...]) -> np.ndarray:
    """Two-way: the period sums ``r_p`` of the design with these thresholds."""
    loc = _Local(part, sp)
    ncol = len(g.keep_x) + (len(thresholds) + 1) * len(sp.zs)
    if loc.n == 0:
        return np.zeros((sp.times.size, ncol))
    return loc.period_sums(loc.design(g, thresholds))


def _e0_period_sums(part: pd.DataFrame, sp: _TSpec, g: _Glob, reps: _Replicates) -> np.ndarray:
    """Two-way: the period sums ``r_p`` of ``e0`` (its period effects give ``u = A e0``)."""
    loc = _Local(part, sp)
    if loc.n == 0:
        return np.zeros((sp.times.size, reps.size))
    return loc.period_sums(_residuals(loc, g, reps))


def _cross_base(part: pd.DataFrame, sp: _TSpec, g: _Glob, reps: _Replicates) -> np.ndarray:
    loc = _Local(part, sp)
    if loc.n == 0:
        return np.zeros((g.norms.shape[0], reps.size))
    return loc.base(g).T @ loc.replicates(reps, g)


def _residuals(loc: _Local, g: _Glob, reps: _Replicates) -> np.ndarray:
    """``e0 = Y - B~ beta`` (n_out, R): the replicates with the base regressors partialled out."""
    return loc.replicates(reps, g) - loc.base(g) @ reps.beta


def _scan_sums(part: pd.DataFrame, sp: _TSpec, g: _Glob, reps: _Replicates, fixed: np.ndarray) -> dict:
    loc = _Local(part, sp)
    R, G, pz, m = reps.size, g.cand.shape[0], len(sp.zs), fixed.shape[1]
    if loc.n == 0:
        return {"RC": np.zeros((R, G, pz)), "CROSS": np.zeros((R, G, m, pz, pz)), "ee": np.zeros(R)}
    qorder, zs, _, grp, cw, C, cuts = loc.sweep_arrays(g)
    E0 = _residuals(loc, g, reps)
    V = np.asarray(loc.adjoint(E0, reps.e_gamma)).reshape(loc.n, -1)
    U = np.ascontiguousarray(np.take(V.T, qorder, axis=1))
    RC, CROSS = kern.scan_sums(U, cuts, fixed, zs, grp, cw, C)
    return {"RC": RC, "CROSS": CROSS, "ee": np.einsum("ij,ij->j", E0, E0)}


def _r_factor(part: pd.DataFrame, sp: _TSpec, g: _Glob, thresholds: tuple[float, ...], reps: _Replicates,
              design_gamma: np.ndarray | None) -> np.ndarray:
    """R factor of the partition's ``[A design(thresholds), Y]`` (one step of a TSQR)."""
    loc = _Local(part, sp)
    ncol = len(g.keep_x) + (len(thresholds) + 1) * len(sp.zs) + reps.size
    if loc.n == 0:
        return np.zeros((0, ncol))
    D = loc.apply(loc.design(g, thresholds), design_gamma)
    M = np.column_stack([D, loc.replicates(reps, g)])
    return np.linalg.qr(M, mode="r")


def _meats(part: pd.DataFrame, sp: _TSpec, g: _Glob, thresholds: tuple[float, ...], coef: np.ndarray,
           design_gamma: np.ndarray | None) -> dict:
    loc = _Local(part, sp)
    k = coef.shape[0]
    if loc.n == 0:
        return {"meat": np.zeros((k, k)), "cluster_meat": np.zeros((k, k)), "yty": 0.0}
    Xt = loc.apply(loc.design(g, thresholds), design_gamma)
    yt = loc.apply(loc.y, None if g.gamma is None else g.gamma[:, -1])
    resid = yt - Xt @ coef
    scores = np.zeros((loc.tr.n_entities, k))
    np.add.at(scores, loc.tr.entity[loc.tr.keep], Xt * resid[:, None])
    return {"meat": (Xt * resid[:, None] ** 2).T @ Xt, "cluster_meat": scores.T @ scores, "yty": float(yt @ yt)}


def _regime_counts(part: pd.DataFrame, sp: _TSpec, edges: np.ndarray) -> np.ndarray:
    loc = _Local(part, sp)
    counts = np.zeros((sp.times.size, edges.shape[0] - 1), dtype=np.int64)
    if loc.n:
        regime = np.searchsorted(edges, loc.q, side="right" if sp.strict else "left") - 1
        np.add.at(counts, (loc.time, regime), 1)
    return counts


def _sorted_counts(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    values = part.iloc[:, 0].to_numpy(dtype=np.float64)
    counts = part.iloc[:, 1].to_numpy(dtype=np.int64)
    order = np.argsort(values, kind="stable")  # sorted already; cheap insurance
    return values[order], counts[order]


def _part_sizes(part: pd.DataFrame) -> tuple[int, int]:
    return len(part), int(part.iloc[:, 1].sum())


def _pick(part: pd.DataFrame, rows: np.ndarray | None, trim: float, rows_before: int, total: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates held by one partition of the sorted (value, count) table: the rows asked
    (quantile grid) or, ``rows`` None, the values whose lower-regime share lies in
    [trim, 1 - trim] (exact grid); with the rows at or below each and at it."""
    values, counts = _sorted_counts(part)
    upto = rows_before + np.cumsum(counts)
    if rows is None:
        share = upto / total
        rows = np.flatnonzero((share >= trim) & (share <= 1.0 - trim))
    return values[rows], upto[rows], counts[rows]


def _distinct(part: pd.DataFrame, sp: _TSpec) -> tuple[np.ndarray, np.ndarray]:
    ok = part[_OK].to_numpy()
    return np.unique(part[sp.q].to_numpy(dtype=np.float64)[ok], return_counts=True)


#: Up to this many distinct values of q summed over partitions, they are gathered on the client
#: (16 bytes each) and merged there; beyond, the grid comes from a distributed sort.
GATHER_DISTINCT_MAX = 1 << 23


def _candidates(dask: Any, ddf: Any, sp: _TSpec, trims: tuple[float, ...], grid: int | str, K: int,
                n_distinct_bound: int) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """The in-memory candidate grid from the distinct values of q and their counts.

    ``n_distinct_bound`` (the partitions' distinct counts added) at most
    ``GATHER_DISTINCT_MAX``: each partition's distinct values and counts are merged on the
    client. Beyond: they stay distributed, counted (``value_counts``) and sorted by value
    (``sort_values``, a distributed sort); the client gets the partition sizes and only the
    candidates, never the list of distinct values (as long as the data for a continuous q).
    """
    if n_distinct_bound <= GATHER_DISTINCT_MAX:
        parts = [v for v in _Runner(dask, ddf).each(_distinct, sp) if v[0].size]
        distinct = np.unique(np.concatenate([v for v, _ in parts]))
        counts = np.zeros(distinct.shape[0], dtype=np.int64)
        for v, c in parts:
            np.add.at(counts, np.searchsorted(distinct, v), c)
        return candidates(distinct, counts, trims, grid, K, sp.strict, sp.q)
    q = ddf[ddf[_OK]][sp.q]
    table = (q.value_counts(split_out=max(ddf.npartitions, 1)).rename("__fastpanel_n__").reset_index()
             .sort_values(sp.q).persist())
    parts = table.to_delayed()
    sizes = dask.compute(*[dask.delayed(_part_sizes)(p) for p in parts])
    nd = sum(s[0] for s in sizes)
    total = sum(s[1] for s in sizes)
    first = np.concatenate([[0], np.cumsum([s[0] for s in sizes])])
    rows_before = np.concatenate([[0], np.cumsum([s[1] for s in sizes])])
    if isinstance(grid, str):
        asks = [None] * len(parts)
        if grid != "exact":
            raise ValueError(f"grid={grid!r}: pass a number of quantiles (e.g. 400) or 'exact'")
    else:
        pos = quantile_positions(nd, trims[0], grid)
        asks = [pos[(pos >= first[i]) & (pos < first[i + 1])] - first[i] for i in range(len(parts))]
    picked = dask.compute(*[dask.delayed(_pick)(p, a, trims[0], int(rows_before[i]), total)
                            for i, (p, a) in enumerate(zip(parts, asks)) if a is None or a.size])
    cand = np.concatenate([c for c, _, _ in picked] + [np.empty(0)])
    upto = np.concatenate([u for _, u, _ in picked] + [np.empty(0, dtype=np.int64)])
    count = np.concatenate([c for _, _, c in picked] + [np.empty(0, dtype=np.int64)])
    return finish_candidates(cand, upto, count, total, nd, trims, grid, K, sp.strict, sp.q)


# -- orchestration ------------------------------------------------------------------------------
def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {key: _add(a[key], b[key]) for key in a}
    return a + b


class _Runner:
    """Maps a function over the persisted partitions and adds the results in a fixed binary
    tree (adjacent partitions first), computed on the workers: the same sums for any number
    of workers, and only the total reaches the client."""

    def __init__(self, dask: Any, ddf: Any):
        self.dask, self.parts = dask, ddf.to_delayed()

    def each(self, fn: Callable, *args: Any) -> list:
        return list(self.dask.compute(*[self.dask.delayed(fn)(p, *args) for p in self.parts]))

    def total(self, fn: Callable, *args: Any) -> Any:
        d = self.dask.delayed
        level = [d(fn)(p, *args) for p in self.parts]
        while len(level) > 1:
            level = [d(_add)(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
        return self.dask.compute(level[0])[0]

    def r_factor(self, *args: Any) -> np.ndarray:
        """The R factor of the whole stacked matrix (TSQR: the partitions' R factors factored again)."""
        Rs = [R for R in self.each(_r_factor, *args) if R.shape[0]]
        return np.linalg.qr(np.vstack(Rs), mode="r")


@dataclass
class _Periods:
    """Two-way fits: the period Schur system ``S`` (summed over partitions) and its sizes."""

    S: np.ndarray
    n: int
    n_entities: int

    def solve(self, r: np.ndarray) -> np.ndarray:
        """Period effects ``gamma = S^+ r`` (the in-memory ``twoway_gamma``)."""
        return twoway_gamma(self.S, r, self.n, self.n_entities)[0]


def _design_gamma(run: _Runner, sp: _TSpec, g: _Glob, periods: _Periods | None, ths: tuple[float, ...]
                  ) -> np.ndarray | None:
    """Two-way: the period effects of the design with thresholds ``ths`` (one round)."""
    if periods is None:
        return None
    return periods.solve(run.total(_design_period_sums, sp, g, ths))


class _DaskEngine:
    """The distributed counterpart of ``ThresholdEngine`` that ``run_sequence`` drives.

    Two-way: the partitions sum the entity blocks of ``A'A``; the period block
    ``-O' M_E S^+ M_E O`` (``PanelTransform._other_effects_form``) is a quadratic form in the
    running sums ``s(g)`` (G, T, pz) of the period weights, added here: to ``Q(Z_g, Z_g)`` once,
    and to the cross terms ``Q(Z_g, Z_f)`` of every scan as ``s(g)' C s(f)``, ``C = -S^+``.
    """

    def __init__(self, run: _Runner, sp: _TSpec, g: _Glob, H: np.ndarray, Kcc: np.ndarray, P: np.ndarray,
                 periods: _Periods | None = None, s: np.ndarray | None = None, Cg: np.ndarray | None = None):
        self.run, self.sp, self.g = run, sp, g
        self.H, self.Kcc, self.P = H, Kcc, P
        self.periods, self.s = periods, s
        self.Cs = None if s is None else np.einsum("kl,glq->gkq", Cg, s)  # C s(f) for every candidate f
        self._first: tuple[_Replicates, dict] | None = None

    @property
    def n_candidates(self) -> int:
        return self.g.cand.shape[0]

    def residual_u(self, reps: _Replicates) -> tuple[_Replicates, np.ndarray]:
        """The batch with its partial-out coefficients (the stand-in of ``U``) and ``e0'e0``."""
        c = self.run.total(_cross_base, self.sp, self.g, reps)
        reps = replace(reps, beta=self.g.Binv @ c)
        if self.periods is not None:  # u = A e0 needs e0's period effects
            reps = replace(reps, e_gamma=self.periods.solve(self.run.total(_e0_period_sums, self.sp, self.g, reps)))
        # e0'e0 comes with the sums of the first stage (no fixed threshold): one round for both
        sums = self.run.total(_scan_sums, self.sp, self.g, reps, np.zeros((reps.size, 0), dtype=np.int64))
        self._first = (reps, sums)
        return reps, sums["ee"]

    def scan(self, reps: _Replicates, ee: np.ndarray, fixed_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fixed = np.ascontiguousarray(fixed_idx, dtype=np.int64).reshape(reps.size, -1)
        if fixed.shape[1] == 0 and self._first is not None and self._first[0] is reps:
            sums = self._first[1]
        else:
            sums = self.run.total(_scan_sums, self.sp, self.g, reps, fixed)
            if self.s is not None:
                sums = dict(sums, CROSS=sums["CROSS"].copy())
                for r in range(fixed.shape[0]):
                    for a in range(fixed.shape[1]):
                        sums["CROSS"][r, :, a] += np.einsum("gkp,kq->gpq", self.s, self.Cs[fixed[r, a]])
        return kern.scan_combine(sums["RC"], sums["CROSS"], np.asarray(ee, dtype=np.float64), fixed,
                                 self.H, self.Kcc, self.P, self.g.Binv)

    def exact_ssr(self, reps: _Replicates, idx: list[int]) -> float:
        """SSR of one replicate with the thresholds ``cand[idx]`` by a TSQR (no cancellation)."""
        ths = tuple(sorted(float(self.g.cand[i]) for i in idx))
        dg = _design_gamma(self.run, self.sp, self.g, self.periods, ths)
        R = self.run.r_factor(self.sp, self.g, ths, replace(reps, beta=None, e_gamma=None), dg)
        return float(R[-1, -1] ** 2)


@dataclass
class _TransformInfo:
    """What the results read of the transform."""

    n_out: int
    n_absorbed: int
    n_entities: int


class DaskThresholdModel:
    """The model side of a threshold fit on Dask (what ``ThresholdResults`` reads of it)."""

    def __init__(self, run: _Runner, sp: _TSpec, g: _Glob, x_names: list[str], conventions: str,
                 dropped: list[str], periods: _Periods | None = None):
        self._run, self._sp, self._g, self._periods = run, sp, g, periods
        self.x_names = x_names
        self.z_names = list(sp.zs)
        self.q_name = sp.q
        self.conventions = conventions
        self.has_time = sp.time is not None
        self.dropped_regressors = dropped
        self._fits: dict[tuple[float, ...], dict] = {}
        self._counts: dict[tuple[float, ...], np.ndarray] = {}

    def prefetch(self, tr: Any, threshold_sets: Sequence[Sequence[float]], strict: bool) -> None:
        """Compute the fits (and regime counts) the results can ask for, then let go of the
        persisted partitions: the result no longer needs the cluster, and holds no data on it."""
        for ths in threshold_sets:
            self._linear_fit(tr, ths, strict)
            if self.has_time:
                self._regime_counts(np.array([-np.inf, *sorted(ths), np.inf]), strict)
        self._run = None

    def _cluster(self) -> _Runner:
        if self._run is None:
            raise RuntimeError("this Dask threshold fit has released its data; it holds the fits of the models "
                               "with 0 to n_thresholds thresholds that it estimated")
        return self._run

    def _linear_fit(self, tr: Any, thresholds: Sequence[float], strict: bool) -> dict:
        ths = tuple(sorted(float(t) for t in thresholds))
        if ths not in self._fits:
            self._fits[ths] = self._fit_now(tr, ths, strict)
        return self._fits[ths]

    def _fit_now(self, tr: Any, ths: tuple[float, ...], strict: bool) -> dict:
        dg = _design_gamma(self._cluster(), self._sp, self._g, self._periods, ths)
        R = self._cluster().r_factor(self._sp, self._g, ths, _Replicates("observed"), dg)
        k = R.shape[1] - 1
        Rx = R[:k, :k]
        coef = np.linalg.solve(Rx, R[:k, k])
        meats = self._cluster().total(_meats, self._sp, self._g, ths, coef, dg)
        Rinv = np.linalg.inv(Rx)
        names = design_names(self.x_names, self.z_names, self.q_name, ths, strict)
        return {"names": names, "coef": coef, "nobs": tr.n_out, "ssr": float(R[k, k] ** 2), "yty": meats["yty"],
                "XtXinv": Rinv @ Rinv.T, "meat": meats["meat"], "cluster_meat": meats["cluster_meat"],
                "resid": None}

    def _regime_counts(self, edges: np.ndarray, strict: bool) -> np.ndarray:
        key = tuple(float(e) for e in edges[1:-1])
        if key not in self._counts:
            counts = self._cluster().total(_regime_counts, self._sp, edges)
            self._counts[key] = counts[counts.sum(axis=1) > 0]  # the periods left in the sample
        return self._counts[key]


def threshold_dask(formula: str, ddf: Any, *, threshold_var: str, regime_vars: str | Sequence[str],
                   n_thresholds: int = 1, time: str | None = None, conventions: str = "default",
                   time_effects: bool = False, n_boot: int | Sequence[int] = 300,
                   trim: float | Sequence[float] = 0.01, grid: int | str = 400, bootstrap: str | None = None,
                   weights: str = "rademacher", seed: int | None = None, ci_level: float = 0.95,
                   level: float = 0.05, backend: str | None = None, progress: Any = None) -> ThresholdResults:
    """``fastpanel.threshold`` on a Dask DataFrame (see the module docstring for what is supported).

    Parameters are those of :func:`fastpanel.threshold` and :meth:`ThresholdPanel.fit`;
    ``bootstrap="wild"`` must be given unless ``n_boot=0`` (the in-memory default, the residual
    bootstrap, is not available, and is not replaced silently); ``progress`` may be a callable that
    receives a line of text as each round starts. The computation runs on the current Dask
    client, or Dask's default scheduler when there is none.

    Returns
    -------
    ThresholdResults
        As in memory, with ``resid`` None (the residuals stay on the workers).
    """
    say = progress if callable(progress) else (lambda _msg: None)
    dask, _ = _require_dask()
    if conventions not in ("default", "hansen1999"):
        raise ValueError(f"conventions={conventions!r}: choose 'default' or 'hansen1999'")
    lhs, terms, entity, time, time_effects, absorb = parse_formula(formula, time, time_effects)
    if absorb:
        raise ValueError(f"formula={formula!r}: " + SUPPORTED)
    if time_effects and time is None:
        raise ValueError("time_effects=True needs the period of each row: pass time= (the period ids)")
    if time_effects and conventions == "hansen1999":
        raise ValueError("time_effects=True needs conventions='default' (Hansen's paper has firm effects only)")
    draws = n_boot if isinstance(n_boot, (list, tuple)) else [n_boot]
    if bootstrap is None and any(b != 0 for b in draws):
        # in memory the default is the residual bootstrap: the same call must not silently
        # switch to another test on Dask
        raise ValueError("on Dask pass bootstrap='wild' (the in-memory default, 'residual', resamples whole "
                         "entities, which span partitions; fit in memory with bootstrap='wild' for the same "
                         "p-values)")
    if bootstrap not in (None, "wild"):
        raise ValueError(f"bootstrap={bootstrap!r}: " + SUPPORTED)
    bootstrap = "wild"
    if backend not in (None, "auto", "numba"):
        raise ValueError(f"backend={backend!r}: on Dask the sweep's sums run on the Numba kernels; leave backend "
                         "unset")
    if conventions == "hansen1999" and time is None:
        raise ValueError("conventions='hansen1999' deletes each entity's last period and needs the period of "
                         "each row: pass time= (the period ids)")
    if not isinstance(threshold_var, str):
        raise TypeError(f"threshold_var={threshold_var!r} must be a column name")
    zs = [regime_vars] if isinstance(regime_vars, str) else list(regime_vars)
    if not zs:
        raise ValueError("regime_vars needs at least one regime-dependent regressor")
    extra = list(dict.fromkeys([entity, threshold_var, *zs] + ([time] if time else [])))
    plain = lhs in ddf.columns and all(t in ddf.columns for t in terms)
    if plain:
        needed = [lhs, *terms]
    else:
        from fastpanel.ols.formula import _required

        needed = _required(f"{lhs} ~ {' + '.join(terms) or '1'}")
    missing = [c for c in dict.fromkeys(needed + extra) if c not in ddf.columns]
    if missing:
        raise ValueError(f"column(s) {missing} are not in the Dask DataFrame (its columns: {list(ddf.columns)})")
    y_col, xs = lhs, list(terms)
    if not plain:
        from fastpanel.distributed.ols import _Y_COLUMN, _design_frame
        from fastpanel.ols.formula import _design

        if "C(" in formula:
            raise ValueError(f"formula {formula!r}: categorical terms C(...) are not available on Dask (their levels "
                             "span partitions); add dummy columns first, or " + SUPPORTED)
        rhs = " + ".join(terms) or "1"
        cols = list(dict.fromkeys(needed + extra))
        sample = ddf[cols].head(20, npartitions=-1)
        with np.errstate(all="ignore"):
            xs = list(_design(lhs, rhs, sample, True)[2])
        meta = _design_frame(sample.iloc[:0], lhs, rhs, extra, xs)
        ddf = ddf[cols].map_partitions(_design_frame, lhs, rhs, extra, xs, meta=meta)
        y_col = _Y_COLUMN
    overlap = [z for z in zs if z in xs]
    if overlap:
        raise ValueError(f"regime_vars {overlap} also appear among the regressors of the formula; "
                         "remove them from the formula (their regime slopes include a common slope)")
    from fastpanel.distributed.ols import _levels

    say(f"round 1: shuffling {ddf.npartitions} partitions by {entity!r}")
    strict = conventions == "hansen1999"
    sp = _TSpec(y_col, tuple(xs), tuple(zs), threshold_var, entity, time, None, strict, strict, bool(time_effects))
    ddf = ddf[list(dict.fromkeys([y_col, *xs] + extra))].shuffle(on=entity)
    meta = _prepare(ddf._meta, sp)
    ddf = ddf.map_partitions(_prepare, sp, meta=meta).persist()
    times = _levels(ddf, time) if time else None
    if time_effects and times.size > DIRECT_MAX_LEVELS:
        raise ValueError(f"the period effect {time!r} has {times.size} levels; on Dask at most {DIRECT_MAX_LEVELS} "
                         "(a dense period system): " + SUPPORTED)
    sp = replace(sp, times=times)
    run = _Runner(dask, ddf)

    # 1. survey
    say("round 2: missing values, the threshold variable's distinct values, moments")
    sv = run.each(_survey, sp)
    n_dropped = sum(s["n_nan"] for s in sv)
    n = sum(s["n"] for s in sv)
    if n == 0:
        raise ValueError(f"every row has a missing value in {[lhs, threshold_var, *zs, *xs]} or a missing id")
    dup = sum(s["dup"] for s in sv)
    if dup:
        e, t = next(s["dup_example"] for s in sv if s["dup"])
        raise ValueError(f"entity and time identify {dup} row(s) twice, e.g. entity {e!r} in period {t!r}; each "
                         "(entity, time) pair must be unique")
    n_entities = sum(s["n_entities"] for s in sv)
    if max(s["max_count"] for s in sv) < 2:
        raise ValueError(f"every entity has a single row ({n} rows, {n_entities} entities): the entity effects "
                         "absorb everything; the threshold model needs entities observed more than once")
    if strict and min(s["min_count"] for s in sv) < 2:
        raise ValueError("conventions='hansen1999' deletes one period per entity: every entity needs >= 2 periods")
    same = np.logical_and.reduce([s["same"] for s in sv if s["n"]])
    if same.any():
        j, i = np.argwhere(same)[0]
        raise ValueError(f"regime variable {zs[j]!r} is also in X ({xs[i]!r}); its regime slopes already include "
                         "a common slope: remove it from X")
    K, trims, boots = fit_options(n_thresholds, n_boot, trim, grid, bootstrap, weights, seed, level, ci_level,
                                  has_time=time is not None, is_balanced=False)
    say("round 3: the candidate grid from the distinct values of the threshold variable")
    cand, windows, below = _candidates(dask, ddf, sp, trims, grid, K, sum(s["n_distinct"] for s in sv))
    W = sum(s["W"] for s in sv)
    mean = sum(s["W"] * s["mean"] for s in sv) / W
    ref = np.diag(sum(s["C"] + s["W"] * np.outer(s["mean"] - mean, s["mean"] - mean) for s in sv))
    periods, gamma = None, None
    if sp.two_way:  # the period effects of [X, Z, y]: the in-memory two-way transform's global step
        periods = _Periods(sum(s["S"] for s in sv), n, n_entities)
        gamma = periods.solve(sum(s["r"] for s in sv))
    say("round 4: Gram matrices of the transformed regressors")
    grams = run.total(_grams, sp, gamma)
    keep_x, dropped = select_regressors(grams["gram_within"], ref, xs, zs)
    gram = grams["gram"]
    cols = list(keep_x) + list(range(len(xs), len(xs) + len(zs)))  # [X_kept, Z] of [X, Z, y]
    GB = gram[np.ix_(cols, cols)]
    norms = np.sqrt(np.diag(GB))
    norms[norms == 0] = 1.0
    Binv = np.linalg.inv(GB / np.outer(norms, norms))
    g = _Glob(tuple(keep_x), norms, Binv, cand, gamma)
    n_out = sum(s["n_out"] for s in sv)
    x_names = [xs[j] for j in keep_x]

    # 2. y-free sums
    say(f"round 5: the y-free sums of {cand.shape[0]} candidates")
    pre = run.total(_precompute, sp, g)
    H, P, Q0 = pre["H"], pre["P"], pre["Q0"]
    Cg = None
    if sp.two_way:  # the period block of A'A, -O'M_E S^+ M_E O, on the global running sums
        Cg = -np.linalg.pinv(periods.S, rcond=1e-12, hermitian=True)
        Q0 = Q0 + np.einsum("gkp,kl,glq->gpq", pre["s"], Cg, pre["s"])
    Kcc = np.ascontiguousarray(Q0 - np.einsum("gkp,kl,glq->gpq", P, Binv, P))
    engine = _DaskEngine(run, sp, g, H, Kcc, P, periods, pre.get("s"), Cg)
    if min(below.min(), n - below.max()) < len(zs) + 1:
        raise ValueError(f"a regime at the edge of the grid has only {min(below.min(), n - below.max())} "
                         "observations; raise trim")

    # 3. the sequence on the data, then the bootstrap
    say("rounds 6+: the threshold sequence")
    obs, ee = engine.residual_u(_Replicates("observed"))
    seq = run_sequence(engine, obs, ee, K, windows, keep_curves=True, hansen=strict, Yt=obs)
    kB = len(keep_x) + len(zs)
    n_periods = int((np.sum([s["per_period"] for s in sv], axis=0) > 0).sum()) if time else 0
    n_absorbed = n_entities + (n_periods - 1 if sp.two_way else 0)  # as PanelTransform.n_absorbed
    info = _TransformInfo(n_out=n_out, n_absorbed=n_absorbed, n_entities=n_entities)
    sigma2, statistic = f_statistics(n_out, n_absorbed, kB, len(zs), strict)
    F_obs = [float(statistic(seq, k)[0]) for k in range(1, K + 1)]
    null_thresholds = {1: [], 2: [int(seq.idx["1"][0])]}
    if K >= 2:
        null_thresholds[3] = [int(seq.idx["1r"][0]), int(seq.idx["2"][0])]
    wild_seed = seed_value(seed)
    G = cand.shape[0]
    chunk = int(np.clip(4_000_000 // max(G * (1 + 2 * len(zs) ** 2), 1), 1, 64))
    boot_F: list[np.ndarray] = []
    for k in range(1, K + 1):
        B = boots[k - 1]
        if B <= 0:
            boot_F.append(np.empty(0))
            continue
        null = tuple(sorted(float(cand[i]) for i in null_thresholds[k]))
        null_gamma = _design_gamma(run, sp, g, periods, null)
        R = run.r_factor(sp, g, null, _Replicates("observed"), null_gamma)
        p = R.shape[1] - 1
        null_coef = np.linalg.lstsq(R[:p, :p], R[:p, p], rcond=None)[0]
        out = np.empty(B)
        for start in range(0, B, chunk):
            count = min(chunk, B - start)
            say(f"bootstrap of test {k}: draws {start + 1}-{start + count} of {B}")
            reps = _Replicates("wild", count=count, test=k, start=start, seed=wild_seed, weights=weights, null=null,
                               null_coef=null_coef, null_gamma=null_gamma)
            reps, ee_b = engine.residual_u(reps)
            if strict and k == 3:
                s = run_sequence(engine, reps, ee_b, k, windows, hansen=True, refine=False, window2=windows[2],
                                 Yt=reps)
            else:
                s = run_sequence(engine, reps, ee_b, k, windows, hansen=strict, Yt=reps)
            out[start:start + count] = statistic(s, k)
        boot_F.append(out)
    say("last rounds: coefficients and standard errors")
    model = DaskThresholdModel(run, sp, g, x_names, conventions, dropped, periods)
    res = ThresholdResults._build(model, engine, info, seq, K, cand, windows, F_obs, boot_F, sigma2, ci_level,
                                  "numba (dask)", bootstrap, strict, level)
    res.n_dropped = n_dropped
    if time is not None:
        present = run.total(_regime_counts, sp, np.array([-np.inf, np.inf])).sum(axis=1) > 0
        res._time_labels = times[present]
    model.prefetch(info, [res.thresholds_for(k) for k in range(K + 1)], strict)
    return res
