"""fastpanel.compat.pyfixest: pyfixest 0.60 demeaning through fastpanel.

Install/uninstall restore the very same objects; estimates with fastpanel installed equal
pyfixest's own (run at a tight tolerance) to 1e-8; the demean contract against pyfixest's own
demean and a dense dummy-regression oracle; a changed flist is never served a stale
factorisation.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

pf = pytest.importorskip("pyfixest")
compat = pytest.importorskip("fastpanel.compat.pyfixest")

from pyfixest.demeaners import LsmrDemeaner, MapDemeaner  # noqa: E402

TARGETS = [(m, a) for m, a, _, _ in compat._TARGETS]
#: pyfixest's own solver, tight enough that its distance from the exact transform is < 1e-10.
TIGHT = MapDemeaner(fixef_tol=1e-13, fixef_maxiter=100_000)


def _current() -> dict[tuple[str, str], object]:
    out = {}
    for mod, attr in TARGETS:
        module = sys.modules.get(mod) or __import__(mod, fromlist=["_"])
        out[(mod, attr)] = getattr(module, attr, None)
    return out


ORIGINALS = _current()


@pytest.fixture(autouse=True)
def _uninstalled():
    """Every test starts and ends with pyfixest's own demeaner (other test files compare to it)."""
    compat.uninstall()
    yield
    compat.uninstall()
    assert _current() == ORIGINALS


def _panel(seed: int = 0, n: int = 1500) -> pd.DataFrame:
    """Shuffled, unbalanced data with three crossed fixed effects, weights and an instrument."""
    rng = np.random.default_rng(seed)
    f1 = rng.integers(0, 120, n)
    f2 = rng.integers(0, 40, n)
    f3 = rng.integers(0, 15, n)
    a1, a2, a3 = rng.normal(size=120), rng.normal(size=40), rng.normal(size=15)
    z = rng.normal(size=n)
    u = rng.normal(size=n)
    x1 = 0.6 * z + 0.3 * a1[f1] + 0.5 * u + rng.normal(size=n)
    x2 = rng.normal(size=n) + a2[f2]
    y = 1.5 * x1 - 0.7 * x2 + a1[f1] + a2[f2] + a3[f3] + u
    eta = 0.3 * x1 - 0.2 * x2 + 0.3 * a1[f1] + 0.2 * a2[f2] + 0.1 * a3[f3]
    df = pd.DataFrame({
        "y": y, "x1": x1, "x2": x2, "z": z, "f1": f1, "f2": f2, "f3": f3,
        "w": rng.uniform(0.3, 3.0, n), "cnt": rng.poisson(np.exp(eta)).astype(float),
    })
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


DATA = _panel()
FES = ["f1", "f1 + f2", "f1 + f2 + f3"]


def _assert_same(ours, ref, rtol=1e-8):
    assert list(ours.coef().index) == list(ref.coef().index)
    np.testing.assert_allclose(ours.coef().to_numpy(), ref.coef().to_numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.se().to_numpy(), ref.se().to_numpy(), rtol=rtol, atol=rtol)


# ---------------------------------------------------------------------------------- install


def test_install_patches_every_target_and_uninstall_restores_the_same_objects():
    compat.install()
    assert compat.installed()
    now = _current()
    for key in TARGETS:
        expected = compat.dispatch_demean if key[1] == "dispatch_demean" else compat.demean
        assert now[key] is expected, key
    compat.uninstall()
    assert not compat.installed()
    now = _current()
    for key in TARGETS:
        assert now[key] is ORIGINALS[key], key


def test_install_is_idempotent_and_uninstall_when_not_installed_is_a_noop():
    compat.uninstall()
    compat.install()
    compat.install()
    compat.uninstall()
    assert _current() == ORIGINALS
    compat.uninstall()
    assert _current() == ORIGINALS


def test_context_manager_restores_after_an_exception_and_nests():
    with pytest.raises(RuntimeError, match="boom"):
        with compat.use_fastpanel():
            assert compat.installed()
            raise RuntimeError("boom")
    assert not compat.installed()
    assert _current() == ORIGINALS
    compat.install()
    with compat.use_fastpanel():
        with compat.use_fastpanel():
            assert compat.installed()
    assert compat.installed()  # an install made before the block stays


def test_unsupported_or_missing_pyfixest_is_a_clear_import_error(monkeypatch):
    monkeypatch.setattr(compat, "_pyfixest_version", lambda: "0.59.2")
    with pytest.raises(ImportError, match=r"pyfixest 0\.60\.x.*found pyfixest 0\.59\.2"):
        compat.install()
    assert not compat.installed() and _current() == ORIGINALS
    with pytest.warns(UserWarning, match="untested"):
        compat.install(allow_untested=True)
    assert compat.installed()
    compat.uninstall()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "pyfixest", None)
    with pytest.raises(ImportError, match="needs pyfixest"):
        compat.install()


# ---------------------------------------------------------------------------------- estimates


@pytest.mark.parametrize("fe", FES)
@pytest.mark.parametrize("weights", [None, "w"])
def test_feols_matches_pyfixest(fe, weights):
    fml = f"y ~ x1 + x2 | {fe}"
    ref = pf.feols(fml, DATA, weights=weights, vcov={"CRV1": "f1"}, demeaner=TIGHT)
    with compat.use_fastpanel():
        calls = compat.stats()["calls"]
        ours = pf.feols(fml, DATA, weights=weights, vcov={"CRV1": "f1"})
        assert compat.stats()["calls"] > calls  # fastpanel did the demeaning
    _assert_same(ours, ref)
    np.testing.assert_allclose(ours.resid(), ref.resid(), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("fe", FES)
def test_iv_matches_pyfixest(fe):
    fml = f"y ~ x2 | {fe} | x1 ~ z"
    ref = pf.feols(fml, DATA, weights="w", vcov="hetero", demeaner=TIGHT)
    with compat.use_fastpanel():
        ours = pf.feols(fml, DATA, weights="w", vcov="hetero")
    _assert_same(ours, ref)


@pytest.mark.parametrize("fe", FES)
def test_fepois_matches_pyfixest_and_factorises_once(fe):
    fml = f"cnt ~ x1 + x2 | {fe}"
    ref = pf.fepois(fml, DATA, vcov={"CRV1": "f1"}, iwls_tol=1e-12, demeaner=TIGHT)
    with compat.use_fastpanel():
        before = compat.stats()
        ours = pf.fepois(fml, DATA, vcov={"CRV1": "f1"}, iwls_tol=1e-12)
        after = compat.stats()
    _assert_same(ours, ref)
    iterations = after["calls"] - before["calls"]
    assert iterations >= 3
    assert after["cache_misses"] - before["cache_misses"] == 1  # one factorisation for the IRLS loop


def test_feglm_and_lsmr_configured_fits_go_through_fastpanel():
    data = DATA.assign(yb=(DATA["y"] > DATA["y"].median()).astype(float))
    ref = pf.feglm("yb ~ x1 + x2 | f1 + f2", data, family="logit", demeaner=TIGHT)
    with compat.use_fastpanel():
        ours = pf.feglm("yb ~ x1 + x2 | f1 + f2", data, family="logit")
        lsmr = pf.feols("y ~ x1 + x2 | f1 + f2 + f3", DATA, demeaner=LsmrDemeaner())
    np.testing.assert_allclose(ours.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-6)
    exact = pf.feols("y ~ x1 + x2 | f1 + f2 + f3", DATA, demeaner=TIGHT)
    _assert_same(lsmr, exact)
    assert lsmr.preconditioner is None  # no pyfixest preconditioner exists under fastpanel


# ---------------------------------------------------------------------------------- contract


def _oracle(x: np.ndarray, codes: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Weighted least-squares residual of x on the dense dummies of every factor."""
    cols = [np.eye(int(c.max()) + 1)[c] for c in codes.T]
    D = np.hstack(cols)
    sw = np.ones(len(x)) if w is None else np.sqrt(w)
    X = x.reshape(len(x), -1)
    beta = np.linalg.lstsq(D * sw[:, None], X * sw[:, None], rcond=None)[0]
    return (X - D @ beta).reshape(x.shape)


def _codes(seed: int, n: int, levels: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, g, n) for g in levels]).astype(np.uint64)


@pytest.mark.parametrize("levels", [(9,), (9, 5), (9, 5, 4)], ids=["1way", "2way", "3way"])
@pytest.mark.parametrize("weighted", [False, True])
def test_demean_contract_against_pyfixest_and_oracle(levels, weighted):
    rng = np.random.default_rng(7)
    n = 160
    codes = _codes(len(levels), n, levels)
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 1e-3]
    w = rng.uniform(0.2, 4.0, n) if weighted else np.ones(n)
    x_before = x.copy()
    theirs, theirs_ok = ORIGINALS[("pyfixest.core.demean", "demean")](x, codes, w, tol=1e-13, maxiter=100_000)
    with compat.use_fastpanel():
        public = pf.estimation.demean
        assert public is compat.demean
        out, ok = public(x, codes, w)
    assert theirs_ok and ok is True
    assert out.shape == x.shape and out.dtype == np.float64 and out.flags.c_contiguous
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, x_before)
    oracle = _oracle(x, codes.astype(np.int64), None if not weighted else w)
    np.testing.assert_allclose(out, oracle, rtol=0, atol=1e-11 * float(np.abs(x).max()))
    np.testing.assert_allclose(out, theirs, rtol=0, atol=1e-9 * float(np.abs(x).max()))


def test_demean_accepts_orders_dtypes_and_1d():
    rng = np.random.default_rng(3)
    n = 120
    codes = _codes(1, n, (7, 4))
    x = rng.normal(size=(n, 2))
    ref, _ = compat.demean(x, codes, None)
    np.testing.assert_allclose(ref, _oracle(x, codes.astype(np.int64), None), atol=1e-12)
    for xv, cv in [
        (np.asfortranarray(x), codes),
        (x, codes.astype(np.int64)),
        (x, np.asfortranarray(codes.astype(np.uint32))),
        (x, codes.astype(np.float64)),  # integral floats, as a DataFrame's to_numpy may give
    ]:
        out, ok = compat.demean(xv, cv, np.ones(n))
        assert ok and out.dtype == np.float64 and out.flags.c_contiguous
        np.testing.assert_allclose(out, ref, atol=1e-13)
    out32, _ = compat.demean(x.astype(np.float32), codes, None)
    assert out32.dtype == np.float64
    np.testing.assert_allclose(out32, compat.demean(x.astype(np.float32).astype(np.float64), codes, None)[0])
    out1, ok = compat.demean(x[:, 0], codes[:, 0], None)  # 1-D x and flist (an extension)
    assert ok and out1.shape == (n,)
    np.testing.assert_allclose(out1, _oracle(x[:, :1], codes[:, :1].astype(np.int64), None)[:, 0], atol=1e-12)
    with pytest.raises(ValueError, match="rows"):
        compat.demean(x, codes[:-1], None)
    with pytest.raises(ValueError, match="integer codes"):
        compat.demean(x, codes + 0.5, None)


def test_dispatch_demean_contract():
    rng = np.random.default_rng(5)
    n = 100
    codes = _codes(2, n, (6, 5, 3))
    x = rng.normal(size=(n, 2))
    w = rng.uniform(0.5, 2.0, n)
    for demeaner in (MapDemeaner(), MapDemeaner(backend="numba"), LsmrDemeaner(), LsmrDemeaner(backend="torch")):
        out, ok, pre = compat.dispatch_demean(x, codes, w, demeaner, cached_preconditioner=None)
        assert ok is True and pre is None
        np.testing.assert_allclose(out, _oracle(x, codes.astype(np.int64), w), atol=1e-11)
    with pytest.raises(TypeError, match="Unsupported demeaner"):
        compat.dispatch_demean(x, codes, w, object())


def test_changed_flist_is_never_served_stale():
    rng = np.random.default_rng(11)
    n = 150
    codes = _codes(4, n, (8, 6, 3))
    x = rng.normal(size=(n, 2))
    compat.clear_cache()
    s0 = compat.stats()
    first, _ = compat.demean(x, codes, None)
    again, _ = compat.demean(x, codes.copy(), None)  # same contents, another array: a hit
    s1 = compat.stats()
    assert s1["cache_misses"] - s0["cache_misses"] == 1 and s1["cache_hits"] - s0["cache_hits"] == 1
    np.testing.assert_array_equal(first, again)
    codes[:10, 0] = (codes[:10, 0] + 1) % 8  # the same array object, changed in place
    changed, _ = compat.demean(x, codes, None)
    assert compat.stats()["cache_misses"] - s1["cache_misses"] == 1
    np.testing.assert_allclose(changed, _oracle(x, codes.astype(np.int64), None), atol=1e-11)
    assert not np.allclose(changed, first)
    single = codes[:, :1].copy()  # another shape: its own entry
    np.testing.assert_allclose(compat.demean(x, single, None)[0], _oracle(x, single.astype(np.int64), None),
                               atol=1e-12)
    compat.clear_cache()
    assert compat.stats()["cached"] == 0
