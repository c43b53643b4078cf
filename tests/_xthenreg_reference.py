"""Independent NumPy oracle for Stata's ``xthenreg`` (Seo, Kim and Kim 2019, Stata Journal 19(3),
st0573): first-differenced GMM for the dynamic panel threshold (and kink) model of Seo and Shin
(2016, Journal of Econometrics).

A line-by-line restatement of the public Mata program (``maincode_0719`` and its helper
functions), written with dense arrays laid out as the Mata code lays them out:

* ``y_mat``, ``q_mat``: N x T (Mata ``colshape(v, T)`` of an entity-then-period sorted vector);
* ``x_mat``: (N*k_1) x T, block 0 = ``(1, y_1..y_{T-1})`` (lagged y, column 1 a placeholder),
  then one N x T block per regressor in xthenreg's ``var_all`` order;
* ``Z_mat``, ``y_mat_rep``, ``q_temp1``, ``q_temp2``: L x N; ``x_temp1/2/3``: L x (N*k_1) with
  the column of entity i for regressor k at ``k*N + i``.

Loops over grid points are kept; loops over single rows/entities are written as NumPy array
expressions where that is an exact restatement (the same elementwise formula). Mata's
``invsym``/``cholinv`` become ``np.linalg.inv`` (or ``solve``); the matrices are positive definite.

This module deliberately imports nothing from fastpanel.
"""

from __future__ import annotations

import math

import numpy as np

_SQRT_2PI = math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# small Mata building blocks
# --------------------------------------------------------------------------------------------
def mm_quantile2(x, p):
    """moremata ``__mm_quantile`` with the default definition 2 (unweighted), on unsorted ``x``.

    pn = p*n; j = floor(pn); h = ((pn > j) + 1)/2; j1 = clip(j+1, 1, n); j = clip(j, 1, n);
    result = (1-h) X[j] + h X[j1] with X sorted and 1-based indices.
    """
    xs = np.sort(np.asarray(x, dtype=float).ravel())
    n = xs.size
    if n == 1:
        return float(xs[0])
    pn = float(p) * n
    j = math.floor(pn)
    h = ((1.0 if pn > j else 0.0) + 1.0) / 2.0
    j1 = min(max(j + 1, 1), n)
    j = min(max(j, 1), n)
    return float((1.0 - h) * xs[j - 1] + h * xs[j1 - 1])


def _normalden(z):
    """Mata ``normalden`` (standard normal density)."""
    return np.exp(-0.5 * z * z) / _SQRT_2PI


def _colshape_T(v, N, T):
    """Mata ``colshape(v, T)``: N*T vector sorted entity-then-period -> N x T."""
    return np.asarray(v, dtype=float).reshape(N, T)


# --------------------------------------------------------------------------------------------
# Step 1: data construction
# --------------------------------------------------------------------------------------------
def grid_con(q_mat, trim_rate, grid_num):
    """Mata ``grid_con``: rangen(mm_quantile(vec(q), trim/2), mm_quantile(vec(q), 1-trim/2), n)."""
    q_vec = q_mat.T.ravel()  # vec() stacks columns; order is irrelevant to the quantile
    lo = mm_quantile2(q_vec, trim_rate / 2)
    hi = mm_quantile2(q_vec, 1 - trim_rate / 2)
    return np.linspace(lo, hi, grid_num)


def FD_con(y_mat, x_mat, T):
    """Mata ``FD_con``: first differences along the period axis (column kk -> t = kk+1)."""
    return y_mat[:, 1:T] - y_mat[:, 0:T - 1], x_mat[:, 1:T] - x_mat[:, 0:T - 1]


def moment_mat_con(T, k_1, k_endo):
    """Mata ``moment_mat_con``: (T-1) x (k_1+1) counts; row kk is the equation for t = kk+1.

    Column 1: constant; column 2: lagged y (0..T-2); the last ``k_endo`` columns: 0..T-2.
    """
    mm = np.ones((T - 1, k_1 + 1))
    mm[:, 1] = np.arange(T - 1)
    if k_endo > 0:
        mm[:, k_1 + 1 - k_endo:k_1 + 1] = np.arange(T - 1)[:, None]
    return mm


def Z_mat_con(y_mat, x_mat, x_mat_fd, moment_mat, k_endo, flag_static):
    """Mata ``Z_mat_con``: L x N instrument matrix stacked equation by equation.

    Per equation: constant; lagged levels y_1..y_{t-2} (dynamic only); Delta x_t for exogenous
    regressors (k < k_1+1-k_endo); levels x_1..x_m for the others (m from moment_mat).
    """
    N, T = y_mat.shape
    k_1 = x_mat.shape[0] // N
    if flag_static:
        L = int(moment_mat.sum() - moment_mat[:, 1].sum())
        kk_range = range(1, T)          # Mata kk1 = 1..T-1
    else:
        L = int(moment_mat[1:, :].sum())
        kk_range = range(2, T)          # Mata kk1 = 2..T-1
    Z = np.zeros((L, N))
    fz = 0
    for kk1 in kk_range:
        m_temp = moment_mat[kk1 - 1, :]
        for ll1 in range(1, k_1 + 2):
            m = int(m_temp[ll1 - 1])
            if m == 0:
                continue
            elif ll1 == 1:
                Z[fz, :] = 1.0
                fz += 1
            elif ll1 == 2:
                if flag_static:
                    continue
                # y_mat[., kk1-m .. kk1-1]'
                Z[fz:fz + m, :] = y_mat[:, kk1 - m - 1:kk1 - 1].T
                fz += m
            elif ll1 <= k_1 + 1 - k_endo:
                blk = ll1 - 2
                Z[fz, :] = x_mat_fd[blk * N:(blk + 1) * N, kk1 - 1]
                fz += 1
            else:
                blk = ll1 - 2
                Z[fz:fz + m, :] = x_mat[blk * N:(blk + 1) * N, 0:m].T
                fz += m
    return Z


def Z_mat_IV_add(Z_mat, moment_mat, IV_mat, k_inst, flag_static):
    """Mata ``Z_mat_IV_add``: append, per equation t, the levels of the extra instruments at t."""
    L, N = Z_mat.shape
    T = moment_mat.shape[0] + 1
    moment_add = np.ones((T - 1, k_inst))
    Z_copy = Z_mat
    fz1 = 0
    fz2 = 0
    if flag_static:
        Znew = np.zeros((L + int(moment_add.sum()), N))
        kk_range = range(2, T + 1)
    else:
        Znew = np.zeros((L + int(moment_add.sum()) - k_inst, N))
        kk_range = range(3, T + 1)
    for kk4 in kk_range:
        m_i1 = moment_mat[kk4 - 2, :].sum()
        if flag_static:
            m_i1 -= moment_mat[kk4 - 2, 1]
        m_i1 = int(m_i1)
        # colshape(IV_mat[., kk4], N): k_inst x N (row j = instrument j)
        IV_add = IV_mat[:, kk4 - 1].reshape(k_inst, N)
        Znew[fz2:fz2 + m_i1, :] = Z_copy[fz1:fz1 + m_i1, :]
        fz1 += m_i1
        Znew[fz2 + m_i1:fz2 + m_i1 + k_inst, :] = IV_add
        fz2 += m_i1 + k_inst
    return Znew, np.hstack([moment_mat, moment_add])


def GMM_var_con(y_mat_fd, x_mat_fd, x_mat, q_mat, moment_mat, T, flag_static):
    """Mata ``GMM_var_con``: replicate each equation's data on its instrument rows."""
    if flag_static:
        L = int(moment_mat.sum() - moment_mat[:, 1].sum())
        kk_range = range(1, T)
    else:
        L = int(moment_mat[1:, :].sum())
        kk_range = range(2, T)
    N = y_mat_fd.shape[0]
    k_1 = x_mat.shape[0] // N
    y_rep = np.zeros((L, N))
    x1 = np.zeros((L, N * k_1))
    x2 = np.zeros((L, N * k_1))
    x3 = np.zeros((L, N * k_1))
    q1 = np.zeros((L, N))
    q2 = np.zeros((L, N))
    fr = 0
    for kk in kk_range:
        m = moment_mat[kk - 1, :].sum()
        if flag_static:
            m -= moment_mat[kk - 1, 1]
        m = int(m)
        if m == 0:
            continue
        y_rep[fr:fr + m, :] = y_mat_fd[:, kk - 1][None, :]
        x1[fr:fr + m, :] = x_mat_fd[:, kk - 1][None, :]
        x2[fr:fr + m, :] = x_mat[:, kk][None, :]        # x at t = kk+1
        x3[fr:fr + m, :] = x_mat[:, kk - 1][None, :]    # x at t-1 = kk
        q1[fr:fr + m, :] = q_mat[:, kk][None, :]
        q2[fr:fr + m, :] = q_mat[:, kk - 1][None, :]
        fr += m
    return y_rep, x1, x2, x3, q1, q2


def _W_n_blocks(Z_mat, moment_vec, kk_range):
    """Shared body of Mata ``GMM_W_n_con`` / ``GMM_W_n_static`` (tridiagonal 2/-1 weighting)."""
    L, N = Z_mat.shape
    W1 = np.zeros((L, L))
    W2 = np.zeros((L, L))
    fr2 = 1
    fz1 = 1
    fz2 = 1
    for kk2 in kk_range:
        m_num = int(moment_vec[kk2 - 2])
        if m_num == 0:
            continue
        if fr2 == 1:
            Zt1 = Z_mat[0:m_num, :]
            W2[0:m_num, 0:m_num] = (1 / N) * (Zt1 @ Zt1.T)
            fr2 += m_num
            fz2 += m_num
        else:
            m_num_l = int(moment_vec[kk2 - 3])
            Zt1 = Z_mat[fz1 - 1:fz1 - 1 + m_num_l, :]
            Zt2 = Z_mat[fz2 - 1:fz2 - 1 + m_num, :]
            fz1 += m_num_l
            fz2 += m_num
            W1[fr2 - 1 - m_num_l:fr2 - 1, fr2 - 1:fr2 - 1 + m_num] = -(1 / N) * (Zt1 @ Zt2.T)
            W2[fr2 - 1:fr2 - 1 + m_num, fr2 - 1:fr2 - 1 + m_num] = (1 / N) * (Zt2 @ Zt2.T)
            fr2 += m_num
    return np.linalg.inv(W1 + W1.T + 2 * W2)


def GMM_W_n_con(Z_mat, moment_mat, T):
    """Mata ``GMM_W_n_con`` (dynamic model): equations t = 3..T."""
    return _W_n_blocks(Z_mat, moment_mat.sum(axis=1), range(3, T + 1))


def GMM_W_n_static(Z_mat, moment_mat, T):
    """Mata ``GMM_W_n_static``: equations t = 2..T, lagged-y column excluded."""
    return _W_n_blocks(Z_mat, moment_mat.sum(axis=1) - moment_mat[:, 1], range(2, T + 1))


# --------------------------------------------------------------------------------------------
# GMM for a given threshold, residuals, second-step weight
# --------------------------------------------------------------------------------------------
def _blk(a, k, N):
    return a[:, k * N:(k + 1) * N]


def GMM_cal(g_1n_bar, r_th, Z_mat, x1, x2, x3, q1, q2, W_n):
    """Mata ``GMM_cal``: returns (g_2n_bar, g_n_bar, GMM_est); params (beta, delta_0, delta_x)."""
    L, N = q1.shape
    k_1 = x2.shape[1] // N
    ind2 = (q1 > r_th).astype(float)
    ind3 = (q2 > r_th).astype(float)
    g2 = np.zeros((L, 2 * k_1 + 1))
    g2[:, k_1] = (Z_mat * (ind2 - ind3)).sum(axis=1) / N
    for k in range(k_1):
        g2[:, k] = (Z_mat * _blk(x1, k, N)).sum(axis=1) / N
        g2[:, k_1 + 1 + k] = (Z_mat * (_blk(x2, k, N) * ind2 - _blk(x3, k, N) * ind3)).sum(axis=1) / N
    GW = g2.T @ W_n
    est = np.linalg.solve(GW @ g2, GW @ g_1n_bar)
    g_n_bar = g_1n_bar - g2 @ est
    return g2, g_n_bar, est


def GMM_cal_kink(g_1n_bar, r_th, Z_mat, x1, x2, x3, q1, q2, W_n):
    """Mata ``GMM_cal_kink``: params (beta, kink slope); regressor (q-r)1{q>r} differenced."""
    L, N = q1.shape
    k_1 = x1.shape[1] // N
    ind2 = (q1 > r_th).astype(float)
    ind3 = (q2 > r_th).astype(float)
    g2 = np.zeros((L, k_1 + 1))
    for k in range(k_1):
        g2[:, k] = (Z_mat * _blk(x1, k, N)).sum(axis=1) / N
    kink_var = (q1 - r_th) * ind2 - (q2 - r_th) * ind3
    g2[:, k_1] = (Z_mat * kink_var).sum(axis=1) / N
    GW = g2.T @ W_n
    est = np.linalg.solve(GW @ g2, GW @ g_1n_bar)
    g_n_bar = g_1n_bar - g2 @ est
    return g2, g_n_bar, est


def ep_cal(r_hat, x1, x2, x3, q1, q2, y_rep, est):
    """Mata ``ep_cal``: ep[l, i] = y_rep[l, i] - est' (Dx, 1{q}-1{q_-1}, x 1{q} - x_-1 1{q_-1})."""
    L, N = q1.shape
    k_1 = x2.shape[1] // N
    ind2 = (q1 > r_hat).astype(float)
    ind3 = (q2 > r_hat).astype(float)
    fit = est[k_1] * (ind2 - ind3)
    for k in range(k_1):
        fit = fit + est[k] * _blk(x1, k, N)
        fit = fit + est[k_1 + 1 + k] * (ind2 * _blk(x2, k, N) - ind3 * _blk(x3, k, N))
    return y_rep - fit


def ep_cal_kink(r_hat, x1, x2, x3, q1, q2, y_rep, est):
    """Mata ``ep_cal_kink``: ep = y_rep - est' (Dx, (q-r)1{q>r} - (q_-1-r)1{q_-1>r})."""
    L, N = q1.shape
    k_1 = x2.shape[1] // N
    ind2 = (q1 > r_hat).astype(float)
    ind3 = (q2 > r_hat).astype(float)
    fit = est[k_1] * (ind2 * (q1 - r_hat) - ind3 * (q2 - r_hat))
    for k in range(k_1):
        fit = fit + est[k] * _blk(x1, k, N)
    return y_rep - fit


def GMM_W_n_2_con(ep_collect, Z_mat):
    """Mata ``GMM_W_n_2_con``: inv((1/N) sum_i g_i g_i' - (1/N^2)(sum_i g_i)(sum_i g_i)'),
    g_i = ep[., i] .* Z[., i]; the per-entity outer-product sum written as one matrix product."""
    L, N = Z_mat.shape
    g = ep_collect * Z_mat
    s = g.sum(axis=1)
    return np.linalg.inv((1 / N) * (g @ g.T) - (1 / N ** 2) * np.outer(s, s))


# --------------------------------------------------------------------------------------------
# covariance matrices
# --------------------------------------------------------------------------------------------
def _h_band(q_mat, h_0, N):
    return h_0 * 1.06 * N ** (-0.2) * math.sqrt(np.var(q_mat.ravel(), ddof=1))


def _G_b_d(est, r, Z_mat, x1, x2, x3, q1, q2):
    """The G_b, G_d (and g_2n_bar) part shared by Mata ``cov_mat_con`` and ``cov_con_b``."""
    L, N = Z_mat.shape
    k_1 = x1.shape[1] // N
    ind2 = (q1 > r).astype(float)
    ind3 = (q2 > r).astype(float)
    g2 = np.zeros((L, 2 * k_1 + 1))
    g2[:, k_1] = (Z_mat * (ind2 - ind3)).sum(axis=1) / N
    G_b = np.zeros((L, k_1))
    for k in range(k_1):
        G_b[:, k] = -(Z_mat * _blk(x1, k, N)).sum(axis=1) / N
        g2[:, k] = (Z_mat * _blk(x1, k, N)).sum(axis=1) / N
        g2[:, k_1 + 1 + k] = (Z_mat * (_blk(x2, k, N) * ind2 - _blk(x3, k, N) * ind3)).sum(axis=1) / N
    G_d = np.zeros((L, k_1 + 1))
    G_d[:, 0] = -g2[:, k_1]
    G_d[:, 1:k_1 + 1] = -g2[:, k_1 + 1:2 * k_1 + 1]
    return G_b, G_d


def cov_mat_con(est, r_hat_2, q_mat, Z_mat, x1, x2, x3, q1, q2, h_0, omega_hat):
    """Mata ``cov_mat_con``: cholinv(G' omega G)/N with G = (G_b, G_d, G_r)."""
    L, N = Z_mat.shape
    h = _h_band(q_mat, h_0, N)
    k_1 = x1.shape[1] // N
    G_b, G_d = _G_b_d(est, r_hat_2, Z_mat, x1, x2, x3, q1, q2)
    dlt = est[k_1:2 * k_1 + 1]
    # per-entity loop of the Mata code: temp_z[l, i] = (1, x3) dlt * phi((r-q2)/h)
    #                                                 - (1, x2) dlt * phi((r-q1)/h)
    lin3 = dlt[0] + sum(dlt[1 + k] * _blk(x3, k, N) for k in range(k_1))
    lin2 = dlt[0] + sum(dlt[1 + k] * _blk(x2, k, N) for k in range(k_1))
    temp_z = lin3 * _normalden((r_hat_2 - q2) / h) - lin2 * _normalden((r_hat_2 - q1) / h)
    G_r = (Z_mat * temp_z).sum(axis=1) / (N * h)
    G = np.hstack([G_b, G_d, G_r[:, None]])
    return np.linalg.inv(G.T @ omega_hat @ G) / N, h


def cov_mat_con_kink(est, r_hat_2, q_mat, Z_mat, x1, x2, x3, q1, q2, h_0, omega_hat):
    """Mata ``cov_mat_con_kink`` (signs as written: G_d positive, G_r = -d_0 * mean(Z dI))."""
    L, N = Z_mat.shape
    h = _h_band(q_mat, h_0, N)
    k_1 = x1.shape[1] // N
    ind2 = (q1 > r_hat_2).astype(float)
    ind3 = (q2 > r_hat_2).astype(float)
    G_d = (Z_mat * ((q1 - r_hat_2) * ind2 - (q2 - r_hat_2) * ind3)).sum(axis=1) / N
    G_b = np.zeros((L, k_1))
    for k in range(k_1):
        G_b[:, k] = -(Z_mat * _blk(x1, k, N)).sum(axis=1) / N
    d_0 = est[k_1]
    G_r = -d_0 * (Z_mat * (ind2 - ind3)).sum(axis=1) / N
    G = np.hstack([G_b, G_d[:, None], G_r[:, None]])
    return np.linalg.inv(G.T @ omega_hat @ G) / N, h


def cov_con_b(est, r, Z_mat, x1, x2, x3, q1, q2, omega_hat):
    """Mata ``cov_con_b``: V_s = cholesky(omega)' (G_b, G_d)."""
    G_b, G_d = _G_b_d(est, r, Z_mat, x1, x2, x3, q1, q2)
    return np.linalg.cholesky(omega_hat).T @ np.hstack([G_b, G_d])


def cov_con_kink_b(est, r, Z_mat, x1, x2, x3, q1, q2, omega_hat):
    """Mata ``cov_con_kink_b``: V_s = cholesky(omega)' (G_b, G_d_kink)."""
    L, N = Z_mat.shape
    k_1 = x1.shape[1] // N
    ind2 = (q1 > r).astype(float)
    ind3 = (q2 > r).astype(float)
    G_d = (Z_mat * ((q1 - r) * ind2 - (q2 - r) * ind3)).sum(axis=1) / N
    G_b = np.zeros((L, k_1))
    for k in range(k_1):
        G_b[:, k] = -(Z_mat * _blk(x1, k, N)).sum(axis=1) / N
    return np.linalg.cholesky(omega_hat).T @ np.hstack([G_b, G_d[:, None]])


# --------------------------------------------------------------------------------------------
# bootstrap linearity test
# --------------------------------------------------------------------------------------------
def _dlt_len(k_1_full, flag_static, flag_kink):
    if flag_static and not flag_kink:
        return k_1_full
    if flag_kink:
        return 2
    return k_1_full + 1


def sup_wald_cal(y_rep, Z_mat, x1, x2, x3, q1, q2, moment_mat, grid_th, grid_num,
                 flag_static, flag_kink, N, T):
    """Mata ``sup_wald_cal``: two-step GMM and Wald statistic for delta = 0 at every grid point.
    Returns (sup_wald, wald_vec, cov_wald_rec) with cov_wald_rec a list per grid point."""
    k_1 = x1.shape[1] // N
    dlt_len = _dlt_len(k_1, flag_static, flag_kink)
    W_n_b = GMM_W_n_static(Z_mat, moment_mat, T) if flag_static else GMM_W_n_con(Z_mat, moment_mat, T)
    g1 = (Z_mat * y_rep).sum(axis=1) / N
    if flag_static:
        x1, x2, x3 = x1[:, N:], x2[:, N:], x3[:, N:]
    cal = GMM_cal_kink if flag_kink else GMM_cal
    epf = ep_cal_kink if flag_kink else ep_cal
    covb = cov_con_kink_b if flag_kink else cov_con_b
    wald_vec = np.zeros(grid_num)
    cov_wald_rec = []
    for bb in range(grid_num):
        r = grid_th[bb]
        _, _, est_b = cal(g1, r, Z_mat, x1, x2, x3, q1, q2, W_n_b)
        ep_b = epf(r, x1, x2, x3, q1, q2, y_rep, est_b)
        W_n_2_b = GMM_W_n_2_con(ep_b, Z_mat)
        _, _, est_2_b = cal(g1, r, Z_mat, x1, x2, x3, q1, q2, W_n_2_b)
        ep_2_b = epf(r, x1, x2, x3, q1, q2, y_rep, est_2_b)
        omega_b = GMM_W_n_2_con(ep_2_b, Z_mat)
        V_s = covb(est_2_b, r, Z_mat, x1, x2, x3, q1, q2, omega_b)
        size_c = V_s.shape[1]
        dlt_hat = est_2_b[size_c - dlt_len:size_c]
        sel = np.zeros((dlt_len, size_c))
        sel[:, size_c - dlt_len:] = np.eye(dlt_len)
        cov_wald = sel @ np.linalg.inv(V_s.T @ V_s) @ sel.T
        wald_vec[bb] = N * dlt_hat @ np.linalg.solve(cov_wald, dlt_hat)
        cov_wald_rec.append(cov_wald)
    return float(wald_vec.max()), wald_vec, cov_wald_rec


def sup_wald_fb(y_rep, Z_mat, x1, x2, x3, q1, q2, ep_collect_2, W_n_2, cov_wald_rec,
                grid_th, grid_num, flag_static, flag_kink, N, norm_vec):
    """Mata ``sup_wald_fb`` (fast bootstrap): g_1 = mean_i(Z_i ep_i eta_i), first step with W_n_2,
    Wald with the recorded cov_wald; ``norm_vec`` replaces invnormal(uniform(1, N))."""
    k_1 = x1.shape[1] // N
    dlt_len = _dlt_len(k_1, flag_static, flag_kink)
    L = W_n_2.shape[0]
    b_eta = np.broadcast_to(np.asarray(norm_vec, dtype=float)[None, :], (L, N))
    g1 = (Z_mat * ep_collect_2 * b_eta).sum(axis=1) / N
    if flag_static:
        x1, x2, x3 = x1[:, N:], x2[:, N:], x3[:, N:]
    cal = GMM_cal_kink if flag_kink else GMM_cal
    wald_vec = np.zeros(grid_num)
    for bb in range(grid_num):
        r = grid_th[bb]
        _, _, est_b = cal(g1, r, Z_mat, x1, x2, x3, q1, q2, W_n_2)
        size_c = est_b.shape[0]
        dlt_hat = est_b[size_c - dlt_len:size_c]
        wald_vec[bb] = N * dlt_hat @ np.linalg.solve(cov_wald_rec[bb], dlt_hat)
    return float(wald_vec.max())


# --------------------------------------------------------------------------------------------
# main program
# --------------------------------------------------------------------------------------------
def _as2d(a, n):
    if a is None:
        return np.zeros((n, 0))
    a = np.asarray(a, dtype=float)
    return a.reshape(n, -1) if a.ndim == 1 else a


def xthenreg(y, q, X, *, T, endogenous=None, exogenous=None, inst=None, kink=False, static=False,
             grid_num=100, trim_rate=0.4, h_0=1.5, boot_eta=None) -> dict:
    """Mata ``maincode_0719`` for a strongly balanced panel sorted by entity then period.

    ``X``: regressors after y and q in varlist; regressor order = [X, endogenous, exogenous].
    ``boot_eta``: None or (N, B) standard normal draws (column b replaces Mata's
    ``invnormal(uniform(1, N))`` of bootstrap draw b).
    """
    y = np.asarray(y, dtype=float).ravel()
    q = np.asarray(q, dtype=float).ravel()
    NT = y.size
    if NT % T:
        raise ValueError("len(y) must be N*T")
    N = NT // T
    Xv = _as2d(X, NT)
    En = _as2d(endogenous, NT)
    Ex = _as2d(exogenous, NT)
    k_endo, k_exo = En.shape[1], Ex.shape[1]
    regs = np.hstack([Xv, En, Ex])
    flag_static = bool(static)
    flag_kink = bool(kink)

    y_mat = _colshape_T(y, N, T)
    q_mat = _colshape_T(q, N, T)
    k_1 = regs.shape[1] + 1
    x_mat = np.vstack([np.hstack([np.ones((N, 1)), y_mat[:, :T - 1]])]
                      + [_colshape_T(regs[:, j], N, T) for j in range(regs.shape[1])])

    if inst is not None:
        Iv = _as2d(inst, NT)
        k_inst = Iv.shape[1]
        IV_mat = np.vstack([_colshape_T(Iv[:, j], N, T) for j in range(k_inst)])
    else:
        k_inst = 0
        IV_mat = None

    grid_th = grid_con(q_mat, trim_rate, grid_num)
    y_mat_fd, x_mat_fd = FD_con(y_mat, x_mat, T)

    k_endo_n = k_endo + k_exo
    moment_mat = moment_mat_con(T, k_1, k_endo_n)
    moment_mat[:, moment_mat.shape[1] - k_exo:] += 2.0
    Z_mat = Z_mat_con(y_mat, x_mat, x_mat_fd, moment_mat, k_endo_n, flag_static)
    if k_inst > 0:
        Z_mat, moment_mat = Z_mat_IV_add(Z_mat, moment_mat, IV_mat, k_inst, flag_static)

    y_rep, x1, x2, x3, q1, q2 = GMM_var_con(y_mat_fd, x_mat_fd, x_mat, q_mat, moment_mat, T,
                                            flag_static)

    # Step 2: first-step GMM
    W_n = GMM_W_n_static(Z_mat, moment_mat, T) if flag_static else GMM_W_n_con(Z_mat, moment_mat, T)
    g_1n_bar = (Z_mat * y_rep).sum(axis=1) / N
    if flag_static:
        x1c, x2c, x3c = x1[:, N:], x2[:, N:], x3[:, N:]
    else:
        x1c, x2c, x3c = x1, x2, x3
    cal = GMM_cal_kink if flag_kink else GMM_cal
    epf = ep_cal_kink if flag_kink else ep_cal

    J1 = np.zeros(grid_num)
    for rr in range(grid_num):
        _, gn, _ = cal(g_1n_bar, grid_th[rr], Z_mat, x1c, x2c, x3c, q1, q2, W_n)
        J1[rr] = gn @ W_n @ gn
    r_hat = grid_th[int(np.argmin(J1))]
    _, _, GMM_est = cal(g_1n_bar, r_hat, Z_mat, x1c, x2c, x3c, q1, q2, W_n)

    # Step 3: second-step GMM
    ep_collect = epf(r_hat, x1c, x2c, x3c, q1, q2, y_rep, GMM_est)
    W_n_2 = GMM_W_n_2_con(ep_collect, Z_mat)
    J2 = np.zeros(grid_num)
    for rr2 in range(grid_num):
        _, gn, _ = cal(g_1n_bar, grid_th[rr2], Z_mat, x1c, x2c, x3c, q1, q2, W_n_2)
        J2[rr2] = gn @ W_n_2 @ gn
    r_hat_2 = grid_th[int(np.argmin(J2))]
    _, _, GMM_est_2 = cal(g_1n_bar, r_hat_2, Z_mat, x1c, x2c, x3c, q1, q2, W_n_2)
    ep_collect_2 = epf(r_hat_2, x1c, x2c, x3c, q1, q2, y_rep, GMM_est_2)
    omega_hat = GMM_W_n_2_con(ep_collect_2, Z_mat)
    covf = cov_mat_con_kink if flag_kink else cov_mat_con
    cov_mat, h_band = covf(GMM_est_2, r_hat_2, q_mat, Z_mat, x1c, x2c, x3c, q1, q2, h_0, omega_hat)

    L = Z_mat.shape[0]
    # xthenreg's displayed count of moment conditions (must equal rows(Z_mat))
    if flag_static:
        L_disp = moment_mat.sum() - moment_mat[:, 1].sum()
    else:
        L_disp = moment_mat.sum() - moment_mat[0, :].sum()
    assert int(L_disp) == L

    out = {
        "grid": grid_th, "J1": J1, "r_hat": float(r_hat), "GMM_est_1": GMM_est,
        "J2": J2, "r_hat_2": float(r_hat_2), "GMM_est_2": GMM_est_2,
        "cov": cov_mat, "se": np.sqrt(np.diag(cov_mat)), "h_band": h_band,
        "L": L, "N": N, "T": T, "Z": Z_mat,
        # extras (not part of the Stata output, handy for checks)
        "moment_mat": moment_mat, "W_n": W_n, "W_n_2": W_n_2, "omega_hat": omega_hat,
        "g_1n_bar": g_1n_bar, "ep_collect_2": ep_collect_2,
    }

    # Step 4: bootstrap linearity test
    if boot_eta is not None:
        eta = np.asarray(boot_eta, dtype=float)
        if eta.ndim != 2 or eta.shape[0] != N:
            raise ValueError("boot_eta must have shape (N, B)")
        B = eta.shape[1]
        sup_wald_ori, wald_vec, cov_wald_rec = sup_wald_cal(
            y_rep, Z_mat, x1, x2, x3, q1, q2, moment_mat, grid_th, grid_num,
            flag_static, flag_kink, N, T)
        wald_rec = np.zeros(B)
        for bb2 in range(B):
            wald_rec[bb2] = sup_wald_fb(y_rep, Z_mat, x1, x2, x3, q1, q2, ep_collect_2, W_n_2,
                                        cov_wald_rec, grid_th, grid_num, flag_static, flag_kink,
                                        N, eta[:, bb2])
        out.update({"sup_wald": sup_wald_ori, "wald": wald_vec, "boot": wald_rec,
                    "boots_p": float(np.mean(wald_rec > sup_wald_ori))})
    return out
