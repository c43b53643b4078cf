"""Shared test data for the IV (2SLS) comparisons (not a test module).

Synthetic panels with one endogenous regressor ``d`` (and a second one ``d2`` for the
two-endogenous cases), strong excluded instruments ``z1, z2, z3``, two exogenous regressors,
two fixed-effect dimensions ``fe1`` (entity) and ``fe2`` (period, also as the integer ``t``),
positive weights ``w``, a cluster variable ``g`` crossed with both effects, ``region``
(entities nested in regions) and ``h`` (a third crossed cluster variable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def iv_panel(
    n_entities: int = 40,
    n_periods: int = 8,
    *,
    seed: int = 0,
    drop: float = 0.2,
    shuffle: bool = True,
    n_g: int = 13,
    keep_two: bool = True,
    noise: float = 1.0,
) -> pd.DataFrame:
    """Random unbalanced panel (rows shuffled) with an endogenous ``d`` (and ``d2``).

    ``d`` and ``d2`` are correlated with the structural error (``v`` enters ``y``), so OLS is
    biased and 2SLS is the estimator. The instruments are strong (first-stage F in the
    hundreds for the default sizes), so no WeakInstrumentWarning is raised; ``noise`` scales the
    first-stage errors (small values keep tiny panels strongly identified). ``keep_two=False``
    lets the random deletion create singletons (entities or periods with one row left).
    """
    rng = np.random.default_rng(seed)
    e = np.repeat(np.arange(n_entities), n_periods)
    t = np.tile(np.arange(n_periods), n_entities)
    df = pd.DataFrame({"fe1": e, "t": t})
    if drop > 0:
        gone = rng.random(len(df)) < drop
        if keep_two:
            gone[df.t < 2] = False  # every entity keeps two periods: no singletons
        df = df[~gone].reset_index(drop=True)
    n = len(df)
    a = rng.normal(size=n_entities)[df.fe1]
    b = rng.normal(size=n_periods)[df.t]
    df["fe2"] = df.t
    df["x1"] = rng.normal(size=n) + 0.5 * a
    df["x2"] = rng.normal(size=n) + 0.3 * b
    df["z1"] = rng.normal(size=n) + 0.4 * a
    df["z2"] = rng.gamma(2.0, size=n) - 0.2 * b
    df["z3"] = rng.normal(size=n)
    v = noise * rng.normal(size=n)
    v2 = noise * rng.normal(size=n)
    df["d"] = 0.9 * df.z1 - 0.7 * df.z2 + 0.3 * df.z3 + 0.4 * df.x1 + a + b + v
    df["d2"] = -0.5 * df.z1 + 0.2 * df.z2 + 1.1 * df.z3 + 0.2 * df.x2 + 0.5 * a + v2
    u = rng.normal(size=n) * (1.0 + 0.5 * np.abs(df.x1)) + 0.8 * v - 0.5 * v2
    df["y"] = 1.0 + 0.5 * df.x1 - 0.3 * df.x2 + 1.2 * df.d - 0.7 * df.d2 + a + b + u
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    df["g"] = rng.integers(0, n_g, size=n)
    df["h"] = rng.integers(0, 7, size=n)
    df["region"] = df.fe1 // 4
    if shuffle:
        df = df.iloc[rng.permutation(n)].reset_index(drop=True)
    return df


def real_jobtraining() -> pd.DataFrame:
    """linearmodels' ``jobtraining`` (Holzer et al.; Wooldridge Example 15.10): firm-level
    log scrap rate on training hours per employee, instrumented by the training grant, firm and
    year effects. ``lscrap`` is missing for most firms (they did not report scrap rates) and
    ``hrsemp`` for some more: those rows are dropped by the estimators (``n_dropped``), and
    firms left with one year are singletons."""
    from linearmodels.datasets import jobtraining

    d = jobtraining.load()
    return d[["fcode", "year", "lscrap", "hrsemp", "grant", "lemploy", "lsales", "union"]].copy()


def real_wage_panel(seed: int = 7, n_men: int | None = 200) -> pd.DataFrame:
    """linearmodels' ``wage_panel`` (Vella & Verbeek, 545 men x 8 years; the first ``n_men`` men
    by id, to keep the explicit-dummy oracle small) with a CONSTRUCTED instrument setting:
    ``hours`` (in thousands) is treated as endogenous and instrumented by
    ``z1 = hours + 0.2 * married + N(0, 0.3^2)`` and ``z2 = 0.1 * exper + N(0, 1)`` (fixed noise of
    a seeded generator; ``exper`` itself is absorbed by the man and year effects, so ``z2`` adds
    only its noise). Transformations of real columns plus fixed noise, not a causal design, but
    a real panel shape, real regressors and strong instruments."""
    from linearmodels.datasets import wage_panel

    d = wage_panel.load()
    if n_men is not None:
        d = d[d.nr.isin(np.sort(d.nr.unique())[:n_men])].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    n = len(d)
    out = d[["nr", "year", "lwage", "expersq", "married", "union", "exper", "occupation"]].copy()
    out["hours"] = d.hours / 1000.0
    out["z1"] = out.hours + 0.2 * d.married + 0.3 * rng.normal(size=n)
    out["z2"] = 0.1 * d.exper + rng.normal(size=n)
    out["wt"] = rng.uniform(0.5, 2.0, size=n)
    return out


def real_mroz() -> pd.DataFrame:
    """linearmodels' ``mroz`` (Mroz 1987; Wooldridge Example 15.x): log wage on experience,
    education instrumented by the parents' education; ``lwage`` is missing for the women not in
    the labour force (325 of 753 rows, dropped by the estimators)."""
    from linearmodels.datasets import mroz

    d = mroz.load()
    out = d[["lwage", "educ", "exper", "expersq", "fatheduc", "motheduc", "age", "kidslt6", "city"]].copy()
    return out
