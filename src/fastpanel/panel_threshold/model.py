"""Panel threshold regression (Hansen 1999): the estimator and its formula front end.

Conventions
-----------
``"default"``: the within transform keeps every period; lower regime ``q <= g``; error
variance in the F and LR statistics ``S / (n - n_fe - k)`` (degrees-of-freedom corrected);
time effects and unbalanced panels (together too) are allowed.
``"hansen1999"``: Hansen's own computation: after the within transform the last period of
each entity is deleted (n(T-1) rows); ``sigma^2 = S / (n(T-1))``; lower regime ``q < g``;
OLS standard errors divide ``e'e`` by ``n(T-1) - n - k``. It follows Hansen's R program
(thresh_p) where it differs from the paper: the exclusion window around a threshold already
estimated (``nn`` grid values below it, ``qnt = grid * trim``) removes the 1-based grid positions
``nn - qnt <= i < nn + qnt``; in the bootstrap of the third test the first threshold is kept at
its estimate (no refinement) and the third stage's trim sets the window around the second;
critical values are order statistics (position ``ceil(p B)`` of the sorted draws) and the
p-value is the share of draws with ``F* > F``.

``"default"`` uses a window symmetric around the fixed threshold's index (``|j - f| <= grid *
trim``), refines the first threshold in every bootstrap draw as in the estimation, interpolates
critical values (``np.quantile``) and counts ``F* >= F``. In both, draws within ``1e-9``
relative of ``F`` are ties (so every backend gives the same p-value), the grid is the quantiles
of the distinct values of ``q`` (or every distinct value with ``grid="exact"``) trimmed at each
end, and ``res.n_selected`` is Hansen's sequential choice at ``level``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from fastpanel._backend import resolve_backend
from fastpanel._validation import as_pandas
from fastpanel.panel_threshold.bootstrap import (bootstrap_statistics, draw_bootstrap, entity_keys, seed_value,
                                                 wild_weights)
from fastpanel.panel_threshold.grid import exclusion_window, grid_positions
from fastpanel.panel_threshold.results import ThresholdResults
from fastpanel.panel_threshold.scan import ThresholdEngine, run_sequence
from fastpanel.panel_threshold.transform import PanelTransform

__all__ = ["ThresholdPanel", "threshold"]

_CONVENTIONS = ("default", "hansen1999")
_MAX_THRESHOLDS = 3


def _per_test(value: Any, n: int, name: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}={value!r} must have one entry per threshold ({n})")
        return tuple(value)
    return (value,) * n


def _as_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a number")
    return float(value)


def _as_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer (0 skips the bootstrap)")
    return int(value)


def _as_2d(a: Any, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but y has {n}")
    return arr


class ThresholdPanel:
    """Fixed-effects panel threshold regression with up to three thresholds.

    ``y_it = mu_i (+ lambda_t) + X_it'b + sum_r Z_it'd_r 1(g_{r-1} < q_it <= g_r) + e_it``.

    Parameters
    ----------
    y : (n,) dependent variable.
    X : (n, k) regime-independent regressors (may have zero columns).
    Z : (n,) or (n, pz) regime-dependent regressors.
    q : (n,) threshold variable.
    entity : (n,) entity identifiers (any dtype).
    time : (n,) period identifiers or None (rows in time order within each entity).
    x_names, z_names : names of the columns of X and Z.
    conventions : {"default", "hansen1999"}
    time_effects : bool
        Add period effects (``conventions="default"``; balanced or unbalanced panels).
    absorb : sequence of (n,) id arrays, optional
        Further fixed effects absorbed exactly beside the entity (and period) effects, e.g.
        region-by-year cells (``conventions="default"``). Their levels, together with the
        periods', may number at most 2000; degrees of freedom count the identified effects
        (the rank of the dummies).
    absorb_names : names of the ``absorb`` effects (for messages).
    """

    def __init__(self, y: Any, X: Any, Z: Any, q: Any, entity: Any, time: Any = None, *,
                 x_names: Sequence[str] | None = None, z_names: Sequence[str] | None = None,
                 q_name: str = "q", conventions: Literal["default", "hansen1999"] = "default",
                 time_effects: bool = False, absorb: Sequence[Any] | None = None,
                 absorb_names: Sequence[str] | None = None):
        if conventions not in _CONVENTIONS:
            raise ValueError(f"conventions={conventions!r}: choose 'default' or 'hansen1999'")
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one value per row), got shape {y.shape}")
        n = y.shape[0]
        X = _as_2d(np.empty((n, 0)) if X is None else X, "X", n)
        Z = _as_2d(Z, "Z", n)
        q = np.asarray(q, dtype=np.float64).ravel()
        if q.shape[0] != n:
            raise ValueError(f"q has {q.shape[0]} rows but y has {n}")
        if Z.shape[1] == 0:
            raise ValueError("Z (regime_vars) needs at least one regime-dependent regressor")
        for name, arr in (("y", y), ("X", X), ("Z", Z), ("q (threshold_var)", q)):
            bad = ~np.isfinite(arr) if arr.ndim == 1 else ~np.isfinite(arr).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"{name} has {int(bad.sum())} rows with NaN or inf; remove them first "
                    "(the threshold model needs complete rows; fastpanel never drops rows silently)")
        if n == 0:
            raise ValueError("y is empty: the threshold model needs data")
        ent_factor = _id_factor(entity, "entity", n)
        ent_levels, ent_codes = ent_factor.levels, ent_factor.codes
        self.has_time = time is not None
        if time is None:
            # Without periods the rows of an entity have no order that could be trusted: every
            # computation that needs one (period effects, Hansen's deleted last period, the
            # residual bootstrap's aligned periods) refuses below, and nothing else uses these.
            order = np.argsort(ent_codes, kind="stable")
            time_codes = np.zeros(n, dtype=np.int64)
        else:
            time_factor = _id_factor(time, "time", n)
            time_codes = time_factor.codes
            order = np.lexsort((time_codes, ent_codes))
            key = ent_codes[order] * (time_codes.max() + 1) + time_codes[order]
            dup = np.flatnonzero(np.diff(key) == 0)
            if dup.size:
                r = order[dup[0]]
                raise ValueError(
                    f"entity and time identify {dup.size} row(s) twice, e.g. entity {ent_levels[ent_codes[r]]!r} in "
                    f"period {time_factor.levels[time_codes[r]]!r}; each (entity, time) pair must be unique")
        if time is None and time_effects:
            raise ValueError("time_effects=True needs the period of each row: pass time= (the period ids)")
        if time is None and conventions == "hansen1999":
            raise ValueError("conventions='hansen1999' deletes each entity's last period and needs the period of "
                             "each row: pass time= (the period ids)")
        absorb = [] if absorb is None else list(absorb)
        if absorb and conventions == "hansen1999":
            raise ValueError("absorb= (further fixed effects) needs conventions='default' (Hansen's paper has firm "
                             "effects only)")
        self.absorb_names = (list(absorb_names) if absorb_names is not None
                             else [f"absorb[{k}]" for k in range(len(absorb))])
        self.absorb_codes = [_id_factor(a, nm, n).codes[order].astype(np.int64)
                             for a, nm in zip(absorb, self.absorb_names)]
        self._order = order
        self.y, self.X, self.Z, self.q = y[order], X[order], Z[order], q[order]
        self.entity_codes = ent_codes[order].astype(np.int64)
        self.time_codes = np.asarray(time_codes)[order].astype(np.int64)
        self.entity_levels = ent_levels
        self.x_names = list(x_names) if x_names is not None else [f"x{i}" for i in range(X.shape[1])]
        self.z_names = list(z_names) if z_names is not None else [f"z{i}" for i in range(Z.shape[1])]
        self.q_name = q_name
        self.conventions = conventions
        self.time_effects = bool(time_effects)
        counts = np.bincount(self.entity_codes)
        if counts.max() < 2:
            raise ValueError(f"every entity has a single row ({n} rows, {counts.shape[0]} entities): the entity "
                             "effects absorb everything; the threshold model needs entities observed more than once")
        self.is_balanced = bool(np.all(counts == counts[0]))
        if self.time_effects and conventions == "hansen1999":
            raise ValueError("time_effects=True needs conventions='default' (Hansen's paper has firm effects only)")
        if conventions == "hansen1999" and counts.min() < 2:
            raise ValueError("conventions='hansen1999' deletes one period per entity: every entity needs >= 2 periods")
        # a regime variable that is also a regime-independent regressor makes the model singular
        for j in range(self.Z.shape[1]):
            for i in range(self.X.shape[1]):
                if np.array_equal(self.Z[:, j], self.X[:, i]):
                    raise ValueError(
                        f"regime variable {self.z_names[j]!r} is also in X ({self.x_names[i]!r}); its "
                        "regime slopes already include a common slope: remove it from X")
        self.X, self.x_names, self.dropped_regressors = _drop_collinear(
            self.X, self.Z, self.x_names, self.z_names, self.entity_codes,
            self.time_codes if self.time_effects else None, self.absorb_codes)

    def fit(self, n_thresholds: int = 1, *, n_boot: int | Sequence[int] = 300,
            trim: float | Sequence[float] = 0.01, grid: int | str = 400,
            bootstrap: Literal["residual", "wild"] = "residual",
            weights: Literal["rademacher", "mammen", "webb"] = "rademacher",
            seed: int | None = None, ci_level: float = 0.95, backend: str | None = None,
            progress: bool = True, level: float = 0.05) -> ThresholdResults:
        """Estimate the thresholds sequentially and bootstrap the F tests.

        Parameters
        ----------
        n_thresholds : 1, 2 or 3.
        n_boot : draws per test (one number or one per test); 0 skips the bootstrap.
        trim : trimming share per threshold (one number or one per threshold).
        grid : number of quantiles of the distinct values of q, or "exact".
        bootstrap : "residual" (entity blocks, balanced panels) or "wild".
        weights : wild weights, "rademacher", "mammen" or "webb".
        seed : seed of ``np.random.default_rng`` (residual bootstrap) or of the counter-based
            generator of the wild weights, which keys each weight by (seed, test, replicate,
            entity label): the same draws for any row order, and on Dask for any partitioning.
        ci_level : level of the threshold confidence intervals.
        level : significance level of Hansen's sequential selection (``res.n_selected``).
        backend : "cpp", "numba", "cuda", "auto" or None (default in force).
        progress : tqdm bar on the bootstrap when stderr is a terminal.

        Returns
        -------
        ThresholdResults
        """
        K, trims, boots = fit_options(n_thresholds, n_boot, trim, grid, bootstrap, weights, seed, level, ci_level,
                                      has_time=self.has_time, is_balanced=self.is_balanced)
        strict = self.conventions == "hansen1999"
        distinct, counts = np.unique(self.q, return_counts=True)
        cand, windows, _ = candidates(distinct, counts, trims, grid, K, strict, self.q_name)
        name = resolve_backend(backend, "threshold")
        drop_last = self.conventions == "hansen1999"
        tr = PanelTransform(self.entity_codes, self.time_codes, drop_last=drop_last,
                            time_effects=self.time_effects, backend=name, extra=self.absorb_codes)
        B = np.column_stack([self.X, self.Z])
        engine = ThresholdEngine(tr, B, self.Z, self.q, cand, strict=strict, backend=name)
        # a regime with too few observations makes the slopes unidentified
        min_obs = min(engine.cuts.min(), self.q.shape[0] - engine.cuts.max())
        if min_obs < self.Z.shape[1] + 1:
            raise ValueError(
                f"a regime at the edge of the grid has only {min_obs} observations; raise trim")
        yt = tr.apply(self.y)
        U, ee = engine.residual_u(yt)
        seq = run_sequence(engine, U, ee, K, windows, keep_curves=True, hansen=strict, Yt=yt[:, None])
        sigma2, statistic = f_statistics(tr.n_out, tr.n_absorbed, B.shape[1], self.Z.shape[1], drop_last)
        F_obs = [float(statistic(seq, k)[0]) for k in range(1, K + 1)]
        # thresholds of each null model: k-1 thresholds
        null_thresholds = {1: [], 2: [int(seq.idx["1"][0])]}
        if K >= 2:
            null_thresholds[3] = [int(seq.idx["1r"][0]), int(seq.idx["2"][0])]
        rng = np.random.default_rng(seed)
        # wild weights: keyed by (seed, test, replicate, entity label), the same on Dask
        wild_seed = seed_value(seed) if bootstrap == "wild" else 0
        keys = entity_keys(self.entity_levels) if bootstrap == "wild" else None
        boot_F: list[np.ndarray] = []
        for k in range(1, K + 1):
            if boots[k - 1] <= 0:
                boot_F.append(np.empty(0))
                continue
            fitted, resid = self._fit_transformed(tr, yt, [cand[i] for i in null_thresholds[k]], strict)
            if bootstrap == "wild":
                draws = wild_weights(wild_seed, k, 0, boots[k - 1], keys, weights)
            else:
                draws = draw_bootstrap(rng, bootstrap, weights, boots[k - 1], tr.n_entities)
            boot_F.append(bootstrap_statistics(engine, k, fitted, resid, draws, bootstrap, windows,
                                               statistic, progress=progress, hansen=strict))
        return ThresholdResults._build(self, engine, tr, seq, K, cand, windows, F_obs, boot_F,
                                       sigma2, ci_level, name, bootstrap, strict, level)

    def _design(self, thresholds: Sequence[float], strict: bool) -> tuple[np.ndarray, list[str]]:
        """Untransformed regressors [X, Z*1(regime r) for r = 0..m] and their names."""
        return (regime_design(self.X, self.Z, self.q, thresholds, strict),
                design_names(self.x_names, self.z_names, self.q_name, thresholds, strict))

    def _linear_fit(self, tr: PanelTransform, thresholds: Sequence[float], strict: bool) -> dict:
        """The pieces of the fit with the given thresholds that the results need: slopes, SSR,
        ``(X~'X~)^-1``, the White and entity-cluster meats, by a QR of the transformed design."""
        design, names = self._design(thresholds, strict)
        Xt = tr.apply(design)
        yt = tr.apply(self.y)
        Qx, Rx = np.linalg.qr(Xt)
        coef = np.linalg.solve(Rx, Qx.T @ yt)
        resid = yt - Xt @ coef
        Rinv = np.linalg.inv(Rx)
        scores = np.zeros((tr.n_entities, Xt.shape[1]))
        np.add.at(scores, tr.entity[tr.keep], Xt * resid[:, None])
        return {"names": names, "coef": coef, "nobs": Xt.shape[0], "ssr": float(resid @ resid),
                "yty": float(yt @ yt), "XtXinv": Rinv @ Rinv.T, "meat": (Xt * resid[:, None] ** 2).T @ Xt,
                "cluster_meat": scores.T @ scores, "resid": resid}

    def _regime_counts(self, edges: np.ndarray, strict: bool) -> np.ndarray:
        """Rows per (period, regime) for the regime edges ``[-inf, thresholds..., inf]``."""
        regime = np.searchsorted(edges, self.q, side="right" if strict else "left") - 1
        counts = np.zeros((int(self.time_codes.max()) + 1, edges.shape[0] - 1), dtype=np.int64)
        np.add.at(counts, (self.time_codes, regime), 1)
        return counts

    def _fit_transformed(self, tr: PanelTransform, yt: np.ndarray, thresholds: Sequence[float],
                         strict: bool) -> tuple[np.ndarray, np.ndarray]:
        R = tr.apply(self._design(thresholds, strict)[0])
        coef, *_ = np.linalg.lstsq(R, yt, rcond=None)
        fitted = R @ coef
        return fitted, yt - fitted


def f_statistics(n_out: int, n_absorbed: int, kB: int, pz: int, drop_last: bool):
    """``sigma2(S, k)`` (the error variance of the model with k thresholds) and
    ``statistic(seq, k)`` (the F statistic of k against k - 1 thresholds, Hansen 1999 eq. 12)."""

    def sigma2(S: np.ndarray, k: int) -> np.ndarray:
        if drop_last:
            return S / n_out
        return S / (n_out - n_absorbed - kB - k * pz)

    def statistic(s: Any, k: int) -> np.ndarray:
        if k == 1:
            return (s.ssr0 - s.ssr["1"]) / sigma2(s.ssr["1"], 1)
        if k == 2:
            return (s.ssr["1"] - s.ssr["2"]) / sigma2(s.ssr["2"], 2)
        return (s.ssr["1r"] - s.ssr["3"]) / sigma2(s.ssr["3"], 3)

    return sigma2, statistic


def _regime_label(q: str, lo: float, hi: float, strict: bool) -> str:
    lt, le = ("<", "<=") if strict else ("<=", "<")
    if np.isinf(lo) and np.isinf(hi):
        return "all"
    if np.isinf(lo):
        return f"1({q} {lt} {hi:.4g})"
    if np.isinf(hi):
        return f"1({q} {'>=' if strict else '>'} {lo:.4g})"
    return f"1({lo:.4g} {le if strict else '<'} {q} {lt} {hi:.4g})"


def design_names(x_names: Sequence[str], z_names: Sequence[str], q_name: str, thresholds: Sequence[float],
                 strict: bool) -> list[str]:
    """Names of the columns of :func:`regime_design` (``"z x 1(q <= 0.5)"``)."""
    edges = [-np.inf, *sorted(thresholds), np.inf]
    names = list(x_names)
    for r in range(len(edges) - 1):
        label = _regime_label(q_name, edges[r], edges[r + 1], strict)
        names += [f"{z} x {label}" for z in z_names]
    return names


def fit_options(n_thresholds: Any, n_boot: Any, trim: Any, grid: Any, bootstrap: Any, weights: Any, seed: Any,
                level: Any, ci_level: Any, *, has_time: bool, is_balanced: bool
                ) -> tuple[int, tuple[float, ...], tuple[int, ...]]:
    """Check the options of :meth:`ThresholdPanel.fit`; returns (K, trims, n_boot per test)."""
    if isinstance(n_thresholds, bool) or n_thresholds not in (1, 2, 3):
        raise ValueError(f"n_thresholds={n_thresholds!r} must be 1, 2 or 3")
    K = int(n_thresholds)
    trims = tuple(_as_number(t, "trim") for t in _per_test(trim, K, "trim"))
    boots = tuple(_as_count(b, "n_boot") for b in _per_test(n_boot, K, "n_boot"))
    if seed is not None and not isinstance(seed, np.random.SeedSequence) and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed={seed!r} must be a non-negative integer (or None for a fresh seed)")
    if grid is None or isinstance(grid, bool) or not (grid == "exact" or isinstance(grid, (int, np.integer))):
        raise ValueError(f"grid={grid!r} must be an integer >= 2 (number of quantiles) or 'exact'")
    if any(not (0.0 <= t < 0.5) for t in trims):
        raise ValueError(f"trim={trim!r}: each trimming share must lie in [0, 0.5)")
    if bootstrap not in ("residual", "wild"):
        raise ValueError(f"bootstrap={bootstrap!r}: choose 'residual' or 'wild'")
    if bootstrap == "residual" and any(boots) and not has_time:
        raise ValueError("bootstrap='residual' resamples whole entity histories period by period and needs "
                         "the period of each row: pass time= (or use bootstrap='wild')")
    if bootstrap == "residual" and any(boots) and not is_balanced:
        raise ValueError("bootstrap='residual' resamples whole entity blocks and needs a balanced "
                         "panel; this panel is unbalanced: use bootstrap='wild'")
    if bootstrap == "wild" and weights not in ("rademacher", "mammen", "webb"):
        raise ValueError(f"weights={weights!r}: choose 'rademacher', 'mammen' or 'webb'")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must lie in (0, 1), e.g. 0.05")
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level={ci_level!r} must lie in (0, 1)")
    return K, trims, boots


def candidates(distinct: np.ndarray, counts: np.ndarray, trims: tuple[float, ...], grid: int | str, K: int,
               strict: bool, q_name: str) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """The candidate grid from the distinct values of q and their counts (both regimes
    non-empty), the exclusion window of each stage and the lower-regime sizes; refuses a grid
    too small for K."""
    pos = grid_positions(counts, trims[0], grid)
    upto = np.cumsum(counts)  # rows with q <= distinct[i]
    return finish_candidates(distinct[pos], upto[pos], counts[pos], int(upto[-1]), distinct.shape[0], trims, grid,
                             K, strict, q_name)


def finish_candidates(cand: np.ndarray, upto: np.ndarray, count: np.ndarray, total: int, n_distinct: int,
                      trims: tuple[float, ...], grid: int | str, K: int, strict: bool, q_name: str
                      ) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Keep the candidates whose two regimes are non-empty and set the exclusion windows.

    ``upto`` and ``count``: the rows with ``q <= cand`` and ``q == cand``. Returns the
    candidates, the windows and the lower-regime sizes; refuses a grid too small for K.
    """
    below = upto - count if strict else upto
    keep = (below > 0) & (below < total)
    cand, below = cand[keep], below[keep]
    windows = tuple(exclusion_window(t, grid, cand.shape[0]) for t in trims)
    needed = 2 * sum(windows[1:]) + K + 1
    if cand.shape[0] < max(needed, 2):
        raise ValueError(
            f"threshold_var {q_name!r} has {n_distinct} distinct values, which leaves "
            f"{cand.shape[0]} candidates after trimming {trims}; {K} threshold(s) need at least "
            f"{max(needed, 2)} candidates: lower n_thresholds or trim, or use grid='exact'")
    return cand, windows, below


def regime_design(X: np.ndarray, Z: np.ndarray, q: np.ndarray, thresholds: Sequence[float], strict: bool
                  ) -> np.ndarray:
    """``[X, Z 1(regime 0), ..., Z 1(regime m)]`` for the sorted thresholds: regime r holds
    ``g_{r-1} < q <= g_r`` (``g_{r-1} <= q < g_r`` when ``strict``, Hansen's program)."""
    edges = [-np.inf, *sorted(thresholds), np.inf]
    cols = [X]
    for r in range(len(edges) - 1):
        lo, hi = edges[r], edges[r + 1]
        ind = ((q >= lo) & (q < hi)) if strict else ((q > lo) & (q <= hi))
        cols.append(Z * ind[:, None])
    return np.column_stack(cols)


def _id_factor(ids: Any, name: str, n: int):
    """Dense codes of entity or period ids; missing ids are refused (the formula front end
    drops and counts those rows before they get here)."""
    from fastpanel.factor import factorize

    if ids is None:
        raise ValueError(f"{name} is None; pass one {name} id per row")
    if np.ndim(ids) != 1:
        raise ValueError(f"{name} must be 1-D (one id per row), got shape {np.shape(ids)}")
    f = factorize(ids, name)
    if f.n_obs != n:
        raise ValueError(f"{name} has {f.n_obs} rows but y has {n}")
    if f.has_missing:
        raise ValueError(
            f"{name} has {int((f.codes < 0).sum())} missing ids (NaN, None or inf); drop those rows first, or use "
            "fastpanel.threshold(formula, data), which drops and counts them")
    return f


def threshold(formula: str, data: Any, *, threshold_var: str, regime_vars: str | Sequence[str],
              n_thresholds: int = 1, time: str | None = None, conventions: str = "default",
              time_effects: bool = False, **fit_kwargs: Any) -> ThresholdResults:
    """Fit a panel threshold regression from a formula ``"y ~ x1 + x2 | entity"``.

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2 | entity"`` (regime-independent regressors) or ``"y ~ 1 | entity"``
        when every regressor is regime dependent; ``"y ~ x | entity + time"`` adds period
        effects (as in :func:`fastpanel.feols`) with ``time`` the period column;
        ``"y ~ x | entity + time + region"`` absorbs further effects (``absorb=`` of
        :class:`ThresholdPanel`; at most 2000 levels besides the entity's). Terms may be
        formulaic expressions such as ``np.log(x)``.
    data : pandas, polars or Dask DataFrame.
        A Dask DataFrame is fitted out of core (:mod:`fastpanel.distributed.threshold`: entity
        effects, wild bootstrap; the same numbers as in memory).
    threshold_var : column of the threshold variable.
    regime_vars : column(s) with regime-dependent slopes.
    n_thresholds : 1, 2 or 3.
    time : optional period column: rows are ordered by (entity, period). Needed for period
        effects, ``conventions="hansen1999"`` and the residual bootstrap.
    conventions, time_effects : see :class:`ThresholdPanel`.
    **fit_kwargs : passed to :meth:`ThresholdPanel.fit` (n_boot, trim, grid, bootstrap, seed, ...).

    Returns
    -------
    ThresholdResults
        ``n_dropped`` counts the rows deleted for missing values (NaN or inf in a variable,
        missing entity or period id); regressors collinear with others or absorbed by the
        effects are dropped with a warning and listed in ``dropped_regressors``.
    """
    if type(data).__module__.startswith("dask"):  # a Dask DataFrame: the distributed fit
        from fastpanel.distributed.threshold import threshold_dask

        return threshold_dask(formula, data, threshold_var=threshold_var, regime_vars=regime_vars,
                              n_thresholds=n_thresholds, time=time, conventions=conventions,
                              time_effects=time_effects, **fit_kwargs)
    data = as_pandas(data)
    yname, terms, entity_name, time, time_effects, absorb_cols = parse_formula(formula, time, time_effects)
    zs = [regime_vars] if isinstance(regime_vars, str) else list(regime_vars)
    if not isinstance(threshold_var, str):
        raise TypeError(f"threshold_var={threshold_var!r} must be a column name")
    if yname not in data.columns and "(" in yname:  # an expression such as np.log(gdp)
        from formulaic import model_matrix

        with np.errstate(all="ignore"):  # log of <= 0 gives NaN: those rows are counted below
            ycol = np.asarray(model_matrix(f"{yname} - 1", data, na_action="ignore"), dtype=np.float64)
        if ycol.ndim != 2 or ycol.shape[1] != 1:
            raise ValueError(f"formula={formula!r}: the left-hand side must be one variable")
        data = data.assign(**{yname: ycol[:, 0]})
    for col in [yname, entity_name, threshold_var, *zs] + ([time] if time else []) + absorb_cols:
        if col not in data.columns:
            raise ValueError(f"column {col!r} is not in data")
    if all(t in data.columns for t in terms):
        Xdf = data[terms].astype(float)
    else:
        from formulaic import model_matrix

        with np.errstate(all="ignore"):  # log of <= 0 gives NaN: those rows are counted below
            Xdf = model_matrix(" + ".join(terms) + " - 1", data, na_action="ignore")
    overlap = [z for z in zs if z in Xdf.columns]
    if overlap:
        raise ValueError(f"regime_vars {overlap} also appear among the regressors of the formula; "
                         "remove them from the formula (their regime slopes include a common slope)")
    used = [yname, threshold_var, *zs]
    values = np.column_stack([data[used].to_numpy(dtype=np.float64, na_value=np.nan),
                              np.asarray(Xdf, dtype=np.float64)])
    bad = ~np.isfinite(values).all(axis=1)
    from fastpanel.factor import factorize

    for col in [entity_name] + ([time] if time else []) + absorb_cols:
        bad |= factorize(data[col], col).codes < 0
    n_dropped = int(bad.sum())
    if n_dropped == len(data):
        raise ValueError(f"every row has a missing value in {used + list(Xdf.columns)} or a missing id")
    keep = ~bad
    sub = data.loc[keep] if n_dropped else data
    Xv = np.asarray(Xdf, dtype=np.float64)[keep]
    x_names = [str(c) for c in Xdf.columns]
    y = sub[yname].to_numpy(float)
    Z = sub[zs].to_numpy(float)
    ent = sub[entity_name].to_numpy()
    per = None if time is None else sub[time].to_numpy()
    model = ThresholdPanel(y, Xv, Z, sub[threshold_var].to_numpy(float), ent, per,
                           x_names=x_names, z_names=zs, q_name=threshold_var,
                           conventions=conventions, time_effects=time_effects,
                           absorb=[sub[c].to_numpy() for c in absorb_cols], absorb_names=absorb_cols)
    res = model.fit(n_thresholds, **fit_kwargs)
    res.n_dropped = n_dropped
    if time is not None:
        res._time_labels = np.unique(per)
    return res


def select_regressors(A: np.ndarray, ref: np.ndarray, x_names: list[str], z_names: list[str]
                      ) -> tuple[list[int], list[str]]:
    """Which regime-independent regressors to keep, from ``A``, the Gram matrix of the
    within-transformed ``[Z, X]``, and ``ref``, each column's centred sum of squares.

    A column is kept when its squared distance from the span of the columns kept before it
    exceeds ``1e-10 ref``; a regime variable that fails refuses the model, a regressor is
    dropped with a :class:`~fastpanel.ols.model.CollinearityWarning` naming it.

    Returns
    -------
    keep_x : indices of the kept columns of X; dropped : names of the dropped ones.
    """
    from fastpanel.ols.model import CollinearityWarning

    names = list(z_names) + list(x_names)
    nz = len(z_names)
    kept: list[int] = []
    for j in range(len(names)):
        resid = A[j, j]
        if kept:
            akj = A[kept, j]
            resid -= akj @ np.linalg.lstsq(A[np.ix_(kept, kept)], akj, rcond=None)[0]
        if resid > 1e-10 * ref[j] and ref[j] > 0:
            kept.append(j)
        elif j < nz:
            raise ValueError(
                f"regime variable {names[j]!r} is collinear with the other regressors or absorbed by the fixed "
                "effects; its regime slopes are not identified: choose another regime variable")
    dropped = [names[j] for j in range(nz, len(names)) if j not in kept]
    if dropped:
        warnings.warn(
            f"dropped {len(dropped)} regressor(s) collinear with other regressors or absorbed by the fixed "
            f"effects: {', '.join(dropped)}; their coefficients are not identified (remove them to silence "
            "this warning)", CollinearityWarning, stacklevel=4)
    return [j - nz for j in kept if j >= nz], dropped


def parse_formula(formula: str, time: str | None, time_effects: bool
                  ) -> tuple[str, list[str], str, str | None, bool, list[str]]:
    """``"y ~ x1 + x2 | entity [+ time [+ other ...]]"`` into (y, regressor terms, entity, period
    column, time_effects, further effects); a second effect is the period column (and must
    agree with ``time=`` when both are given)."""
    if not isinstance(formula, str) or "~" not in formula or "|" not in formula:
        raise ValueError(f"formula={formula!r} must look like 'y ~ x1 + x2 | entity' or 'y ~ x | entity + time'")
    lhs, rest = formula.split("~", 1)
    rhs, fe = rest.rsplit("|", 1)
    effects = [t.strip() for t in fe.split("+") if t.strip()]
    if not effects:
        raise ValueError(f"formula={formula!r}: after '|' name the entity column, or 'entity + time' for entity "
                         "and period effects, or 'entity + time + other' to absorb further effects")
    if len(effects) >= 2:
        if time is not None and time != effects[1]:
            raise ValueError(f"formula names the period column {effects[1]!r} but time={time!r}; give one of them")
        time, time_effects = effects[1], True
    terms = [t.strip() for t in rhs.split("+") if t.strip() not in ("", "1", "0")]
    return lhs.strip(), terms, effects[0], time, bool(time_effects), effects[2:]


def _drop_collinear(X: np.ndarray, Z: np.ndarray, x_names: list[str], z_names: list[str], entity: Any,
                    time: Any, extra: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Drop regime-independent regressors that are collinear with earlier ones or absorbed by
    the fixed effects, as :func:`fastpanel.feols` does (warning by name); a regime variable
    that is refuses the model.

    The decision is made on the within-transformed columns, relative to each column's centred
    sum of squares (a regressor 1e8 + noise is not "absorbed").
    """
    from fastpanel.within import within

    B = np.column_stack([Z, X])  # regime variables first: they are never the ones dropped
    if B.shape[1] == 0:
        return X, x_names, []
    ids = [entity] + ([] if time is None else [time]) + list(extra or [])
    ids = ids[0] if len(ids) == 1 else ids
    Bc = B - B[0]  # shift: the effects absorb constants, the transform keeps the digits
    Bt = within(Bc, ids)
    ref = np.einsum("ij,ij->j", Bc - Bc.mean(0), Bc - Bc.mean(0))
    keep_x, dropped = select_regressors(Bt.T @ Bt, ref, x_names, z_names)
    return X[:, keep_x], [x_names[j] for j in keep_x], dropped
