"""The moment structure of the first-differenced (or orthogonal-deviations) GMM estimator of
Seo and Shin (2016), built once per fit.

Algorithm
---------
The model, in levels, for entity i and period t:

    y_it = x_it' b + (1, x_it')' d 1{q_it > g} + mu_i + e_it,   x_it = (y_i,t-1 .. y_i,t-p, w_it)

(kink variant: the regime term is d (q_it - g) 1{q_it > g}). A transformation A that removes
mu_i (first differences, or forward orthogonal deviations, Arellano and Bover 1995) maps the
level rows r of an entity to transformed equations j; instruments z_j (lagged levels of y and
of endogenous regressors, transformed exogenous regressors, a constant, user instruments)
give the moments  g_i = sum_j z_j (A e_i)_j.  Because the moments are linear in anything
computed row by row in levels,

    sum_j z_j (A v)_j = sum_r zeta_r v_r,     zeta_r = sum_j A_jr z_j,

so every moment of the model is a sum over level rows of the "pulled-back" instrument
zeta_r (an L-vector, sparse) times a level quantity. This is what makes the threshold search
a prefix sum (see gmm.py): the regime term enters only through 1{q_r > g} on level rows.
The first-step weight matrix is (1/N sum_i Z_i' A_i A_i' Z_i)^-1 = (zeta' zeta / N)^-1
(for first differences A A' is Seo and Shin's H matrix: 2 on the diagonal, -1 beside it;
for orthogonal deviations it is the identity).

Cost: building zeta is O(nnz(Z) * T) for orthogonal deviations and O(nnz(Z)) for
differences; nothing here depends on the threshold.

Naming: ``_r`` level rows (usable equations in levels), ``_j`` transformed equations,
``L`` instruments, ``N`` entities, ``k`` slope regressors (lags first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["GMMDesign", "build_design"]


@dataclass
class GMMDesign:
    """Level rows and pulled-back instruments of one dynamic threshold fit."""

    y: np.ndarray            # (n_r,) dependent variable on level rows
    X: np.ndarray            # (n_r, k) lags of y, then the regressors
    q: np.ndarray            # (n_r,) threshold variable
    entity: np.ndarray       # (n_r,) entity code 0..N-1 of each level row
    zeta: sp.csr_matrix      # (n_r, L) pulled-back instruments
    n_entities: int
    n_equations: int         # transformed equations (first differences / deviations)
    instrument_names: list[str]
    x_names: list[str]
    rows: np.ndarray         # (n_r,) index of each level row in the caller's arrays
    periods_used: np.ndarray = field(default_factory=lambda: np.empty(0))
    period: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # (n_r,) period index


def _positions(entity: np.ndarray, period: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows sorted by (entity, period), and a lookup key -> row for lag searches."""
    span = int(period.max()) + 2
    key = entity.astype(np.int64) * span + period.astype(np.int64)
    order = np.argsort(key, kind="stable")
    skey = key[order]
    if skey.size > 1 and np.any(skey[1:] == skey[:-1]):
        dup = int(np.sum(skey[1:] == skey[:-1]))
        raise ValueError(f"entity and time identify {dup} duplicate rows; each (entity, period) pair must "
                         "appear once")
    return order, skey, span


def _lag_rows(skey: np.ndarray, order: np.ndarray, key: np.ndarray, lag: int, period: np.ndarray) -> np.ndarray:
    """Row index of (entity, period - lag) for each row, -1 where that row does not exist."""
    target = key - lag
    pos = np.searchsorted(skey, target)
    pos = np.minimum(pos, skey.size - 1)
    found = (skey[pos] == target) & (period - lag >= 0)
    out = np.full(key.shape, -1, dtype=np.int64)
    out[found] = order[pos[found]]
    return out


def build_design(y: np.ndarray, X: np.ndarray, q: np.ndarray, entity: np.ndarray, period: np.ndarray, *,
                 lags: int, endog: np.ndarray, extra_iv: np.ndarray, transform: str, collapse: bool,
                 max_lag: int | None, y_name: str, x_names: list[str], iv_names: list[str],
                 exog_levels: np.ndarray | None = None, y_instruments: bool = True) -> GMMDesign:
    """Build the level rows, the transformation and the pulled-back instruments.

    Parameters
    ----------
    y, X, q : values per row (already free of missing values).
    entity : dense entity codes per row.
    period : integer period index per row (consecutive periods differ by one).
    lags : number of lags of y among the regressors (0 gives a static model).
    endog : boolean mask over the columns of X: instrumented by their lagged levels.
    exog_levels : boolean mask over the columns of X (disjoint from ``endog``): instrumented by
        their levels x_1 .. x_t in the equation dated t, current level included (xthenreg's
        ``exogenous()``); the other columns by their own transformed values.
    y_instruments : whether lagged levels of y are instruments (False: xthenreg's static model).
    extra_iv : (n, m) additional exogenous instruments, used in levels.
    transform : "fd" (first differences) or "fod" (forward orthogonal deviations).
    collapse : one instrument column per lag instead of one per (period, lag) (Roodman 2009).
    max_lag : deepest lag of the level instruments (None: every available lag).
    """
    n = y.shape[0]
    kx = X.shape[1]
    order, skey, span = _positions(entity, period)
    key = entity.astype(np.int64) * span + period.astype(np.int64)
    lag_cache: dict[int, np.ndarray] = {}

    def lag_row(ell: int) -> np.ndarray:  # row of (entity, period - ell) per row, -1 if absent
        if ell not in lag_cache:
            lag_cache[ell] = _lag_rows(skey, order, key, ell, period)
        return lag_cache[ell]

    # Level rows: y's own lags must exist (a gap or the start of a panel removes the row).
    ok = np.ones(n, dtype=bool)
    for ell in range(1, lags + 1):
        ok &= lag_row(ell) >= 0
    level = np.flatnonzero(ok)
    level = level[np.argsort(key[level], kind="stable")]
    n_r = level.size
    if n_r == 0:
        raise ValueError(f"no row has its {lags} lag(s) of {y_name} observed; the panel is too short")
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[level] = np.arange(n_r)
    Xl = np.empty((n_r, lags + kx))
    for ell in range(1, lags + 1):
        Xl[:, ell - 1] = y[lag_row(ell)[level]]
    Xl[:, lags:] = X[level]
    names = [f"L{ell}.{y_name}" for ell in range(1, lags + 1)] + list(x_names)
    ent_r = entity[level]
    per_r = period[level]

    # The transformation A (n_j x n_r) and the level row each equation is dated by.
    if transform == "fd":
        prev = np.full(n_r, -1, dtype=np.int64)
        lag1 = lag_row(1)[level]
        has_prev = lag1 >= 0
        prev[has_prev] = row_of[lag1[has_prev]]
        eq = np.flatnonzero(prev >= 0)
        n_j = eq.size
        A = sp.csr_matrix((np.concatenate([np.ones(n_j), -np.ones(n_j)]),
                           (np.concatenate([np.arange(n_j)] * 2), np.concatenate([eq, prev[eq]]))),
                          shape=(n_j, n_r))
        first_lag = 2
    elif transform == "fod":
        # Rows are sorted by (entity, period); m = number of later level rows of the entity.
        starts = np.flatnonzero(np.r_[True, ent_r[1:] != ent_r[:-1]])
        ends = np.r_[starts[1:], n_r]
        cnt = (ends - starts)[np.searchsorted(starts, np.arange(n_r), side="right") - 1]
        pos_in = np.arange(n_r) - np.repeat(starts, ends - starts)
        m = cnt - pos_in - 1
        eq = np.flatnonzero(m > 0)
        n_j = eq.size
        c = np.sqrt(m[eq] / (m[eq] + 1.0))
        # entries: +c at the row itself, -c/m at each of the m later rows of the entity
        reps = m[eq]
        jj = np.repeat(np.arange(n_j), reps)
        offs = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        later = np.repeat(eq, reps) + 1 + offs
        vals = -np.repeat(c / reps, reps)
        A = sp.csr_matrix((np.concatenate([c, vals]), (np.concatenate([np.arange(n_j), jj]),
                                                       np.concatenate([eq, later]))), shape=(n_j, n_r))
        first_lag = 1
    else:
        raise ValueError(f"transform={transform!r} must be 'fd' (first differences) or 'fod' (forward "
                         "orthogonal deviations, for unbalanced panels)")
    if n_j == 0:
        raise ValueError("no transformed equation: every entity has fewer than two usable periods")

    # Instruments z_j, as COO triplets; columns named by (kind, period, lag) or (kind, lag).
    t_j = per_r[eq]
    lvl_j = level[eq]  # caller's row of each equation
    lev = np.zeros(kx, dtype=bool) if exog_levels is None else np.asarray(exog_levels, dtype=bool)
    kx_exo = [c for c in range(kx) if not endog[c] and not lev[c]]
    kx_end = [c for c in range(kx) if endog[c]]
    kx_lev = [c for c in range(kx) if lev[c] and not endog[c]]
    trip_j: list[np.ndarray] = []
    trip_key: list[list[tuple]] = []
    trip_v: list[np.ndarray] = []

    def add(rows_j: np.ndarray, vals: np.ndarray, labels: list[tuple]) -> None:
        trip_j.append(rows_j)
        trip_v.append(vals)
        trip_key.append(labels)

    def lag_block(values: np.ndarray, label: str, lowest: int = first_lag) -> None:
        deepest = int(t_j.max())
        top = deepest if max_lag is None else min(deepest, max_lag)
        for ell in range(lowest, top + 1):
            src = lag_row(ell)[lvl_j]
            have = src >= 0
            jr = np.flatnonzero(have)
            v = values[src[have]]
            add(jr, v, [(label, ell) if collapse else (label, int(t), ell) for t in t_j[jr]])

    if y_instruments:
        lag_block(y, y_name)
    for c in kx_end:
        lag_block(X[:, c], x_names[c])
    for c in kx_lev:  # levels from the equation's own period back: lag 0 first
        lag_block(X[:, c], x_names[c], lowest=0)
    AX = A @ X[level] if kx_exo else None
    for c in kx_exo:
        add(np.arange(n_j), AX[:, c], [(x_names[c],) if collapse else (x_names[c], int(t)) for t in t_j])
    add(np.arange(n_j), np.ones(n_j), [("const",) if collapse else ("const", int(t)) for t in t_j])
    for c in range(extra_iv.shape[1]):
        add(np.arange(n_j), extra_iv[lvl_j, c], [(iv_names[c],) if collapse else (iv_names[c], int(t))
                                                 for t in t_j])

    labels = [lab for block in trip_key for lab in block]
    uniq = sorted(set(labels), key=lambda t: (str(t[0]), *t[1:]))
    col = {lab: i for i, lab in enumerate(uniq)}
    cols = np.fromiter((col[lab] for lab in labels), dtype=np.int64, count=len(labels))
    Z = sp.csr_matrix((np.concatenate(trip_v), (np.concatenate(trip_j), cols)), shape=(n_j, len(uniq)))
    Z.eliminate_zeros()
    used = np.flatnonzero(np.diff(Z.tocsc().indptr) > 0)  # a column with no entry is no moment
    Z = Z[:, used]
    uniq = [uniq[i] for i in used]
    zeta = sp.csr_matrix(A.T @ Z)
    zeta.sum_duplicates()

    # Entities without a transformed equation carry no moment: renumber the rest.
    has_eq = np.zeros(n_r, dtype=bool)
    has_eq[A.indices] = True
    ent_keep = np.unique(ent_r[has_eq])
    keep_r = np.isin(ent_r, ent_keep)
    # A level row of such an entity has zeta_r == 0 already; dropping it changes no moment.
    sel = np.flatnonzero(keep_r)
    ent_code = np.searchsorted(ent_keep, ent_r[sel])

    def label(t: tuple) -> str:
        if t[0] in (y_name, *[x_names[c] for c in kx_end + kx_lev]) and len(t) >= 2:
            ell = t[-1]
            return f"L{ell}.{t[0]}" + ("" if collapse else f"@{t[1]}")
        return str(t[0]) + ("" if collapse or len(t) < 2 else f"@{t[1]}")

    return GMMDesign(y=y[level][sel], X=Xl[sel], q=q[level][sel], entity=ent_code, zeta=zeta[sel],
                     n_entities=int(ent_keep.size), n_equations=int(n_j),
                     instrument_names=[label(t) for t in uniq], x_names=names, rows=level[sel],
                     periods_used=np.unique(t_j), period=per_r[sel].astype(np.int64))
