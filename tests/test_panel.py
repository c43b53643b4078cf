"""The data layer: factorize (ids of any dtype -> dense codes) and PanelIndex.

Expected values are computed here with plain NumPy / pandas (np.unique, groupby), never
with the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastpanel import Factor, PanelIndex, factorize


def check_factor(f: Factor, values: np.ndarray) -> None:
    """Codes are dense int64, decode to the input, counts/order/group_starts are consistent."""
    values = np.asarray(values)
    assert f.codes.dtype == np.int64
    assert f.codes.shape == values.shape
    assert f.n_obs == values.shape[0]
    uniq = np.unique(values)
    assert f.n_levels == uniq.size
    assert set(np.unique(f.codes)) == set(range(f.n_levels))  # dense 0..L-1
    np.testing.assert_array_equal(np.asarray(f.levels)[f.codes], values)  # decodes to the input
    expected_counts = np.array([(values == lev).sum() for lev in f.levels])
    np.testing.assert_array_equal(f.counts, expected_counts)
    assert f.counts.dtype == np.int64
    starts = f.group_starts
    assert starts.dtype == np.int64 and starts.shape == (f.n_levels + 1,)
    np.testing.assert_array_equal(np.diff(starts), expected_counts)
    assert starts[0] == 0 and starts[-1] == f.n_obs
    order = np.arange(f.n_obs) if f.order is None else f.order
    grouped = f.codes[order]
    assert (np.diff(grouped) >= 0).all()  # rows grouped by level, levels in code order
    for g in range(f.n_levels):  # stable: rows of a level keep their input order
        rows = order[starts[g] : starts[g + 1]]
        assert (np.diff(rows) > 0).all()
        np.testing.assert_array_equal(rows, np.flatnonzero(f.codes == g))
    np.testing.assert_array_equal(f.singletons, expected_counts[f.codes] == 1)


# --------------------------------------------------------------------------------------------
# factorize
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [
        np.array([3, 1, 3, 2, 1, 1]),
        np.array([3, 1, 3, 2, 1, 1], dtype=np.int32),
        np.array([3, 1, 3, 2, 1, 1], dtype=np.uint8),
        np.array([2**40, 5, 2**40, -(2**35), 5]),  # int64 beyond 2**31, wide range
        np.array([2**62, 1, 2**62], dtype=np.uint64),
        np.array([0, 1, 1, 2, 2, 2]),  # already sorted dense codes
        np.array([True, False, True]),
        np.array([0.5, -1.25, 0.5, 3.0]),
        np.array(["b", "a", "b", "c", "a"]),
        np.array(["x", "yy", "x"], dtype=object),
    ],
    ids=["int64", "int32", "uint8", "wide-int64", "uint64", "sorted", "bool", "float", "str", "object"],
)
def test_factorize_dtypes(values: np.ndarray) -> None:
    check_factor(factorize(values), values)


def test_factorize_levels_are_sorted_and_ids_beyond_2_31_kept_exactly() -> None:
    values = np.array([2**33 + 7, 2**33, 2**40, 2**33 + 7], dtype=np.int64)
    f = factorize(values)
    np.testing.assert_array_equal(f.levels, [2**33, 2**33 + 7, 2**40])
    np.testing.assert_array_equal(f.codes, [1, 0, 2, 1])


def test_factorize_large_random_unsorted_ids() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 500, 20_000) * 1_000_003 + 2**45
    f = factorize(values)
    uniq, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(f.codes, inverse)
    np.testing.assert_array_equal(f.levels, uniq)
    order = f.order
    assert order is not None and order.dtype == np.int64
    np.testing.assert_array_equal(order, np.argsort(inverse, kind="stable"))


@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize("offset", [0, -(10**12)])
def test_factorize_large_dense_ids_in_random_order(gaps: bool, offset: int) -> None:
    """Large enough for the compiled summary's parallel passes (per-thread presence tables) and
    the parallel level counts; with values missing from the range (remapped) or not."""
    rng = np.random.default_rng(7)
    values = rng.permutation(np.repeat(np.arange(60_000), 5)) + offset
    if gaps:
        values = values[(values - offset) % 7 != 3]
    f = factorize(values)
    uniq, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(f.codes, inverse)
    np.testing.assert_array_equal(f.levels, uniq)
    np.testing.assert_array_equal(f.counts, counts)
    assert not f.codes.flags.writeable and not np.shares_memory(f.codes, values)


def test_level_counts_rejects_codes_out_of_range() -> None:
    from fastpanel import _core

    codes = np.zeros(300_000, dtype=np.int64)
    codes[1234] = 5
    with pytest.raises(ValueError, match="0 .. n_levels - 1"):
        _core.level_counts(codes, 5)
    codes[1234] = -1
    with pytest.raises(ValueError, match="0 .. n_levels - 1"):
        _core.level_counts(codes, 5)


def test_factorize_sorted_ids_need_no_permutation() -> None:
    f = factorize(np.repeat([10, 20, 30], [2, 1, 3]))
    assert f.order is None
    np.testing.assert_array_equal(f.group_starts, [0, 2, 3, 6])


def test_factorize_pandas_categorical_drops_unused_categories() -> None:
    cat = pd.Categorical(["lo", "hi", "lo", "mid"], categories=["lo", "mid", "hi", "unused"])
    for values in (cat, pd.Series(cat)):
        f = factorize(values)
        assert f.codes.dtype == np.int64
        np.testing.assert_array_equal(np.asarray(f.levels)[f.codes], np.asarray(cat))
        # the used categories are the levels, in their declared order; a category with no row
        # is no level (it would count as a fixed effect with no data)
        np.testing.assert_array_equal(f.levels, ["lo", "mid", "hi"])
        np.testing.assert_array_equal(f.counts, [2, 1, 1])


def test_factorize_series_and_index() -> None:
    s = pd.Series([5, 3, 5])
    check_factor(factorize(s), s.to_numpy())
    check_factor(factorize(pd.Index(["a", "b", "a"])), np.array(["a", "b", "a"]))


@pytest.mark.parametrize(
    "values, missing",
    [
        (np.array([1.0, np.nan, 2.0, 1.0]), [1]),
        (np.array([1.0, np.inf, -np.inf, 1.0]), [1, 2]),
        (np.array(["a", None, "b"], dtype=object), [1]),
        (pd.Categorical(["a", None, "a"]), [1]),
    ],
    ids=["nan", "inf", "none", "categorical-nan"],
)
def test_factorize_missing_ids_get_code_minus_one(values, missing: list[int]) -> None:
    f = factorize(values)
    assert f.has_missing
    np.testing.assert_array_equal(np.flatnonzero(f.codes < 0), missing)
    present = np.flatnonzero(f.codes >= 0)
    assert set(np.unique(f.codes[present])) == set(range(f.n_levels))


def test_factorize_does_not_modify_input() -> None:
    values = np.array([3, 1, 3, 2])
    before = values.copy()
    f = factorize(values)
    np.testing.assert_array_equal(values, before)
    assert not np.shares_memory(f.codes, values) or not f.codes.flags.writeable


def test_factorize_rejects_2d() -> None:
    with pytest.raises(ValueError, match="ids"):
        factorize(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="entity"):
        factorize(np.zeros((3, 2)), name="entity")


def test_factor_subset_recodes_densely() -> None:
    f = factorize(np.array([5, 7, 9, 7, 5]))
    sub = f.subset(np.array([False, True, True, True, False]))
    np.testing.assert_array_equal(sub.codes, [0, 1, 0])
    np.testing.assert_array_equal(sub.levels, [7, 9])
    check_factor(sub, np.array([7, 9, 7]))


# --------------------------------------------------------------------------------------------
# PanelIndex
# --------------------------------------------------------------------------------------------
def _panel(rng: np.random.Generator, n_e: int, n_t: int, missing: float = 0.0):
    ent = np.repeat(np.arange(n_e), n_t)
    per = np.tile(np.arange(n_t), n_e)
    keep = rng.random(ent.size) >= missing
    perm = rng.permutation(int(keep.sum()))
    return ent[keep][perm], per[keep][perm]


def test_panel_index_structure(rng: np.random.Generator) -> None:
    ent, per = _panel(rng, 30, 7, 0.2)
    labels = np.array([f"firm{e:02d}" for e in ent])
    years = per + 2000
    pi = PanelIndex(labels, years)
    frame = pd.DataFrame({"e": labels, "t": years})
    assert pi.n_obs == ent.size and pi.n_dropped == 0 and pi.keep.all()
    assert pi.n_entities == frame["e"].nunique()
    assert pi.n_periods == frame["t"].nunique()
    assert not pi.is_balanced
    counts = frame.groupby("e").size().sort_index().to_numpy()
    np.testing.assert_array_equal(pi.group_counts, counts)
    np.testing.assert_array_equal(np.diff(pi.group_starts), counts)
    order = pi.order
    assert order is not None
    np.testing.assert_array_equal(order, np.argsort(labels, kind="stable"))
    check_factor(pi.entity, labels)
    check_factor(pi.time, years)


@pytest.mark.parametrize(
    "entity, time",
    [
        (np.repeat([1, 2, 3], 4), np.tile([10, 11, 12, 13], 3)),
        (np.repeat(["a", "b"], 3)[::-1], np.tile([2001, 2002, 2003], 2)),
        (pd.Categorical(np.repeat(["x", "y"], 2)), np.array([1, 2, 2, 1])),
    ],
)
def test_panel_index_balanced(entity, time) -> None:
    pi = PanelIndex(entity, time)
    assert pi.is_balanced
    assert pi.n_obs == pi.n_entities * pi.n_periods


def test_panel_index_unbalanced_detected() -> None:
    pi = PanelIndex(np.array([1, 1, 2, 3, 3]), np.array([1, 2, 1, 1, 2]))
    assert not pi.is_balanced
    # same number of rows per entity but different periods: still unbalanced
    pi2 = PanelIndex(np.array([1, 1, 2, 2]), np.array([1, 2, 2, 3]))
    assert not pi2.is_balanced


def test_panel_index_entity_only() -> None:
    pi = PanelIndex(np.array([4, 4, 9, 9]))
    assert pi.time is None and pi.n_periods == 1 and pi.is_balanced
    assert not PanelIndex(np.array([4, 4, 9])).is_balanced


@pytest.mark.parametrize(
    "entity, time, e_label, t_label",
    [
        (np.array([1, 1, 2, 2, 2]), np.array([2000, 2001, 2000, 2001, 2001]), "2", "2001"),
        (np.array(["acme", "acme", "zeta"]), np.array([5, 5, 5]), "acme", "5"),
        (np.array([2**40, 2**40]), np.array([1, 1]), str(2**40), "1"),
    ],
)
def test_duplicate_entity_time_names_an_example(entity, time, e_label: str, t_label: str) -> None:
    with pytest.raises(ValueError, match="duplicate") as err:
        PanelIndex(entity, time)
    msg = str(err.value)
    assert e_label in msg and t_label in msg


def test_duplicate_detection_with_sparse_ids() -> None:
    """Id ranges far larger than the row count take the hashing path; it must still find the pair."""
    entity = np.array([10**15, 3, 10**15, 7])
    time = np.array([2**50, 1, 2**50, 1])
    with pytest.raises(ValueError, match="duplicate") as err:
        PanelIndex(entity, time)
    assert str(10**15) in str(err.value) and str(2**50) in str(err.value)


def test_singletons_found_not_dropped() -> None:
    entity = np.array([1, 1, 2, 3, 3, 4])
    time = np.array([1, 2, 1, 1, 2, 2])
    pi = PanelIndex(entity, time)
    assert pi.n_singletons == 2  # entities 2 and 4
    assert pi.n_obs == 6  # dropping them is the estimator's choice
    np.testing.assert_array_equal(pi.entity.singletons, [False, False, True, False, False, True])


def test_drop_missing_counts_rows() -> None:
    entity = np.array([1.0, 1.0, np.nan, 2.0, 2.0, 3.0])
    time = np.array([1, 2, 1, 1, 2, 1])
    data = pd.DataFrame({"y": [1.0, np.inf, 3.0, 4.0, 5.0, 6.0], "x": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0],
                         "name": list("abcdef")})
    with pytest.raises(ValueError, match="drop_missing") as err:
        PanelIndex(entity, time, data=data)
    assert "3 rows" in str(err.value) and "entity" in str(err.value)
    pi = PanelIndex(entity, time, data=data, drop_missing=True)
    assert pi.n_dropped == 3 and pi.n_input == 6 and pi.n_obs == 3
    np.testing.assert_array_equal(pi.keep, [True, False, False, False, True, True])
    np.testing.assert_array_equal(pi.select(data["y"].to_numpy()), [1.0, 5.0, 6.0])
    np.testing.assert_array_equal(np.asarray(pi.entity.levels)[pi.entity.codes], [1.0, 2.0, 3.0])
    assert pi.n_entities == 3 and pi.n_periods == 2


def test_drop_missing_with_numpy_data_and_missing_time() -> None:
    entity = np.array([1, 1, 2, 2])
    time = np.array([1.0, np.nan, 1.0, 2.0])
    X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, np.nan], [7.0, 8.0]])
    pi = PanelIndex(entity, time, data=X, drop_missing=True)
    assert pi.n_dropped == 2
    np.testing.assert_array_equal(pi.keep, [True, False, False, True])


def test_no_missing_means_nothing_dropped() -> None:
    pi = PanelIndex(np.array([1, 2]), np.array([1, 1]), data=np.ones((2, 3)), drop_missing=True)
    assert pi.n_dropped == 0 and pi.keep.all()


def test_panel_index_errors() -> None:
    with pytest.raises(ValueError, match="entity"):
        PanelIndex(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="time"):
        PanelIndex(np.array([1, 2, 3]), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"data\[:, 0\]|data"):
        PanelIndex(np.array([1, 2, 3]), data=[np.ones(2)])
    with pytest.raises(ValueError, match="every row"):
        PanelIndex(np.array([np.nan, np.nan]), drop_missing=True)
    pi = PanelIndex(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="rows"):
        pi.select(np.ones(5))


def test_panel_index_does_not_modify_inputs() -> None:
    entity = np.array([3.0, 1.0, np.nan, 3.0])
    time = np.array([1, 1, 1, 2])
    data = np.array([1.0, np.nan, 2.0, 3.0])
    copies = entity.copy(), time.copy(), data.copy()
    PanelIndex(entity, time, data=data, drop_missing=True)
    for orig, arr in zip(copies, (entity, time, data)):
        np.testing.assert_array_equal(arr, orig)
