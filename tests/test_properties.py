"""Property-based tests (hypothesis) over feols, PanelOLS, within and the threshold model, on
the general shape of data: unbalanced panels with gaps in the middle of entities, rows in random
order, odd ids, offsets and scales (issue 8).

Properties: the same answer for rows in any order and for relabelled ids (strings, huge ints,
categoricals with unused categories); slopes unchanged by shifting y or a regressor by a
constant; coefficients and every standard error scale exactly with a regressor; agreement with
an independent dummy-variable least-squares oracle (NumPy); cpp = numba = cuda simulator;
1 thread = 2 threads. Examples per test: the "ci" hypothesis profile (conftest.py);
``HYPOTHESIS_PROFILE=slow`` runs many more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastpanel

VCOVS = ["iid", "HC1", {"CRV1": "firm"}, {"CRV1": "firm+year"}, {"CRV3": "firm"}, {"DK": 1}]


@st.composite
def panels(draw, min_entities: int = 4, max_entities: int = 12, max_periods: int = 6) -> pd.DataFrame:
    """An unbalanced panel: gaps anywhere (middle of entities too), rows in random order."""
    N = draw(st.integers(min_entities, max_entities))
    T = draw(st.integers(3, max_periods))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    firm = np.repeat(np.arange(N), T)
    year = np.tile(np.arange(T), N)
    keep = rng.uniform(size=N * T) < draw(st.floats(0.6, 1.0))
    keep[::T] = keep[1::T] = True  # every firm keeps >= 2 rows
    df = pd.DataFrame({"firm": firm[keep], "year": 1990 + year[keep]})
    n = len(df)
    df["x1"] = rng.normal(size=n) + 0.5 * rng.normal(size=N)[df.firm]
    df["x2"] = rng.normal(size=n)
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    df["y"] = (0.8 * df.x1 - 0.4 * df.x2 + rng.normal(size=N)[df.firm] + rng.normal(size=T)[df.year - 1990]
               + rng.normal(size=n))
    return df.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)


def _fit(df: pd.DataFrame, vcov, fml: str = "y ~ x1 + x2 | firm + year", **kw):
    return fastpanel.feols(fml, df, vcov=vcov, time="year", **kw)


def _close(a, b, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def _dummy_ols(df: pd.DataFrame, cols, ids, weights=None) -> np.ndarray:
    Z = [df[cols].to_numpy(float)]
    for g in ids:
        codes = pd.factorize(df[g])[0]
        D = np.zeros((len(df), codes.max() + 1))
        D[np.arange(len(df)), codes] = 1.0
        Z.append(D)
    Z = np.hstack(Z)
    y = df.y.to_numpy(float)
    if weights is not None:
        s = np.sqrt(df[weights].to_numpy(float))
        Z, y = Z * s[:, None], y * s
    return np.linalg.lstsq(Z, y, rcond=None)[0][: len(cols)]


@given(df=panels(), vcov=st.sampled_from(VCOVS), weighted=st.booleans())
def test_feols_equals_dummy_oracle_and_ignores_row_order(df, vcov, weighted) -> None:
    w = "w" if weighted else None
    res = _fit(df, vcov, weights=w)
    _close(res.params, _dummy_ols(df, ["x1", "x2"], ["firm", "year"], w), rtol=1e-8, atol=1e-10)
    other = _fit(df.sample(frac=1.0, random_state=7), vcov, weights=w)
    _close(other.params, res.params)
    _close(other.bse, res.bse)


@given(df=panels(), vcov=st.sampled_from(VCOVS), how=st.sampled_from(["str", "huge", "categorical"]))
def test_relabelling_ids_changes_nothing(df, vcov, how) -> None:
    res = _fit(df, vcov)
    d2 = df.copy()
    if how == "str":
        d2["firm"] = "firm-" + d2.firm.astype(str)
    elif how == "huge":
        d2["firm"] = d2.firm.astype(np.int64) * 7919 + 2**40
    else:
        cats = [f"u{i}" for i in range(5)] + sorted(set(d2.firm.astype(str)))
        d2["firm"] = pd.Categorical(d2.firm.astype(str), categories=cats)  # unused categories
    other = _fit(d2, vcov)
    _close(other.params, res.params)
    _close(other.bse, res.bse)
    assert other.df_resid == res.df_resid


@given(df=panels(), vcov=st.sampled_from(VCOVS), column=st.sampled_from(["y", "x1"]),
       shift=st.sampled_from([1e3, -1e6, 1e8]))
def test_shifting_by_a_constant_leaves_slopes(df, vcov, column, shift) -> None:
    res = _fit(df, vcov)
    other = _fit(df.assign(**{column: df[column] + shift}), vcov)
    # adding the shift rounds the data to eps * |shift|: that is the only error allowed
    tol = 64 * np.finfo(float).eps * abs(shift)
    _close(other.params, res.params, rtol=tol, atol=tol)
    _close(other.bse, res.bse, rtol=tol, atol=tol)
    assert list(other.params.index) == list(res.params.index)  # nothing declared absorbed
    if column == "y":
        _close(other.rsquared, res.rsquared, rtol=tol, atol=tol)


@given(df=panels(), vcov=st.sampled_from(VCOVS), power=st.integers(-8, 8))
def test_scaling_a_regressor_scales_coefficient_and_standard_error(df, vcov, power) -> None:
    c = 10.0**power
    res = _fit(df, vcov)
    other = _fit(df.assign(x1=df.x1 * c), vcov)
    _close(other.params["x1"] * c, res.params["x1"], rtol=1e-8)
    _close(other.bse["x1"] * c, res.bse["x1"], rtol=1e-8)
    _close(other.params["x2"], res.params["x2"], rtol=1e-8)
    _close(other.bse["x2"], res.bse["x2"], rtol=1e-8)


@given(df=panels(), weighted=st.booleans())
def test_panelols_matches_feols(df, weighted) -> None:
    w = df.w if weighted else None
    a = fastpanel.PanelOLS(df.y, df[["x1", "x2"]], df.firm, df.year, time_effects=True, weights=w).fit(
        vcov={"CRV1": "entity"})
    b = _fit(df, {"CRV1": "firm"}, weights="w" if weighted else None)
    _close(a.params.to_numpy(), b.params.to_numpy())
    _close(a.bse.to_numpy(), b.bse.to_numpy())


@given(df=panels(max_entities=8, max_periods=5), weighted=st.booleans(), ways=st.sampled_from([1, 2]))
def test_within_backends_agree(df, weighted, ways) -> None:
    X = df[["x1", "x2", "y"]].to_numpy()
    ids = df.firm.to_numpy() if ways == 1 else [df.firm.to_numpy(), df.year.to_numpy()]
    w = df.w.to_numpy() if weighted else None
    ref = fastpanel.within(X, ids, weights=w, backend="cpp")
    for b in ("numba", "cuda"):
        _close(fastpanel.within(X, ids, weights=w, backend=b), ref, rtol=1e-10, atol=1e-10)


@given(df=panels(min_entities=6))
def test_one_thread_equals_two(df) -> None:
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        a = _fit(df, {"CRV1": "firm"})
        fastpanel.set_num_threads(2)
        b = _fit(df, {"CRV1": "firm"})
    finally:
        fastpanel.set_num_threads(before)
    _close(a.params, b.params, rtol=1e-12)
    _close(a.bse, b.bse, rtol=1e-12)


@st.composite
def threshold_panels(draw) -> pd.DataFrame:
    df = draw(panels(min_entities=8, max_entities=14, max_periods=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    df["q"] = np.round(rng.uniform(size=len(df)), 2)
    df["y"] = df.y + 0.8 * df.x2 * (df.q > 0.5)
    return df


TH = dict(threshold_var="q", regime_vars="x2", time="year", trim=0.15, grid=20, progress=False)


@given(df=threshold_panels(), effects=st.sampled_from(["firm", "firm + year"]))
def test_threshold_row_order_relabel_and_shift(df, effects) -> None:
    fml = f"y ~ x1 | {effects}"
    kw = dict(TH, n_boot=9, seed=3, bootstrap="wild")
    try:
        res = fastpanel.threshold(fml, df, **kw)
    except ValueError as exc:  # a draw with too few observations in an edge regime
        assert "raise trim" in str(exc) or "candidates" in str(exc)
        return
    other = fastpanel.threshold(fml, df.sample(frac=1.0, random_state=3), **kw)
    np.testing.assert_array_equal(other.thresholds, res.thresholds)
    _close(other.tests.F, res.tests.F, rtol=1e-9)
    np.testing.assert_array_equal(other.tests.pvalue, res.tests.pvalue)  # same draws, same entities
    # relabelled ids: the estimates cannot change; the bootstrap draws are attached to entities
    # in the order of their labels, so its p-values are equal only in distribution
    relabelled = fastpanel.threshold(fml, df.assign(firm="f" + df.firm.astype(str)), **kw)
    np.testing.assert_array_equal(relabelled.thresholds, res.thresholds)
    _close(relabelled.tests.F, res.tests.F, rtol=1e-9)
    shifted = fastpanel.threshold(fml, df.assign(y=df.y + 1e6, x1=df.x1 - 1e6), **kw)
    np.testing.assert_array_equal(shifted.thresholds, res.thresholds)
    _close(shifted.tests.F, res.tests.F, rtol=1e-6)


@pytest.mark.cuda
@given(df=threshold_panels())
def test_threshold_backends_identical_pvalues(df) -> None:
    kw = dict(TH, n_boot=9, seed=5, bootstrap="wild", n_thresholds=2, time_effects=True)
    try:
        ref = fastpanel.threshold("y ~ x1 | firm", df, backend="cpp", **kw)
    except ValueError as exc:
        assert "raise trim" in str(exc) or "candidates" in str(exc)
        return
    for b in ("numba", "cuda"):
        other = fastpanel.threshold("y ~ x1 | firm", df, backend=b, **kw)
        np.testing.assert_array_equal(other.thresholds, ref.thresholds)
        for k in range(2):
            _close(other.boot_F[k], ref.boot_F[k], rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(other.tests.pvalue, ref.tests.pvalue)
