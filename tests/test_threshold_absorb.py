"""Threshold model with a third fixed effect (entity + period + region-by-period cells), checked
against a dummy-variable oracle written here: every SSR of the grid equals one least-squares
fit on explicit dummies per candidate, and the reported slopes, standard errors and degrees of
freedom equal the dummy regression at the estimated threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel
from fastpanel.kernels.threshold_reference import ssr_curve_naive
from fastpanel.panel_threshold.grid import candidate_grid
from fastpanel.panel_threshold.scan import ThresholdEngine, run_sequence
from fastpanel.panel_threshold.transform import PanelTransform


def dummies(ids: list[np.ndarray]) -> np.ndarray:
    return np.hstack([(np.unique(c, return_inverse=True)[1][:, None] == np.arange(np.unique(c).size)).astype(float)
                      for c in ids])


def dummy_residual_maker(ids: list[np.ndarray]):
    """M -> M minus its least-squares fit on the dummies of ``ids`` (dense lstsq)."""
    D = dummies(ids)

    def apply(M: np.ndarray) -> np.ndarray:
        return M - D @ np.linalg.lstsq(D, M, rcond=None)[0]
    return apply


def panel(rng: np.random.Generator, N: int = 14, T: int = 6, unbalanced: bool = True, offset: float = 0.0):
    counts = rng.integers(3, T + 1, size=N) if unbalanced else np.full(N, T)
    ent = np.repeat(np.arange(N), counts)
    time = np.concatenate([np.sort(rng.choice(T, c, replace=False)) for c in counts])  # gaps anywhere
    region = rng.integers(0, 3, N)[ent]
    cell = region * T + time  # region-by-period: nests the period effects within regions
    n = ent.size
    X = rng.normal(size=(n, 2))
    Z = rng.normal(size=(n, 1))
    q = np.round(rng.uniform(size=n), 2)
    y = (X.sum(1) + Z[:, 0] * (1 + 1.5 * (q <= 0.5)) + rng.normal(size=N)[ent] + rng.normal(size=3 * T)[cell]
         + rng.normal(size=n) + offset)
    perm = rng.permutation(n)  # rows in any order
    return y[perm], X[perm], Z[perm], q[perm], ent[perm], time[perm], cell[perm]


@pytest.mark.parametrize("unbalanced", [False, True])
def test_ssr_curves_equal_dummy_regression(unbalanced) -> None:
    rng = np.random.default_rng(4)
    y, X, Z, q, ent, time, cell = panel(rng, unbalanced=unbalanced)
    order = np.lexsort((time, ent))  # PanelTransform's contract: rows sorted by (entity, time)
    y, X, Z, q, ent, time, cell = (a[order] for a in (y, X, Z, q, ent, time, cell))
    tr = PanelTransform(ent, time, drop_last=False, time_effects=True, extra=[np.unique(cell, return_inverse=True)[1]])
    oracle = dummy_residual_maker([ent, time, cell])
    B = np.column_stack([X, Z])
    np.testing.assert_allclose(tr.apply(B), oracle(B), atol=1e-10)
    yt = tr.apply(y)
    cand = candidate_grid(q, 0.1, "exact")
    eng = ThresholdEngine(tr, B, Z, q, cand, strict=False, backend="numba")
    U, ee = eng.residual_u(yt)
    for fixed in ([], [cand[4]]):
        idx = np.array([[int(np.searchsorted(cand, f)) for f in fixed]], dtype=np.int64)
        S, _ = eng.scan(U, ee, idx.reshape(1, -1))
        naive = ssr_curve_naive(oracle, oracle(y), B, Z, q, cand, fixed)
        np.testing.assert_allclose(S[0], naive, rtol=1e-10, atol=1e-10 * naive.max())
    seq = run_sequence(eng, U, ee, 1, (0,))
    assert cand[seq.idx["1"][0]] == cand[np.argmin(ssr_curve_naive(oracle, oracle(y), B, Z, q, cand))]
    # degrees of freedom: the rank of the dummies (region-by-period absorbs the periods)
    assert tr.n_absorbed == np.linalg.matrix_rank(dummies([ent, time, cell]))


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_formula_third_effect_equals_dummy_ols(backend) -> None:
    rng = np.random.default_rng(8)
    y, X, Z, q, ent, time, cell = panel(rng, N=30, unbalanced=True, offset=1e6)
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "z": Z[:, 0], "q": q, "firm": ent,
                       "year": time, "cell": cell.astype(str)})
    res = fastpanel.threshold("y ~ x1 + x2 | firm + year + cell", df, threshold_var="q", regime_vars="z",
                              n_boot=0, trim=0.1, grid="exact", backend=backend)
    g = res.thresholds[0]
    low = (q <= g).astype(float)
    R = np.column_stack([X, Z[:, 0] * low, Z[:, 0] * (1 - low)])
    D = dummies([ent, time, cell])
    full = np.column_stack([R, D])
    coef, _, rank, _ = np.linalg.lstsq(full, y, rcond=None)
    u = y - full @ coef
    df_resid = y.size - rank
    assert res.df_resid == df_resid
    # slopes and their iid standard errors from the dummy regression (FWL on the dummies)
    Rt = dummy_residual_maker([ent, time, cell])(R)
    cov = (u @ u / df_resid) * np.linalg.inv(Rt.T @ Rt)
    np.testing.assert_allclose(res.params.to_numpy(), coef[:4], rtol=1e-8)
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(cov)), rtol=1e-8)
    # the threshold minimises the dummy-regression SSR over the grid
    ssr = ssr_curve_naive(dummy_residual_maker([ent, time, cell]), dummy_residual_maker([ent, time, cell])(y),
                          np.column_stack([X, Z]), Z, q, res.grid)
    assert g == res.grid[np.argmin(ssr)]


def test_third_effect_bad_inputs() -> None:
    rng = np.random.default_rng(1)
    y, X, Z, q, ent, time, cell = panel(rng)
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "z": Z[:, 0], "q": q, "firm": ent, "year": time, "cell": cell})
    with pytest.raises(ValueError, match="column 'nope' is not in data"):
        fastpanel.threshold("y ~ x1 | firm + year + nope", df, threshold_var="q", regime_vars="z", n_boot=0)
    with pytest.raises(ValueError, match="conventions='default'"):
        fastpanel.ThresholdPanel(y, X, Z, q, ent, time, conventions="hansen1999", absorb=[cell])
    yb, Xb, Zb, qb, eb, tb, _ = panel(np.random.default_rng(2), N=1500, unbalanced=False)
    big = np.random.default_rng(3).integers(0, 2500, yb.size)  # too many levels besides the entity's
    with pytest.raises(ValueError, match="at most 2000"):
        fastpanel.ThresholdPanel(yb, Xb, Zb, qb, eb, tb, time_effects=True, absorb=[big]).fit(n_boot=0, trim=0.1)
    df.loc[3, "cell"] = np.nan  # a missing id of the third effect: dropped and counted
    res = fastpanel.threshold("y ~ x1 | firm + year + cell", df, threshold_var="q", regime_vars="z", n_boot=0,
                              trim=0.1)
    assert res.n_dropped == 1 and res.nobs == y.size - 1


def test_cli_third_effect_equals_python_api(tmp_path) -> None:
    from fastpanel.cli import main

    rng = np.random.default_rng(6)
    y, X, Z, q, ent, time, cell = panel(rng, N=25)
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "z": Z[:, 0], "q": q, "firm": ent, "year": time, "cell": cell})
    path = tmp_path / "p.csv"
    df.to_csv(path, index=False)
    import contextlib
    import io
    import json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["threshold", str(path), "y ~ x1 | firm + year + cell", "--threshold-var", "q", "--regime", "z",
                   "--boot", "0", "--trim", "0.1", "--format", "json", "--quiet"])
    assert rc == 0
    payload = json.loads(buf.getvalue())
    ref = fastpanel.threshold("y ~ x1 | firm + year + cell", df, threshold_var="q", regime_vars="z", n_boot=0,
                              trim=0.1)
    assert payload["thresholds"] == [float(ref.thresholds[0])]
    assert payload["df_resid"] == ref.df_resid and payload["nobs"] == ref.nobs
    assert payload["ssr"] == pytest.approx(ref.ssr, rel=1e-12)
