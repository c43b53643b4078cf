"""Wild cluster bootstrap tests of linear restrictions on fixed-effects OLS slopes.

Algorithm (Roodman, MacKinnon, Nielsen and Webb 2019, "Fast and wild"; MacKinnon, Nielsen and
Webb 2023 for the jackknife variants). Notation after the within transformation and the
``sqrt(w)`` weighting (``fastpanel.ols.covariance``): ``X`` (n x k) regressors, ``A = X'X``,
restriction ``R b = r`` (q rows), bootstrap clusters ``g = 1..G`` with weights ``v_g``, error
clusters ``h`` (one variable, or every intersection term of Cameron-Gelbach-Miller multiway
clustering with its sign).

The bootstrap DGP is ``y* = X b0 + D a0 + u0 * v_g(i)`` and each draw re-estimates the model
with its fixed effects (the "refit" bootstrap, as with the effects as dummy columns):

* ``b0``: the restricted estimate ``b_r = b - A^-1 R'(R A^-1 R')^-1 (R b - r)`` (WCR,
  ``impose_null=True``) or ``b`` (WCU); ``u0`` the matching residuals (DGP "1"), or the
  jackknife residuals ``y_g - X_g b0_(g)`` with ``b0_(g)`` the (restricted) estimate without
  cluster g (DGP "3").
* ``b*_b - b0 = A^-1 sum_g v_g S_g`` with ``S_g = X_g' u0_g``: the numerator is ``N v_b`` with
  ``N = R A^-1 S'`` (q x G).
* Bootstrap score sums of error cluster h: ``s*_h = sum_g (P_hg - H_h A^-1 S_g) v_g`` with
  ``H_h = X_h'X_h`` and ``P_hg = X_h' [M_D (u0 * 1_g)]_h``; when every fixed effect is nested in
  the bootstrap clusters ``M_D`` leaves ``u0 * 1_g`` alone and ``P_hg`` is the score sum of the
  cell (h, g). So ``R A^-1 s*_h = K_h v_b`` and the CRV1 variance of draw b is
  ``sum_h c_h (K_h v_b)(K_h v_b)'`` with the fit's small-sample factor ``c_h``.
* Variance "3" (CRV3): ``R (b*_(g) - b*) = K_g v`` with
  ``K_g = R (A - H_g)^-1 (S' - S_g e_g') - R A^-1 S'``, scaled by the preset's CRV3 factor.

After one pass over the data (cell sums of ``X'u0`` and ``X'X``) every draw costs O(G H q): the
batched kernels (``fastpanel.kernels.wildboot_*``) generate the keyed weights and return the
statistics. The t (Wald) statistic of the data uses the same variance formula with the
unrestricted residuals, so it equals ``results.tvalues`` when the fit's vcov is the same CRV1.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fastpanel.factor import Factor, factorize
from fastpanel.ols import covariance as cov

__all__ = ["WildBootResult", "wildboottest", "BOOTSTRAP_TYPES", "WEIGHTS", "PVAL_TYPES"]

BOOTSTRAP_TYPES = ("11", "13", "31", "33")
WEIGHTS = ("rademacher", "mammen", "webb", "norm")
PVAL_TYPES = ("two-tailed", "equal-tailed", ">", "<")
_TEST_ID = 0x57424F4F54  # "WBOOT": the linear bootstrap's stream of the keyed generator
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MAX_P_COLUMNS = 1 << 24  # n * chunk entries per within transform of the non-nested path


@dataclass
class WildBootResult:
    """Result of :func:`wildboottest`.

    Attributes
    ----------
    param : str
        The tested coefficient, or the restrictions written out.
    statistic : float
        t statistic (one restriction) or F = Wald / q (several) of the data.
    pvalue : float
        Bootstrap p-value.
    B : int
        Draws used (``2^G`` under full enumeration).
    conf_int : tuple of float or None
        Confidence interval by test inversion (``conf_int=True``, one restriction).
    """

    param: str
    statistic: float
    pvalue: float
    B: int
    bootstrap_type: str
    impose_null: bool
    weights: str
    full_enumeration: bool
    pval_type: str
    cluster: tuple[str, ...]
    bootstrap_cluster: str
    n_clusters: dict[str, int]
    n_boot_clusters: int
    ssc: str
    backend: str
    seed: int | None
    R: np.ndarray
    r: np.ndarray
    stat_type: str = "t"
    conf_int: tuple[float, float] | None = None
    alpha: float = 0.05
    n_ties: int = 0
    n_undefined: int = 0
    draws: np.ndarray | None = field(default=None, repr=False)
    boot_labels: np.ndarray | None = field(default=None, repr=False)
    _ent: np.ndarray | None = field(default=None, repr=False)
    _kind: int = 0

    def weights_matrix(self, start: int = 0, count: int | None = None) -> np.ndarray:
        """Weights of draws ``start .. start + count - 1`` (default: all): a (count, G) array whose
        column g belongs to bootstrap cluster ``boot_labels[g]`` (for checks against other software)."""
        from fastpanel.kernels.wildboot_reference import draw_weights

        count = self.B - start if count is None else count
        return draw_weights(self._ent, self._kind, start, count)

    @property
    def wald(self) -> float:
        """The Wald statistic of the data: ``t^2`` for one restriction, ``q F`` for several."""
        return float(self.statistic ** 2 if self.stat_type == "t" else self.statistic * self.R.shape[0])

    def to_series(self) -> pd.Series:
        """pyfixest-style one-row summary (``param``, ``t value``, ``Pr(>|t|)``, ...)."""
        out = {
            "param": self.param,
            "t value" if self.stat_type == "t" else "F value": self.statistic,
            "Pr(>|t|)" if self.stat_type == "t" else "Pr(>F)": self.pvalue,
            "bootstrap_type": self.bootstrap_type,
            "inference": f"CRV({'+'.join(self.cluster)})",
            "impose_null": self.impose_null,
            "B": self.B,
        }
        if self.conf_int is not None:
            out[f"[{self.alpha / 2:g}"] = self.conf_int[0]
            out[f"{1 - self.alpha / 2:g}]"] = self.conf_int[1]
        return pd.Series(out)

    def __str__(self) -> str:
        kind = ("WCR" if self.impose_null else "WCU") + self.bootstrap_type
        lines = [
            f"Wild cluster bootstrap ({kind}, {self.weights} weights, "
            f"{'full enumeration of ' if self.full_enumeration else ''}{self.B:,} draws)",
            f"  H0: {self.param}",
            f"  {self.stat_type} = {self.statistic:.6g}, bootstrap p = {self.pvalue:.6g} ({self.pval_type})",
            f"  error clusters: {' + '.join(f'{c} ({self.n_clusters[c]})' for c in self.cluster)}; "
            f"bootstrap clusters: {self.bootstrap_cluster} ({self.n_boot_clusters})",
        ]
        if self.conf_int is not None:
            lines.append(f"  {100 * (1 - self.alpha):g}% CI by test inversion: "
                         f"[{self.conf_int[0]:.6g}, {self.conf_int[1]:.6g}]")
        if self.n_undefined:
            lines.append(f"  {self.n_undefined} draws with a non-positive bootstrap variance were left out")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<WildBootResult {self.param}: {self.stat_type}={self.statistic:.4g}, p={self.pvalue:.4g}, B={self.B}>"


# -- input checks -----------------------------------------------------------------------------

def _restriction(names: list[str], param: Any, R: Any, r: Any) -> tuple[np.ndarray, np.ndarray, str]:
    k = len(names)
    if param is not None and R is not None:
        raise ValueError("pass either param= (one coefficient) or R= (a restriction matrix), not both")
    if param is None and R is None:
        raise ValueError(f"name the coefficient to test, e.g. param={names[0]!r}, or pass R= and r=")
    if param is not None:
        if not isinstance(param, str):
            raise TypeError(f"param must be a coefficient name (str), got {type(param).__name__}")
        if param not in names:
            import difflib

            close = difflib.get_close_matches(param, names, n=3)
            raise ValueError(f"param={param!r} is not a coefficient of the fit ({', '.join(names)})"
                             + (f"; did you mean {close[0]!r}?" if close else ""))
        Rm = np.zeros((1, k))
        Rm[0, names.index(param)] = 1.0
        rv = np.zeros(1) if r is None else np.atleast_1d(np.asarray(r, dtype=np.float64))
        if rv.shape != (1,):
            raise ValueError(f"r must be one number for param={param!r}, got shape {rv.shape}")
        return Rm, rv, f"{param} = {rv[0]:g}"
    if isinstance(R, str):
        try:
            from fastpanel.ols.wald import parse_restrictions
        except ImportError as exc:  # pragma: no cover - wald is part of the package
            raise ValueError("restrictions given as text need fastpanel.ols.wald") from exc
        Rm, rv = parse_restrictions(R, names)
        if r is not None:
            raise ValueError("r= is given by the text of R; do not pass it as well")
        return Rm, rv, R
    Rm = np.atleast_2d(np.asarray(R, dtype=np.float64))
    if Rm.ndim != 2 or Rm.shape[1] != k:
        raise ValueError(f"R must have shape (q, {k}) (one column per coefficient: {', '.join(names)}), "
                         f"got {np.shape(R)}")
    q = Rm.shape[0]
    rv = np.zeros(q) if r is None else np.atleast_1d(np.asarray(r, dtype=np.float64))
    if rv.shape != (q,):
        raise ValueError(f"r must have {q} entries (one per row of R), got shape {rv.shape}")
    if not (np.isfinite(Rm).all() and np.isfinite(rv).all()):
        raise ValueError("R and r must be finite")
    if np.linalg.matrix_rank(Rm) < q:
        raise ValueError(f"the {q} rows of R are linearly dependent; drop the redundant restrictions")
    text = ", ".join(
        " + ".join(f"{c:g}*{n}" for c, n in zip(row, names) if c != 0) + f" = {rv[i]:g}"
        for i, row in enumerate(Rm))
    return Rm, rv, text


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}: choose one of {', '.join(repr(c) for c in choices)}")
    return value


def _named_factors(results: Any, s: Any = None) -> dict[str, Factor]:
    s = results._state if s is None else s
    out = {name: f for name, f in zip(s.fe_names, s.fe_factors)}
    for key, f in s.extra.items():
        if key.startswith("__cluster__"):
            out[key[len("__cluster__"):]] = f
    return out


def _clusters(results: Any, cluster: Any, state: Any = None) -> list[tuple[str, Factor]]:
    named = _named_factors(results, state)
    if cluster is None:
        spec = results.vcov_spec
        if spec.kind not in ("CRV1", "CRV3", "CR2") or not spec.clusters:
            raise ValueError(
                f"the fit's vcov is {spec.label!r}, not clustered: pass cluster='g' (a fixed effect or a cluster "
                "variable of the fit) or refit with vcov={'CRV1': 'g'}")
        names = [str(c) for c in spec.clusters]
    else:
        names = [p.strip() for p in cluster.split("+")] if isinstance(cluster, str) else list(cluster)
    if not names:
        raise ValueError("cluster names no variable")
    out = []
    for c in names:
        if not isinstance(c, str) or c not in named:
            raise ValueError(
                f"cluster={c!r} is not known to this fit: name one of {sorted(named)} (fixed effects and the fit's "
                "cluster variables), or refit with vcov={'CRV1': '<column>'} to bring the column in")
        f = named[c]
        if f.n_levels < 2:
            raise ValueError(f"cluster variable {c!r} has a single cluster in the sample; the wild cluster "
                             "bootstrap needs at least two clusters")
        out.append((c, f))
    if len({c for c, _ in out}) != len(out):
        raise ValueError(f"cluster={cluster!r} names a variable twice")
    return out


def _intersect(codes: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, int, np.ndarray]:
    """Dense codes of the intersection of several groupings, with one row index per level."""
    combined = np.zeros(codes[0].shape[0], dtype=np.int64)
    for c, g in zip(codes, sizes):
        combined = combined * np.int64(g) + c
    uniq, first, inv = np.unique(combined, return_index=True, return_inverse=True)
    return inv.astype(np.int64).ravel(), int(uniq.shape[0]), first


def _label_keys(f: Factor) -> np.ndarray:
    from fastpanel.panel_threshold.bootstrap import entity_keys

    return entity_keys(np.asarray(f.levels))


def _combine_keys(parts: list[np.ndarray]) -> np.ndarray:
    from fastpanel.kernels.wildboot_reference import mix64

    key = parts[0]
    with np.errstate(over="ignore"):
        for p in parts[1:]:
            key = mix64(key * _GOLDEN ^ mix64(p + _GOLDEN))
    return key


@dataclass
class _PseudoState:
    """A fit on Dask seen through the pseudo-rows of its (entity, period) cells
    (:mod:`fastpanel.distributed.wildboot`): every sum the bootstrap forms is the same."""

    X: np.ndarray
    y: np.ndarray
    sw: np.ndarray
    params: np.ndarray
    bread: np.ndarray
    nobs: int
    names: list[str]
    fe_names: list[str]
    fe_factors: list[Factor]
    fe_df_exact: int
    fe_df_fixest: int
    extra: dict[str, Factor]
    backend: str = "cpp"
    weights: None = None

    @property
    def k(self) -> int:
        return len(self.names)

    def resid(self) -> np.ndarray:
        return self.y - self.X @ self.params


def _pseudo_state(state: Any) -> _PseudoState:
    cells = state.wild_cells()
    rows = cells["rows"]
    k = rows.shape[1] - 2
    ent = factorize(cells["entity"], cells["entity_name"])
    factors, names = [ent], [cells["entity_name"]]
    if cells["period_name"] is not None:
        factors.append(factorize(np.asarray(cells["periods"])[cells["period"]], cells["period_name"]))
        names.append(cells["period_name"])
    return _PseudoState(X=np.ascontiguousarray(rows[:, :k]), y=rows[:, k].copy(), sw=rows[:, k + 1].copy(),
                        params=state.params, bread=state.bread, nobs=state.nobs, names=list(state.names),
                        fe_names=names, fe_factors=factors, fe_df_exact=state.fe_df_exact,
                        fe_df_fixest=state.fe_df_fixest, extra={})


# -- the one pass over the data ------------------------------------------------------------

@dataclass
class _Design:
    X: np.ndarray
    y: np.ndarray
    Ainv: np.ndarray
    A: np.ndarray
    bhat: np.ndarray
    boot_codes: np.ndarray
    G: int
    terms: list[tuple[np.ndarray, int, float]]  # (codes, n_groups, signed scale)
    nested: bool
    factors: list[Factor]
    weights: np.ndarray | None
    backend: str
    sw: np.ndarray | None = None  # root weights (signed for pseudo-rows); None: unweighted rows
    _grams: dict = field(default_factory=dict, repr=False)

    def gram(self, codes: np.ndarray, n: int) -> np.ndarray:
        """Per-group ``X_h'X_h`` (n, k, k), computed once per grouping: it does not depend on the
        null, so the test inversion's many nulls reuse it."""
        key = (id(codes), n)
        if key not in self._grams:
            self._grams[key] = _gram_by_group(self.X, codes, n)
        return self._grams[key]

    def cells(self, codes: np.ndarray, n: int) -> tuple[np.ndarray, int, np.ndarray]:
        """The (error cluster, bootstrap cluster) cells of a grouping (see :func:`_intersect`), once."""
        key = ("cells", id(codes), n)
        if key not in self._grams:
            self._grams[key] = _intersect([codes, self.boot_codes], [n, self.G])
        return self._grams[key]


def _gram_by_group(X: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """(n, k, k) per-group X_h'X_h."""
    k = X.shape[1]
    out = np.empty((n, k, k))
    for a in range(k):
        for b in range(a + 1):
            s = np.bincount(codes, weights=X[:, a] * X[:, b], minlength=n)
            out[:, a, b] = s
            out[:, b, a] = s
    return out


def _restricted(d: _Design, R: np.ndarray, r: np.ndarray, Ainv: np.ndarray, b: np.ndarray) -> np.ndarray:
    M = R @ Ainv @ R.T
    return b - Ainv @ R.T @ np.linalg.solve(M, R @ b - r)


def _jackknife_betas(d: _Design, R: np.ndarray | None, r: np.ndarray | None) -> np.ndarray:
    """Leave-one-bootstrap-cluster-out estimates (G x k), restricted when R is given."""
    Hg = d.gram(d.boot_codes, d.G)
    xy = cov.group_sums(d.X * d.y[:, None], d.boot_codes, d.G)
    Xy = d.X.T @ d.y
    out = np.empty((d.G, d.X.shape[1]))
    for g in range(d.G):
        Ag = d.A - Hg[g]
        try:
            Aginv = np.linalg.inv(Ag)
            ok = np.linalg.cond(Ag) < 1e12
        except np.linalg.LinAlgError:
            ok = False
        if not ok:
            raise ValueError(
                f"the regressors are collinear once bootstrap cluster {g} is left out, so the jackknife of "
                "bootstrap_type '31'/'13'/'33' is undefined; use bootstrap_type='11'")
        bg = Aginv @ (Xy - xy[g])
        out[g] = bg if R is None else _restricted(d, R, r, Aginv, bg)
    return out


def _m_d(d: _Design, Z: np.ndarray) -> np.ndarray:
    """M_D applied to the sqrt(w)-scaled columns of Z (the fit's own fixed effects)."""
    from fastpanel.fixed_effects import FixedEffects
    from fastpanel.within import within

    if d.weights is None:
        return within(np.asfortranarray(Z), FixedEffects(d.factors), backend=d.backend)
    sw = np.sqrt(d.weights)
    return within(np.asfortranarray(Z / sw[:, None]), FixedEffects(d.factors), weights=d.weights,
                  backend=d.backend) * sw[:, None]


@dataclass
class _KMat:
    """``K = P + U V'``: P sparse (COO: ``rows``, ``cols``, ``vals``; duplicates add), U (m, r), V (G, r)."""

    m: int
    G: int
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    U: np.ndarray
    V: np.ndarray

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from scipy import sparse

        P = sparse.csr_matrix((self.vals, (self.rows, self.cols)), shape=(self.m, self.G))
        P.sum_duplicates()
        return P.indptr.astype(np.int64), P.indices.astype(np.int64), P.data

    def dense(self) -> np.ndarray:
        K = self.U @ self.V.T if self.U.shape[1] else np.zeros((self.m, self.G))
        np.add.at(K, (self.rows, self.cols), self.vals)
        return K

    @property
    def low_rank_pays(self) -> bool:
        # per-draw work of the two kernels: nnz + (m + G) r against m G
        return self.vals.size + (self.m + self.G) * self.U.shape[1] < 0.5 * self.m * self.G

    @staticmethod
    def stack(parts: list["_KMat"]) -> "_KMat":
        r = max(p.U.shape[1] for p in parts)
        if any(p.U.shape[1] != r or not np.array_equal(p.V, parts[0].V) for p in parts):
            # different low-rank factors: concatenate them (rows of other terms get zeros)
            V = np.hstack([p.V for p in parts])
            U = np.zeros((sum(p.m for p in parts), V.shape[1]))
            i = j = 0
            for p in parts:
                U[i:i + p.m, j:j + p.U.shape[1]] = p.U
                i, j = i + p.m, j + p.U.shape[1]
        else:
            V, U = parts[0].V, np.vstack([p.U for p in parts])
        offs = np.cumsum([0] + [p.m for p in parts])
        return _KMat(int(offs[-1]), parts[0].G, np.concatenate([p.rows + o for p, o in zip(parts, offs)]),
                     np.concatenate([p.cols for p in parts]), np.concatenate([p.vals for p in parts]), U, V)


def _matrices(d: _Design, R: np.ndarray, r: np.ndarray, impose_null: bool, btype: str
              ) -> tuple[np.ndarray, _KMat, np.ndarray]:
    """(N, K, scale) of the bootstrap DGP for the null R b = r."""
    X, G, codes = d.X, d.G, d.boot_codes
    q = R.shape[0]
    b0 = _restricted(d, R, r, d.Ainv, d.bhat) if impose_null else d.bhat
    if btype[0] == "1":
        u0 = d.y - X @ b0
    else:
        bj = _jackknife_betas(d, R if impose_null else None, r if impose_null else None)
        u0 = d.y - np.einsum("ij,ij->i", X, bj[codes])
    S = cov.group_sums(X * u0[:, None], codes, G)  # (G, k)
    RA = R @ d.Ainv  # (q, k)
    N = RA @ S.T  # (q, G)
    k = X.shape[1]
    if btype[1] == "3":
        # K_g = (M_g - R A^-1) S' - M_g S_g e_g', M_g = R (A - H_g)^-1: rank k plus a diagonal
        Hg = d.gram(codes, G)
        U = np.empty((G, q, k))
        diag = np.empty((G, q))
        for g in range(G):
            Mg = R @ np.linalg.inv(d.A - Hg[g])
            U[g] = Mg - RA
            diag[g] = -(Mg @ S[g])
        rows = np.arange(G * q)
        K = _KMat(G * q, G, rows, np.repeat(np.arange(G), q), diag.ravel(), U.reshape(G * q, k), S)
        return N, K, np.full(G, d.terms[0][2])
    parts, scales = [], []
    for h_codes, n_h, c in d.terms:
        Hh = d.gram(h_codes, n_h)
        L = np.einsum("ak,hkl,lm->ham", RA, Hh, d.Ainv)  # R A^-1 H_h A^-1: (n_h, q, k)
        U = -L.reshape(n_h * q, k)  # the rank-k term -R A^-1 H_h A^-1 S'
        if d.nested:
            cell, n_cell, first = d.cells(h_codes, n_h)
            Sc = cov.group_sums(X * u0[:, None], cell, n_cell) @ RA.T  # (cells, q)
            rows = (h_codes[first][:, None] * q + np.arange(q)[None, :]).ravel()
            cols = np.repeat(codes[first], q)
            parts.append(_KMat(n_h * q, G, rows, cols, Sc.ravel(), U, S))
        else:
            P = _cross_scores(d, u0, h_codes, n_h, RA).reshape(n_h * q, G)
            rr, cc = np.nonzero(P)
            parts.append(_KMat(n_h * q, G, rr, cc, P[rr, cc], U, S))
        scales.append(np.full(n_h, c))
    return N, _KMat.stack(parts), np.concatenate(scales)


def _cross_scores(d: _Design, u0: np.ndarray, h_codes: np.ndarray, n_h: int, RA: np.ndarray) -> np.ndarray:
    """``R A^-1 P_hg`` (n_h, q, G) with ``P_hg = X_h' [M_D (u0 * 1_g)]_h`` (effects not nested)."""
    f = sorted(d.factors, key=lambda fa: -fa.n_levels)
    if _USE_LEVELS and (len(f) == 1 or (len(f) == 2 and f[1].n_levels <= _LEVEL_PATH_MAX)):
        return _cross_scores_levels(d, u0, h_codes, n_h, RA, f[0], f[1] if len(f) == 2 else None)
    return _cross_scores_within(d, u0, h_codes, n_h, RA)


_USE_LEVELS = True  # tests switch it off to check the level-space path against the within path
_LEVEL_PATH_MAX = 2000  # levels of the smaller effect for the dense Schur solve (as within.DIRECT_MAX_LEVELS)


def _cross_scores_levels(d: _Design, u0: np.ndarray, h_codes: np.ndarray, n_h: int, RA: np.ndarray,
                         a: Factor, b: Factor | None) -> np.ndarray:
    """The same as :func:`_cross_scores_within` in the space of the effects' levels, O(n q + G L_b^2).

    In the ``sqrt(w)``-scaled model ``M_D z = z - W^1/2 D alpha(z)`` with ``(D'WD) alpha = D'W^1/2 z``.
    For ``z = u0 * 1_g`` the right-hand side is the level sums ``r^g`` of ``sqrt(w) u0`` over
    cluster g's rows (zero for a level inside g: u0 is orthogonal to the effects). One way:
    ``alpha_a = r_a / n_a``. Two ways (a eliminated, b through its Schur complement
    ``S = diag(n_b) - N' diag(1/n_a) N``, ``N`` the weighted a x b cell counts):
    ``gamma = S^+ (r_b - N' r_a / n_a)``, ``alpha_a = (r_a - N gamma) / n_a``. Then
    ``X_h' [W^1/2 D alpha]_h = C_ha alpha_a + C_hb gamma`` with ``C`` the level sums of
    ``sqrt(w) R A^-1 x`` within cluster h (zero for a level inside h), formed without the
    L_a x G matrix alpha_a.
    """
    from scipy import sparse

    from fastpanel.within import _solve_psd

    n, G = d.X.shape[0], d.G
    q = RA.shape[0]
    sw = np.ones(n) if d.sw is None else d.sw
    w = sw * sw
    XR = d.X @ RA.T  # (n, q)
    g = d.boot_codes
    su = sw * u0
    # score sums of the cells (h, g): the part M_D leaves
    cell = np.empty((n_h, q, G))
    flat = h_codes * np.int64(G) + g
    for c in range(q):
        cell[:, c, :] = np.bincount(flat, weights=XR[:, c] * u0, minlength=n_h * G).reshape(n_h, G)
    na = np.bincount(a.codes, weights=w, minlength=a.n_levels)
    Ra_n = sparse.csr_matrix((su / na[a.codes], (a.codes, g)), shape=(a.n_levels, G))
    gamma = None
    if b is not None:
        N = sparse.csr_matrix((w, (a.codes, b.codes)), shape=(a.n_levels, b.n_levels))
        nb = np.bincount(b.codes, weights=w, minlength=b.n_levels)
        Rb = np.bincount(b.codes * np.int64(G) + g, weights=su, minlength=b.n_levels * G).reshape(b.n_levels, G)
        Nd = sparse.diags(1.0 / na) @ N  # diag(1/n_a) N
        schur = np.diag(nb) - (N.T @ Nd).toarray()
        gamma = _solve_psd(schur, Rb - np.asarray((N.T @ Ra_n).todense()))
    out = np.empty((n_h, q, G))
    for c in range(q):
        vals = sw * XR[:, c]
        Ca = sparse.csr_matrix((vals, (h_codes, a.codes)), shape=(n_h, a.n_levels))
        T = np.asarray((Ca @ Ra_n).todense())
        if b is not None:
            Cb = sparse.csr_matrix((vals, (h_codes, b.codes)), shape=(n_h, b.n_levels)).toarray()
            T += (Cb - (Ca @ Nd).toarray()) @ gamma
        out[:, c, :] = cell[:, c, :] - T
    return out


def _cross_scores_within(d: _Design, u0: np.ndarray, h_codes: np.ndarray, n_h: int, RA: np.ndarray) -> np.ndarray:
    """``R A^-1 P_hg`` by the within transform of the G columns ``u0 * 1_g`` (any effects)."""
    from scipy import sparse

    n, G = d.X.shape[0], d.G
    q = RA.shape[0]
    XR = d.X @ RA.T  # (n, q): R A^-1 x_i
    ind = sparse.csr_matrix((np.ones(n), (h_codes, np.arange(n))), shape=(n_h, n))
    out = np.empty((n_h, q, G))
    chunk = max(1, min(G, _MAX_P_COLUMNS // max(n, 1)))
    for g0 in range(0, G, chunk):
        g1 = min(G, g0 + chunk)
        E = np.zeros((n, g1 - g0), order="F")
        sel = (d.boot_codes >= g0) & (d.boot_codes < g1)
        rows = np.flatnonzero(sel)
        E[rows, d.boot_codes[rows] - g0] = u0[rows]
        Z = _m_d(d, E)
        for a in range(q):
            out[:, a, g0:g1] = ind @ (Z * XR[:, a:a + 1])
    return out


# -- the public function ------------------------------------------------------------------

def wildboottest(
    results: Any,
    param: str | None = None,
    *,
    R: Any = None,
    r: Any = None,
    B: int = 9999,
    weights: str = "rademacher",
    impose_null: bool = True,
    bootstrap_type: str = "11",
    cluster: str | Sequence[str] | None = None,
    bootstrap_cluster: str | None = None,
    seed: int | np.random.SeedSequence | None = None,
    pval_type: str = "two-tailed",
    conf_int: bool = False,
    alpha: float = 0.05,
    full_enumeration: bool | None = None,
    backend: str | None = None,
    return_draws: bool = False,
) -> WildBootResult:
    """Wild cluster bootstrap test of ``param = r`` or of ``R b = r`` (see the module docstring).

    Parameters
    ----------
    results : OLSResults
        A fit of :func:`fastpanel.feols` or :class:`fastpanel.PanelOLS` (in memory).
    param : str, optional
        The coefficient tested (against ``r``, default 0). Or give ``R``.
    R, r : array-like or str, optional
        Restrictions ``R b = r``: R of shape (q, k) or (k,), r of length q (default zeros); or R as
        text such as ``"x1 = x2, x3 = 0"``. With q > 1 the statistic is the Wald statistic over
        q (an F statistic) and the test is joint.
    B : int, default 9999
        Bootstrap draws. With Rademacher weights and ``2^G <= B`` every sign vector is used
        once (full enumeration, exact and seed-free; ``B`` becomes ``2^G``).
    weights : {"rademacher", "mammen", "webb", "norm"}
    impose_null : bool, default True
        Restricted (WCR, the null imposed on the bootstrap DGP) or unrestricted (WCU).
    bootstrap_type : {"11", "13", "31", "33"}
        First digit the bootstrap DGP (1: residuals of the fit, 3: jackknife residuals), second
        the variance of the statistic (1: CRV1, 3: CRV3), as in pyfixest / wildboottest. Types
        with a 3 need one error-cluster variable and fixed effects nested in the clusters.
    cluster : str or sequence of str, optional
        Error-cluster variables (default: the fit's ``vcov`` clusters); ``"g1+g2"`` for multiway
        clustering (Cameron-Gelbach-Miller, as the fit's CRV1).
    bootstrap_cluster : str, optional
        Variable whose clusters share a weight: a cluster variable, ``"min"`` / ``"max"`` (the
        one with fewest / most clusters), or ``"intersection"`` (default with several error
        cluster variables, as Stata's boottest; one variable is its own default).
    seed : int or SeedSequence, optional
        Seed of the keyed weights: draw b of a cluster depends on (seed, b, the cluster's label)
        only, so results do not depend on row order, backend or thread count.
    pval_type : {"two-tailed", "equal-tailed", ">", "<"}
        Symmetric (``|t*| > |t|``), equal-tailed (twice the smaller tail), or one-sided. Joint
        tests (q > 1) use ``F* > F``.
    conf_int : bool, default False
        Also invert the test (one restriction): the interval of r values whose p-value exceeds
        ``alpha`` (same draws for every r; bisection to 1e-10 standard errors).
    full_enumeration : bool, optional
        Force (True, Rademacher only, G <= 24) or forbid (False) full enumeration.
    backend : {"auto", "cpp", "numba"}, optional
        Kernel backend; every backend gives the same draws and p-values.
    return_draws : bool, default False
        Keep the bootstrap statistics in ``result.draws``.

    Returns
    -------
    WildBootResult

    Examples
    --------
    >>> res = fastpanel.feols("y ~ x1 + x2 | firm + year", df, vcov={"CRV1": "state"})
    >>> res.wildboottest(param="x1", B=9999, seed=1).pvalue
    """
    from fastpanel._backend import kernel_module, resolve_backend
    from fastpanel.kernels.wildboot_reference import KINDS, mix64
    from fastpanel.panel_threshold.bootstrap import seed_value

    state = results._state
    if getattr(state, "fe_slopes", None):
        raise ValueError("the wild cluster bootstrap is not available with varying slopes yet (its jackknife "
                         "variants refit plain fixed effects); use vcov={'CRV1': ...} or {'CRV3': ...}")
    if getattr(state, "wild_cells", None) is not None:
        state = _pseudo_state(state)
    elif getattr(state, "X", None) is None:
        raise ValueError("this fit holds neither data nor a way to compute the bootstrap's cell statistics")
    names = list(state.names)
    Rm, rv, text = _restriction(names, param, R, r)
    q = Rm.shape[0]
    if isinstance(B, bool) or not isinstance(B, (int, np.integer)) or B < 1:
        raise ValueError(f"B={B!r} must be a positive integer number of bootstrap draws, e.g. B=9999")
    weights = _check_choice(weights, "weights", WEIGHTS)
    btype = _check_choice(bootstrap_type, "bootstrap_type", BOOTSTRAP_TYPES)
    pval_type = _check_choice(pval_type, "pval_type", PVAL_TYPES)
    if not isinstance(impose_null, (bool, np.bool_)):
        raise TypeError(f"impose_null must be True or False, got {impose_null!r}")
    if not (isinstance(alpha, (float, int)) and 0 < alpha < 1):
        raise ValueError(f"alpha={alpha!r} must lie in (0, 1)")
    if conf_int and q > 1:
        raise ValueError("conf_int=True inverts a test of one restriction; R has several rows")
    if q > 1 and pval_type != "two-tailed":
        raise ValueError(f"pval_type={pval_type!r} needs one restriction; a joint test is one-sided in F")
    be = resolve_backend(backend, "wildboot")
    kernel = kernel_module(be, "wildboot")

    clusters = _clusters(results, cluster, state)
    if btype != "11" and len(clusters) > 1:
        raise ValueError(f"bootstrap_type={btype!r} (a jackknife) needs one error-cluster variable; use '11' for "
                         "multiway clustering")

    # bootstrap clusters
    if bootstrap_cluster is None:
        bootstrap_cluster = clusters[0][0] if len(clusters) == 1 else "intersection"
    named = _named_factors(results, state)
    if bootstrap_cluster in ("min", "max"):
        pick = (min if bootstrap_cluster == "min" else max)(clusters, key=lambda cf: cf[1].n_levels)
        boot_name, boot_codes, G = pick[0], pick[1].codes, pick[1].n_levels
        boot_keys, boot_labels = _label_keys(pick[1]), np.asarray(pick[1].levels)
    elif bootstrap_cluster == "intersection":
        boot_name = "intersection of " + " x ".join(c for c, _ in clusters)
        boot_codes, G, first = _intersect([f.codes for _, f in clusters], [f.n_levels for _, f in clusters])
        boot_keys = _combine_keys([_label_keys(f)[f.codes[first]] for _, f in clusters])
        boot_labels = np.empty(G, dtype=object)
        boot_labels[:] = list(zip(*(np.asarray(f.levels)[f.codes[first]] for _, f in clusters)))
    elif isinstance(bootstrap_cluster, str) and bootstrap_cluster in named:
        f = named[bootstrap_cluster]
        boot_name, boot_codes, G, boot_keys = bootstrap_cluster, f.codes, f.n_levels, _label_keys(f)
        boot_labels = np.asarray(f.levels)
    else:
        raise ValueError(f"bootstrap_cluster={bootstrap_cluster!r}: name a cluster variable of the fit "
                         f"({sorted(named)}), 'min', 'max' or 'intersection'")
    if G < 2:
        raise ValueError("the bootstrap clusters have a single level; the wild cluster bootstrap needs at least two")
    nested = all(cov.nested_in(f.codes, f.n_levels, boot_codes) for f in state.fe_factors)
    if btype != "11" and not nested:
        raise ValueError(f"bootstrap_type={btype!r} (a jackknife) needs every fixed effect nested in the bootstrap "
                         "clusters (e.g. entity effects and clusters of entities); use bootstrap_type='11'")

    # small-sample factors: those of the fit's preset, so that t equals results.tvalues
    n = state.nobs
    ssc = results.ssc
    spec = cov.VcovSpec("CRV3" if btype[1] == "3" else "CRV1", tuple(c for c, _ in clusters))
    K_total = cov._k_total(state, ssc, spec, [f for _, f in clusters])
    if n - K_total <= 0:
        raise ValueError("no residual degrees of freedom: the bootstrap statistic is undefined")
    terms: list[tuple[np.ndarray, int, float]] = []
    if btype[1] == "3":
        terms.append((boot_codes, G, cov.crv3_scale(ssc, n, K_total, G)[0]))
    else:
        g_min = min(f.n_levels for _, f in clusters)
        for size in range(1, len(clusters) + 1):
            for subset in itertools.combinations(clusters, size):
                if size == 1:
                    codes_s, n_s = subset[0][1].codes, subset[0][1].n_levels
                else:
                    codes_s, n_s, _ = _intersect([f.codes for _, f in subset], [f.n_levels for _, f in subset])
                sign = 1.0 if size % 2 else -1.0
                terms.append((codes_s, n_s, sign * cov.crv1_scale(ssc, n, K_total, n_s, g_min)))

    X = np.ascontiguousarray(state.X)
    uhat = state.resid()
    sw = getattr(state, "sw", None)
    if sw is None and state.weights is not None:
        sw = np.sqrt(state.weights)
    y = state.y if isinstance(state, _PseudoState) else X @ state.params + uhat
    d = _Design(X=X, y=y, sw=sw, Ainv=state.bread, A=X.T @ X, bhat=state.params,
                boot_codes=boot_codes, G=G, terms=terms, nested=nested, factors=list(state.fe_factors),
                weights=state.weights, backend=state.backend if state.backend in ("cpp", "numba") else None)

    # the statistic of the data: the same variance formula with the unrestricted residuals
    num0 = Rm @ d.bhat - rv
    if btype[1] == "3":
        bj = _jackknife_betas(d, None, None)
        diffs = (bj - d.bhat) @ Rm.T
        Vr = terms[0][2] * diffs.T @ diffs
    else:
        Vr = np.zeros((q, q))
        for h_codes, n_h, c in terms:
            Zu = cov.group_sums(X * uhat[:, None], h_codes, n_h) @ (Rm @ state.bread).T
            Vr += c * (Zu.T @ Zu)
    N_u, K_u, sc_u = _matrices(d, Rm, Rm @ d.bhat, False, btype) if not impose_null else (None, None, None)
    stat0 = _statistic(num0, Vr)

    # draws
    enum = weights == "rademacher" and G <= 62 and 2 ** G <= B if full_enumeration is None else bool(full_enumeration)
    if enum:
        if weights != "rademacher" or G > 24:
            raise ValueError(f"full_enumeration=True needs Rademacher weights and at most 24 bootstrap clusters "
                             f"(got {weights}, G = {G})")
        kind, B_eff, ent, seed_used = KINDS["enumeration"], 2 ** G, np.zeros(G, dtype=np.uint64), None
    else:
        seed_used = seed_value(seed)
        base = mix64(mix64(np.uint64(seed_used)) ^ np.uint64(_TEST_ID))
        ent = mix64(np.asarray(boot_keys, dtype=np.uint64) ^ base)
        kind, B_eff = KINDS[weights], int(B)

    def boot_stats(rval: np.ndarray) -> np.ndarray:
        N, K, sc = _matrices(d, Rm, rval, impose_null, btype) if impose_null else (N_u, K_u, sc_u)
        N, sc = np.ascontiguousarray(N), np.ascontiguousarray(sc)
        if K.low_rank_pays:
            indptr, cols, vals = K.csr()
            return kernel.wild_stats_lr(N, indptr, cols, vals, np.ascontiguousarray(K.U), np.ascontiguousarray(K.V),
                                        sc, ent, kind, 0, B_eff)
        return kernel.wild_stats(N, np.ascontiguousarray(K.dense()), sc, ent, kind, 0, B_eff)

    draws = boot_stats(rv)
    pvalue, n_ties, n_undef = _pvalue(stat0, draws, pval_type, q)
    if n_undef:
        warnings.warn(f"{n_undef} of {B_eff} bootstrap draws have a non-positive variance (multiway clustering); "
                      "they are left out of the p-value", RuntimeWarning, stacklevel=3)
    ci = None
    if conf_int:
        ci = _invert(d, Rm, rv, stat0, num0, Vr, boot_stats, pval_type, alpha)
    seed_out = None if enum else (seed if isinstance(seed, (int, np.integer)) else seed_used)
    out = WildBootResult(
        param=text, statistic=float(stat0 if q == 1 else stat0 / q), pvalue=float(pvalue), B=B_eff,
        bootstrap_type=btype, impose_null=bool(impose_null), weights=weights, full_enumeration=enum,
        pval_type=pval_type, cluster=tuple(c for c, _ in clusters), bootstrap_cluster=boot_name,
        n_clusters={c: int(f.n_levels) for c, f in clusters}, n_boot_clusters=G, ssc=ssc, backend=be,
        seed=seed_out, R=Rm, r=rv, stat_type="t" if q == 1 else "F", conf_int=ci, alpha=float(alpha),
        n_ties=n_ties, n_undefined=n_undef, draws=draws if return_draws else None,
        boot_labels=boot_labels, _ent=ent, _kind=kind,
    )
    if param is not None:
        # kept on the fit for its tables (summary, etable, the report): the latest test per coefficient
        store = getattr(results, "wildboot_results", None)
        if store is None:
            store = results.wildboot_results = {}
        store[param] = out
    return out


def _statistic(num: np.ndarray, V: np.ndarray) -> float:
    if num.shape[0] == 1:
        if not V[0, 0] > 0:
            raise ValueError(
                f"the clustered variance of R b is {V[0, 0]:.3g}, not positive (zero: a restriction on a coefficient "
                "without variation; negative: the multiway inclusion-exclusion sum), so the t statistic is undefined; "
                "cluster on fewer variables or test another restriction")
        return float(num[0] / math.sqrt(V[0, 0]))
    try:
        c = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        raise ValueError("R V R' is singular (or not positive definite): the restrictions are not jointly testable "
                         "with this covariance; drop redundant rows of R") from None
    y = np.linalg.solve(c, num)
    return float(y @ y)


def _tie_tol(stat: float) -> float:
    # Draws whose statistic equals the data's in exact arithmetic (full enumeration: v = +-1
    # reproduces the data) differ from it by rounding only; they count as ties, not exceedances.
    return 1e-9 * max(1.0, abs(stat))


def _pvalue(stat: float, draws: np.ndarray, pval_type: str, q: int) -> tuple[float, int, int]:
    ok = np.isfinite(draws)
    n_undef = int((~ok).sum())
    t = draws[ok]
    if t.size == 0:
        raise ValueError("every bootstrap draw has a non-positive variance; the test is undefined")
    tol = _tie_tol(stat)
    if q > 1 or pval_type == "two-tailed":
        a, s = (np.abs(t), abs(stat)) if q == 1 else (t, stat)
        exceed = a > s + tol
        ties = int((np.abs(a - s) <= tol).sum())
        return float(exceed.mean()), ties, n_undef
    ties = int((np.abs(t - stat) <= tol).sum())
    above = float((t > stat + tol).mean())
    below = float((t < stat - tol).mean())
    if pval_type == ">":
        return above, ties, n_undef
    if pval_type == "<":
        return below, ties, n_undef
    return 2.0 * min(above, below), ties, n_undef


def _invert(d: _Design, Rm: np.ndarray, rv: np.ndarray, stat0: float, num0: np.ndarray, Vr: np.ndarray,
            boot_stats: Any, pval_type: str, alpha: float) -> tuple[float, float]:
    """Interval of r with p(r) > alpha: stepping out from the estimate, then bisection."""
    se = math.sqrt(Vr[0, 0])
    est = float((Rm @ d.bhat)[0])

    def p_at(value: float) -> float:
        t = (est - value) / se
        return _pvalue(t, boot_stats(np.array([value])), pval_type, 1)[0]

    bounds = []
    for direction in (-1.0, 1.0):
        inside, step = est, 2.0 * se
        outside = None
        for _ in range(60):
            cand = est + direction * step
            if p_at(cand) <= alpha:
                outside = cand
                break
            inside, step = cand, step * 2.0
        if outside is None:
            bounds.append(direction * np.inf)
            continue
        for _ in range(80):
            if abs(outside - inside) <= 1e-10 * se:
                break
            mid = 0.5 * (inside + outside)
            if p_at(mid) > alpha:
                inside = mid
            else:
                outside = mid
        bounds.append(0.5 * (inside + outside))
    return float(bounds[0]), float(bounds[1])
