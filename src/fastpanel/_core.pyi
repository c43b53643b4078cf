"""Type stub of the private compiled module fastpanel._core (see csrc/)."""

import numpy as np

has_openmp: bool

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def int_summary(ids: np.ndarray, max_range: int) -> tuple[int, int, bool, np.ndarray, np.ndarray]: ...
def level_counts(codes: np.ndarray, n_levels: int) -> np.ndarray: ...
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
def within_oneway_scatter(
    X: np.ndarray, out: np.ndarray, codes: np.ndarray, n_levels: int, weights: np.ndarray
) -> int: ...
def within_schur_dense(
    order: np.ndarray, group_starts: np.ndarray, codes_b: np.ndarray, n_b: int, weights: np.ndarray
) -> np.ndarray: ...
def within_twoway_pass2(
    X: np.ndarray,
    out: np.ndarray,
    order: np.ndarray,
    group_starts: np.ndarray,
    codes_b: np.ndarray,
    gamma: np.ndarray,
    weights: np.ndarray,
) -> None: ...
def threshold_precompute(
    zs: np.ndarray,
    h: np.ndarray,
    grp: np.ndarray,
    cw: np.ndarray,
    C: np.ndarray,
    As: np.ndarray,
    cuts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def threshold_residualize(Qb: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def threshold_scan_batch(
    U: np.ndarray,
    ee: np.ndarray,
    cuts: np.ndarray,
    fixed_idx: np.ndarray,
    zs: np.ndarray,
    h: np.ndarray,
    grp: np.ndarray,
    cw: np.ndarray,
    C: np.ndarray,
    H: np.ndarray,
    Kcc: np.ndarray,
    P: np.ndarray,
    Binv: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]: ...
def ols_cluster_scores(
    Zyx: np.ndarray, beta: np.ndarray, order: np.ndarray, group_starts: np.ndarray
) -> tuple[np.ndarray, float]: ...
def ols_gram(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def fill_columns(dst: np.ndarray, columns: list[np.ndarray], first: int) -> None: ...
def wild_stats(
    num: np.ndarray, K: np.ndarray, scale: np.ndarray, ent: np.ndarray, kind: int, start: int, count: int
) -> np.ndarray: ...
def wild_stats_lr(
    num: np.ndarray, indptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, U: np.ndarray, V: np.ndarray,
    scale: np.ndarray, ent: np.ndarray, kind: int, start: int, count: int
) -> np.ndarray: ...
