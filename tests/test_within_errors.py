"""Bad input to fastpanel.within: a clear ValueError/TypeError that names the argument.

Every check runs on the CPU backends (the error must not depend on the kernel) and also
verifies that nothing was modified in place on the way to the error.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastpanel import FixedEffects, within

BACKENDS = ["cpp", "numba"]


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    ent = np.repeat(np.arange(10), 4)
    per = np.tile(np.arange(4), 10)
    return rng.normal(size=(40, 2)), ent, per


# --------------------------------------------------------------------------------------------
# lengths and shapes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_length_differs_from_X(backend: str, data) -> None:
    X, ent, per = data
    with pytest.raises(ValueError, match=r"ids.*(X|rows)") as err:
        within(X, ent[:-1], backend=backend)
    assert "39" in str(err.value) and "40" in str(err.value)
    with pytest.raises(ValueError, match="ids"):
        within(X[:-3], [ent, per], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_arrays_of_different_lengths(backend: str, data) -> None:
    X, ent, per = data
    with pytest.raises(ValueError, match=r"ids\[1\]") as err:
        within(X, [ent, per[:-2]], backend=backend)
    assert "same length" in str(err.value)
    with pytest.raises(ValueError, match=r"ids\[2\]"):
        within(X, [ent, per, per[:5]], backend=backend)
    with pytest.raises(ValueError, match=r"ids"):
        FixedEffects([ent, per[:-1]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_length_and_shape(backend: str, data) -> None:
    X, ent, _ = data
    with pytest.raises(ValueError, match="weights") as err:
        within(X, ent, weights=np.ones(39), backend=backend)
    assert "39" in str(err.value)
    with pytest.raises(ValueError, match="weights"):
        within(X, ent, weights=np.ones((40, 2)), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_X_with_wrong_number_of_dimensions(backend: str, data) -> None:
    X, ent, _ = data
    with pytest.raises(ValueError, match="X"):
        within(X.reshape(40, 2, 1), ent, backend=backend)
    with pytest.raises(ValueError, match="X"):
        within(np.float64(3.0), ent[:1], backend=backend)


# --------------------------------------------------------------------------------------------
# types
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "bad",
    [
        np.array(["1.0", "2.0", "3.0", "4.0"]),
        np.array([1.0, "x", None, 2], dtype=object),
        np.array([1 + 2j, 3j, 1, 2]),
        np.array(["2020-01-01"] * 4, dtype="datetime64[D]"),
    ],
    ids=["str", "object", "complex", "datetime"],
)
def test_non_numeric_X(backend: str, bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="X"):
        within(bad, np.array([0, 0, 1, 1]), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_numeric_weights(backend: str, data) -> None:
    X, ent, _ = data
    with pytest.raises(TypeError, match="weights"):
        within(X, ent, weights=np.array(["a"] * 40), backend=backend)


# --------------------------------------------------------------------------------------------
# missing values: raise unless drop_missing=True
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("ways", [1, 2, 3])
def test_nonfinite_X_raises(backend: str, bad_value: float, ways: int, data) -> None:
    X, ent, per = data
    X = X.copy()
    X[17, 1] = bad_value
    before = X.copy()
    ids = [ent, per, ent % 3][:ways]
    with pytest.raises(ValueError, match=r"X: 1 rows.*row 17") as err:
        within(X, ids if ways > 1 else ent, backend=backend)
    assert "drop_missing" in str(err.value)
    np.testing.assert_array_equal(X, before)


@pytest.mark.cuda
def test_nonfinite_X_raises_cuda(data) -> None:
    X, ent, per = data
    X = X.copy()
    X[5, 0] = np.nan
    for ids in (ent, [ent, per]):
        with pytest.raises(ValueError, match=r"X: 1 rows"):
            within(X, ids, backend="cuda")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "bad_ids",
    [
        np.array([0.0, np.nan] * 20),
        np.array([0.0, np.inf] * 20),
        np.array(["a", None] * 20, dtype=object),
    ],
    ids=["nan", "inf", "none"],
)
def test_missing_ids_raise(backend: str, bad_ids: np.ndarray, data) -> None:
    X, ent, per = data
    with pytest.raises(ValueError, match=r"ids: 20 missing") as err:
        within(X, bad_ids, backend=backend)
    assert "drop_missing" in str(err.value)
    with pytest.raises(ValueError, match=r"ids"):
        within(X, [ent, bad_ids], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_weights_raise(backend: str, data) -> None:
    X, ent, _ = data
    w = np.ones(40)
    w[[3, 9]] = np.nan
    with pytest.raises(ValueError, match=r"weights: 2 NaN") as err:
        within(X, ent, weights=w, backend=backend)
    assert "drop_missing" in str(err.value)
    w2 = np.ones(40)
    w2[0] = np.inf
    with pytest.raises(ValueError, match="weights"):
        within(X, ent, weights=w2, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_weights_raise_even_with_drop_missing(backend: str, data) -> None:
    X, ent, _ = data
    w = np.ones(40)
    w[5] = -0.5
    for drop in (False, True):
        with pytest.raises(ValueError, match=r"weights.*negative.*row 5"):
            within(X, ent, weights=w, backend=backend, drop_missing=drop)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_row_missing(backend: str) -> None:
    with pytest.raises(ValueError, match="every row"):
        within(np.full(4, np.nan), [0, 0, 1, 1], backend=backend, drop_missing=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflowing_sums_are_reported(backend: str) -> None:
    """Finite X whose group sums overflow must not be mistaken for missing data or return inf."""
    X = np.array([1e308, 1e308, 1.0, 2.0])
    with pytest.raises((FloatingPointError, ValueError), match="X|overflow"):
        within(X, [0, 0, 1, 1], backend=backend)


# --------------------------------------------------------------------------------------------
# empty input and other arguments
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input(backend: str) -> None:
    with pytest.raises(ValueError, match="X"):
        within(np.empty(0), np.empty(0, dtype=np.int64), backend=backend)
    with pytest.raises(ValueError, match="X"):
        within(np.empty((0, 3)), np.empty(0, dtype=np.int64), backend=backend)
    with pytest.raises(ValueError, match="ids"):
        within(np.ones(3), [], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tol", [0.0, -1e-8, "1e-8", None])
def test_bad_tol(backend: str, tol, data) -> None:
    X, ent, per = data
    with pytest.raises((ValueError, TypeError), match="tol"):
        within(X, [ent, per, ent % 3], tol=tol, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("maxiter", [0, -5, 2.5, True, "100"])
def test_bad_maxiter(backend: str, maxiter, data) -> None:
    X, ent, per = data
    with pytest.raises((ValueError, TypeError), match="maxiter"):
        within(X, [ent, per, ent % 3], maxiter=maxiter, backend=backend)


def test_error_leaves_inputs_untouched(data) -> None:
    X, ent, per = data
    X = np.asfortranarray(X)
    w = np.linspace(0.5, 1.5, 40)
    w[2] = np.nan
    copies = X.copy(), ent.copy(), w.copy()
    with pytest.raises(ValueError):
        within(X, ent, weights=w)
    for orig, arr in zip(copies, (X, ent, w)):
        np.testing.assert_array_equal(arr, orig)
