"""Shared test data for the OLS comparisons (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def panel(n_entities: int = 40, n_periods: int = 6, *, balanced: bool = False, seed: int = 0) -> pd.DataFrame:
    """Random panel: entity/year effects, 3 regressors, positive weights, nested and crossed clusters."""
    rng = np.random.default_rng(seed)
    e = np.repeat(np.arange(n_entities), n_periods)
    t = np.tile(np.arange(2000, 2000 + n_periods), n_entities)
    df = pd.DataFrame({"entity": e, "year": t})
    if not balanced:
        drop = rng.random(len(df)) < 0.2
        drop[df.year == 2000] = False  # every entity keeps at least two periods
        drop[df.year == 2001] = False
        df = df[~drop].reset_index(drop=True)
    n = len(df)
    a = rng.normal(size=n_entities)[df.entity]
    g = rng.normal(size=n_periods)[df.year - 2000]
    df["x1"] = rng.normal(size=n) + 0.5 * a
    df["x2"] = rng.normal(size=n) + 0.3 * g
    df["x3"] = rng.gamma(2.0, size=n) + 0.1
    df["y"] = 1.0 + 0.8 * df.x1 - 0.4 * df.x2 + 0.2 * df.x1 * df.x2 + a + g + rng.normal(size=n) * (1 + 0.5 * np.abs(df.x1))
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    df["region"] = df.entity // 5  # entities nested in regions
    df["cl"] = rng.integers(0, 12, size=n)  # cluster crossed with both effects
    return df


def assert_close(actual, expected, rtol: float = 1e-8) -> None:
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)
