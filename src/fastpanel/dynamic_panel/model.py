"""``fastpanel.dynamic_panel``: the dynamic panel threshold model of Seo and Shin (2016).

The procedure (Seo and Shin 2016, section 3; Seo, Kim and Kim 2019 for the kink model and the
fast bootstrap), with the threshold searched on a grid:

1. first step: W1 = (zeta'zeta / N)^-1 (the first-difference covariance H); the threshold and
   slopes minimise the GMM objective over the grid;
2. second step: W2 = Omega^-1 from the first step's per-entity moments (eq. 11); the grid is
   searched again; the reported estimates are at the second-step minimiser;
3. covariance: (D' Omega^-1 D)^-1 / N with Omega from the second-step moments and D the
   derivative of the moments in (slopes, threshold), the threshold column by a Gaussian
   kernel with bandwidth h = 1.5 * 1.06 * N^(-1/5) * sd(q) unless ``bandwidth=`` is given;
4. linearity test: sup over the grid of the Wald statistic of "no regime effect", each point
   by two-step GMM; its p-value by the fast bootstrap (Gaussian multipliers per entity).

Defaults follow Seo, Kim and Kim's Stata command xthenreg: a grid of 100 points equally spaced
between the 20% and 80% quantiles of q (their ``trim_rate(0.4)``), h0 = 1.5, lagged levels
of y from t-2 back as instruments, a constant and the differenced exogenous regressors.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from fastpanel._validation import as_pandas
from fastpanel.dynamic_panel.ar_test import arellano_bond
from fastpanel.dynamic_panel.design import build_design
from fastpanel.dynamic_panel.gmm import GMMEngine, InstrumentWarning, whitener
from fastpanel.dynamic_panel.results import DynamicThresholdResults, LinearityTest

__all__ = ["DroppedEntitiesWarning", "dynamic_threshold", "fit_arrays", "period_index", "quantile_type2"]


class DroppedEntitiesWarning(UserWarning):
    """Entities left out whole (conventions="xthenreg": a missing value in one of their rows)."""


def period_index(time: np.ndarray, name: str = "time") -> np.ndarray:
    """Integer period positions: integer-valued numbers keep their gaps (2001, 2003 are two
    periods apart); anything else (dates, strings) is ranked, consecutive values one apart."""
    t = np.asarray(time)
    if t.dtype.kind in "iu":
        return (t - t.min()).astype(np.int64)
    if t.dtype.kind == "f":
        if not np.isfinite(t).all():
            raise ValueError(f"{name} has missing values; drop those rows first")
        if np.all(t == np.round(t)):
            return (t - t.min()).astype(np.int64)
    return np.unique(t, return_inverse=True)[1].astype(np.int64)


def quantile_type2(x: np.ndarray, p: float) -> float:
    """Quantile with Hyndman and Fan's definition 2 (the inverse empirical distribution
    function, averaging at its discontinuities), computed as moremata's ``mm_quantile`` does
    by default: with n p = j exactly an integer the mean of the j-th and (j+1)-th order
    statistics, else the ceil(n p)-th."""
    xs = np.sort(np.asarray(x, dtype=np.float64))
    n = xs.size
    if n == 0:
        raise ValueError("no values to take a quantile of")
    if n == 1:
        return float(xs[0])
    pn = p * n
    j = int(np.floor(pn))
    h = 1.0 if pn > j else 0.5
    lo, hi = min(max(j, 1), n), min(max(j + 1, 1), n)  # 1-based positions, clipped as moremata
    return float((1 - h) * xs[lo - 1] + h * xs[hi - 1])


def _grid(q: np.ndarray, grid: Any, trim: float, conventions: str = "default") -> np.ndarray:
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        if grid < 2:
            raise ValueError(f"grid={grid!r} must be at least 2 points, or an array of thresholds")
        if not 0 <= trim < 0.5:
            raise ValueError(f"trim={trim!r} must lie in [0, 0.5): the share of q left out at each end")
        if conventions == "xthenreg":
            lo, hi = quantile_type2(q, trim), quantile_type2(q, 1 - trim)
        else:
            lo, hi = np.quantile(q, [trim, 1 - trim])
        if not hi > lo:
            raise ValueError(f"the threshold variable takes one value between its {trim:.0%} and "
                             f"{1 - trim:.0%} quantiles; lower trim= or check the variable")
        return np.linspace(lo, hi, int(grid))
    g = np.unique(np.asarray(grid, dtype=np.float64))
    if g.size < 1 or not np.isfinite(g).all():
        raise ValueError("grid must be a number of points or a non-empty array of finite thresholds")
    return g


def fit_arrays(y: np.ndarray, X: np.ndarray, q: np.ndarray, entity: np.ndarray, period: np.ndarray, *,
               lags: int = 1, endog: Sequence[bool] | None = None, extra_iv: np.ndarray | None = None,
               kink: bool = False, transform: str = "fd", collapse: bool = False, max_lag: int | None = None,
               grid: Any = 100, trim: float = 0.2, n_boot: int = 300, seed: int | None = None,
               bandwidth: float | None = None, y_name: str = "y", x_names: Sequence[str] | None = None,
               q_name: str = "q", iv_names: Sequence[str] | None = None, n_dropped: int = 0,
               exog_levels: Sequence[bool] | None = None, conventions: str = "default", h0: float = 1.5,
               kink_test: str | None = None,
               ) -> DynamicThresholdResults:
    """Fit from arrays with no missing values (``entity``: dense codes; ``period``: integers).

    ``conventions="xthenreg"`` expects the rows of a strongly balanced panel (checked by
    :func:`dynamic_threshold`): its grid and bandwidth read q on every row passed."""
    import warnings

    n = y.shape[0]
    X = np.asarray(X, dtype=np.float64).reshape(n, -1)
    kx = X.shape[1]
    x_names = list(x_names) if x_names is not None else [f"x{i + 1}" for i in range(kx)]
    endog_mask = np.zeros(kx, dtype=bool) if endog is None else np.asarray(endog, dtype=bool)
    extra_iv = np.empty((n, 0)) if extra_iv is None else np.asarray(extra_iv, dtype=np.float64).reshape(n, -1)
    iv_names = list(iv_names) if iv_names is not None else [f"iv{i + 1}" for i in range(extra_iv.shape[1])]
    if not isinstance(lags, (int, np.integer)) or lags < 0:
        raise ValueError(f"lags={lags!r} must be a non-negative integer (0: a static model)")
    if lags == 0 and kx == 0:
        raise ValueError("the model has no regressor: use lags >= 1 or add regressors to the formula")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot={n_boot!r} must be a non-negative integer (0 skips the linearity test)")
    if max_lag is not None and (not isinstance(max_lag, (int, np.integer)) or max_lag < (2 if transform == "fd" else 1)):
        raise ValueError(f"max_lag={max_lag!r} must be None or an integer >= {2 if transform == 'fd' else 1} "
                         "(the first valid lag of a level instrument)")
    if bandwidth is not None and not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth={bandwidth!r} must be a positive number or None (rule of thumb)")
    if isinstance(h0, bool) or not (isinstance(h0, (int, float, np.integer, np.floating)) and np.isfinite(h0) and h0 > 0):
        raise ValueError(f"h0={h0!r} must be a positive number (the bandwidth's scale, xthenreg's h_0; 1.5 by default)")
    if conventions not in ("default", "xthenreg"):
        raise ValueError(f"conventions={conventions!r} must be 'default' or 'xthenreg'")
    if kink_test is None:
        kink_test = "xthenreg" if conventions == "xthenreg" else "kink"
    if kink_test not in ("kink", "xthenreg"):
        raise ValueError(f"kink_test={kink_test!r} must be 'kink' (the kink slope is zero) or 'xthenreg' (its "
                         "last two coefficients, as xthenreg computes it)")
    lev_mask = np.zeros(kx, dtype=bool) if exog_levels is None else np.asarray(exog_levels, dtype=bool)
    if conventions == "xthenreg":
        for arg, value, ok, what in (("lags", lags, lags in (0, 1), "1 (dynamic) or 0 (its static model)"),
                                     ("transform", transform, transform == "fd", "'fd' (first differences)"),
                                     ("collapse", collapse, not collapse, "False"),
                                     ("max_lag", max_lag, max_lag is None, "None (every lag)")):
            if not ok:
                raise ValueError(f"conventions='xthenreg': {arg}={value!r} is not expressible in xthenreg, which "
                                 f"fits {arg}={what} only; use conventions='default'")
    if (lev_mask & endog_mask).any():
        both = [x_names[c] for c in np.flatnonzero(lev_mask & endog_mask)]
        raise ValueError(f"{both} are listed both as endog and as exogenous; a regressor is instrumented one way")

    # Location: y, the regressors and the extra instruments are centred at their means. The
    # constant instrument keeps the moments' span, and a missing lagged-level instrument is
    # zero in centred units, so the fit does not depend on where the variables sit (y + 1e8
    # instruments y_t-2 + 1e8, which next to the constant makes W singular to rounding).
    # Only the intercept shift depends on the origin: it is mapped back below.
    y_loc = float(np.mean(y))
    x_loc = X.mean(axis=0)
    d = build_design(y - y_loc, X - x_loc, q, entity, period, lags=lags, endog=endog_mask,
                     extra_iv=extra_iv - extra_iv.mean(axis=0), transform=transform, collapse=collapse,
                     max_lag=max_lag, y_name=y_name, x_names=x_names, iv_names=iv_names, exog_levels=lev_mask,
                     y_instruments=not (conventions == "xthenreg" and lags == 0))
    # xthenreg reads q on all N T rows of its balanced panel (first periods included) for the
    # grid and the bandwidth; fastpanel's default, on the level rows the model uses.
    q_rule = np.asarray(q, dtype=np.float64) if conventions == "xthenreg" else d.q
    thr = _grid(q_rule, grid, trim, conventions)
    eng = GMMEngine(d, thr, kink, kink_test)
    if eng.L >= eng.N:
        warnings.warn(f"{eng.L} instruments for {eng.N} entities: the moment covariance is singular and a "
                      "pseudo-inverse is used; use collapse=True or max_lag= to reduce the instrument count",
                      InstrumentWarning, stacklevel=3)

    # Step 1: the first-difference (H) weight.
    P1 = whitener(eng.S1)
    theta1_grid, J1, _ = eng.grid_search(P1)
    if not np.isfinite(J1).any():
        raise ValueError("the regressors are collinear at every grid point (the instruments do not identify "
                         "the slopes); check for a constant or duplicated regressor, or add instruments")
    i1 = int(np.argmin(J1))  # the first minimiser, as xthenreg
    g1 = float(thr[i1])
    th1, _ = eng.at(P1, g1)
    # Step 2: the efficient weight from the first step's moments.
    Om1 = eng.omega(eng.entity_moments(eng.residuals(th1[None], np.array([g1]))))[0]
    P2 = whitener(Om1)
    theta2_grid, J2, qr2 = eng.grid_search(P2)
    i2 = int(np.argmin(J2))
    g_hat = float(thr[i2])
    theta, J = eng.at(P2, g_hat)
    Mhat = eng.entity_moments(eng.residuals(theta[None], np.array([g_hat])))[0]
    Om2 = eng.omega(Mhat[None])[0]
    if bandwidth is None:
        bandwidth = h0 * 1.06 * eng.N ** (-0.2) * float(np.std(q_rule, ddof=1))
    cov = eng.covariance(theta, g_hat, Om2, bandwidth)
    # Back to the data's origin: (1, x - c)' d = (d_0 - c'd_x) + x'd_x, so only d_0 moves.
    T = np.eye(eng.p + 1)
    if not kink:
        T[eng.k, eng.k + 1:eng.p] = -np.r_[np.full(lags, y_loc), x_loc]
    theta_out = (T @ np.r_[theta, g_hat])[:-1]
    cov = T @ cov @ T.T
    if kink:
        names = list(d.x_names) + [f"kink:({q_name}-threshold)+"]
    else:
        names = list(d.x_names) + ["shift:const"] + [f"shift:{nm}" for nm in d.x_names]
    params = pd.Series(np.r_[theta_out, g_hat], index=names + ["threshold"])
    # Hansen's J at the estimate, with the final weight: N gbar' Omega^-1 gbar
    gbar = eng.g1 - eng.jacobian_at(g_hat) @ theta
    Pf = whitener(Om2)
    j_stat = float(eng.N * np.sum((Pf @ gbar) ** 2))
    # Arellano-Bond AR(1)/AR(2) of the differenced residuals, with the second step's influence
    ar = arellano_bond(eng, theta, g_hat, P2)

    lin = None
    if n_boot > 0:
        wald, chol, _ = eng.sup_wald(P1, theta1_grid)
        stat = float(np.nanmax(wald))
        rng = np.random.default_rng(seed)
        eta = rng.standard_normal((eng.N, n_boot))
        boot = eng.fast_bootstrap(P2, qr2, chol, Mhat, eta)
        srt = np.sort(boot)
        cv = {lvl: float(srt[min(max(int(np.ceil(lvl * n_boot - 1e-9)), 1), n_boot) - 1]) for lvl in (0.90, 0.95, 0.99)}
        lin = LinearityTest(statistic=stat, pvalue=float(np.mean(boot > stat)), n_boot=int(n_boot),
                            boot_stats=boot, wald=wald, critical_values=cv,
                            restricted=[names[i] for i in eng.test_idx], kink_test=kink_test if kink else "shifts")

    return DynamicThresholdResults(
        params=params, cov=cov, threshold=g_hat, grid=thr, objective=J2, objective_first=J1,
        first_step_threshold=g1, nobs=d.n_equations, n_entities=d.n_entities, n_instruments=eng.L,
        n_dropped=n_dropped, n_level_rows=int(d.y.size), j_stat=j_stat, j_df=int(eng.L - eng.p - 1), kink=kink,
        lags=lags, transform=transform, bandwidth=float(bandwidth), y_name=y_name, q_name=q_name,
        slope_names=list(d.x_names), linearity_test=lin, instrument_names=d.instrument_names, collapse=collapse,
        conventions=conventions, ar_tests=ar)


def _columns(data: pd.DataFrame, terms: list[str]) -> pd.DataFrame:
    if all(t in data.columns for t in terms):
        return data[terms].astype(float)
    from formulaic import model_matrix

    with np.errstate(all="ignore"):  # log of <= 0 gives NaN: those rows are counted by the caller
        return model_matrix(" + ".join(terms) + " - 1", data, na_action="ignore")


def dynamic_threshold(formula: str, data: Any, *, entity: str, time: str, threshold_var: str, lags: int = 1,
                      endog: Sequence[str] = (), instruments: Sequence[str] = (), kink: bool = False,
                      transform: str = "fd", collapse: bool = False, max_lag: int | None = None,
                      grid: Any = 100, trim: float = 0.2, n_boot: int = 300, seed: int | None = None,
                      bandwidth: float | None = None, exogenous: Sequence[str] = (), conventions: str = "default",
                      h0: float = 1.5, kink_test: str | None = None) -> DynamicThresholdResults:
    """Fit the dynamic panel threshold model of Seo and Shin (2016) by first-differenced GMM.

    ``y_it = (a1' z_it) 1{q_it <= g} + (a2' z_it) 1{q_it > g} + mu_i + e_it`` with
    ``z_it = (1, y_i,t-1 .. y_i,t-lags, x_it)``, written as ``b' z + d' (1, z) 1{q > g}``: ``b``
    is the lower regime and ``d`` the shift above the threshold.

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2"`` (the lags of y are added by ``lags=``); ``"y ~ 1"`` for a pure
        autoregression. Terms may be formulaic expressions such as ``np.log(x)``.
    data : pandas or polars DataFrame.
    entity, time : entity and period columns. Integer periods keep their gaps (a missing year
        breaks the lag chain); other period types are ranked.
    threshold_var : column of the threshold variable q (may be endogenous).
    lags : lags of y among the regressors (0: a static model).
    endog : regressors correlated with the current error: instrumented by their lagged levels
        (like y) instead of their own differences.
    exogenous : regressors instrumented by their levels x_1 .. x_t in the equation dated t (the
        current level included) instead of their own difference, as xthenreg's ``exogenous()``.
    instruments : extra exogenous instrument columns, used in levels.
    kink : the kink-constrained model, continuous at the threshold:
        ``y = b' z + d (q - g) 1{q > g} + mu_i + e`` (Seo, Kim and Kim 2019).
    transform : ``"fd"`` first differences (Seo and Shin), or ``"fod"`` forward orthogonal
        deviations, which keep every observed period of an unbalanced panel (Arellano and
        Bover 1995).
    collapse : one instrument column per lag instead of one per period and lag (Roodman 2009).
    max_lag : deepest lag of the level instruments (None: all).
    grid : number of equally spaced thresholds between the ``trim`` and ``1 - trim``
        quantiles of q, or an array of candidate thresholds.
    trim : share of q left out at each end of the grid (0.2: xthenreg's ``trim_rate(0.4)``
        names the share left out at both ends together). Which q and which quantile rule
        depend on ``conventions``.
    n_boot : fast-bootstrap draws of the linearity test (0: no test).
    seed : seed of the bootstrap's Gaussian multipliers (one per entity and draw).
    bandwidth : kernel bandwidth of the threshold's standard error (None: the rule of thumb
        ``h0 * 1.06 * N^(-1/5) * sd(q)``, N entities, sd with divisor n - 1).
    h0 : the rule of thumb's scale (xthenreg's ``h_0``, 1.5).
    conventions : ``"default"``: the grid's quantiles (numpy's linear rule) and sd(q) over the
        level rows the model uses (a row with its lags of y observed), any panel, lagged levels
        of y instrument even a static (``lags=0``) model. ``"xthenreg"``: Seo, Kim and Kim's
        Stata command exactly: the quantiles by moremata's default rule (Hyndman and Fan's
        definition 2, averaging at discontinuities) and sd(q) over all N T rows, first periods
        included; a static model (``lags=0``) without lagged y among its instruments; a
        strongly balanced panel only (an entity with a missing value is dropped whole, as
        xthenreg drops it, and counted in ``n_dropped``); ``lags`` 0 or 1, ``transform="fd"``,
        no ``collapse`` or ``max_lag``; the kink model's linearity test as xthenreg computes it
        (``kink_test="xthenreg"``). See docs/dynamic-threshold.md.
    kink_test : the kink model's linearity test. ``"kink"`` (default): the kink slope is zero,
        the test of Seo, Kim and Kim (2019). ``"xthenreg"``: xthenreg's statistic, the joint
        test that its last two coefficients are zero (the last regressor's slope and the kink
        slope), with the pair's covariance as xthenreg forms it (its Jacobian's kink column has
        the opposite sign to the slopes', which flips the sign of their covariance). Default
        ``"xthenreg"`` under ``conventions="xthenreg"``.

    Returns
    -------
    DynamicThresholdResults
        ``threshold``, ``params`` / ``bse`` / ``pvalues`` / ``conf_int()`` (slopes, shifts and
        the threshold), ``regimes`` (coefficients below and above), ``linearity_test``,
        ``objective`` over ``grid``, ``j_stat``, ``n_dropped``, ``summary()``.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula={formula!r} must look like 'y ~ x1 + x2' (entity and time are keywords)")
    if "|" in formula:
        raise ValueError(f"formula={formula!r}: give the entity and period columns as entity= and time=; the "
                         "entity effects are removed by differencing")
    data = as_pandas(data)
    endog = [endog] if isinstance(endog, str) else list(endog)
    exogenous = [exogenous] if isinstance(exogenous, str) else list(exogenous)
    instruments = [instruments] if isinstance(instruments, str) else list(instruments)
    if conventions not in ("default", "xthenreg"):
        raise ValueError(f"conventions={conventions!r} must be 'default' or 'xthenreg'")
    lhs, rhs = formula.split("~", 1)
    y_name = lhs.strip()
    for arg, col in [("entity", entity), ("time", time), ("threshold_var", threshold_var)]:
        if not isinstance(col, str):
            raise TypeError(f"{arg}={col!r} must be a column name")
        if col not in data.columns:
            raise ValueError(f"{arg}={col!r} is not a column of data")
    if y_name not in data.columns:
        if "(" not in y_name:
            raise ValueError(f"the dependent variable {y_name!r} is not a column of data")
        data = data.assign(**{y_name: _columns(data, [y_name]).iloc[:, 0].to_numpy()})
    terms = [t.strip() for t in rhs.split("+") if t.strip() not in ("", "1", "0")]
    Xdf = _columns(data, terms) if terms else pd.DataFrame(index=data.index)
    x_names = [str(c) for c in Xdf.columns]
    for arg, cols in (("endog", endog), ("exogenous", exogenous)):
        for e in cols:
            if e not in x_names:
                raise ValueError(f"{arg}={e!r} is not a regressor of the formula (regressors: {x_names})")
    for c in instruments:
        if c not in data.columns:
            raise ValueError(f"instruments: column {c!r} is not in data")
    values = np.column_stack([data[[y_name, threshold_var, *instruments]].to_numpy(dtype=np.float64, na_value=np.nan),
                              np.asarray(Xdf, dtype=np.float64).reshape(len(data), -1)])
    bad = ~np.isfinite(values).all(axis=1)
    from fastpanel.factor import factorize

    ent_f = factorize(data[entity], entity)
    bad |= ent_f.codes < 0
    tcol = data[time]
    bad |= tcol.isna().to_numpy()
    if conventions == "xthenreg":
        bad = _xthenreg_sample(data, entity, time, ent_f.codes, bad)
    n_dropped = int(bad.sum())
    if n_dropped == len(data):
        raise ValueError("every row has a missing value or a missing entity/period id")
    keep = ~bad
    y = values[keep, 0]
    q = values[keep, 1]
    iv = values[keep, 2:2 + len(instruments)]
    X = values[keep, 2 + len(instruments):]
    ent = factorize(np.asarray(data[entity])[keep], entity).codes
    per = period_index(tcol.to_numpy()[keep], time)
    return fit_arrays(y, X, q, ent, per, lags=lags, endog=[n in endog for n in x_names], extra_iv=iv,
                      kink=kink, transform=transform, collapse=collapse, max_lag=max_lag, grid=grid, trim=trim,
                      n_boot=n_boot, seed=seed, bandwidth=bandwidth, y_name=y_name, x_names=x_names,
                      q_name=threshold_var, iv_names=instruments, n_dropped=n_dropped,
                      exog_levels=[n in exogenous for n in x_names], conventions=conventions, h0=h0,
                      kink_test=kink_test)


def _xthenreg_sample(data: pd.DataFrame, entity: str, time: str, ent_codes: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """xthenreg's sample: the data must be a strongly balanced panel (every entity observed
    in every period; raise otherwise, naming entities with gaps), and an entity with a missing
    value in any variable of the model is left out whole (warned and counted), as xthenreg's
    index_non_ms leaves it out. Returns the rows not used."""
    import warnings

    tcol = data[time]
    if tcol.isna().any() or (ent_codes < 0).any():
        raise ValueError(f"conventions='xthenreg' needs every row's {entity!r} and {time!r}: "
                         f"{int(tcol.isna().sum() + (ent_codes < 0).sum())} are missing")
    per = pd.factorize(tcol, sort=True)[0]
    n_ent, n_per = int(ent_codes.max()) + 1, int(per.max()) + 1
    cells = np.zeros((n_ent, n_per), dtype=np.int64)
    np.add.at(cells, (ent_codes, per), 1)
    if (cells > 1).any():
        raise ValueError(f"entity and time identify {int((cells > 1).sum())} duplicate (entity, period) pairs; "
                         "each must appear once")
    gaps = np.flatnonzero((cells == 0).any(axis=1))
    if gaps.size:
        from fastpanel.factor import factorize

        labels = factorize(data[entity], entity).levels
        shown = ", ".join(repr(getattr(labels[i], "item", lambda: labels[i])()) for i in gaps[:5])
        shown += ", ..." if gaps.size > 5 else ""
        raise ValueError(
            f"conventions='xthenreg' needs a strongly balanced panel, as xthenreg does: {gaps.size} of {n_ent} "
            f"entities lack some of the {n_per} periods of {time!r} ({shown}); use conventions='default' for "
            "unbalanced panels"
        )
    drop_ent = np.zeros(n_ent, dtype=bool)
    drop_ent[ent_codes[bad]] = True
    out = drop_ent[ent_codes]
    if drop_ent.any():
        warnings.warn(
            f"conventions='xthenreg': {int(drop_ent.sum())} entities have a missing value and are left out whole "
            f"({int(out.sum())} rows, {int(bad.sum())} of them with the missing values), as xthenreg leaves them out",
            DroppedEntitiesWarning,
            stacklevel=3,
        )
    return out
