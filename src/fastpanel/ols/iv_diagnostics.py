"""First stage and diagnostics of a 2SLS fit: partial F, Kleibergen-Paap rk Wald, Sanderson-Windmeijer
conditional F, Durbin-Wu-Hausman.

Every statistic uses the fit's covariance type and small-sample preset (``vcov=``, ``ssc=``),
applied to the auxiliary OLS regression named below; all data are the within-transformed,
``sqrt(w)``-scaled columns of the fit, so the fixed effects are partialled out exactly.

* First stage of ``d_j``: OLS of ``d_j`` on ``W = [E, Z]`` (plus the effects); its partial F is
  ``Wald(Z coefficients = 0) / L``.
* Kleibergen & Paap (2006, eq. 18-22), H0: ``rank(Pi_Z) = k_d - 1`` for the ``L x k_d``
  excluded-instrument block of the first stages. On ``Y~ = M_E D`` and ``Z~ = M_E Z``:
  ``G = (Z~'Z~/n)^{1/2}``, ``F = (Y~'Y~/n)^{1/2}`` (symmetric square roots),
  ``Theta = G Pi_Z F^{-1} = U S V'``, ``q = k_d - 1``,
  ``A = [U12; U22] U22^{-1} (U22 U22')^{1/2}``, ``B = (V22 V22')^{1/2} V22'^{-1} [V12' V22']``,
  ``lambda = vec(A' Theta B')``, ``Omega = (B kron A') (F^{-1} kron G) Var(vec Pi_Z) (...)'`` and
  ``rk = lambda' Omega^{-1} lambda``, chi2 with ``L - k_d + 1`` df; ``kp_rk_wald_f = rk / L``
  (ivreg2 reports the same ratio with its own small-sample factor; here the factor is that of
  the fit's preset, through ``Var(vec Pi_Z)``). ``Var(vec Pi_Z)`` is the joint covariance of the
  first stages: its diagonal blocks are the first stages' own covariances and the cross blocks
  follow by polarisation, ``Cov(Pi_j, Pi_l) = (V[d_j + d_l] - V[d_j - d_l]) / 4``, which is exact
  because every covariance estimator here is a quadratic form in the dependent variable (the
  CGM eigenvalue fix of three-way clustering is not, and is applied to no cross block). With
  one endogenous regressor ``kp_rk_wald_f`` equals the first-stage partial F.
* Sanderson & Windmeijer (2016, eq. 15-16), for ``d_j``: ``delta`` the 2SLS coefficients of
  ``d_j`` on ``[E, D_{-j}]`` with instruments ``W``; ``e = d_j - [E, D_{-j}] delta``;
  ``F_SW = Wald(Z coefficients = 0 in the OLS of e on W) / (L - k_d + 1)``. With one endogenous
  regressor it equals the partial F.
* Durbin-Wu-Hausman, control-function form (Hausman 1978; Wooldridge 2010, 6.3.1): OLS of ``y``
  on ``[E, D, Vhat]`` with ``Vhat`` the first-stage residuals; Wald test that the ``Vhat``
  coefficients are zero (F or chi2 as :func:`fastpanel.ols.wald.wald_test` chooses for the preset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import stats

from fastpanel.ols import covariance as cov
from fastpanel.ols.model import FitState

if TYPE_CHECKING:  # pragma: no cover
    from fastpanel.ols.iv import IVState
    from fastpanel.ols.results import OLSResults
    from fastpanel.ols.wald import WaldTestResult

__all__ = ["first_stage_states", "first_stage_f", "kleibergen_paap", "sanderson_windmeijer", "durbin_wu_hausman"]


def _raw_cols(state: "IVState") -> dict[str, np.ndarray | None]:
    """The untransformed kept columns (y, E, D, Z) of the cleaned sample, when kept."""
    if state.raw is None:
        return {"y": None, "E": None, "D": None, "Z": None}
    ke, L = len(state.exog_names), len(state.instrument_names)
    r = state.raw  # [y, E, Z, D]
    return {"y": r[:, 0], "E": r[:, 1:1 + ke], "Z": r[:, 1 + ke:1 + ke + L], "D": r[:, 1 + ke + L:]}


def ols_state(
    base: "IVState", X: np.ndarray, y: np.ndarray, names: list[str], yname: str,
    X_raw: np.ndarray | None, y_raw: np.ndarray | None, tss: float | None = None,
) -> FitState:
    """The OLS fit of transformed ``y`` on transformed ``X`` on the IV fit's sample and effects
    (``tss``: the centred sum of squares of the untransformed ``y``, for the R-squared)."""
    A = X.T @ X
    c = scipy.linalg.cho_factor(A, lower=False, check_finite=False)
    params = scipy.linalg.cho_solve(c, X.T @ y, check_finite=False)
    bread = scipy.linalg.cho_solve(c, np.eye(A.shape[0]), check_finite=False)
    u = y - X @ params
    if tss is None:
        tss = float(y @ y)  # auxiliary regressions: only their covariance is used
    return FitState(
        yname=yname, names=list(names), params=params, X=X, u=u, bread=0.5 * (bread + bread.T), ssr=float(u @ u),
        tss_within=float(y @ y) if base.fe_factors else tss, tss=tss, nobs=base.nobs, n_dropped=base.n_dropped,
        n_singletons=base.n_singletons, fe_factors=base.fe_factors, fe_names=base.fe_names, weights=base.weights,
        has_intercept=base.has_intercept, dropped=[], backend=base.backend, extra=base.extra,
        y_raw=y_raw, X_raw=X_raw, _fe_df_exact=base._fe_df_exact,
    )


def _first_stage_state(
    state: "IVState", dep: np.ndarray, dep_raw: np.ndarray | None, name: str, tss: float | None = None,
) -> FitState:
    raw = _raw_cols(state)
    W_raw = None if raw["E"] is None else np.column_stack([raw["E"], raw["Z"]])
    return ols_state(state, state.W, dep, state.exog_names + state.instrument_names, name, W_raw, dep_raw, tss)


def first_stage_states(state: "IVState") -> dict[str, FitState]:
    """One OLS fit per endogenous regressor: ``d_j`` on ``[E, Z]`` (and the effects)."""
    raw = _raw_cols(state)
    ke = len(state.exog_names)
    return {
        d: _first_stage_state(state, state.D[:, j], None if raw["D"] is None else raw["D"][:, j], d,
                              float(state.col_tss[1 + ke + len(state.instrument_names) + j]))
        for j, d in enumerate(state.endog_names)
    }


def _z_block(state: "IVState") -> np.ndarray:
    ke = len(state.exog_names)
    return np.arange(ke, ke + len(state.instrument_names))


def _wald(V: np.ndarray, b: np.ndarray) -> float:
    """``b' V^{-1} b`` (equilibrated, so columns of any scale are treated alike)."""
    d = 1.0 / np.sqrt(np.maximum(np.diag(V), np.finfo(float).tiny))
    Vs = V * d[:, None] * d[None, :]
    lam = np.linalg.eigvalsh(0.5 * (Vs + Vs.T))
    if lam.min() <= 1e-12 * max(lam.max(), 1.0):
        return float("nan")  # not positive definite (e.g. multiway clustering): the statistic is undefined
    return float((b * d) @ np.linalg.solve(Vs, b * d))


def first_stage_f(results: dict[str, "OLSResults"], state: "IVState") -> pd.Series:
    """Partial F of the excluded instruments in each first stage: ``Wald / L``."""
    iz = _z_block(state)
    out = {}
    for d, res in results.items():
        V = res.cov_params().to_numpy()[np.ix_(iz, iz)]
        out[d] = _wald(V, res.params.to_numpy()[iz]) / len(iz)
    return pd.Series(out, name="first-stage F", dtype=float)


def joint_pi_cov(state: "IVState", spec: cov.VcovSpec, ssc: str, V_own: dict[str, np.ndarray]) -> np.ndarray:
    """``Var(vec Pi_Z)`` (columns = equations stacked), cross blocks by polarisation."""
    iz = _z_block(state)
    L, kd = len(iz), len(state.endog_names)
    raw = _raw_cols(state)
    out = np.zeros((L * kd, L * kd))
    for j, d in enumerate(state.endog_names):
        out[j * L:(j + 1) * L, j * L:(j + 1) * L] = V_own[d][np.ix_(iz, iz)]
    # the polarisation identity needs the covariance to be quadratic in the dependent variable:
    # with the CGM eigenvalue fix it is not, so the fix is switched off for the cross terms
    spec_lin = spec if spec.kind != "CRV1" else _no_eigen_fix(spec)
    for j in range(kd):
        for m in range(j + 1, kd):
            terms = []
            for sign in (1.0, -1.0):
                dep = state.D[:, j] + sign * state.D[:, m]
                dep_raw = None if raw["D"] is None else raw["D"][:, j] + sign * raw["D"][:, m]
                st = _first_stage_state(state, dep, dep_raw, "polarisation")
                terms.append(cov.compute_vcov(st, spec_lin, ssc)[0][np.ix_(iz, iz)])
            block = 0.25 * (terms[0] - terms[1])
            out[j * L:(j + 1) * L, m * L:(m + 1) * L] = block
            out[m * L:(m + 1) * L, j * L:(j + 1) * L] = block.T
    return out


def _no_eigen_fix(spec: cov.VcovSpec) -> cov.VcovSpec:
    import dataclasses

    return dataclasses.replace(spec, eigen_fix=False)


def _sqrtm_sym(A: np.ndarray) -> np.ndarray:
    lam, Q = np.linalg.eigh(0.5 * (A + A.T))
    return (Q * np.sqrt(np.maximum(lam, 0.0))) @ Q.T


def kleibergen_paap(state: "IVState", Pi_Z: np.ndarray, V_pi: np.ndarray) -> tuple[float, int]:
    """The rk Wald statistic of H0 ``rank(Pi_Z) = k_d - 1`` and its chi2 degrees of freedom."""
    ke = len(state.exog_names)
    E, Z, D = state.W[:, :ke], state.W[:, ke:], state.D
    L, kd = Pi_Z.shape
    n = state.nobs
    if ke:
        # partial E out of the cross-products: M_E Z and M_E D
        EE = E.T @ E
        def part(A: np.ndarray, B: np.ndarray) -> np.ndarray:
            return A.T @ B - (E.T @ A).T @ np.linalg.solve(EE, E.T @ B)
        ZZ, YY = part(Z, Z), part(D, D)
    else:
        ZZ, YY = Z.T @ Z, D.T @ D
    return kp_from_cross(ZZ, YY, n, Pi_Z, V_pi)


def kp_from_cross(ZZ: np.ndarray, YY: np.ndarray, n: int, Pi_Z: np.ndarray, V_pi: np.ndarray) -> tuple[float, int]:
    """:func:`kleibergen_paap` from the cross-products ``Z~'Z~`` and ``Y~'Y~`` (E partialled out),
    as the Dask fit has them (from its Gram matrix)."""
    L, kd = Pi_Z.shape
    G = _sqrtm_sym(ZZ / n)
    F = _sqrtm_sym(YY / n)
    F_inv = np.linalg.inv(F)
    Theta = G @ Pi_Z @ F_inv
    U, _, Vh = np.linalg.svd(Theta, full_matrices=True)
    V = Vh.T
    q = kd - 1
    U12, U22 = U[:q, q:], U[q:, q:]
    V12, V22 = V[:q, q:], V[q:, q:]
    A_perp = np.vstack([U12, U22]) @ np.linalg.inv(U22) @ _sqrtm_sym(U22 @ U22.T)
    B_perp = _sqrtm_sym(V22 @ V22.T) @ np.linalg.inv(V22.T) @ np.hstack([V12.T, V22.T])
    lam = (A_perp.T @ Theta @ B_perp.T).reshape(-1, order="F")
    T = np.kron(B_perp, A_perp.T) @ np.kron(F_inv, G)
    Omega = T @ V_pi @ T.T
    Om = 0.5 * (Omega + Omega.T)
    ev = np.linalg.eigvalsh(Om)
    if ev.min() <= 1e-12 * max(ev.max(), np.finfo(float).tiny):
        return float("nan"), (L - q) * (kd - q)  # Omega not positive definite: undefined
    rk = float(lam @ np.linalg.solve(Om, lam))
    return rk, (L - q) * (kd - q)


def sanderson_windmeijer(state: "IVState", spec: cov.VcovSpec, ssc: str) -> pd.Series:
    """Conditional first-stage F per endogenous regressor (equal to the partial F with one)."""
    from fastpanel.ols.results import OLSResults

    ke = len(state.exog_names)
    kd, L = len(state.endog_names), len(state.instrument_names)
    W, D = state.W, state.D
    raw = _raw_cols(state)
    iz = _z_block(state)
    WW_inv = state.WW_inv
    out = {}
    for j, d in enumerate(state.endog_names):
        others = [m for m in range(kd) if m != j]
        X = np.column_stack([W[:, :ke], D[:, others]])
        # 2SLS of d_j on [E, D_-j] with instruments W
        if X.shape[1]:
            PX = W @ (WW_inv @ (W.T @ X))
            delta = np.linalg.solve(PX.T @ X, PX.T @ D[:, j])
            e = D[:, j] - X @ delta
        else:
            delta, e = np.zeros(0), D[:, j]
        e_raw = None
        if raw["D"] is not None:
            e_raw = raw["D"][:, j] - np.column_stack([raw["E"], raw["D"][:, others]]) @ delta
        st = _first_stage_state(state, e, e_raw, f"{d} (SW residual)")
        res = OLSResults(st, spec, ssc)
        V = res.cov_params().to_numpy()[np.ix_(iz, iz)]
        out[d] = _wald(V, res.params.to_numpy()[iz]) / (L - kd + 1)
    return pd.Series(out, name="Sanderson-Windmeijer F", dtype=float)


def durbin_wu_hausman(state: "IVState", spec: cov.VcovSpec, ssc: str, distribution: str | None) -> "WaldTestResult":
    """Control-function test that the endogenous regressors are exogenous (see the module)."""
    from fastpanel.ols.results import OLSResults
    from fastpanel.ols.wald import wald_test

    ke = len(state.exog_names)
    Vhat = state.D - state.W @ state.Pi
    vnames = [f"vhat[{d}]" for d in state.endog_names]
    X = np.column_stack([state.W[:, :ke], state.D, Vhat])
    raw = _raw_cols(state)
    X_raw = None
    if raw["D"] is not None:
        W_raw = np.column_stack([raw["E"], raw["Z"]])
        X_raw = np.column_stack([raw["E"], raw["D"], raw["D"] - W_raw @ state.Pi])
    st = ols_state(state, X, state.yt, state.exog_names + state.endog_names + vnames, state.yname, X_raw, raw["y"],
                   float(state.col_tss[0]))
    res = OLSResults(st, spec, ssc)
    kd = len(vnames)
    R = np.zeros((kd, X.shape[1]))
    R[:, X.shape[1] - kd:] = np.eye(kd)
    return wald_test(res, R, distribution=distribution)


def chi2_sf(stat: float, df: int) -> float:
    return float(stats.chi2.sf(stat, df))
