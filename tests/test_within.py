"""fastpanel.within on every backend against independent answers.

Expected values come from (a) ``fastpanel.kernels.reference.within_reference``, a plain
least-squares regression on explicit dummy columns (numpy.linalg.lstsq), (b) pyhdfe's
``residualize`` and (c) pyfixest's ``demean``; the remaining checks are algebraic properties
of a least-squares projection (idempotence, linearity, orthogonality to every dummy column),
which need no reference at all.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpanel
from fastpanel import ConvergenceWarning, FixedEffects, within
from fastpanel.kernels.reference import within_reference

within_module = importlib.import_module("fastpanel.within")

#: The CUDA simulator runs every GPU thread in Python: its cases stay this small.
CUDA_MAX_ROWS = 300

ALL_BACKENDS = [
    pytest.param("cpp", id="cpp"),
    pytest.param("numba", id="numba"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.cuda),
]
CPU_BACKENDS = ["cpp", "numba"]


# --------------------------------------------------------------------------------------------
# data helpers (generated data only; expected values never come from fastpanel)
# --------------------------------------------------------------------------------------------
def panel_ids(
    rng: np.random.Generator, n_entities: int, n_periods: int, missing: float = 0.0, shuffle: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Entity and period ids of a panel; ``missing`` of the cells are deleted at random."""
    ent = np.repeat(np.arange(n_entities), n_periods)
    per = np.tile(np.arange(n_periods), n_entities)
    if missing > 0:
        keep = rng.random(ent.size) >= missing
        ent, per = ent[keep], per[keep]
    if shuffle:
        perm = rng.permutation(ent.size)
        ent, per = ent[perm], per[perm]
    return ent, per


def size_for(backend: str, n_entities: int, n_periods: int) -> tuple[int, int]:
    """Shrink the entity count so that a CUDA-simulator case has at most CUDA_MAX_ROWS rows."""
    if backend == "cuda":
        n_entities = max(2, min(n_entities, CUDA_MAX_ROWS // n_periods))
    return n_entities, n_periods


def tol_for(X: np.ndarray) -> float:
    """Absolute tolerance: 1e-9 of the data's scale (exact methods reach ~1e-14)."""
    return 1e-9 * max(1.0, float(np.abs(X).max()))


def assert_matches(out: np.ndarray, expected: np.ndarray, X: np.ndarray, factor: float = 1.0) -> None:
    np.testing.assert_allclose(out, expected, rtol=0, atol=factor * tol_for(X))


# --------------------------------------------------------------------------------------------
# kernel contract
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_kernel_modules_share_one_signature(backend: str) -> None:
    cpp = importlib.import_module("fastpanel.kernels.within_cpp")
    mod = importlib.import_module(f"fastpanel.kernels.within_{backend}")
    for fn in ("oneway", "twoway_pass1", "twoway_pass2"):
        assert list(inspect.signature(getattr(mod, fn)).parameters) == list(
            inspect.signature(getattr(cpp, fn)).parameters
        ), fn
    assert mod.__doc__ and len(mod.__doc__) > 100, "kernel files start with a banner"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_kernel_oneway_in_place_and_nonfinite_count(backend: str, rng: np.random.Generator) -> None:
    """The kernel writes into ``out`` (which may be X) and counts non-finite group totals."""
    kern = importlib.import_module(f"fastpanel.kernels.within_{backend}")
    codes = np.array([0, 0, 1, 1, 1, 2], dtype=np.int64)
    starts = np.array([0, 2, 5, 6], dtype=np.int64)
    X = np.asfortranarray(rng.normal(size=(6, 2)))
    expected = within_reference(X, [codes])
    buf = X.copy(order="F")
    assert kern.oneway(buf, buf, np.empty(0, np.int64), starts, np.empty(0)) == 0
    np.testing.assert_allclose(buf, expected, atol=1e-14)
    X[3, 1] = np.nan
    out = np.empty_like(X, order="F")
    assert kern.oneway(X, out, np.empty(0, np.int64), starts, np.empty(0)) == 1


# --------------------------------------------------------------------------------------------
# one, two and three ways against the dummy-regression reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("missing", [0.0, 0.25], ids=["balanced", "unbalanced"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_oneway_matches_reference(backend: str, missing: float, weighted: bool, rng: np.random.Generator) -> None:
    ne, nt = size_for(backend, 60, 8)
    ent, per = panel_ids(rng, ne, nt, missing)
    X = rng.normal(size=(ent.size, 3)) * [1.0, 100.0, 1e-3] + 5.0
    w = rng.uniform(0.1, 3.0, ent.size) if weighted else None
    out, info = within(X, ent, weights=w, backend=backend, return_info=True)
    assert_matches(out, within_reference(X, [ent], w), X)
    assert info.method == "oneway" and info.backend == backend
    assert info.iterations == 0 and info.n_dropped == 0 and info.converged


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("missing", [0.0, 0.2], ids=["balanced", "unbalanced"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_twoway_matches_reference(backend: str, missing: float, weighted: bool, rng: np.random.Generator) -> None:
    ne, nt = size_for(backend, 50, 7)
    ent, per = panel_ids(rng, ne, nt, missing)
    X = rng.normal(size=(ent.size, 4)) + ent[:, None] * 0.3 - per[:, None] * 2.0
    w = rng.uniform(0.1, 3.0, ent.size) if weighted else None
    out, info = within(X, [ent, per], weights=w, backend=backend, return_info=True)
    assert_matches(out, within_reference(X, [ent, per], w), X)
    expected_method = "twoway-balanced" if (missing == 0 and not weighted) else "twoway-direct"
    assert info.method == expected_method
    assert info.backend == backend and info.iterations == 0


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_twoway_conjugate_gradient_path(
    backend: str, weighted: bool, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both dimensions 'large' (threshold lowered so the path runs on a small panel)."""
    monkeypatch.setattr(within_module, "DIRECT_MAX_LEVELS", 3)
    ne, nt = (12, 6) if backend == "cuda" else (40, 9)
    ent, per = panel_ids(rng, ne, nt, 0.3)
    X = rng.normal(size=(ent.size, 2)) + per[:, None]
    w = rng.uniform(0.2, 2.0, ent.size) if weighted else None
    out, info = within(X, [ent, per], weights=w, backend=backend, return_info=True)
    assert info.method == "twoway-cg" and info.iterations > 0 and info.converged
    assert_matches(out, within_reference(X, [ent, per], w), X)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_threeway_matches_reference(backend: str, weighted: bool, rng: np.random.Generator) -> None:
    n = 150 if backend == "cuda" else 600
    ids = [rng.integers(0, 30, n), rng.integers(0, 8, n), rng.integers(0, 5, n)]
    X = rng.normal(size=(n, 2)) + ids[1][:, None]
    w = rng.uniform(0.1, 2.0, n) if weighted else None
    out, info = within(X, ids, weights=w, backend=backend, tol=1e-13, return_info=True)
    # small problems take the exact Schur-complement solver (fastpanel.kway)
    assert info.method in ("kway-direct", "kway-cg") and info.converged
    assert info.max_change <= 1e-13
    assert_matches(out, within_reference(X, ids, w), X, factor=10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_fourway_matches_reference(backend: str, rng: np.random.Generator) -> None:
    n = 400
    ids = [rng.integers(0, k, n) for k in (25, 9, 6, 4)]
    X = rng.normal(size=(n, 3))
    out = within(X, ids, backend=backend, tol=1e-13)
    assert_matches(out, within_reference(X, ids), X, factor=10)


def test_cpu_backends_agree_on_a_larger_panel(rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, 3000, 12, 0.1)
    X = rng.normal(size=(ent.size, 3))
    w = rng.uniform(0.5, 1.5, ent.size)
    for ids in (ent, [ent, per]):
        a = within(X, ids, weights=w, backend="cpp")
        b = within(X, ids, weights=w, backend="numba")
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# id types and row order
# --------------------------------------------------------------------------------------------
def _id_variants(ent: np.ndarray) -> dict[str, object]:
    return {
        "int64": ent.astype(np.int64),
        "int32": ent.astype(np.int32),
        "uint16": ent.astype(np.uint16),
        "wide_int64": ent.astype(np.int64) * (2**33) + 2**40,  # beyond 2**31, sparse range
        "negative": ent.astype(np.int64) - 10**12,
        "float": ent.astype(np.float64) / 4.0,
        "string": np.array([f"firm-{e:03d}" for e in ent]),
        "object": np.array([f"f{e}" for e in ent], dtype=object),
        "categorical": pd.Series(pd.Categorical(ent, categories=np.arange(ent.max() + 3))),  # unused levels
        "pd_categorical_array": pd.Categorical([f"c{e}" for e in ent]),
        "series": pd.Series(ent),
    }


@pytest.mark.parametrize("kind", list(_id_variants(np.arange(3))))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_id_dtypes_oneway_and_twoway(kind: str, backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, 40, 6, 0.2)
    X = rng.normal(size=(ent.size, 2)) + ent[:, None]
    ids = _id_variants(ent)[kind]
    per_ids = _id_variants(per)[kind]
    assert_matches(within(X, ids, backend=backend), within_reference(X, [ent]), X)
    assert_matches(within(X, [ids, per_ids], backend=backend), within_reference(X, [ent, per]), X)


@pytest.mark.cuda
def test_id_dtypes_cuda(rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, 25, 6, 0.2)
    X = rng.normal(size=(ent.size, 2))
    for kind in ("wide_int64", "string", "categorical"):
        ids = _id_variants(ent)[kind]
        out = within(X, [ids, _id_variants(per)[kind]], backend="cuda")
        assert_matches(out, within_reference(X, [ent, per]), X)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ids_as_2d_array_dataframe_and_fixed_effects(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 30, 6), missing=0.2)
    X = rng.normal(size=(ent.size, 2))
    expected = within_reference(X, [ent, per])
    stacked = np.column_stack([ent, per])  # column views are strided
    frame = pd.DataFrame({"e": ent, "t": per})
    fe = FixedEffects([ent, per])
    for ids in (stacked, frame, fe, (ent, per)):
        assert_matches(within(X, ids, backend=backend), expected, X)
    # the prepared structure is reusable for other data
    Y = rng.normal(size=ent.size)
    assert_matches(within(Y, fe, backend=backend), within_reference(Y, [ent, per]), Y)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_row_order_does_not_matter(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 40, 6), missing=0.15, shuffle=False)
    X = rng.normal(size=(ent.size, 3))
    sorted_out = within(X, [ent, per], backend=backend)
    perm = rng.permutation(ent.size)
    shuffled_out = within(X[perm], [ent[perm], per[perm]], backend=backend)
    np.testing.assert_allclose(shuffled_out, sorted_out[perm], rtol=0, atol=1e-12)
    # one-way on sorted ids (no permutation needed) and shuffled ids
    np.testing.assert_allclose(
        within(X[perm], ent[perm], backend=backend), within(X, ent, backend=backend)[perm], atol=1e-12
    )


# --------------------------------------------------------------------------------------------
# X layouts and dtypes; X is never modified
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_1d_input_gives_1d_output(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 30, 5), missing=0.1)
    x = rng.normal(size=ent.size)
    for ids in (ent, [ent, per]):
        out = within(x, ids, backend=backend)
        assert out.shape == x.shape
        assert_matches(out, within_reference(x, [ids] if ids is ent else ids), x)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_float32_integer_and_bool_input_are_upcast(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 30, 5), missing=0.1)
    X32 = rng.normal(size=(ent.size, 2)).astype(np.float32)
    out = within(X32, [ent, per], backend=backend)
    assert out.dtype == np.float64 and out.shape == X32.shape
    assert_matches(out, within_reference(X32.astype(np.float64), [ent, per]), X32)
    Xi = rng.integers(-50, 50, size=(ent.size, 2))
    assert_matches(within(Xi, ent, backend=backend), within_reference(Xi.astype(float), [ent]), Xi)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_noncontiguous_and_c_ordered_input(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 30, 5), missing=0.1)
    big = rng.normal(size=(2 * ent.size, 6))
    views = {
        "rows_strided": big[::2, :3],
        "cols_strided": big[: ent.size, ::2],
        "c_order": np.ascontiguousarray(big[: ent.size, :4]),
        "reversed": big[ent.size - 1 :: -1, :2] if ent.size > 0 else big,
        "transposed": np.asfortranarray(big[: ent.size, :3]).T.copy().T,
    }
    before = big.copy()
    for name, V in views.items():
        out = within(V, [ent, per], backend=backend)
        assert_matches(out, within_reference(np.array(V), [ent, per]), V)
        assert out.shape == V.shape, name
    np.testing.assert_array_equal(big, before)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("ways", [1, 2, 3])
def test_inputs_never_modified(backend: str, ways: int, rng: np.random.Generator) -> None:
    n = 120 if backend == "cuda" else 400
    ids = [rng.integers(0, k, n) for k in (20, 6, 4)[:ways]]
    X = np.asfortranarray(rng.normal(size=(n, 3)))
    w = rng.uniform(0.1, 1.0, n)
    copies = [X.copy(), w.copy(), *[i.copy() for i in ids]]
    out = within(X, ids if ways > 1 else ids[0], weights=w, backend=backend, tol=1e-12)
    assert not np.shares_memory(out, X)
    for orig, arr in zip(copies, [X, w, *ids]):
        np.testing.assert_array_equal(arr, orig)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("ways", [1, 2, 3])
def test_read_only_inputs_are_accepted(backend: str, ways: int, rng: np.random.Generator) -> None:
    """Read-only arrays (np.load(mmap_mode="r"), pandas copy-on-write .to_numpy(), frombuffer)
    must work: the transform never writes into X, ids or weights."""
    n = 120 if backend == "cuda" else 400
    ids = [rng.integers(0, k, n) for k in (20, 6, 4)[:ways]]
    X = np.asfortranarray(rng.normal(size=(n, 3)))
    w = rng.uniform(0.1, 1.0, n)
    expected = within_reference(X, ids, w)
    for arr in (X, w, *ids):
        arr.flags.writeable = False
    out = within(X, ids if ways > 1 else ids[0], weights=w, backend=backend, tol=1e-13)
    assert_matches(out, expected, X, factor=10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_output_is_fortran_ordered(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 20, 5))
    out = within(np.ascontiguousarray(rng.normal(size=(ent.size, 3))), [ent, per], backend=backend)
    assert out.flags.f_contiguous


# --------------------------------------------------------------------------------------------
# structure edge cases: zero weights, nested, disconnected, singletons, absorbed columns
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("ways", [1, 2])
def test_zero_weights(backend: str, ways: int, rng: np.random.Generator) -> None:
    """Zero-weight rows do not influence the projection but still get a residual."""
    ent, per = panel_ids(rng, *size_for(backend, 30, 6))
    X = rng.normal(size=(ent.size, 2))
    w = rng.uniform(0.5, 2.0, ent.size)
    w[rng.random(ent.size) < 0.2] = 0.0
    # keep each entity and period with some positive weight so the effects are identified
    first_e = np.unique(ent, return_index=True)[1]
    first_t = np.unique(per, return_index=True)[1]
    w[first_e] = 1.0
    w[first_t] = 1.0
    ids = [ent] if ways == 1 else [ent, per]
    out = within(X, ids if ways == 2 else ent, weights=w, backend=backend)
    assert_matches(out, within_reference(X, ids, w), X)
    # changing X on zero-weight rows changes only those rows' output
    X2 = X.copy()
    X2[w == 0] += 100.0
    out2 = within(X2, ids if ways == 2 else ent, weights=w, backend=backend)
    np.testing.assert_allclose(out2[w > 0], out[w > 0], atol=1e-10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_group_with_all_zero_weights_stays_finite(backend: str, rng: np.random.Generator) -> None:
    ent = np.repeat(np.arange(6), 4)
    X = rng.normal(size=(ent.size, 2))
    w = np.ones(ent.size)
    w[ent == 2] = 0.0
    out = within(X, ent, weights=w, backend=backend)
    assert np.isfinite(out).all()
    keep = ent != 2
    assert_matches(out[keep], within_reference(X[keep], [ent[keep]]), X)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_nested_fixed_effects(backend: str, rng: np.random.Generator) -> None:
    """Firms nested in regions: the region effect is collinear with the firm effect."""
    ne, nt = size_for(backend, 40, 6)
    ent, per = panel_ids(rng, ne, nt, 0.2)
    region = ent // 5
    X = rng.normal(size=(ent.size, 2))
    np.testing.assert_allclose(
        within(X, [ent, region], backend=backend), within_reference(X, [ent]), atol=tol_for(X)
    )
    assert_matches(within(X, [region, ent, per], backend=backend, tol=1e-13), within_reference(X, [ent, per]), X, 10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("monkey_cg", [False, True], ids=["direct", "cg"])
def test_disconnected_twoway_graph(
    backend: str, monkey_cg: bool, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two groups of firms observed in disjoint sets of periods: two connected components."""
    if monkey_cg:
        monkeypatch.setattr(within_module, "DIRECT_MAX_LEVELS", 2)
    ne, nt = size_for(backend, 30, 8)
    ent, per = panel_ids(rng, ne, nt, 0.2)
    per = np.where(ent < ne // 2, per, per + nt)  # second half lives in other periods
    X = rng.normal(size=(ent.size, 3)) + per[:, None]
    w = rng.uniform(0.5, 1.5, ent.size)
    out = within(X, [ent, per], weights=w, backend=backend)
    assert_matches(out, within_reference(X, [ent, per], w), X)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_singletons(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 30, 6), missing=0.2)
    # add five firms seen once
    ent = np.concatenate([ent, 1000 + np.arange(5)])
    per = np.concatenate([per, np.arange(5)])
    X = rng.normal(size=(ent.size, 2))
    one = within(X, ent, backend=backend)
    np.testing.assert_allclose(one[-5:], 0.0, atol=1e-14)  # a singleton's effect absorbs its row
    assert_matches(one, within_reference(X, [ent]), X)
    assert_matches(within(X, [ent, per], backend=backend), within_reference(X, [ent, per]), X)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_absorbed_columns_become_zero(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, *size_for(backend, 25, 6), missing=0.2)
    effect_e = rng.normal(size=ent.max() + 1)
    effect_t = rng.normal(size=per.max() + 1)
    X = np.column_stack([np.full(ent.size, 7.0), effect_e[ent], effect_e[ent] + effect_t[per]])
    out = within(X, [ent, per], backend=backend)
    np.testing.assert_allclose(out, 0.0, atol=1e-11)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_many_columns(backend: str, rng: np.random.Generator) -> None:
    ent, per = panel_ids(rng, 50, 6, 0.2)
    X = rng.normal(size=(ent.size, 25))
    assert_matches(within(X, [ent, per], backend=backend), within_reference(X, [ent, per]), X)


# --------------------------------------------------------------------------------------------
# missing values with drop_missing=True
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("ways", [1, 2, 3])
def test_drop_missing_counts_and_excludes_rows(backend: str, ways: int, rng: np.random.Generator) -> None:
    n = 150 if backend == "cuda" else 500
    ids = [rng.integers(0, k, n).astype(np.float64) for k in (25, 6, 4)[:ways]]
    X = rng.normal(size=(n, 2))
    w = rng.uniform(0.5, 1.5, n)
    X[3, 1] = np.nan
    X[10, 0] = np.inf
    ids[0][20] = np.nan
    w[30] = np.nan
    bad = np.zeros(n, bool)
    bad[[3, 10, 20, 30]] = True
    arg = ids if ways > 1 else ids[0]
    out, info = within(X, arg, weights=w, backend=backend, drop_missing=True, tol=1e-13, return_info=True)
    assert info.n_dropped == 4
    assert np.isnan(out[bad]).all()
    keep = ~bad
    expected = within_reference(X[keep], [i[keep] for i in ids], w[keep])
    assert_matches(out[keep], expected, X[keep], factor=10)


# --------------------------------------------------------------------------------------------
# info and convergence
# --------------------------------------------------------------------------------------------
def test_info_backend_follows_default(rng: np.random.Generator) -> None:
    ent = rng.integers(0, 10, 100)
    x = rng.normal(size=100)
    with fastpanel.use_backend("numba"):
        _, info = within(x, ent, return_info=True)
    assert info.backend == "numba"
    _, info = within(x, ent, backend="cpp", return_info=True)
    assert info.backend == "cpp"
    assert isinstance(within(x, ent, backend="cpp"), np.ndarray)  # no tuple without return_info


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_convergence_warning_names_achieved_tolerance(backend: str, rng: np.random.Generator) -> None:
    # the iterative path: two-way with both dimensions above the direct solver's size (three or
    # more dimensions are solved exactly, without a maxiter)
    n = 12000
    ids = [rng.integers(0, 2600, n), rng.integers(0, 2500, n)]
    X = rng.normal(size=(n, 2))
    with pytest.warns(ConvergenceWarning, match=r"maxiter=2") as record:
        out, info = within(X, ids, backend=backend, maxiter=2, tol=1e-14, return_info=True)
    assert not info.converged and info.iterations == 2 and info.max_change > 1e-14
    message = str(record[0].message)
    achieved = re.search(r"relative change ([0-9.eE+-]+)", message)
    assert achieved is not None, message
    assert float(achieved.group(1)) == pytest.approx(info.max_change, rel=1e-2)
    assert "tol=1e-14" in message
    assert out.shape == X.shape and np.isfinite(out).all()


def test_no_warning_when_converged(rng: np.random.Generator) -> None:
    n = 500
    ids = [rng.integers(0, 30, n), rng.integers(0, 8, n), rng.integers(0, 4, n)]
    within(rng.normal(size=n), ids, backend="cpp")  # filterwarnings=error turns any warning into a failure


# --------------------------------------------------------------------------------------------
# independent implementations: pyhdfe and pyfixest
# --------------------------------------------------------------------------------------------
def _comparison_panel(rng: np.random.Generator, ways: int, n: int = 3000) -> tuple[np.ndarray, list[np.ndarray]]:
    ent, per = panel_ids(rng, n // 10, 10, 0.1)
    ids = [ent, per] + [rng.integers(0, 7, ent.size)][: max(0, ways - 2)]
    ids = ids[:ways]
    X = rng.normal(size=(ent.size, 3)) + 0.5 * ent[:, None] % 7 + per[:, None]
    return X, ids


# pyhdfe 0.2 supports weights only in its one-way "within" method (its MAP/LSMR/SW methods
# raise NotImplementedError for weights): weighted multi-way cases are covered by pyfixest.
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    ("ways", "weighted"), [(1, False), (1, True), (2, False), (3, False)], ids=["1", "1-weighted", "2", "3"]
)
def test_matches_pyhdfe(backend: str, ways: int, weighted: bool, rng: np.random.Generator) -> None:
    pyhdfe = pytest.importorskip("pyhdfe")
    X, ids = _comparison_panel(rng, ways)
    w = rng.uniform(0.2, 2.0, X.shape[0]) if weighted else None
    method = "within" if ways == 1 else "map"
    options = {} if ways == 1 else {"tol": 1e-13, "acceleration": "gk"}
    alg = pyhdfe.create(np.column_stack(ids), drop_singletons=False, residualize_method=method, options=options)
    expected = alg.residualize(X, w[:, None] if w is not None else None)
    out = within(X, ids if ways > 1 else ids[0], weights=w, backend=backend, tol=1e-13)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("ways", [1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_pyfixest_demean(backend: str, ways: int, weighted: bool, rng: np.random.Generator) -> None:
    core = pytest.importorskip("pyfixest.core")
    X, ids = _comparison_panel(rng, ways)
    w = rng.uniform(0.2, 2.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    flist = np.column_stack(ids).astype(np.uint64)
    expected, converged = core.demean(np.asfortranarray(X), flist, w, 1e-12, 100_000)
    assert converged
    out = within(X, ids if ways > 1 else ids[0], weights=w if weighted else None, backend=backend, tol=1e-13)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


@pytest.mark.cuda
@pytest.mark.parametrize("ways", [1, 2])
def test_cuda_matches_pyfixest_demean(ways: int, rng: np.random.Generator) -> None:
    core = pytest.importorskip("pyfixest.core")
    X, ids = _comparison_panel(rng, ways, n=250)
    w = rng.uniform(0.2, 2.0, X.shape[0])
    expected, converged = core.demean(np.asfortranarray(X), np.column_stack(ids).astype(np.uint64), w, 1e-12, 100_000)
    assert converged
    out = within(X, ids if ways > 1 else ids[0], weights=w, backend="cuda")
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


# --------------------------------------------------------------------------------------------
# property tests (hypothesis): reference agreement and projection algebra
# --------------------------------------------------------------------------------------------
@st.composite
def panels(draw: st.DrawFn, max_ways: int = 3) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    n = draw(st.integers(2, 40))
    ways = draw(st.integers(1, max_ways))
    ids = []
    for _ in range(ways):
        levels = draw(st.integers(1, max(1, n // 2)))
        ids.append(np.array(draw(st.lists(st.integers(0, levels - 1), min_size=n, max_size=n)), dtype=np.int64))
    p = draw(st.integers(1, 3))
    vals = draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=n * p, max_size=n * p))
    X = np.array(vals, dtype=np.float64).reshape(n, p)
    weighted = draw(st.booleans())
    w = None
    if weighted:
        w = np.array(draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)))
    return X, ids, w


PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@PROPERTY_SETTINGS
@given(panel=panels())
def test_property_matches_reference(backend: str, panel) -> None:
    X, ids, w = panel
    # Random 3-way designs are sometimes barely connected, and alternating projections then
    # converge arbitrarily slowly: such a case must end in an honest ConvergenceWarning (the
    # documented behaviour), every converged case must match the reference.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        out, info = within(X, ids if len(ids) > 1 else ids[0], weights=w, backend=backend, tol=1e-14,
                           maxiter=20_000, return_info=True)
    warned = [c for c in caught if issubclass(c.category, ConvergenceWarning)]
    assert bool(warned) == (not info.converged)
    if not info.converged:
        assert len(ids) >= 3 and info.max_change > 1e-14
        return
    # scale by the data; iterative (3-way) paths stop on a relative change of 1e-14 per sweep
    atol = 1e-7 * max(1.0, float(np.abs(X).max()))
    np.testing.assert_allclose(out, within_reference(X, ids, w), rtol=0, atol=atol)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@PROPERTY_SETTINGS
@given(panel=panels(max_ways=2), coef=st.floats(-5, 5))
def test_property_projection_algebra(backend: str, panel, coef: float) -> None:
    """Idempotent, linear, and weighted-orthogonal to every fixed-effect dummy column."""
    X, ids, w = panel
    arg = ids if len(ids) > 1 else ids[0]
    scale = max(1.0, float(np.abs(X).max()))
    out = within(X, arg, weights=w, backend=backend)
    np.testing.assert_allclose(within(out, arg, weights=w, backend=backend), out, atol=1e-9 * scale)
    Y = np.roll(X, 1, axis=0)
    lin = within(X + coef * Y, arg, weights=w, backend=backend)
    np.testing.assert_allclose(lin, out + coef * within(Y, arg, weights=w, backend=backend), atol=1e-9 * scale * 6)
    ww = np.ones(X.shape[0]) if w is None else w
    for g in ids:
        for j in range(X.shape[1]):
            sums = np.bincount(g, ww * out[:, j])
            np.testing.assert_allclose(sums, 0.0, atol=1e-8 * scale * X.shape[0] * ww.max())


@pytest.mark.cuda
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(panel=panels(max_ways=2))
def test_property_cuda_matches_reference(panel) -> None:
    X, ids, w = panel
    out = within(X, ids if len(ids) > 1 else ids[0], weights=w, backend="cuda")
    np.testing.assert_allclose(out, within_reference(X, ids, w), rtol=0, atol=1e-8 * max(1.0, float(np.abs(X).max())))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_irons_tuck_safeguard_regression(backend: str) -> None:
    """A weighted 3-way case (found by hypothesis) on which unguarded Irons-Tuck extrapolation
    diverged to 1e23; the weighted-norm safeguard must converge to the reference."""
    X = np.zeros((22, 3))
    X[21, 2] = 1.0
    ids = [
        np.array([0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0]),
        np.array([0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 2]),
        np.array([1, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1, 2, 0, 0, 1, 2, 0, 1, 0]),
    ]
    w = np.ones(22)
    w[18] = 0.25
    out, info = within(X, ids, weights=w, backend=backend, tol=1e-14, maxiter=100_000, return_info=True)
    assert info.converged and info.iterations < 1000
    np.testing.assert_allclose(out, within_reference(X, ids, w), rtol=0, atol=1e-10)
