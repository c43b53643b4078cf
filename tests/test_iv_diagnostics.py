"""IV (2SLS with absorbed fixed effects): first stage and weak-instrument / endogeneity diagnostics.

Every statistic is checked against an independent NumPy oracle written here from the papers
(fixed effects partialled out with EXPLICIT dummy columns and least squares, never with
fastpanel's within transform), and, where a peer computes it, against that peer:

* first stage, first-stage F: ``fastpanel.feols`` (the first stage as an OLS), pyfixest 0.60
  (``fit._model_1st_stage``, ``fit._f_stat_1st_stage``), linearmodels 7.1
  ``IV2SLS(...).first_stage`` on explicit-dummy data;
* Kleibergen & Paap (2006, J. Econometrics 133, 97-126) rk Wald statistic: no installed peer;
  the oracle is checked against (i) the first-stage Wald of linearmodels with one endogenous
  regressor, (ii) Cragg & Donald (1993) / Stock & Yogo (2005) under iid, where it must coincide
  (derivation at :func:`test_oracle_kp_iid_equals_cragg_donald`), (iii) exact invariances;
* Sanderson & Windmeijer (2016, J. Econometrics 190, 212-221) conditional F: two independent
  routes in the oracle; one endogenous regressor = first-stage F;
* Durbin-Wu-Hausman (control function): linearmodels ``wu_hausman`` (iid) and
  ``wooldridge_regression`` (robust, clustered).

Peer conventions established here (evidence: the tests named):

* pyfixest 0.60 ``_f_stat_1st_stage`` = ``W / L`` with ``W`` the Wald statistic of the L excluded
  instruments in the first stage under the IV fit's vcov and pyfixest's default ssc (no chi2/F
  switch: ``_f_statistic = W / dfn`` in both branches). Two-way clustering: pyfixest's first
  stage is clustered by the FIRST cluster variable only (``vcov_detail = {type:
  self._clustervar[0]}``), so its F differs from a two-way first-stage F
  (``test_pyfixest_two_way_cluster_first_stage_is_one_way``).
* linearmodels 7.1 ``first_stage.diagnostics["f.stat"]``: ``W / L`` (F distribution, df
  ``n - k``) for ``cov_type="unadjusted"``; the plain ``W`` (chi2, not divided by L) for
  "robust"/"clustered"; with ``debiased=True`` the covariance is the statsmodels-preset one
  (``n/(n-k)``, ``G/(G-1) (n-1)/(n-k)``). ``partial.rsquared`` = R2 of Y~ on Z~; under iid
  ``F = R2p / (1 - R2p) * (n - K1) / L`` exactly.
* linearmodels ``wu_hausman()`` = the iid F of the control-function regression
  (``delta/q / ((e0'e0 - delta)/(n - k_exog - k_endog - q))`` and ``delta`` equals the fall in the
  SSR when the first-stage residuals are added), so it equals ``dwh()`` under iid with
  ssc="statsmodels" exactly; ``wooldridge_regression`` is the chi2 form ``W`` of the same
  regression under the fit's covariance (= ``q * dwh().stat`` for F, = ``dwh("chi2").stat``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import fastpanel

lm = pytest.importorskip("linearmodels")
pf = pytest.importorskip("pyfixest")

RTOL = 1e-8


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def make_panel(seed: int = 0, *, n_ent: int = 120, n_per: int = 8, k_endog: int = 1, n_instr: int = 3,
               nan_frac: float = 0.02, rho: float = 0.5, pi_scale: float = 1.0, hetero: bool = True) -> pd.DataFrame:
    """Unbalanced two-way panel, shuffled rows, NaNs; endogenous d1..dk (first-stage errors
    correlated with the structural error through ``rho``), instruments z1..zL correlated with
    the fixed effects and with x1 (so partialling matters), heteroskedastic errors, weights,
    cluster variables crossed (``cl``) and nesting the entities (``region``)."""
    rng = np.random.default_rng(seed)
    e = np.repeat(np.arange(n_ent), n_per)
    t = np.tile(np.arange(n_per), n_ent)
    keep = rng.random(e.size) > 0.25
    keep[t < 3] = True
    e, t = e[keep], t[keep]
    n = e.size
    a = rng.normal(size=n_ent)[e]
    g = rng.normal(size=n_per)[t]
    df = pd.DataFrame({"entity": e, "year": 2000 + t})
    df["x1"] = rng.normal(size=n) + 0.5 * a
    df["x2"] = rng.normal(size=n) + 0.3 * g
    Z = rng.normal(size=(n, n_instr)) + 0.3 * a[:, None] + 0.2 * df[["x1"]].to_numpy()
    for j in range(n_instr):
        df[f"z{j + 1}"] = Z[:, j]
    scale = (1 + 0.4 * np.abs(df.x1.to_numpy())) if hetero else np.ones(n)
    u = rng.normal(size=n) * scale
    # well-conditioned Pi (L x k): orthonormal columns times a scale, so the smallest singular
    # value is pi_scale and the instruments are strong (or weak, for the warning tests)
    Q = np.linalg.qr(rng.normal(size=(n_instr, k_endog)))[0]
    Pi = pi_scale * Q
    V = rng.normal(size=(n, k_endog)) * ((1 + 0.5 * np.abs(Z[:, :1])) if hetero else 1.0)
    for j in range(k_endog):
        df[f"d{j + 1}"] = Z @ Pi[:, j] + 0.5 * df.x1 - 0.2 * df.x2 + a + g + V[:, j] + rho * u
    df["y"] = 1 + sum(0.7 * df[f"d{j + 1}"] for j in range(k_endog)) + 0.8 * df.x1 - 0.4 * df.x2 + a + g + u
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    df["cl"] = rng.integers(0, 25, size=n)
    df["region"] = df.entity // 6
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if nan_frac:
        for c in ["y", "x1", "d1", "z1", "w"]:
            df.loc[rng.random(n) < nan_frac, c] = np.nan
    return df


def endog_names(k):
    return [f"d{j + 1}" for j in range(k)]


def instr_names(L):
    return [f"z{j + 1}" for j in range(L)]


def iv_formula(exog, endog, instr, fe):
    lhs = " + ".join(exog) if exog else "1"
    mid = f" | {' + '.join(fe)}" if fe else ""
    return f"y ~ {lhs}{mid} | {' + '.join(endog)} ~ {' + '.join(instr)}"


# ----------------------------------------------------------------------------------------------
# oracle: explicit dummies, FWL partialling, covariance presets
# ----------------------------------------------------------------------------------------------


def _sqrtm(M):
    w, Q = np.linalg.eigh((M + M.T) / 2)
    return (Q * np.sqrt(w)) @ Q.T


def _basis(B):
    """Orthonormal basis of the column space of B (B may be rank deficient)."""
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    return U[:, s > s[0] * 1e-10]


def _drop_singletons(d, fe):
    while fe:
        bad = np.zeros(len(d), bool)
        for f in fe:
            bad |= d.groupby(f)[f].transform("size").to_numpy() == 1
        if not bad.any():
            break
        d = d[~bad]
    return d


def _parse_vcov(vcov):
    if isinstance(vcov, str):
        return {"hetero": "HC1"}.get(vcov, vcov), ()
    (k, v), = vcov.items()
    if k == "DK":
        return "DK", v
    return k, tuple(p.strip() for p in v.split("+"))


class Oracle:
    """2SLS design after the fixed effects (explicit dummies) and sqrt(w) weighting.

    ``Xf, Yf, Zf, yf``: exog, endog, instruments, outcome partialled on the dummies only;
    ``Y, Z, yv``: endog, instruments and outcome partialled on dummies AND exog (Y~, Z~)."""

    def __init__(self, df, exog, endog, instr, fe=(), weights=None, vcov="iid", ssc="fixest", time=None):
        self.kind, self.clusters = _parse_vcov(vcov)
        self.ssc = ssc
        extra = list(self.clusters) if self.kind in ("CRV1",) else []
        if time:
            extra.append(time)
        cols = ["y", *exog, *endog, *instr, *fe, *([weights] if weights else []), *extra]
        d = df[list(dict.fromkeys(cols))].dropna()
        d = _drop_singletons(d, list(fe))
        self.data = d
        self.n = n = len(d)
        sw = np.sqrt(d[weights].to_numpy(float)) if weights else np.ones(n)
        self.fe = list(fe)
        dummies = []
        for f in fe:
            codes = pd.factorize(d[f])[0]
            Dm = np.zeros((n, codes.max() + 1))
            Dm[np.arange(n), codes] = 1.0
            dummies.append(Dm)
        self.levels = [Dm.shape[1] for Dm in dummies]
        if fe:
            D = np.hstack(dummies)
            self.fe_df_exact = int(np.linalg.matrix_rank(D))
            self.fe_df_fixest = sum(self.levels) - (len(fe) - 1)
        else:
            D = np.ones((n, 1))
            self.fe_df_exact = self.fe_df_fixest = 0
        self.k_exog = len(exog) + (0 if fe else 1)
        self.exog, self.endog, self.instr = list(exog), list(endog), list(instr)
        D = sw[:, None] * D
        QD = _basis(D)

        def part(A, on):
            A = sw[:, None] * np.asarray(A, float).reshape(n, -1)
            return A - on @ (on.T @ A)

        raw = lambda c: d[list(c)].to_numpy(float)  # noqa: E731
        self.Xf = part(raw(exog), QD) if exog else np.zeros((n, 0))
        self.Yf, self.Zf = part(raw(endog), QD), part(raw(instr), QD)
        self.yf = part(d["y"].to_numpy(float), QD)[:, 0]
        DX = np.hstack([QD, self.Xf / np.linalg.norm(self.Xf, axis=0)]) if exog else QD
        DX = _basis(DX)
        self.Y, self.Z = part(raw(endog), DX), part(raw(instr), DX)
        self.yv = part(d["y"].to_numpy(float), DX)[:, 0]
        self.L, self.k = len(instr), len(endog)
        self.cl_codes = [pd.factorize(d[c])[0] for c in self.clusters] if self.kind == "CRV1" else []
        self.time_codes = pd.factorize(d[time], sort=True)[0] if time else None

    # -- the preset's K (slopes + fixed-effect df) and scale factors --------------------------------
    def K(self, k_slopes):
        k = k_slopes
        if not self.fe:
            return k
        if self.ssc == "statsmodels":
            return k + self.fe_df_exact
        fe_df = self.fe_df_fixest
        if self.kind == "CRV1":
            for f, lv in zip(self.fe, self.levels):
                nested = any((self.data.groupby(f)[c].nunique() == 1).all() for c in self.clusters)
                if nested:
                    fe_df += 1 - lv
        return k + fe_df

    def cov(self, X, R, k_slopes):
        """Covariance of the stacked coefficients of the OLS of each column of R's equations
        (``R`` n x m residuals, common regressors ``X`` n x p): vec order = equation-major
        (vec of the p x m coefficient matrix), scores ``r_i kron x_i``."""
        n, m = R.shape
        K = self.K(k_slopes)
        XtXi = np.linalg.inv(X.T @ X)
        if self.kind == "iid":
            return np.kron(R.T @ R / (n - K), XtXi)
        bread = np.kron(np.eye(m), XtXi)
        S = (R[:, :, None] * X[:, None, :]).reshape(n, m * X.shape[1])  # kron(r_i, x_i)
        if self.kind in ("HC0", "HC1"):
            meat = S.T @ S
            fac = 1.0 if self.kind == "HC0" else n / (n - K)
            return fac * bread @ meat @ bread
        if self.kind == "CRV1":
            codes = self.cl_codes
            terms = []
            if len(codes) == 1:
                terms = [(1, codes[0])]
            elif len(codes) == 2:
                inter = pd.factorize(pd.Series(codes[0]).astype(str) + "_" + pd.Series(codes[1]).astype(str))[0]
                terms = [(1, codes[0]), (1, codes[1]), (-1, inter)]
            else:
                raise NotImplementedError
            gmin = min(c.max() + 1 for c in codes)
            V = 0.0
            for sign, c in terms:
                G = c.max() + 1
                sums = np.zeros((G, S.shape[1]))
                np.add.at(sums, c, S)
                g_use = gmin if self.ssc == "fixest" else G
                fac = (n - 1) / (n - K) * g_use / (g_use - 1)
                V = V + sign * fac * bread @ (sums.T @ sums) @ bread
            return V
        if self.kind == "DK":
            lags = self.clusters
            tc = self.time_codes
            T = tc.max() + 1
            z = np.zeros((T, S.shape[1]))
            np.add.at(z, tc, S)
            meat = z.T @ z
            for lag in range(1, lags + 1):
                op = z[lag:].T @ z[:-lag]
                meat += (1 - lag / (lags + 1)) * (op + op.T)
            fac = (n - 1) / (n - K) * T / (T - 1) if self.ssc == "fixest" else 1.0
            return fac * bread @ meat @ bread
        raise NotImplementedError(self.kind)

    @property
    def K1(self):
        return self.k_exog + self.L  # first-stage slopes (the FE df is added by K())

    # -- first stage ------------------------------------------------------------------------------
    def first_stage(self, j):
        """OLS of endog j on [exog, instruments] | FE: params, bse (exog first, then instruments;
        a pooled model's intercept is partialled out, FWL)."""
        W = np.hstack([self.Xf, self.Zf])  # pooled: the constant is partialled out (FWL)
        b = np.linalg.lstsq(W, self.Yf[:, j], rcond=None)[0]
        r = self.Yf[:, j] - W @ b
        V = self.cov(W, r[:, None], self.K1)
        return b, np.sqrt(np.diag(V))

    def pi(self):
        return np.linalg.lstsq(self.Z, self.Y, rcond=None)[0]  # L x k

    def resid_v(self):
        return self.Y - self.Z @ self.pi()

    def var_vec_pi(self):
        return self.cov(self.Z, self.resid_v(), self.K1)

    def first_stage_wald(self, j):
        p = self.pi()[:, j]
        V = self.cov(self.Z, self.resid_v()[:, [j]], self.K1)
        return float(p @ np.linalg.solve(V, p))

    # -- Kleibergen-Paap rk Wald (KP 2006, eqs. (11)-(15), q = k - 1) -----------------------------
    def kp(self, varvec=None):
        return kp_rk(self.Y, self.Z, self.var_vec_pi() if varvec is None else varvec)

    def cragg_donald(self):
        """Minimum eigenvalue of Sigma_vv^{-1/2} Pi' Z~'Z~ Pi Sigma_vv^{-1/2} with
        Sigma_vv = V'V/(n - K1) (Cragg & Donald 1993; Stock & Yogo 2005's Cragg-Donald statistic
        is this divided by L)."""
        P = self.pi()
        V = self.resid_v()
        S = V.T @ V / (self.n - self.K(self.K1))
        Si = np.linalg.inv(_sqrtm(S))
        H = P.T @ self.Z.T @ self.Z @ P
        return float(np.linalg.eigvalsh(Si @ H @ Si).min())

    # -- Sanderson-Windmeijer (2016) conditional first-stage F -----------------------------------
    def sw(self, j):
        """Route 1: e = Y_j - Y_{-j} delta (2SLS delta), OLS of e on Z~, Wald / (L - k + 1)."""
        k, L = self.k, self.L
        Yj, Yo = self.Y[:, j], np.delete(self.Y, j, axis=1)
        Pz = lambda A: self.Z @ np.linalg.lstsq(self.Z, A, rcond=None)[0]  # noqa: E731
        if k > 1:
            PYo = Pz(Yo)
            delta = np.linalg.solve(PYo.T @ Yo, PYo.T @ Yj)
            e = Yj - Yo @ delta
        else:
            e = Yj
        gam = np.linalg.lstsq(self.Z, e, rcond=None)[0]
        r = e - self.Z @ gam
        V = self.cov(self.Z, r[:, None], self.K1)
        return float(gam @ np.linalg.solve(V, gam)) / (L - k + 1)

    def sw_route2(self, j):
        """Route 2: gamma = Pi a, Var = (a' kron I) Var(vec Pi) (a kron I), a = e_j - delta."""
        k, L = self.k, self.L
        P = self.pi()
        a = np.zeros(k)
        a[j] = 1.0
        if k > 1:
            Yo = np.delete(self.Y, j, axis=1)
            PYo = self.Z @ np.linalg.lstsq(self.Z, Yo, rcond=None)[0]
            delta = np.linalg.solve(PYo.T @ Yo, PYo.T @ self.Y[:, j])
            a[np.arange(k) != j] = -delta
        g = P @ a
        A = np.kron(a[None, :], np.eye(L))
        V = A @ self.var_vec_pi() @ A.T
        return float(g @ np.linalg.solve(V, g)) / (L - k + 1)

    # -- Durbin-Wu-Hausman control function -------------------------------------------------------
    def dwh(self):
        """OLS of y on [exog, endog, vhat] | FE; Wald of the vhat coefficients: (W, W/k)."""
        V = self.resid_v()  # first-stage residuals (orthogonal to dummies and exog already)
        X = np.hstack([self.Xf, self.Yf, V])
        b = np.linalg.lstsq(X, self.yf, rcond=None)[0]
        r = self.yf - X @ b
        C = self.cov(X, r[:, None], self.k_exog + 2 * self.k)
        idx = np.arange(X.shape[1] - self.k, X.shape[1])
        W = float(b[idx] @ np.linalg.solve(C[np.ix_(idx, idx)], b[idx]))
        return W, W / self.k


def kp_rk(Y, Z, varvec):
    """Kleibergen-Paap (2006) rk statistic for H0: rank(Pi) = k - 1 on the partialled Y~ (n x k),
    Z~ (n x L) and the estimated Var(vec Pi_hat) (kL x kL, vec stacks the columns of Pi)."""
    n, k = Y.shape
    L = Z.shape[1]
    Pi = np.linalg.lstsq(Z, Y, rcond=None)[0]
    G = _sqrtm(Z.T @ Z / n)
    F = _sqrtm(Y.T @ Y / n)
    Finv = np.linalg.inv(F)
    Theta = G @ Pi @ Finv
    U, s, Vt = np.linalg.svd(Theta, full_matrices=True)
    Vm = Vt.T
    q = k - 1
    U12, U22 = U[:q, q:], U[q:, q:]
    V12, V22 = Vm[:q, q:], Vm[q:, q:]
    A_perp = np.vstack([U12, U22]) @ np.linalg.inv(U22) @ _sqrtm(U22 @ U22.T)          # L x (L - q)
    B_perp = _sqrtm(V22 @ V22.T) @ np.linalg.inv(V22.T) @ np.hstack([V12.T, V22.T])    # (k - q) x k
    KR = np.kron(B_perp, A_perp.T)
    lam = KR @ Theta.flatten(order="F")
    T = np.kron(Finv, G)
    Om = KR @ T @ varvec @ T.T @ KR.T
    return float(lam @ np.linalg.solve(Om, lam))


def explicit_dummies(d, fe, exog):
    """Constant + one dummy per level except the first of each FE dimension + exog (linearmodels)."""
    parts = [pd.DataFrame({"const": np.ones(len(d))}, index=d.index)]
    for f in fe:
        parts.append(pd.get_dummies(d[f].astype("int64"), prefix=f, drop_first=True, dtype=float))
    parts.append(d[list(exog)])
    return pd.concat(parts, axis=1)


LM_COV = {"iid": ("unadjusted", None), "HC1": ("robust", None), "CRV1-cl": ("clustered", "cl"),
          "CRV1-entity": ("clustered", "entity")}
FP_COV = {"iid": "iid", "HC1": "HC1", "CRV1-cl": {"CRV1": "cl"}, "CRV1-entity": {"CRV1": "entity"}}


def lm_iv(o, case, weights=None):
    """linearmodels IV2SLS on the oracle's sample with explicit dummies, debiased=True."""
    d = o.data
    X = explicit_dummies(d, o.fe, o.exog)
    cov_type, cl = LM_COV[case]
    cfg = {"clusters": d[cl]} if cl else {}
    mod = lm.IV2SLS(d.y, X, d[o.endog], d[o.instr], weights=None if weights is None else d[weights])
    return mod.fit(cov_type=cov_type, debiased=True, **cfg)


def pf_iv(df, exog, endog, instr, fe, vcov, weights=None):
    """pyfixest 0.60 feols IV, demeaning converged to rounding (fixef_tol=1e-13; its default 1e-6
    leaves differences of ~1e-8 in the standard errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pf.feols(iv_formula(exog, endog, instr, fe), df, vcov=vcov, weights=weights,
                        fixef_tol=1e-13, fixef_maxiter=100_000)


def close(a, b, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


EXOG = ["x1", "x2"]
FE = ["entity", "year"]
VCOVS = {"iid": "iid", "HC1": "HC1", "CRV1-cl": {"CRV1": "cl"}, "CRV1-entity": {"CRV1": "entity"},
         "CRV1-region": {"CRV1": "region"}, "CRV1-entity+cl": {"CRV1": "entity+cl"}}


# ----------------------------------------------------------------------------------------------
# 0. the oracles against the peers and against each other (no fastpanel IV needed)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("vcov", ["iid", "HC1", "CRV1-cl", "CRV1-entity", "CRV1-region"])
def test_oracle_first_stage_matches_feols_and_pyfixest(weights, vcov):
    df = make_panel(0)
    ins = instr_names(3)
    o = Oracle(df, EXOG, ["d1"], ins, FE, weights=weights, vcov=VCOVS[vcov])
    b, se = o.first_stage(0)
    names = EXOG + ins
    ols = fastpanel.feols("d1 ~ x1 + x2 + z1 + z2 + z3 | entity + year", o.data, vcov=VCOVS[vcov], weights=weights)
    assert ols.nobs == o.n
    close(b, ols.params[names], 1e-10)
    close(se, ols.bse[names], 1e-10)
    fit = pf_iv(df, EXOG, ["d1"], ins, FE, VCOVS[vcov], weights)
    m1 = fit._model_1st_stage
    assert fit._N == m1._N == o.n  # pyfixest's first stage uses the IV sample (y's NaN rows dropped too)
    close(b, m1.coef()[names], 1e-10)
    close(se, m1.se()[names], 1e-10)
    # pyfixest: _f_stat_1st_stage = W / L (Wald of the excluded instruments under the fit's vcov)
    close(fit._f_stat_1st_stage, o.first_stage_wald(0) / 3, 1e-10)


def test_pyfixest_two_way_cluster_first_stage_is_one_way():
    """pyfixest 0.60 clusters its first stage by the FIRST cluster variable only."""
    df = make_panel(0)
    ins = instr_names(3)
    fit = pf_iv(df, EXOG, ["d1"], ins, FE, {"CRV1": "entity+cl"})
    one = Oracle(df, EXOG, ["d1"], ins, FE, vcov={"CRV1": "entity"}).first_stage_wald(0) / 3
    two = Oracle(df, EXOG, ["d1"], ins, FE, vcov={"CRV1": "entity+cl"}).first_stage_wald(0) / 3
    close(fit._f_stat_1st_stage, one, 1e-10)
    assert abs(two / one - 1) > 0.01


@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("case", list(LM_COV))
def test_oracle_first_stage_matches_linearmodels(weights, case):
    df = make_panel(0)
    ins = instr_names(3)
    o = Oracle(df, EXOG, ["d1"], ins, FE, weights=weights, vcov=FP_COV[case], ssc="statsmodels")
    res = lm_iv(o, case, weights)
    ind = res.first_stage.individual["d1"]
    b, se = o.first_stage(0)
    close(b, ind.params[EXOG + ins], 1e-9)
    close(se, ind.std_errors[EXOG + ins], 1e-9)
    diag = res.first_stage.diagnostics.loc["d1"]
    W = o.first_stage_wald(0)
    if case == "iid":  # F = W / L with F(L, n - K1)
        close(diag["f.stat"], W / 3, 1e-9)
        assert diag["f.dist"] == f"F(3,{o.n - o.K(o.K1)})"
    else:  # robust / clustered: the Wald statistic itself, chi2(L)
        close(diag["f.stat"], W, 1e-9)
        assert diag["f.dist"] == "chi2(3)"
    Y, Z = o.Y[:, 0], o.Z
    r2p = 1 - np.sum((Y - Z @ o.pi()[:, 0]) ** 2) / np.sum(Y ** 2)
    close(diag["partial.rsquared"], r2p, 1e-9)
    if case == "iid":
        close(r2p / (1 - r2p) * (o.n - o.K(o.K1)) / 3, W / 3, 1e-9)


@pytest.mark.parametrize("case", ["HC1", "CRV1-cl"])
def test_oracle_kp_one_endog_equals_linearmodels_first_stage_wald(case):
    """k = 1: A_perp = I_L, B_perp = 1, so rk = Pi' Var(Pi)^{-1} Pi, the robust first-stage Wald."""
    df = make_panel(3)
    o = Oracle(df, EXOG, ["d1"], instr_names(3), FE, weights="w", vcov=FP_COV[case], ssc="statsmodels")
    res = lm_iv(o, case, "w")
    close(o.kp(), res.first_stage.diagnostics.loc["d1", "f.stat"], 1e-9)
    close(o.kp(), o.first_stage_wald(0), 1e-10)


@pytest.mark.parametrize("k,L", [(2, 3), (3, 4), (2, 2)])
@pytest.mark.parametrize("weights", [None, "w"])
def test_oracle_kp_iid_equals_cragg_donald(k, L, weights):
    """Under iid KP rk Wald = Cragg-Donald minimum eigenvalue exactly (factor 1).

    Var(vec Pi) = S kron (Z'Z)^{-1}, S = V'V/(n-K1), makes Omega_q Kronecker and for q = k - 1
    rk = n s_k^2 / (v_k' F^{-1} S F^{-1} v_k), s_k, v_k the smallest singular value / right
    vector of Theta = G Pi F^{-1}. With H = Pi'Z'Z Pi and F^2 = Y'Y/n = (H + V'V)/n (FWL), an
    eigenvector v of F^{-1} H F^{-1} / n (eigenvalue mu) gives x = F^{-1} v with
    H x = [mu (n-K1) / (n - mu)] S x: x is a generalized eigenvector of (H, S) with an eigenvalue
    increasing in mu, so rk = x'Hx / x'Sx = min eig S^{-1/2} H S^{-1/2} (Cragg-Donald).
    """
    df = make_panel(4, k_endog=k, n_instr=L)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov="iid")
    close(o.kp(), o.cragg_donald(), 1e-10)
    # not a tautology: with a robust covariance the two differ
    o_r = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov="HC1")
    assert abs(o_r.kp() / o_r.cragg_donald() - 1) > 1e-3


@pytest.mark.parametrize("k,L", [(2, 3), (3, 4)])
@pytest.mark.parametrize("vcov", ["iid", "HC1", "CRV1-cl", "CRV1-entity+cl"])
def test_oracle_kp_invariances(k, L, vcov):
    """Exact invariances of the rk statistic (q = k - 1).

    * instruments Z~ -> Z~ C (C nonsingular: rescaling, recombining; adding exog or FE terms
      leaves Z~ unchanged): G_new C^{-1} = O G with O orthogonal (T'T = G'G for T = G_new C^{-1}),
      so Theta -> O Theta, U -> O U, A_perp -> O A_perp N (N nonsingular), lambda -> N' lambda
      and Omega transforms alike (Var(vec Pi) is exactly (I kron C^{-1}) Var (I kron C^{-1})'):
      lambda' Omega^{-1} lambda unchanged;
    * endogenous Y~ -> Y~ C: Theta -> Theta P (P orthogonal), B_perp -> M B_perp P, same argument;
    * y plays no part.
    """
    df = make_panel(5, k_endog=k, n_instr=L)
    base = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights="w", vcov=VCOVS[vcov]).kp()
    d2 = df.copy()
    ent_term = np.sin(d2.entity.to_numpy(float))
    d2["z1"] = 250.0 * d2.z1 - 2.0 * d2.x1 + 0.5 * d2.z2 + ent_term
    d2["z2"] = d2.z2 / 40.0
    d2["d1"] = -0.3 * d2.d1 + 0.4 * d2.x2 + 0.7 * d2.d2 + np.cos(d2.year.to_numpy(float))
    d2["y"] = d2.y * 5 + d2.x1 ** 2
    new = Oracle(d2, EXOG, endog_names(k), instr_names(L), FE, weights="w", vcov=VCOVS[vcov]).kp()
    close(new, base, 1e-9)


@pytest.mark.parametrize("k,L", [(1, 3), (2, 3), (3, 4)])
@pytest.mark.parametrize("vcov", ["iid", "HC1", "CRV1-cl", "CRV1-entity+cl"])
def test_oracle_sw_two_routes(k, L, vcov):
    """SW: the Wald from the OLS of e on Z~ equals the one from the joint first-stage covariance
    with a = (1, -delta) (the residuals of e on Z~ are V a, its scores (a' kron I)(v_i kron z_i));
    k = 1: the first-stage F; iid: (L - k + 1) SW_j >= rk = Cragg-Donald, because 2SLS delta
    minimizes a'Ha over a_j = 1 while Cragg-Donald minimizes a'Ha / a'Sa over all a."""
    df = make_panel(6, k_endog=k, n_instr=L)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, vcov=VCOVS[vcov])
    for j in range(k):
        close(o.sw(j), o.sw_route2(j), 1e-10)
        if k == 1:
            close(o.sw(j), o.first_stage_wald(j) / L, 1e-10)
        if vcov == "iid":
            assert o.sw(j) * (L - k + 1) >= o.kp() * (1 - 1e-12)


@pytest.mark.parametrize("k,L", [(1, 3), (2, 3)])
@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("case", ["iid", "HC1", "CRV1-cl"])
def test_oracle_dwh_matches_linearmodels(k, L, weights, case):
    """iid: linearmodels wu_hausman (always iid, whatever cov_type) = control-function F with
    df (k, n - K); robust/clustered: wooldridge_regression = control-function Wald (chi2)."""
    df = make_panel(2, k_endog=k, n_instr=L, rho=0.15)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=FP_COV[case], ssc="statsmodels")
    res = lm_iv(o, case, weights)
    W, F = o.dwh()
    if case == "iid":
        wh = res.wu_hausman()
        close(F, wh.stat, 1e-10)
        assert wh.df == k and wh.df_denom == o.n - o.K(o.k_exog + 2 * k)
    close(W, res.wooldridge_regression.stat, 1e-10)


def test_oracle_real_data_mroz_literature():
    """Wooldridge (Introductory Econometrics, Examples 15.5 and 15.7), Mroz data, working women:
    first-stage F of (fatheduc, motheduc) for educ = 55.40; control-function t on v2hat = 1.67."""
    from linearmodels.datasets import mroz

    d = mroz.load().dropna(subset=["lwage"]).rename(columns={"lwage": "y"})
    o = Oracle(d, ["exper", "expersq"], ["educ"], ["fatheduc", "motheduc"], (), vcov="iid", ssc="statsmodels")
    assert o.n == 428
    assert round(o.first_stage_wald(0) / 2, 2) == 55.40
    assert round(np.sqrt(o.dwh()[1]), 2) == 1.67


# ----------------------------------------------------------------------------------------------
# 1. fastpanel's IV diagnostics
# ----------------------------------------------------------------------------------------------


def fit_iv(df, k=1, L=3, vcov="iid", ssc="fixest", weights=None, exog=EXOG, fe=FE, time=None):
    kw = {} if time is None else {"time": time}
    return fastpanel.feols(iv_formula(exog, endog_names(k), instr_names(L), fe), df, vcov=vcov, ssc=ssc,
                           weights=weights, **kw)


def wald_stat(r):
    return r.stat


def _series(s, names):
    assert isinstance(s, pd.Series) and list(s.index) == list(names)
    return s.to_numpy(float)


FS_CASES = [(k, vc, w, ssc) for k in (1, 2) for vc in ("iid", "HC1", "CRV1-cl", "CRV1-entity", "CRV1-entity+cl")
            for w in (None, "w") for ssc in ("fixest", "statsmodels")
            if not (ssc == "statsmodels" and (w is None) != (k == 1))]


@pytest.mark.parametrize("k,vcov,weights,ssc", FS_CASES, ids=str)
def test_first_stage_equals_feols_and_oracle(k, vcov, weights, ssc):
    """res.first_stage[d] = fp.feols("d ~ exog + instruments | fe") on the IV sample, same
    vcov/ssc; first_stage_f = its F test of the instruments; both = the oracle."""
    L = 3
    df = make_panel(10 + k, k_endog=k, n_instr=L)
    res = fit_iv(df, k, L, VCOVS[vcov], ssc, weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=VCOVS[vcov], ssc=ssc)
    assert res.nobs == o.n
    assert set(res.first_stage) == set(endog_names(k))
    names = EXOG + instr_names(L)
    fs_f = _series(res.first_stage_f, endog_names(k))
    for j, d in enumerate(endog_names(k)):
        fs = res.first_stage[d]
        ols = fastpanel.feols(f"{d} ~ {' + '.join(names)} | {' + '.join(FE)}", o.data, vcov=VCOVS[vcov], ssc=ssc,
                              weights=weights)
        assert fs.nobs == ols.nobs == o.n
        assert list(fs.params.index) == list(ols.params.index)
        close(fs.params, ols.params)
        close(fs.bse, ols.bse)
        b, se = o.first_stage(j)
        close(fs.params[names], b)
        close(fs.bse[names], se)
        F_ols = wald_stat(ols.wald_test(", ".join(f"{z} = 0" for z in instr_names(L)), distribution="F"))
        close(fs_f[j], F_ols)
        close(fs_f[j], o.first_stage_wald(j) / L)


@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("vcov", ["iid", "HC1", "CRV1-cl", "CRV1-entity", "CRV1-region"])
def test_first_stage_matches_pyfixest(weights, vcov):
    df = make_panel(20)
    ins = instr_names(3)
    res = fit_iv(df, 1, 3, VCOVS[vcov], "fixest", weights)
    fit = pf_iv(df, EXOG, ["d1"], ins, FE, VCOVS[vcov], weights)
    m1 = fit._model_1st_stage
    fs = res.first_stage["d1"]
    names = EXOG + ins
    assert fs.nobs == m1._N
    close(fs.params[names], m1.coef()[names])
    close(fs.bse[names], m1.se()[names])
    close(res.first_stage_f["d1"], fit._f_stat_1st_stage)


def test_first_stage_two_way_cluster_vs_pyfixest():
    """Two-way clustering: fastpanel's first stage is clustered two-way (its F = the two-way
    oracle); pyfixest 0.60 clusters its first stage by the first variable only."""
    df = make_panel(21)
    ins = instr_names(3)
    res = fit_iv(df, 1, 3, {"CRV1": "entity+cl"})
    o2 = Oracle(df, EXOG, ["d1"], ins, FE, vcov={"CRV1": "entity+cl"})
    close(res.first_stage_f["d1"], o2.first_stage_wald(0) / 3)
    fit = pf_iv(df, EXOG, ["d1"], ins, FE, {"CRV1": "entity+cl"})
    o1 = Oracle(df, EXOG, ["d1"], ins, FE, vcov={"CRV1": "entity"})
    close(fit._f_stat_1st_stage, o1.first_stage_wald(0) / 3, 1e-10)
    assert abs(res.first_stage_f["d1"] / fit._f_stat_1st_stage - 1) > 0.01


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("case", list(LM_COV))
def test_first_stage_matches_linearmodels(k, weights, case):
    """ssc="statsmodels" vs linearmodels IV2SLS(debiased=True) on explicit dummies:
    f.stat = first_stage_f (unadjusted) or L * first_stage_f (robust/clustered, chi2 Wald);
    under iid first_stage_f = R2p/(1 - R2p) (n - K1)/L with linearmodels' partial R2."""
    L = 3
    df = make_panel(30 + k, k_endog=k, n_instr=L)
    res = fit_iv(df, k, L, FP_COV[case], "statsmodels", weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=FP_COV[case], ssc="statsmodels")
    ref = lm_iv(o, case, weights)
    diag = ref.first_stage.diagnostics
    names = EXOG + instr_names(L)
    for d in endog_names(k):
        ind = ref.first_stage.individual[d]
        close(res.first_stage[d].params[names], ind.params[names], 1e-8)
        close(res.first_stage[d].bse[names], ind.std_errors[names], 1e-8)
        F = res.first_stage_f[d]
        if case == "iid":
            close(F, diag.loc[d, "f.stat"], 1e-8)
            r2p = diag.loc[d, "partial.rsquared"]
            close(F, r2p / (1 - r2p) * (o.n - o.K(o.K1)) / L, 1e-8)
        else:
            close(L * F, diag.loc[d, "f.stat"], 1e-8)
    # the 2SLS itself agrees too (sanity: same sample and design)
    close(res.params[EXOG + endog_names(k)], ref.params[EXOG + endog_names(k)], 1e-8)


KP_CASES = [(k, vc, w, ssc) for k in (1, 2, 3)
            for vc in ("iid", "HC0", "HC1", "CRV1-cl", "CRV1-entity", "CRV1-entity+cl")
            for w in (None, "w") for ssc in ("fixest", "statsmodels")
            if (w is None) == (ssc == "fixest") or k == 2]


def _kL(k):
    return {1: 3, 2: 3, 3: 4}[k]


@pytest.mark.parametrize("k,vcov,weights,ssc", KP_CASES, ids=str)
def test_kp_rk_wald_matches_oracle(k, vcov, weights, ssc):
    L = _kL(k)
    df = make_panel(40 + k, k_endog=k, n_instr=L)
    vc = {"HC0": "HC0"}.get(vcov, VCOVS.get(vcov))
    res = fit_iv(df, k, L, vc, ssc, weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=vc, ssc=ssc)
    kp = o.kp()
    close(res.kp_rk_wald, kp)
    close(res.kp_rk_wald_f, kp / L)
    close(res.kp_rk_pvalue, stats.chi2.sf(kp, L - k + 1), 1e-8, 1e-300)
    if k == 1:  # one endogenous regressor: the rk Wald is the first-stage Wald
        close(res.kp_rk_wald_f, res.first_stage_f["d1"], 1e-10)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("ssc", ["fixest", "statsmodels"])
def test_kp_sw_driscoll_kraay(k, ssc):
    """DK (Bartlett over period sums of v_i kron z_i), a panel with 16 periods."""
    L = 3
    df = make_panel(50 + k, n_ent=50, n_per=16, k_endog=k, n_instr=L)
    res = fit_iv(df, k, L, {"DK": 2}, ssc, time="year")
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, vcov={"DK": 2}, ssc=ssc, time="year")
    close(res.kp_rk_wald, o.kp())
    close(_series(res.sw_f, endog_names(k)), [o.sw(j) for j in range(k)])
    close(_series(res.first_stage_f, endog_names(k)), [o.first_stage_wald(j) / L for j in range(k)])


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("ssc", ["fixest", "statsmodels"])
@pytest.mark.parametrize("weights", [None, "w"])
def test_kp_iid_equals_cragg_donald(k, ssc, weights):
    """Under iid the KP rk Wald is the Cragg-Donald minimum eigenvalue (factor 1; proof at
    test_oracle_kp_iid_equals_cragg_donald) and kp_rk_wald_f the Cragg-Donald Wald F (/ L)."""
    L = _kL(k)
    df = make_panel(60 + k, k_endog=k, n_instr=L)
    res = fit_iv(df, k, L, "iid", ssc, weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov="iid", ssc=ssc)
    cd = o.cragg_donald()
    close(res.kp_rk_wald, cd)
    close(res.kp_rk_wald_f, cd / L)


INVARIANCE_VCOVS = ["iid", "HC1", "CRV1-cl", "CRV1-entity+cl"]


def _transform(df, k, *, recombine_endog):
    d2 = df.copy()
    # instruments: rescale, recombine, add an exogenous regressor and fixed-effect terms
    d2["z1"] = 250.0 * d2.z1 - 2.0 * d2.x1 + 0.5 * d2.z2 + np.sin(d2.entity.to_numpy(float))
    d2["z2"] = d2.z2 / 40.0 + 0.3 * d2.x2
    # endogenous: rescale, add exog and FE terms (and, for KP only, another endogenous one)
    d2["d1"] = -0.3 * d2.d1 + 0.4 * d2.x2 + np.cos(d2.year.to_numpy(float))
    if recombine_endog and k > 1:
        d2["d1"] = d2.d1 + 0.7 * d2.d2
    if k > 1:
        d2["d2"] = 8.0 * d2.d2 - d2.x1
    d2["y"] = 5.0 * d2.y + d2.x1 ** 2  # y plays no part in the first-stage statistics
    return d2


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("vcov", INVARIANCE_VCOVS)
def test_diagnostics_invariances(k, vcov):
    """Derived in test_oracle_kp_invariances: the rk statistic is invariant to any nonsingular
    recombination of the instruments and of the endogenous variables, and to adding exog / FE
    terms to either (they vanish in Z~, Y~). first_stage_f and sw_f (Wald tests of Pi_j, Pi a)
    are invariant to instrument recombination and to rescaling an endogenous variable or adding
    exog / FE terms to it, but not to mixing endogenous variables (a different hypothesis)."""
    L = _kL(k)
    df = make_panel(70 + k, k_endog=k, n_instr=L)
    base = fit_iv(df, k, L, VCOVS[vcov], weights="w")
    names = endog_names(k)
    new = fit_iv(_transform(df, k, recombine_endog=False), k, L, VCOVS[vcov], weights="w")
    close(new.kp_rk_wald, base.kp_rk_wald)
    close(_series(new.first_stage_f, names), _series(base.first_stage_f, names))
    close(_series(new.sw_f, names), _series(base.sw_f, names))
    if k > 1:
        mixed = fit_iv(_transform(df, k, recombine_endog=True), k, L, VCOVS[vcov], weights="w")
        close(mixed.kp_rk_wald, base.kp_rk_wald)


SW_CASES = [(k, vc, w) for k in (1, 2, 3) for vc in ("iid", "HC1", "CRV1-cl", "CRV1-entity", "CRV1-entity+cl")
            for w in (None, "w")]


@pytest.mark.parametrize("k,vcov,weights", SW_CASES, ids=str)
def test_sw_f_matches_oracle(k, vcov, weights):
    L = _kL(k)
    df = make_panel(80 + k, k_endog=k, n_instr=L)
    res = fit_iv(df, k, L, VCOVS[vcov], "fixest", weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=VCOVS[vcov])
    sw = _series(res.sw_f, endog_names(k))
    close(sw, [o.sw(j) for j in range(k)])
    if k == 1:
        close(sw[0], res.first_stage_f["d1"], 1e-10)
    if vcov == "iid":  # (L - k + 1) SW_j >= Cragg-Donald = rk (see test_oracle_sw_two_routes)
        assert np.all(sw * (L - k + 1) >= res.kp_rk_wald * (1 - 1e-10))


def test_sw_f_statsmodels_preset():
    df = make_panel(85, k_endog=2, n_instr=3)
    for vc in ("iid", {"CRV1": "cl"}):
        res = fit_iv(df, 2, 3, vc, "statsmodels", "w")
        o = Oracle(df, EXOG, ["d1", "d2"], instr_names(3), FE, weights="w", vcov=vc, ssc="statsmodels")
        close(_series(res.sw_f, ["d1", "d2"]), [o.sw(0), o.sw(1)])


DWH_CASES = [(k, vc, w, ssc) for k in (1, 2) for vc in ("iid", "HC1", "CRV1-cl", "CRV1-entity", "CRV1-entity+cl")
             for w in (None, "w") for ssc in ("fixest", "statsmodels") if (w is None) == (ssc == "fixest") or k == 1]


@pytest.mark.parametrize("k,vcov,weights,ssc", DWH_CASES, ids=str)
def test_dwh_matches_control_function_oracle(k, vcov, weights, ssc):
    L = 3
    df = make_panel(90 + k, k_endog=k, n_instr=L, rho=0.2)
    res = fit_iv(df, k, L, VCOVS[vcov], ssc, weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=VCOVS[vcov], ssc=ssc)
    W, F = o.dwh()
    t_f = res.dwh(distribution="F")
    t_c = res.dwh(distribution="chi2")
    t_d = res.dwh()
    close(t_f.stat, F)
    close(t_c.stat, W)
    assert t_f.df_num == t_c.df_num == k
    assert t_f.distribution == "F" and t_c.distribution == "chi2"
    if vcov.startswith("CRV1"):
        clusters = VCOVS[vcov]["CRV1"].split("+")
        df_denom = min(o.data[c].nunique() for c in clusters) - 1
    else:
        df_denom = o.n - o.K(o.k_exog + 2 * k)
    assert t_f.df_denom == df_denom
    close(t_f.pvalue, stats.f.sf(F, k, df_denom), 1e-8, 1e-300)
    close(t_c.pvalue, stats.chi2.sf(W, k), 1e-8, 1e-300)
    # default distribution: the preset's (F under fixest and statsmodels)
    assert t_d.distribution == "F"
    close(t_d.stat, F)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("case", ["iid", "HC1", "CRV1-cl"])
def test_dwh_matches_linearmodels(k, weights, case):
    """iid + ssc="statsmodels": dwh() = linearmodels wu_hausman() (F, same df); any covariance:
    dwh("chi2") = linearmodels wooldridge_regression (chi2, the fit's covariance)."""
    L = 3
    df = make_panel(100 + k, k_endog=k, n_instr=L, rho=0.2)
    res = fit_iv(df, k, L, FP_COV[case], "statsmodels", weights)
    o = Oracle(df, EXOG, endog_names(k), instr_names(L), FE, weights=weights, vcov=FP_COV[case], ssc="statsmodels")
    ref = lm_iv(o, case, weights)
    if case == "iid":
        wh = ref.wu_hausman()
        t = res.dwh()
        close(t.stat, wh.stat, 1e-8)
        assert (t.df_num, t.df_denom) == (wh.df, wh.df_denom)
        close(t.pvalue, wh.pval, 1e-7, 1e-300)
    wr = ref.wooldridge_regression
    t = res.dwh(distribution="chi2")
    close(t.stat, wr.stat, 1e-8)
    close(t.pvalue, wr.pval, 1e-7, 1e-300)


def test_dwh_size_when_exogenous():
    """rho = 0 (the regressor is exogenous), iid errors: the p-values of 30 independent panels
    are uniform; with these fixed seeds at most 5 of 30 fall below 0.05 (P = 0.997 for a
    uniform sample) and a KS test does not reject uniformity at 0.1%."""
    p = []
    for seed in range(30):
        df = make_panel(1000 + seed, n_ent=60, n_per=6, rho=0.0, hetero=False, nan_frac=0.0)
        p.append(fit_iv(df, 1, 3, "iid").dwh().pvalue)
    p = np.array(p)
    assert (p < 0.05).sum() <= 5
    assert stats.kstest(p, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("vcov", ["iid", "HC1", "CRV1-entity"])
def test_dwh_rejects_when_strongly_endogenous(seed, vcov):
    """rho = 1.5: the first-stage error carries 1.5 u, so the coefficient of vhat in the control
    function is about 1.5 var(u) / (var(v) + 2.25 var(u)) ~ 0.4 with a standard error of order
    1/sqrt(n) ~ 0.04: t ~ 10, p ~ 1e-20. p < 1e-6 holds with a very wide margin."""
    df = make_panel(2000 + seed, rho=1.5)
    res = fit_iv(df, 1, 3, VCOVS[vcov])
    assert res.dwh().pvalue < 1e-6
    # and under the null the same design does not reject
    df0 = make_panel(2000 + seed, rho=0.0)
    assert fit_iv(df0, 1, 3, VCOVS[vcov]).dwh().pvalue > 1e-3


# ----------------------------------------------------------------------------------------------
# 2. weak-instrument warning
# ----------------------------------------------------------------------------------------------


def _weak_cls():
    return fastpanel.ols.WeakInstrumentWarning


def _numbers(text):
    import re

    return [float(m) for m in re.findall(r"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?", text)]


@pytest.mark.parametrize("vcov", ["iid", "HC1"])
def test_weak_instrument_warning_one_endog(vcov):
    df = make_panel(7, pi_scale=0.25)
    with pytest.warns(_weak_cls()) as rec:
        res = fit_iv(df, 1, 3, vcov)
    F = res.first_stage_f["d1"]
    assert F < 10
    msgs = [str(w.message) for w in rec if issubclass(w.category, _weak_cls())]
    assert len(msgs) >= 1
    assert any("d1" in m for m in msgs)
    # the message gives the F (to at least 3 significant digits)
    assert any(np.isclose(x, F, rtol=5e-3) for m in msgs for x in _numbers(m))


def test_weak_instrument_warning_several_endog():
    """Several endogenous regressors: the criterion is kp_rk_wald_f < 10, naming them."""
    df = make_panel(8, k_endog=2, n_instr=3, pi_scale=0.25)
    with pytest.warns(_weak_cls()) as rec:
        res = fit_iv(df, 2, 3, "HC1")
    assert res.kp_rk_wald_f < 10
    msgs = [str(w.message) for w in rec if issubclass(w.category, _weak_cls())]
    assert any("d1" in m and "d2" in m for m in msgs)
    assert any(np.isclose(x, res.kp_rk_wald_f, rtol=5e-3) for m in msgs for x in _numbers(m))


def test_no_weak_instrument_warning_when_strong():
    df = make_panel(9, k_endog=2, n_instr=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit_iv(df, 2, 3, "HC1")
    assert res.kp_rk_wald_f > 10 and (res.first_stage_f > 10).all()


def test_weak_warning_class_is_exported():
    assert issubclass(_weak_cls(), Warning)


# ----------------------------------------------------------------------------------------------
# 3. real data (linearmodels.datasets) and the array API
# ----------------------------------------------------------------------------------------------


def test_real_data_mroz_pooled():
    """Mroz (1987), Wooldridge Examples 15.5 / 15.7: no fixed effects (intercept added);
    first-stage F 55.40, Wu-Hausman F 2.79 (t 1.67); equal to linearmodels exactly."""
    from linearmodels.datasets import mroz

    d = mroz.load().dropna(subset=["lwage"]).rename(columns={"lwage": "y"})
    for case in ("iid", "HC1"):
        res = fastpanel.feols("y ~ exper + expersq | educ ~ fatheduc + motheduc", d, vcov=FP_COV[case], ssc="statsmodels")
        ref = lm.IV2SLS.from_formula("y ~ 1 + exper + expersq + [educ ~ fatheduc + motheduc]", d).fit(
            cov_type=LM_COV[case][0], debiased=True)
        o = Oracle(d, ["exper", "expersq"], ["educ"], ["fatheduc", "motheduc"], (), vcov=FP_COV[case], ssc="statsmodels")
        F = res.first_stage_f["educ"]
        fstat = ref.first_stage.diagnostics.loc["educ", "f.stat"]
        close(F * (1 if case == "iid" else 2), fstat, 1e-8)
        close(res.kp_rk_wald, o.kp())
        close(res.sw_f["educ"], F)
        close(res.dwh(distribution="chi2").stat, ref.wooldridge_regression.stat, 1e-8)
        if case == "iid":
            assert round(F, 2) == 55.40
            close(res.dwh().stat, ref.wu_hausman().stat, 1e-8)
            assert round(res.dwh().stat, 2) == 2.79


def test_real_data_card_region_effects():
    """Card (1995) data, Wooldridge Example 15.4 with the 1966 region dummies absorbed as a fixed
    effect: first-stage coefficient of nearc4 .320 (se .088, iid); HC1 F and DWH vs linearmodels."""
    from linearmodels.datasets import card

    d = card.load()
    d["region66"] = np.argmax(d[[f"reg66{i}" for i in range(1, 10)]].to_numpy(), axis=1)
    d = d.rename(columns={"lwage": "y"})
    ex = ["exper", "expersq", "black", "smsa", "south", "smsa66"]
    fml = f"y ~ {' + '.join(ex)} | region66 | educ ~ nearc4"
    iid = fastpanel.feols(fml, d, vcov="iid", ssc="statsmodels")
    assert round(iid.first_stage["educ"].params["nearc4"], 3) == 0.320
    assert round(iid.first_stage["educ"].bse["nearc4"], 3) == 0.088
    for case in ("iid", "HC1"):
        res = fastpanel.feols(fml, d, vcov=FP_COV[case], ssc="statsmodels")
        o = Oracle(d, ex, ["educ"], ["nearc4"], ["region66"], vcov=FP_COV[case], ssc="statsmodels")
        ref = lm_iv(o, case)
        close(res.first_stage_f["educ"], ref.first_stage.diagnostics.loc["educ", "f.stat"], 1e-8)
        close(res.kp_rk_wald, o.kp())
        close(res.dwh(distribution="chi2").stat, ref.wooldridge_regression.stat, 1e-8)


def test_array_api_same_diagnostics():
    """fp.PanelIV (arrays) gives the formula's diagnostics."""
    k, L = 2, 3
    df = make_panel(110, k_endog=k, n_instr=L)
    res = fit_iv(df, k, L, {"CRV1": "entity"}, weights="w")
    mod = fastpanel.PanelIV(df.y, df[EXOG], df[endog_names(k)], df[instr_names(L)], df.entity, df.year,
                            entity_effects=True, time_effects=True, weights=df.w)
    arr = mod.fit(vcov={"CRV1": "entity"})
    close(arr.kp_rk_wald, res.kp_rk_wald, 1e-10)
    close(_series(arr.sw_f, endog_names(k)), _series(res.sw_f, endog_names(k)), 1e-10)
    close(_series(arr.first_stage_f, endog_names(k)), _series(res.first_stage_f, endog_names(k)), 1e-10)
    close(arr.dwh().stat, res.dwh().stat, 1e-10)
