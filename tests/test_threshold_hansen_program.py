"""``conventions="hansen1999"`` follows Hansen's own program (thresh_p), not only the paper
(issue 11, part 1), and Hansen's sequential selection (part 2).

The oracle is a plain re-implementation of Hansen's bootstrap loop written here: least squares
at every grid point (no prefix sums), his exclusion window (1-based positions
``nn - qnt <= i < nn + qnt`` around a fixed threshold with ``nn`` grid values below it), and in
the third test's draws the first threshold kept unrefined with the third stage's window. It is
fed the same draws as the package and must give every bootstrap F.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastpanel
from _threshold_data import hansen_model


def _hansen_transform(A: np.ndarray, ent: np.ndarray, T: int) -> np.ndarray:
    """Demean by entity (rows sorted by entity, then period), then delete each last period."""
    N = A.shape[0] // T
    B = A.reshape(N, T, -1)
    B = B - B.mean(axis=1, keepdims=True)
    return B[:, :-1].reshape(N * (T - 1), -1)


def _ssr(yt: np.ndarray, Rt: np.ndarray) -> float:
    beta, *_ = np.linalg.lstsq(Rt, yt, rcond=None)
    r = yt - Rt @ beta
    return float(r @ r)


class _Naive:
    def __init__(self, X, Z, q, ent, T, cand):
        self.X, self.Z, self.q, self.ent, self.T, self.cand = X, Z, q, ent, T, cand

    def design_t(self, gammas):
        edges = [-np.inf, *sorted(gammas), np.inf]
        cols = [self.X] + [self.Z * ((self.q >= lo) & (self.q < hi))[:, None] for lo, hi in zip(edges[:-1], edges[1:])]
        return _hansen_transform(np.column_stack(cols), self.ent, self.T)

    def curve(self, yt, fixed, qnt):
        G = len(self.cand)
        S = np.full(G, np.inf)
        for j in range(G):
            # Hansen's window: nn grid values below each fixed threshold (0-based index f),
            # excluded 1-based positions i with nn - qnt <= i < nn + qnt
            if any(f - qnt <= j + 1 < f + qnt for f in fixed):
                continue
            S[j] = _ssr(yt, self.design_t([self.cand[f] for f in fixed] + [self.cand[j]]))
        return S

    def statistics(self, yt, k, qnts):
        n = yt.shape[0]
        S0 = _ssr(yt, self.design_t([]))
        S1 = self.curve(yt, [], 0)
        i1 = int(np.argmin(S1))
        if k == 1:
            return (S0 - S1[i1]) / (S1[i1] / n)
        if k == 2:
            S2 = self.curve(yt, [i1], qnts[1])
            i2 = int(np.argmin(S2))
            return (S1[i1] - S2[i2]) / (S2[i2] / n)
        # third test: the first threshold is not refined; the third stage's window around both
        S2 = self.curve(yt, [i1], qnts[2])
        i2 = int(np.argmin(S2))
        S3 = self.curve(yt, [i1, i2], qnts[2])
        i3 = int(np.argmin(S3))
        return (S2[i2] - S3[i3]) / (S3[i3] / n)


def test_every_bootstrap_F_equals_hansens_loop() -> None:
    rng = np.random.default_rng(7)
    N, T, grid = 24, 6, 40
    ent = np.repeat(np.arange(N), T)
    per = np.tile(np.arange(T), N)
    n = N * T
    X = rng.normal(size=(n, 1))
    Z = rng.normal(size=(n, 1))
    q = rng.uniform(size=n)
    y = X[:, 0] + Z[:, 0] * (1 + (q > 0.3) + (q > 0.7)) + rng.normal(size=N)[ent] + rng.normal(size=n)
    trims = (0.05, 0.05, 0.1)
    B, seed = 12, 11
    model = fastpanel.ThresholdPanel(y, X, Z, q, ent, per, conventions="hansen1999")
    res = model.fit(3, n_boot=B, trim=trims, grid=grid, seed=seed, progress=False)
    cand = res.grid
    naive = _Naive(X, Z, q, ent, T, cand)
    qnts = tuple(int(np.floor(grid * t + 1e-9)) for t in trims)
    yt = _hansen_transform(y[:, None], ent, T)[:, 0]
    draws_rng = np.random.default_rng(seed)
    nulls = {1: [], 2: list(res.thresholds_for(1)), 3: list(res.thresholds_for(2))}
    for k in (1, 2, 3):
        draws = draws_rng.integers(0, N, size=(B, N))  # the package's residual-bootstrap draws
        Rt = naive.design_t(nulls[k])
        beta, *_ = np.linalg.lstsq(Rt, yt, rcond=None)
        fitted = Rt @ beta
        blocks = (yt - fitted).reshape(N, T - 1)
        expected = [naive.statistics(fitted + blocks[d].ravel(), k, qnts) for d in draws]
        np.testing.assert_allclose(res.boot_F[k - 1], expected, rtol=1e-8)


def test_hansen_third_threshold_ci_matches_his_program() -> None:
    res = hansen_model().fit(3, n_boot=0, trim=(0.01, 0.01, 0.05), progress=False)
    # Hansen's R program on the same data (issue 11): [0.03747, 1.00593]
    np.testing.assert_allclose(res.ci[1], (0.03747, 1.00593), atol=5e-6)
    np.testing.assert_allclose(res.ci[0], (0.01392, 0.01806), atol=5e-6)
    np.testing.assert_allclose(res.ci[2], (0.53049, 0.56287), atol=5e-6)
    np.testing.assert_allclose(res.tests.F.to_numpy(), [32.65, 25.80, 4.18], atol=6e-3)


def test_default_conventions_keep_the_symmetric_window() -> None:
    from fastpanel.panel_threshold.scan import _argmin_excluding

    S = np.arange(10.0)[::-1][None, :].copy()  # the arg-min is the last candidate unless excluded
    f = np.array([8])
    assert _argmin_excluding(S, [f], 1)[0][0] == 6           # excludes 7, 8, 9
    assert _argmin_excluding(S, [f], 1, hansen=True)[0][0] == 9  # excludes 6, 7 (1-based 7 <= i < 9)


def test_sequential_selection() -> None:
    from fastpanel.panel_threshold.results import sequential_selection

    assert sequential_selection(np.array([0.001, 0.375]), 0.05) == 1
    assert sequential_selection(np.array([0.001, 0.01, 0.2]), 0.05) == 2
    assert sequential_selection(np.array([0.5, 0.001]), 0.05) == 0
    assert sequential_selection(np.array([0.001, 0.01, 0.02]), 0.05) == 3
    assert sequential_selection(np.array([np.nan]), 0.05) is None


def test_n_selected_on_hansens_data() -> None:
    res = hansen_model().fit(3, n_boot=60, trim=(0.01, 0.01, 0.05), seed=1, progress=False)
    p = res.tests.pvalue.to_numpy()
    assert res.n_selected == sequential_selection_expected(p, 0.05)
    # Hansen (1999): two thresholds (F3 = 4.18 is far from significant)
    assert res.n_selected == 2
    text = res.summary()
    assert "Sequential selection at 5%: 2 threshold(s)" in text
    assert "3 vs 2: p = " in text and "does not reject" in text
    tab = res.params_for(res.n_selected)
    assert tab.shape[0] == 5 + 3  # five controls and three regime slopes
    with pytest.raises(ValueError, match="level="):
        hansen_model().fit(1, n_boot=0, level=1.5, progress=False)


def sequential_selection_expected(p: np.ndarray, level: float) -> int:
    k = 0
    while k < len(p) and p[k] < level:
        k += 1
    return k
