"""IV (2SLS) with one- or two-way fixed effects on a Dask DataFrame: the Dask OLS rounds on the
columns ``[y, E, Z, D]``, then every regression of the fit solved from their Gram matrix.

Algorithm
---------
Rounds 1-4 are those of :mod:`fastpanel.distributed.ols` with the regressors ``E, Z, D``
(exogenous, excluded instruments, endogenous): the rows are cleaned together (a NaN in any of
them drops the row, as in memory), the effects are absorbed exactly, and the Gram matrix ``G``
of the transformed, ``sqrt(w)``-scaled ``[y, E, Z, D]`` is summed over the partitions. The
2SLS solve is the in-memory one (:func:`fastpanel.ols.iv.solve_iv_gram`) on ``G``.

Every regression the fit reports is then a pair of linear maps of the transformed columns
``Zt``: regressors ``Zt M`` and residuals ``Zt c``, with ``M`` and ``c`` from ``G``:

* the second stage: ``Xhat = [E, W Pi]``, ``u = y - E b_E - D b_D`` (bread ``(Xhat'Xhat)^{-1}``);
* the first stage of each ``d_j``: ``W = [E, Z]``, ``v_j = d_j - W Pi_j``;
* Sanderson-Windmeijer: ``W`` and the residual of the OLS of ``e_j = d_j - [E, D_-j] delta_j``
  on ``W``;
* Durbin-Wu-Hausman: ``[E, D, D - W Pi]`` and the residual of ``y`` on them.

Round 5 stacks all their scores side by side, so one pass over the partitions gives every
covariance (and, from the cross blocks of the first stages, the joint ``Var(vec Pi_Z)`` of the
Kleibergen-Paap statistic: the polarisation identity of the in-memory fit, computed directly).
Cost: five (plus singleton) passes over the data; per partition O(m^2 + T m) numbers cross the
network, m the number of stacked score columns (about ``k + 2 k_d (k_e + L) + 2 k_d + k_e``).

Supported: the Dask OLS effects (``| entity`` or ``| entity + period``), regressors and
instruments named by column; vcov ``iid``, ``HC0``, ``HC1``, ``{"CRV1": fixed effect(s)}``,
``{"DK": lags}``; every ``ssc`` preset. Results equal the in-memory fit of the same rows to
rounding (1e-10 in the tests).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from fastpanel.ols import covariance as cov
from fastpanel.ols import iv_diagnostics as diag
from fastpanel.ols.iv import _check_names, solve_iv_gram
from fastpanel.ols.iv_results import IVResults
from fastpanel.ols.results import OLSResults

__all__ = ["DaskIVResults", "finish_iv", "IV_SUPPORTED"]

IV_SUPPORTED = ("on Dask, IV fits support 'y ~ x1 + x2 | entity (+ period) | d1 + d2 ~ z1 + z2' with every variable "
                "named by column (add transformed columns first); vcov 'iid', 'HC0', 'HC1', {'CRV1': fixed "
                "effect(s)} or {'DK': lags} with time=; ssc 'fixest', 'linearmodels' or 'statsmodels'")


def _unit(p: int, j: int) -> np.ndarray:
    e = np.zeros(p)
    e[j] = 1.0
    return e


def _ols_from_gram(G: np.ndarray, M: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS of ``Zt a`` on ``Zt M`` from ``G = Zt'Zt``: (coefficients, bread, residual map ``a - M b``),
    by the Cholesky solve of the in-memory auxiliary fits (:func:`fastpanel.ols.iv_diagnostics.ols_state`)."""
    A = M.T @ G @ M
    c = scipy.linalg.cho_factor(A, lower=False, check_finite=False)
    b = scipy.linalg.cho_solve(c, M.T @ G @ a, check_finite=False)
    bread = scipy.linalg.cho_solve(c, np.eye(A.shape[0]), check_finite=False)
    return b, 0.5 * (bread + bread.T), a - M @ b


class DaskIVResults(IVResults):
    """:class:`~fastpanel.ols.iv_results.IVResults` of a fit on Dask: the first stages and the
    diagnostics were computed from the partitions' sums (see :mod:`fastpanel.distributed.iv`)."""

    def __init__(self, state: Any, spec: cov.VcovSpec, ssc: str, *, first_stage: dict[str, OLSResults],
                 V_pi: np.ndarray, kp_cross: tuple[np.ndarray, np.ndarray], sw_f: pd.Series,
                 dwh_fit: OLSResults) -> None:
        # set before IVResults.__init__, whose weak-instrument check reads them
        self.__dict__["first_stage"] = first_stage
        self.__dict__["sw_f"] = sw_f
        self._V_pi, self._kp_cross, self._dwh_fit = V_pi, kp_cross, dwh_fit
        super().__init__(state, spec, ssc)

    @cached_property
    def _kp(self) -> tuple[float, int]:
        iz = diag._z_block(self._state)
        Pi_Z = np.column_stack([self.first_stage[d].params.to_numpy()[iz] for d in self.endog_names])
        ZZ, YY = self._kp_cross
        return diag.kp_from_cross(ZZ, YY, self.nobs, Pi_Z, self._V_pi)

    def dwh(self, distribution: str | None = None) -> Any:
        """Durbin-Wu-Hausman test (control-function form), as :meth:`IVResults.dwh`."""
        from fastpanel.ols.wald import wald_test

        res = self._dwh_fit
        kd = len(self.endog_names)
        R = np.zeros((kd, res.params.size))
        R[:, res.params.size - kd:] = np.eye(kd)
        return wald_test(res, R, distribution=distribution)


def finish_iv(dask: Any, ddf: Any, sp: Any, history: list, mean: np.ndarray, gamma: Any, gram: np.ndarray,
              C: np.ndarray, *, spec: cov.VcovSpec, ssc: str, collin_tol: float, lhs: str, exog: list[str],
              inst: list[str], endog: list[str], fes: list[str], period: str | None, n_kept: int, n_nan: int,
              n_total_ok: int, n_entities: int, say: Any) -> DaskIVResults:
    """Solve the 2SLS fit from the summed Gram matrix, run round 5 (the stacked scores of every
    regression) and assemble the results; the arguments are the Dask OLS rounds' state."""
    from fastpanel.distributed import ols as dols

    ke, L, kd = len(exog), len(inst), len(endog)
    names_all = [lhs, *exog, *inst, *endog]  # the column order of Zt
    p = len(names_all)
    G = gram
    ref = np.maximum(np.diag(C), 0.0)  # centred sums of squares: the collinearity scale with effects
    thresh = collin_tol * np.maximum(ref, np.finfo(float).tiny)
    sol = solve_iv_gram(G, thresh, names_all, ke, L, kd, collin_tol, stacklevel=5)
    kE, kZ, kD, kW = sol["kE"], sol["kZ"], sol["kD"], sol["kW"]
    Pi, WW_inv, params, bread = sol["Pi"], sol["WW_inv"], sol["params"], sol["bread"]
    nE, nD, pW = len(kE), len(kD), len(kW)
    e0 = _unit(p, 0)
    S_W = np.zeros((p, pW))
    S_W[kW, np.arange(pW)] = 1.0

    # the regressions, as (regressor map M, residual map c)
    M2 = np.zeros((p, nE + nD))
    M2[kE, np.arange(nE)] = 1.0
    M2[np.ix_(kW, np.arange(nE, nE + nD))] = Pi
    c2 = e0.copy()
    for b, j in zip(params, kE + kD):
        c2[j] -= b
    fs = []
    for j in range(nD):
        pi_j, bread_j, c_j = _ols_from_gram(G, S_W, _unit(p, kD[j]))
        fs.append((pi_j, bread_j, c_j))
    sw = []
    for j in range(nD):
        xj = kE + [kD[m] for m in range(nD) if m != j]
        a = _unit(p, kD[j])
        if xj:
            S_X = np.zeros((p, len(xj)))
            S_X[xj, np.arange(len(xj))] = 1.0
            # 2SLS of d_j on [E, D_-j] with instruments W: delta = (X'P X)^{-1} X'P d_j
            XW = S_X.T @ G @ S_W
            PXX = XW @ WW_inv @ XW.T
            PXd = XW @ WW_inv @ (S_W.T @ G @ a)
            a = a - S_X @ np.linalg.solve(PXX, PXd)
        sw.append(_ols_from_gram(G, S_W, a))
    M_cf = np.hstack([M2[:, :nE], np.zeros((p, 2 * nD))])
    M_cf[kD, nE + np.arange(nD)] = 1.0
    Vmap = -S_W @ Pi
    Vmap[kD, np.arange(nD)] += 1.0  # Vhat_j = d_j - W Pi_j
    M_cf[:, nE + nD:] = Vmap
    b_cf, bread_cf, c_cf = _ols_from_gram(G, M_cf, e0)

    lin = [(M2, c2)] + [(S_W, c) for _, _, c in fs] + [(S_W, c) for _, _, c in sw] + [(M_cf, c_cf)]
    widths = [M.shape[1] for M, _ in lin]
    starts = np.concatenate([[0], np.cumsum(widths)])
    blocks = [slice(int(starts[i]), int(starts[i + 1])) for i in range(len(lin))]

    say("round 5/5: residuals and covariance (second stage, first stages, diagnostics)")
    k2 = nE + nD
    sc = dols._run(dask, ddf, dols._score_stats, sp, history, mean, gamma, np.zeros(0), [], spec.kind,
                   np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), lin)
    UU = sum(s["ssr"] for s in sc)
    epp = np.sum([s["entities_per_period"] for s in sc], axis=0) if period else None
    n_periods = int((epp > 0).sum()) if period else 0
    levels = [n_entities] + ([n_periods] if period else [])
    names_e = [names_all[j] for j in kE]
    names_d = [names_all[j] for j in kD]
    names_w = [names_all[j] for j in kW]

    def state_of(yname: str, names: list[str], coef: np.ndarray, br: np.ndarray, ssr: float, tss: float,
                 tss_within: float, cls: type = dols.DaskFitState, **extra: Any) -> Any:
        return cls(yname=yname, names=list(names), params=coef, bread=br, ssr=float(ssr), tss_within=tss_within,
                   tss=tss, nobs=n_kept, n_dropped=n_nan, n_singletons=n_total_ok - n_kept,
                   fe_factors=[dols._Levels(v) for v in levels], fe_names=list(fes), dropped=[],
                   backend=dols.within_kernels()[0], pooled_ssr=None, **extra)

    main = state_of(lhs, names_e + names_d, params, bread, UU[0, 0], float(C[0, 0]), float(G[0, 0]),
                    cls=DaskIVState, exog_names=names_e, endog_names=names_d, instrument_names=[names_all[j] for j in kZ])
    main.dropped = list(sol["dropped"])
    ctx = dols._vcov_context(spec, ssc, sc, main, fes, period, n_entities, n_periods, epp)
    main.vcov = dols._assemble_vcov(spec, ssc, ctx, sc, bread, UU[0, 0], k2, main, blocks[0])

    def ols_results(yname: str, names: list[str], coef: np.ndarray, br: np.ndarray, i: int, tss: float,
                    tss_within: float) -> OLSResults:
        st = state_of(yname, names, coef, br, UU[i, i], tss, tss_within)
        st.extra, st.n_components = main.extra, main.n_components
        st.vcov = dols._assemble_vcov(spec, ssc, ctx, sc, br, UU[i, i], len(names), st, blocks[i])
        return OLSResults(st, spec, ssc)

    first = {d: ols_results(d, names_w, fs[j][0], fs[j][1], 1 + j, float(C[kD[j], kD[j]]), float(G[kD[j], kD[j]]))
             for j, d in enumerate(names_d)}
    iz = np.arange(nE, pW)
    L_kept = len(kZ)
    sw_f = {}
    for j, d in enumerate(names_d):
        r = ols_results(f"{d} (SW residual)", names_w, sw[j][0], sw[j][1], 1 + nD + j, 0.0, 0.0)
        V = r.cov_params().to_numpy()[np.ix_(iz, iz)]
        sw_f[d] = diag._wald(V, r.params.to_numpy()[iz]) / (L_kept - nD + 1)
    i_cf = 1 + 2 * nD
    st_cf = state_of(lhs, names_e + names_d + [f"vhat[{d}]" for d in names_d], b_cf, bread_cf, UU[i_cf, i_cf],
                     float(C[0, 0]), float(G[0, 0]))
    st_cf.extra, st_cf.n_components = main.extra, main.n_components
    st_cf.vcov = dols._assemble_vcov(spec, ssc, ctx, sc, bread_cf, UU[i_cf, i_cf], M_cf.shape[1], st_cf,
                                     blocks[i_cf])
    dwh_fit = OLSResults(st_cf, spec, ssc)

    # Var(vec Pi_Z): the first stages' own covariances on the diagonal, the cross blocks from the
    # joint sandwich of their stacked scores (no eigenvalue fix on cross blocks, as in memory)
    V_pi = np.zeros((L_kept * nD, L_kept * nD))
    for j, d in enumerate(names_d):
        V_pi[j * L_kept:(j + 1) * L_kept, j * L_kept:(j + 1) * L_kept] = first[d].cov_params().to_numpy()[np.ix_(iz, iz)]
    if nD > 1:
        import dataclasses

        spec_lin = dataclasses.replace(spec, eigen_fix=False) if spec.kind == "CRV1" else spec
        for j in range(nD):
            for m in range(j + 1, nD):
                if spec.kind == "iid":  # v_j'v_m / (n - K) (W'W)^{-1}
                    Vjm = dols._assemble_vcov(spec_lin, ssc, ctx, sc, WW_inv, UU[1 + j, 1 + m], pW, main)[0]
                    block = Vjm[np.ix_(iz, iz)]
                else:
                    two = np.zeros((2 * pW, 2 * pW))
                    two[:pW, :pW] = two[pW:, pW:] = WW_inv
                    # the joint of first stages j and m: their score columns side by side
                    idx = np.r_[np.arange(blocks[1 + j].start, blocks[1 + j].stop),
                                np.arange(blocks[1 + m].start, blocks[1 + m].stop)]
                    sc_jm = [_take(s, idx) for s in sc]
                    Vj = dols._assemble_vcov(spec_lin, ssc, ctx, sc_jm, two, 0.0, pW, main, slice(None))[0]
                    block = Vj[:pW, pW:][np.ix_(iz, iz)]
                V_pi[j * L_kept:(j + 1) * L_kept, m * L_kept:(m + 1) * L_kept] = block
                V_pi[m * L_kept:(m + 1) * L_kept, j * L_kept:(j + 1) * L_kept] = block.T
    # E partialled out of Z and D: the cross-products of the rk statistic
    def part(ia: list[int], ib: list[int]) -> np.ndarray:
        out = G[np.ix_(ia, ib)]
        if kE:
            out = out - G[np.ix_(kE, ia)].T @ np.linalg.solve(G[np.ix_(kE, kE)], G[np.ix_(kE, ib)])
        return out

    return DaskIVResults(main, spec, ssc, first_stage=first, V_pi=V_pi, kp_cross=(part(kZ, kZ), part(kD, kD)),
                         sw_f=pd.Series(sw_f, name="Sanderson-Windmeijer F", dtype=float), dwh_fit=dwh_fit)


def _take(s: dict, idx: np.ndarray) -> dict:
    """A partition's statistics restricted to the score columns ``idx``."""
    out = dict(s)
    for key in ("hc", "entity", "cell"):
        if key in s:
            out[key] = s[key][np.ix_(idx, idx)]
    for key in ("period_sums", "time_sums"):
        if key in s:
            out[key] = s[key][:, idx]
    return out


def _iv_state_class() -> type:
    from dataclasses import dataclass, field

    from fastpanel.distributed.ols import DaskFitState

    @dataclass
    class DaskIVState(DaskFitState):
        """A Dask fit's summary with the IV names that :class:`IVResults` reads."""

        exog_names: list[str] = field(default_factory=list)
        endog_names: list[str] = field(default_factory=list)
        instrument_names: list[str] = field(default_factory=list)

    return DaskIVState


DaskIVState = _iv_state_class()


def check_iv_request(fml: str, spec: cov.VcovSpec, fes: list[str], exog: list[str], endog: list[str],
                     inst: list[str], columns: Any) -> None:
    """Refuse, with the reason, what the Dask IV fit does not do."""
    if spec.kind in ("HC2", "HC3"):
        raise ValueError(f"vcov='{spec.kind}' is not available for IV fits on Dask: the leverage of the 2SLS "
                         "projection plus the effects is not computed there; use 'HC1' (or fit in memory); "
                         + IV_SUPPORTED)
    if spec.kind == "CRV3":
        raise ValueError("vcov={'CRV3': ...} is not available for IV fits on Dask (the leave-one-cluster-out 2SLS "
                         "refits are not sums over partitions); use {'CRV1': ...} or fit in memory; " + IV_SUPPORTED)
    _check_names(exog, endog, inst)
    not_cols = [t for t in exog + endog + inst if t not in columns]
    if not_cols:
        raise ValueError(f"formula {fml!r}: {', '.join(map(repr, not_cols))} are not column names of the Dask "
                         "DataFrame; " + IV_SUPPORTED)
    if not endog:
        raise ValueError(f"formula {fml!r}: no endogenous regressor in the IV part")
    if not inst:
        raise ValueError(f"formula {fml!r}: no excluded instrument for {', '.join(endog)}: the model is "
                         "under-identified")
