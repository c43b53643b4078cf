"""Type stub of the private compiled module fastpanel._core (see csrc/)."""

import numpy as np

has_openmp: bool

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def group_order(codes: np.ndarray, group_starts: np.ndarray) -> np.ndarray: ...
def within_oneway(
    X: np.ndarray, out: np.ndarray, order: np.ndarray, group_starts: np.ndarray, weights: np.ndarray
) -> int: ...
def within_twoway_pass1(
    X: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    n_b: int,
    weights: np.ndarray,
    want_schur: bool,
) -> tuple[np.ndarray, np.ndarray]: ...
def within_twoway_pass2(
    X: np.ndarray,
    out: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    gamma: np.ndarray,
    weights: np.ndarray,
) -> None: ...
