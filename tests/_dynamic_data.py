"""Simulated dynamic threshold panels for the tests (Seo and Shin 2016-type designs)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(N: int, T: int, *, seed: int = 0, gamma: float = 0.0, lower=(0.6, 1.0), upper=(0.3, 0.5),
             shift: float = 1.0, kink: bool = False, burn: int = 30, endog_q: bool = False,
             linear: bool = False) -> pd.DataFrame:
    """``y_it = (rho1 y_{i,t-1} + b1 x_it) 1{q <= g} + (shift + rho2 y + b2 x) 1{q > g} + a_i + e_it``.

    q_it ~ N(0, 1) (with ``endog_q`` it is correlated with e_it: q = v + 0.5 e); x_it ~ N(0, 1).
    The kink design: ``y = rho1 y_{t-1} + b1 x + shift (q - g) 1{q > g} + a + e``.
    ``linear`` sets the regime effect to zero (the null of the linearity test).
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=N)
    y = np.zeros(N)
    out = []
    for t in range(T + burn):
        e = rng.normal(size=N)
        x = rng.normal(size=N)
        q = rng.normal(size=N) + (0.5 * e if endog_q else 0.0)
        up = q > gamma
        base = lower[0] * y + lower[1] * x
        if linear:
            yn = base
        elif kink:
            yn = base + shift * (q - gamma) * up
        else:
            yn = np.where(up, shift + upper[0] * y + upper[1] * x, base)
        yn = yn + a + e
        if t >= burn:
            out.append(pd.DataFrame({"id": np.arange(N), "year": 2000 + t - burn, "y": yn, "x": x, "q": q}))
        y = yn
    return pd.concat(out, ignore_index=True)
