"""No input reachable from Python crashes the interpreter (issue 8, item 9).

The compiled entry points that index with caller-supplied arrays (``group_order``,
``ols_cluster_scores``) validate offsets and indices before any kernel uses them; the public
``Factor`` and ``FixedEffects`` validate and copy their codes (see test_ols_adversarial.py).
"""

from __future__ import annotations

import numpy as np
import pytest

_core = pytest.importorskip("fastpanel._core")

I64 = np.int64


@pytest.mark.parametrize(
    ("codes", "starts", "match"),
    [
        ([0, 0, 1], [0, 1, 3], "do not match the counts"),  # level 0 has 2 rows, 1 slot
        ([0, 0, 1], [1, 0, 3], "start at 0"),
        ([0, 1, 1], [0, 3, 2, 3], "non-decreasing"),
        ([0, 5, 1], [0, 1, 3], "out of range"),
        ([0, -1, 1], [0, 1, 3], "out of range"),
        ([0, 0, 1], [0, 2, 4], "end at len"),
    ],
)
def test_group_order_rejects_inconsistent_arrays(codes, starts, match) -> None:
    with pytest.raises(ValueError, match=match):
        _core.group_order(np.array(codes, dtype=I64), np.array(starts, dtype=I64))


def test_group_order_valid_input_is_a_stable_argsort() -> None:
    codes = np.array([2, 0, 1, 0, 2, 2], dtype=I64)
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes))]).astype(I64)
    np.testing.assert_array_equal(_core.group_order(codes, starts), np.argsort(codes, kind="stable"))


@pytest.mark.parametrize(
    ("order", "starts", "match"),
    [
        ([0, 1, 2, 9], [0, 2, 4], "out of range"),
        ([0, 1, -2, 3], [0, 2, 4], "out of range"),
        ([], [-5, 2, 4], "non-negative"),
        ([], [0, 3, 1, 4], "non-decreasing"),
        ([], [0, 2, 5], "end at n"),
    ],
)
def test_cluster_scores_rejects_bad_indices(order, starts, match) -> None:
    Z = np.asfortranarray(np.ones((4, 3)))
    with pytest.raises(ValueError, match=match):
        _core.ols_cluster_scores(Z, np.zeros(2), np.array(order, dtype=I64), np.array(starts, dtype=I64))


def test_cluster_scores_valid_input_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    Z = np.asfortranarray(rng.normal(size=(7, 3)))
    beta = rng.normal(size=2)
    codes = np.array([1, 0, 1, 2, 0, 2, 1])
    order = np.argsort(codes, kind="stable").astype(I64)
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes))]).astype(I64)
    sums, ssr = _core.ols_cluster_scores(Z, beta, order, starts)
    u = Z[:, 0] - Z[:, 1:] @ beta
    ref = np.zeros((3, 2))
    np.add.at(ref, codes, Z[:, 1:] * u[:, None])
    np.testing.assert_allclose(sums, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ssr, u @ u, rtol=1e-12)
