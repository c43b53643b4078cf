"""Property tests (hypothesis) of the array API ``PanelOLS`` against an independent oracle.

The oracle is least squares on an explicit dummy-variable design written here in NumPy
(pseudo-inverse of Z'Z, so redundant dummies are harmless: the slopes are estimable and their
covariance block does not depend on the generalised inverse). It gives the slopes and the
``ssc="statsmodels"`` standard errors (iid, HC1, CRV1) with K = rank of the design.

Data: unbalanced panels with gaps in the middle of entities, rows in random order, one- and
two-way effects, optional weights; ids relabelled as strings, huge ints and categoricals with
unused categories; y and a regressor shifted by up to 1e8 and a regressor scaled by
1e-8 .. 1e8 for every covariance type (CRV3 and DK included); one thread = two threads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

import fastpanel

VCOVS = ["iid", "HC1", {"CRV1": "entity"}, {"CRV3": "entity"}, {"DK": 1}]


@st.composite
def panels(draw) -> pd.DataFrame:
    """Unbalanced panel, gaps anywhere, rows shuffled; every entity keeps at least 2 rows."""
    N = draw(st.integers(4, 10))
    T = draw(st.integers(3, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    e = np.repeat(np.arange(N), T)
    t = np.tile(np.arange(T), N)
    keep = rng.uniform(size=N * T) < draw(st.floats(0.6, 1.0))
    keep[::T] = keep[T - 1::T] = True  # gaps fall in the middle of entities
    df = pd.DataFrame({"e": e[keep], "t": 2000 + t[keep]})
    n = len(df)
    df["x1"] = rng.normal(size=n) + rng.normal(size=N)[df.e]
    df["x2"] = rng.normal(size=n)
    df["w"] = rng.uniform(0.3, 3.0, size=n)
    df["y"] = 0.7 * df.x1 - 1.3 * df.x2 + rng.normal(size=N)[df.e] + rng.normal(size=T)[df.t - 2000] + rng.normal(size=n)
    return df.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)


def _dummies(ids: np.ndarray) -> np.ndarray:
    codes = pd.factorize(ids)[0]
    D = np.zeros((len(ids), codes.max() + 1))
    D[np.arange(len(ids)), codes] = 1.0
    return D


def _oracle(df: pd.DataFrame, two_way: bool, weighted: bool) -> dict[str, np.ndarray]:
    """Slopes and statsmodels-preset bse (iid, HC1, CRV1 by entity) from the dummy design."""
    X = df[["x1", "x2"]].to_numpy(float)
    Z = np.hstack([X, _dummies(df.e.to_numpy())] + ([_dummies(df.t.to_numpy())] if two_way else []))
    y = df.y.to_numpy(float)
    if weighted:
        s = np.sqrt(df.w.to_numpy(float))
        Z, y = Z * s[:, None], y * s
    P = np.linalg.pinv(Z.T @ Z, rcond=1e-11, hermitian=True)
    beta = P @ (Z.T @ y)
    u = y - Z @ beta
    n, K = len(y), np.linalg.matrix_rank(Z)
    iid = u @ u / (n - K) * P
    S = Z * u[:, None]
    hc1 = n / (n - K) * P @ (S.T @ S) @ P
    codes = pd.factorize(df.e)[0]
    G = codes.max() + 1
    Sg = np.zeros((G, Z.shape[1]))
    np.add.at(Sg, codes, S)
    crv1 = G / (G - 1) * (n - 1) / (n - K) * P @ (Sg.T @ Sg) @ P
    se = lambda V: np.sqrt(np.diag(V)[:2])  # noqa: E731
    return {"params": beta[:2], "iid": se(iid), "HC1": se(hc1), "CRV1": se(crv1)}


def _fit(df: pd.DataFrame, vcov, two_way: bool, weighted: bool, entity=None, x1=None, y=None, ssc="fixest",
         drop_singletons: bool = True):
    X = df[["x1", "x2"]].copy()
    if x1 is not None:
        X["x1"] = x1
    model = fastpanel.PanelOLS(
        df.y if y is None else y, X, df.e if entity is None else entity, df.t,
        time_effects=two_way, weights=df.w if weighted else None, drop_singletons=drop_singletons,
    )
    return model.fit(vcov=vcov, ssc=ssc)


def _close(a, b, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


@given(df=panels(), two_way=st.booleans(), weighted=st.booleans())
def test_panelols_matches_dummy_oracle(df, two_way, weighted) -> None:
    ref = _oracle(df, two_way, weighted)
    for vcov, key in [("iid", "iid"), ("HC1", "HC1"), ({"CRV1": "entity"}, "CRV1")]:
        # singletons kept: the dummy design keeps them too (they change n and K alike)
        res = _fit(df, vcov, two_way, weighted, ssc="statsmodels", drop_singletons=False)
        _close(res.params.to_numpy(), ref["params"], rtol=1e-8, atol=1e-10)
        _close(res.bse.to_numpy(), ref[key], rtol=1e-7, atol=1e-10)


@given(df=panels(), two_way=st.booleans(), weighted=st.booleans(), vcov=st.sampled_from(VCOVS),
       how=st.sampled_from(["shuffle", "str", "huge", "categorical"]))
def test_row_order_and_relabelling_change_nothing(df, two_way, weighted, vcov, how) -> None:
    res = _fit(df, vcov, two_way, weighted)
    if how == "shuffle":
        d2, ent = df.sample(frac=1.0, random_state=3).reset_index(drop=True), None
    else:
        d2 = df
        if how == "str":
            ent = "firm/" + df.e.astype(str)
        elif how == "huge":
            ent = df.e.astype(np.int64) * 1_000_003 + 2**61
        else:
            labels = df.e.astype(str)
            ent = pd.Series(pd.Categorical(labels, categories=["zz", "unused"] + sorted(set(labels)) + ["u2"]))
    other = _fit(d2, vcov, two_way, weighted, entity=ent)
    _close(other.params.to_numpy(), res.params.to_numpy())
    _close(other.bse.to_numpy(), res.bse.to_numpy())
    assert other.df_resid == res.df_resid and other.nobs == res.nobs


@given(df=panels(), two_way=st.booleans(), weighted=st.booleans(), vcov=st.sampled_from(VCOVS),
       column=st.sampled_from(["y", "x1"]), shift=st.sampled_from([-1e4, 1e6, 1e8]))
def test_shift_by_a_constant_leaves_slopes_and_bse(df, two_way, weighted, vcov, column, shift) -> None:
    res = _fit(df, vcov, two_way, weighted)
    kw = {column: df[column] + shift}
    other = _fit(df, vcov, two_way, weighted, **kw)
    # the shifted data are rounded to eps * |shift| when formed: the only error allowed
    tol = max(1e-8, 64 * np.finfo(float).eps * abs(shift))
    _close(other.params.to_numpy(), res.params.to_numpy(), rtol=tol, atol=tol)
    _close(other.bse.to_numpy(), res.bse.to_numpy(), rtol=tol, atol=tol)
    assert list(other.params.index) == ["x1", "x2"]  # nothing declared absorbed


@given(df=panels(), two_way=st.booleans(), weighted=st.booleans(), vcov=st.sampled_from(VCOVS),
       power=st.integers(-8, 8))
def test_scaling_a_regressor_scales_its_coefficient_and_bse(df, two_way, weighted, vcov, power) -> None:
    c = 10.0**power
    res = _fit(df, vcov, two_way, weighted)
    other = _fit(df, vcov, two_way, weighted, x1=df.x1 * c)
    _close(other.params["x1"] * c, res.params["x1"], rtol=1e-8)
    _close(other.bse["x1"] * c, res.bse["x1"], rtol=1e-8)
    _close(other.params["x2"], res.params["x2"], rtol=1e-8)
    _close(other.bse["x2"], res.bse["x2"], rtol=1e-8)


@given(df=panels(), two_way=st.booleans(), weighted=st.booleans(), vcov=st.sampled_from(VCOVS))
def test_one_thread_equals_two_threads(df, two_way, weighted, vcov) -> None:
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        a = _fit(df, vcov, two_way, weighted)
        fastpanel.set_num_threads(2)
        b = _fit(df, vcov, two_way, weighted)
    finally:
        fastpanel.set_num_threads(before)
    _close(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-12)
    _close(a.bse.to_numpy(), b.bse.to_numpy(), rtol=1e-12)
