"""The cpp and cuda threshold kernels against the Numba kernels (and naive OLS), end to end too.

The Numba kernels are themselves checked against per-grid-point least squares in
tests/test_threshold.py; here each other backend must reproduce them to 1e-10 relative on
random panels covering every transform the engine builds (one-way, Hansen's drop-last, two-way;
balanced and unbalanced; one and two regime variables; 0, 1 and 2 fixed thresholds). The cpp
scan is also compared directly with the naive per-grid-point OLS curve.
"""

from __future__ import annotations


import numpy as np
import pytest

import fastpanel
from fastpanel._backend import kernel_module
from fastpanel.kernels.threshold_reference import ssr_curve_naive
from fastpanel.panel_threshold.grid import candidate_grid
from fastpanel.panel_threshold.scan import ThresholdEngine
from fastpanel.panel_threshold.transform import PanelTransform

from _threshold_data import hansen_model, random_panel

BACKENDS = [pytest.param("cpp", id="cpp"), pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)]

CASES = [
    dict(drop_last=False, time_effects=False, unbalanced=False, pz=1),
    dict(drop_last=False, time_effects=False, unbalanced=True, pz=2),
    dict(drop_last=True, time_effects=False, unbalanced=False, pz=1),
    dict(drop_last=True, time_effects=False, unbalanced=True, pz=2),
    dict(drop_last=False, time_effects=True, unbalanced=False, pz=1),
    dict(drop_last=False, time_effects=True, unbalanced=False, pz=2),
    dict(drop_last=False, time_effects=True, unbalanced=True, pz=1),
]


def _case_id(c: dict) -> str:
    kind = "twoway" if c["time_effects"] else "hansen1999" if c["drop_last"] else "oneway"
    return f"{kind}-{'unbal' if c['unbalanced'] else 'bal'}-pz{c['pz']}"


def _engines(case, backend, seed, N, T):
    rng = np.random.default_rng(seed)
    y, X, Z, q, ent, time = random_panel(rng, N, T, case["pz"], unbalanced=case["unbalanced"])
    tr = PanelTransform(ent, time, drop_last=case["drop_last"], time_effects=case["time_effects"])
    B = np.column_stack([X, Z])
    cand = candidate_grid(q, 0.05, "exact")
    strict = case["drop_last"]
    ref = ThresholdEngine(tr, B, Z, q, cand, strict=strict, backend="numba")
    eng = ThresholdEngine(tr, B, Z, q, cand, strict=strict, backend=backend)
    return rng, tr, ref, eng, (y, B, Z, q)


def _fixed(rng, R, m, G):
    """Per-replicate fixed candidate indices, distinct and at least 3 apart (as the sequence keeps them)."""
    out = np.empty((R, m), dtype=np.int64)
    for r in range(R):
        while True:
            idx = np.sort(rng.choice(np.arange(1, G - 1), size=m, replace=False))
            if m < 2 or np.diff(idx).min() >= 3:
                break
        out[r] = idx
    return out


def _close(got, want, rtol=1e-10):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = np.abs(want).max() if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_kernels_match_numba(backend, case):
    small = backend == "cuda"  # the CUDA simulator runs every thread in Python
    N, T, R = (6, 4, 3) if small else (25, 7, 16)
    rng, tr, ref, eng, _ = _engines(case, backend, seed=11, N=N, T=T)
    # precompute: outputs of the kernels on identical inputs, and the engine state built on them
    As = np.ascontiguousarray(tr.adjoint(ref.Bt)[ref.order])
    args = (ref.zs, ref.h, ref.grp, ref.cw, ref.C, As, ref.cuts)
    for got, want in zip(eng.kernel.precompute(*args), ref.kernel.precompute(*args)):
        _close(got, want)
    _close(eng.Kcc, ref.Kcc)
    # residualize
    Y = np.ascontiguousarray(rng.normal(size=(tr.n_out, R)))
    (E1, e1), (E0, e0) = eng.kernel.residualize(ref.Qb, Y), ref.kernel.residualize(ref.Qb, Y)
    _close(E1, E0)
    _close(e1, e0)
    # scan_batch with 0, 1 and 2 fixed thresholds (different per replicate)
    U, ee = ref.residual_u(Y)
    G = ref.n_candidates
    for m in (0, 1, 2):
        fixed = _fixed(rng, R, m, G)
        S1, SF1 = eng.scan(U, ee, fixed)
        S0, SF0 = ref.scan(U, ee, fixed)
        _close(S1, S0)
        _close(SF1, SF0)
        assert np.all(S1 <= SF1[:, None] * (1 + 1e-12))  # adding a regime never raises the SSR


@pytest.mark.parametrize("case", CASES[:4], ids=_case_id)
def test_cpp_curve_matches_naive_ols(case):
    """Independent oracle: the cpp S(g) curve equals per-grid-point least squares."""
    _, tr, _, eng, (y, B, Z, q) = _engines(case, "cpp", seed=3, N=12, T=6)
    yt = tr.apply(y)
    U, ee = eng.residual_u(yt)
    cand = eng.candidates
    for fixed in ([], [cand[3]], [cand[3], cand[-4]]):
        idx = np.array([[int(np.searchsorted(cand, f)) for f in fixed]], dtype=np.int64)
        S, _ = eng.scan(U, ee, idx)
        naive = ssr_curve_naive(tr.apply, yt, B, Z, q, cand, fixed, strict=case["drop_last"])
        np.testing.assert_allclose(S[0], naive, rtol=1e-10, atol=1e-10 * naive.max())


@pytest.mark.parametrize("pz", [3, 1])
def test_cpp_generic_paths(pz):
    """pz = 3 and m = 3, 4 leave the specialised sweeps of csrc/threshold.cpp (generic code)."""
    case = dict(drop_last=True, time_effects=False, unbalanced=True, pz=pz)
    rng, tr, ref, eng, _ = _engines(case, "cpp", seed=5, N=30, T=8)
    Y = np.ascontiguousarray(rng.normal(size=(tr.n_out, 6)))
    U, ee = ref.residual_u(Y)
    for m in (3, 4):
        fixed = _fixed(rng, 6, m, ref.n_candidates)
        S1, SF1 = eng.scan(U, ee, fixed)
        S0, SF0 = ref.scan(U, ee, fixed)
        _close(S1, S0)
        _close(SF1, SF0)


def test_cpp_contract_violations():
    case = CASES[2]
    rng, tr, ref, eng, _ = _engines(case, "cpp", seed=1, N=8, T=5)
    k = eng.kernel
    U, ee = ref.residual_u(np.ascontiguousarray(rng.normal(size=(tr.n_out, 2))))
    base = [U, ee, ref.cuts, np.zeros((2, 1), np.int64), ref.zs, ref.h, ref.grp, ref.cw, ref.C,
            ref.H, ref.Kcc, ref.P, ref.Binv]
    bad_U = base.copy()
    bad_U[0] = np.ascontiguousarray(U[:, :-1])
    with pytest.raises(ValueError, match="U must have shape"):
        k.scan_batch(*bad_U)
    bad_idx = base.copy()
    bad_idx[3] = np.full((2, 1), ref.n_candidates, np.int64)
    with pytest.raises(ValueError, match="fixed_idx entries"):
        k.scan_batch(*bad_idx)
    bad_layout = base.copy()
    bad_layout[4] = np.column_stack([ref.zs, ref.zs])[:, :1]  # right shape, strided rows
    with pytest.raises(ValueError, match="zs must be C-contiguous"):
        k.scan_batch(*bad_layout)
    with pytest.raises(ValueError, match="Y must have one row per row of Qb"):
        k.residualize(ref.Qb, np.zeros((tr.n_out + 1, 2)))
    with pytest.raises(ValueError, match="cuts must be non-decreasing"):
        k.precompute(ref.zs, ref.h, ref.grp, ref.cw, ref.C, np.zeros((ref.zs.shape[0], 2)), ref.cuts[::-1].copy())


@pytest.mark.cuda
def test_cuda_limits_raise():
    kern = kernel_module("cuda", "threshold")
    n, G = 4, 2
    zs = np.zeros((n, kern.PZ_MAX + 1))
    with pytest.raises(ValueError, match="at most"):
        kern.scan_batch(np.zeros((1, n)), np.zeros(1), np.array([1, 2]), np.zeros((1, 0), np.int64), zs,
                        np.ones(n), np.zeros((n, 1), np.int64), np.ones((n, 1, 1)), np.ones((1, 1, 1)),
                        np.zeros((G, 5, 5)), np.zeros((G, 5, 5)), np.zeros((G, 1, 5)), np.eye(1))


# -- end to end: same thresholds, F statistics and bootstrap p-values as numba ------------------------
def _same_results(a, b):
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    np.testing.assert_allclose(a.tests["F"].to_numpy(), b.tests["F"].to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(a.tests["pvalue"].to_numpy(), b.tests["pvalue"].to_numpy())
    for fa, fb in zip(a.boot_F, b.boot_F):
        np.testing.assert_allclose(fa, fb, rtol=1e-9)
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("conventions", ["default", "hansen1999"])
def test_fit_cpp_equals_numba(conventions):
    rng = np.random.default_rng(21)
    y, X, Z, q, ent, time = random_panel(rng, 30, 6, 1, jump=1.0)
    m = fastpanel.ThresholdPanel(y, X, Z, q, ent, time, conventions=conventions)
    kw = dict(n_boot=25, trim=(0.05, 0.02, 0.02), grid="exact", seed=4, progress=False)
    _same_results(m.fit(3, backend="cpp", **kw), m.fit(3, backend="numba", **kw))


def test_formula_api_cpp_equals_numba():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(8)
    y, X, Z, q, ent, time = random_panel(rng, 15, 5, 1, unbalanced=True, jump=1.0)
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "z": Z[:, 0], "q": q, "firm": ent, "year": time})
    kw = dict(threshold_var="q", regime_vars="z", time="year", n_boot=20, trim=0.05, seed=0, bootstrap="wild",
              progress=False)
    a = fastpanel.threshold("y ~ x1 + x2 | firm", df, backend="cpp", **kw)
    b = fastpanel.threshold("y ~ x1 + x2 | firm", df, backend="numba", **kw)
    _same_results(a, b)


def test_hansen1999_cpp_equals_numba():
    m = hansen_model()
    kw = dict(n_boot=30, trim=(0.01, 0.01, 0.05), seed=7, progress=False)
    a = m.fit(3, backend="cpp", **kw)
    assert a.tests["F"].round(1).tolist() == [32.6, 25.8, 4.2]  # Hansen (1999), Table 2
    _same_results(a, m.fit(3, backend="numba", **kw))
