"""Shared data for the threshold tests (not a test module): random panels and Hansen's data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastpanel

HANSEN_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hansen1999" / "invest.dat"


def random_panel(rng, N=12, T=6, pz=1, k=2, unbalanced=False, jump=0.0):
    """y, X, Z, q, entity, time of a random panel (entities observed for 3..T periods when
    unbalanced); q is rounded so that it has ties."""
    counts = rng.integers(3, T + 1, size=N) if unbalanced else np.full(N, T)
    ent = np.repeat(np.arange(N), counts)
    time = np.concatenate([np.arange(c) for c in counts])
    n = ent.shape[0]
    X = rng.normal(size=(n, k))
    Z = rng.normal(size=(n, pz))
    q = np.round(rng.uniform(size=n), 2)  # ties on purpose
    y = X @ np.ones(k) + Z.sum(1) * (1 + jump * (q <= 0.5)) + rng.normal(size=N)[ent] + rng.normal(size=n)
    return y, X, Z, q, ent, time


def hansen_model(**names) -> fastpanel.ThresholdPanel:
    """Hansen (1999), section 6: I/K on lagged Q, Q^2, Q^3, D, QD with a CF slope by regime of D."""
    if not HANSEN_DATA.exists():
        pytest.skip(f"Hansen (1999) data not found at {HANSEN_DATA} (shared reference data)")
    d = np.loadtxt(HANSEN_DATA).reshape(565, 15, 4)
    y = d[:, 1:, 0].ravel()
    Q, CF, D = (d[:, :-1, j].ravel() for j in (1, 2, 3))
    X = np.column_stack([Q, Q**2 / 1e3, Q**3 / 1e6, D, Q * D])
    ent = np.repeat(np.arange(565), 14)
    year = np.tile(np.arange(1974, 1988), 565)
    return fastpanel.ThresholdPanel(y, X, CF, D, ent, year, conventions="hansen1999", **names)
