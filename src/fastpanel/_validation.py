"""Argument checks shared by the public API: every error names the argument at fault."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_float_matrix", "as_pandas", "as_weights", "nonfinite_rows"]


def as_float_matrix(X: Any, name: str = "X") -> tuple[np.ndarray, bool]:
    """Return ``X`` as a 2-D Fortran-ordered float64 array and whether it was 1-D.

    No copy is made when ``X`` already is Fortran-contiguous float64 (or a contiguous 1-D
    float64 vector); float32, integer and boolean input is upcast, strided input copied.
    """
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        # pandas nullable columns (Float64, Int64, boolean) become float64 with NaN for <NA>,
        # which within() treats as missing (drop_missing) instead of failing as "object"
        try:
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            X = X.to_numpy()
    arr = np.asarray(X)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}; convert text columns to numbers first")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got {arr.ndim} dimensions")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one row")
    was_1d = arr.ndim == 1
    mat = arr.reshape(-1, 1) if was_1d else arr
    return np.asarray(mat, dtype=np.float64, order="F"), was_1d


def as_weights(weights: Any, n: int, name: str = "weights") -> np.ndarray | None:
    """Validate observation weights: 1-D, length ``n``, finite or NaN (missing), non-negative."""
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.dtype == object or not (np.issubdtype(w.dtype, np.number) or w.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {w.dtype}")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"{name} has length {w.shape[0]} but X has {n} rows; pass one weight per row")
    with np.errstate(invalid="ignore"):
        negative = w < 0
    if negative.any():
        first = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"{name} has {int(negative.sum())} negative entries (first at row {first}); weights must be >= 0"
        )
    return w


def nonfinite_rows(X: np.ndarray) -> np.ndarray:
    """Boolean mask of rows of 2-D ``X`` holding NaN or inf."""
    if X.shape[1] == 1:
        return ~np.isfinite(X[:, 0])
    return ~np.isfinite(X).all(axis=1)


def as_pandas(data: Any) -> Any:
    """``data`` as a non-empty pandas DataFrame (a polars DataFrame is converted; a LazyFrame,
    or anything else, is refused with the reason)."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        if type(data).__name__ == "LazyFrame":
            raise TypeError("data is a polars LazyFrame; call .collect() on it first and pass the DataFrame")
        if not hasattr(data, "to_pandas"):
            raise TypeError(f"data must be a pandas or polars DataFrame, got {type(data).__name__}")
        data = data.to_pandas()
    if len(data) == 0:
        raise ValueError("data has no rows")
    return data
