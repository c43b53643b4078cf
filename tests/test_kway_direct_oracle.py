"""Three-way fixed effects up to 100k rows against an independent direct solve.

Oracle (written here, plain NumPy): eliminate the largest dimension A by its group means
(Frisch-Waugh-Lovell), then solve the least-squares problem on the A-demeaned dummy columns of
the other dimensions with a dense QR-based ``lstsq`` (no iteration, no Schur complement). Its
residuals are the within transform; its rank plus the A levels is the number of identified
effects. Designs: fixest's "difficult" (firm = row mod n_firm, whose firm parity equals the year
parity: collinear beyond the connected set) and "simple" benchmark designs, and a random sparse
bipartite design (a chain of firms linked by workers who move between neighbours) with rows shuffled and weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastpanel


def _design(kind: str, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if kind == "random":
        n_w = n // 8  # each worker 8 rows (no singletons), at one of two neighbouring firms:
        indiv = np.repeat(np.arange(n_w), 8)  # a chain of firms, weakly connected
        firm = (indiv // 40 + rng.integers(0, 2, n)) % max(2, n_w // 40)
        year = rng.integers(0, 12, n)
        perm = rng.permutation(n)
        indiv, firm, year = indiv[perm], firm[perm], year[perm]
    else:
        n_i = n // 10
        n_f = round(n_i / 23)
        indiv = np.repeat(np.arange(n_i), 10)
        year = np.tile(np.arange(10), n_i)
        firm = np.arange(n) % n_f if kind == "difficult" else rng.integers(0, n_f, n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 - 0.3 * x2 + rng.normal(size=firm.max() + 1)[firm] + rng.normal(size=indiv.max() + 1)[indiv]
         + rng.normal(size=year.max() + 1)[year] + rng.normal(size=n) + 1e3)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "indiv": indiv, "firm": firm, "year": year,
                         "w": rng.uniform(0.5, 2.0, n)})


def _oracle(df: pd.DataFrame, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Slopes, their iid standard errors (statsmodels convention: n - k - rank df) and the rank."""
    n = len(df)
    sw = np.ones(n) if w is None else np.sqrt(w)
    ww = sw**2
    a = pd.factorize(df.indiv)[0]
    WA = np.bincount(a, ww)

    def demean_a(M: np.ndarray) -> np.ndarray:
        means = np.column_stack([np.bincount(a, ww * M[:, j]) for j in range(M.shape[1])]) / WA[:, None]
        return M - means[a]

    codes = [pd.factorize(df[c])[0] for c in ("firm", "year")]
    D = np.hstack([(c[:, None] == np.arange(c.max() + 1)).astype(float) for c in codes])
    Da = demean_a(D) * sw[:, None]
    V = demean_a(df[["y", "x1", "x2"]].to_numpy()) * sw[:, None]
    coef, _, rank_b, _ = np.linalg.lstsq(Da, V, rcond=None)
    R = V - Da @ coef  # the within transform (times sqrt(w))
    beta, *_ = np.linalg.lstsq(R[:, 1:], R[:, 0], rcond=None)
    u = R[:, 0] - R[:, 1:] @ beta
    n_id = a.max() + 1 + int(rank_b)
    sigma2 = u @ u / (n - 2 - n_id)
    bse = np.sqrt(np.diag(sigma2 * np.linalg.inv(R[:, 1:].T @ R[:, 1:])))
    return beta, bse, n_id


def _check(kind: str, n: int, weighted: bool) -> None:
    df = _design(kind, n)
    w = df.w.to_numpy() if weighted else None
    beta, bse, n_id = _oracle(df, w)
    res = fastpanel.feols("y ~ x1 + x2 | indiv + firm + year", df, weights="w" if weighted else None,
                          ssc="statsmodels")
    assert res.nobs == n  # no singletons in these designs: the oracle uses every row
    np.testing.assert_allclose(res.params.to_numpy(), beta, rtol=1e-10)
    assert res.df_resid == n - 2 - n_id
    np.testing.assert_allclose(res.bse.to_numpy(), bse, rtol=1e-9)


@pytest.mark.parametrize("kind", ["difficult", "simple", "random"])
@pytest.mark.parametrize("weighted", [False, True])
def test_three_way_equals_direct_solve_20k(kind, weighted) -> None:
    _check(kind, 20_000, weighted)


@pytest.mark.parametrize("kind", ["difficult", "simple", "random"])
def test_three_way_equals_direct_solve_100k(kind) -> None:
    _check(kind, 100_000, False)
