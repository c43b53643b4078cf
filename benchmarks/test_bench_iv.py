"""IV (2SLS) with two-way absorbed fixed effects: fastpanel ``feols`` against pyfixest ``feols``.

Model (issue #21): ``y ~ x1 | firm + year | d ~ z1 + z2``, one endogenous regressor ``d``, two
excluded instruments, CRV1 standard errors clustered by firm, the same formula and
``vcov={"CRV1": "firm"}`` given to both libraries, both from the same DataFrame and everything
timed (parsing, NaN/singleton checks, factorisation, within transform, first stage, 2SLS,
covariance).

Data: the ``conftest.make_panel`` panel of the size (``1M``: 100k firms x 10 years, ``10M``:
1M firms x 10 years; 10% of the cells deleted at random, so unbalanced; no singletons), its six
float64 columns e0..e5 (normal + firm and year offsets) turned into

    z1 = e0, z2 = e1, x1 = e2,
    d  = 0.5 z1 + 0.3 z2 + 0.5 x1 + e3 + 0.6 e4      (endogenous: shares e4 with the error)
    y  = 1.0 x1 - 0.5 d + e4 + e5                     (structural error e4 + e5)

Instruments strong (first-stage F about 1e5 at 1M rows: no ``WeakInstrumentWarning``). The
DataFrame holds 5 float64 and 2 int64 columns (about 0.5 GB at 10M).

Groups (entries named ``fastpanel-cpp`` and ``pyfixest``, so ``conftest.py`` prints the ratio
pyfixest / fastpanel-cpp at the end of a timed run):

* ``iv-twoway-crv1-1M`` and ``iv-twoway-crv1-10M`` (``large``): rows sorted by firm, then year.
* ``iv-twoway-crv1-shuffled-1M``: the same 1M rows in random order (raw ids), both peers on the
  shuffled rows; plus ``fastpanel-cpp-sorted-rows`` (the sorted frame), the reference for the
  cost of the row order.

fastpanel runs ``backend="cpp"``; pyfixest 0.60 its default demeaner (MAP, Rust). Both are
warmed on the 100k panel (JIT compilation) before timing. After timing, the pyfixest test checks
that both coefficient vectors agree to 1e-8 (absolute) on that group's data, so the two entries
did the same work; the largest coefficient and standard-error differences are in ``extra_info``.

Run: ``pytest benchmarks/test_bench_iv.py -m "not large" --benchmark-only`` (1M groups);
``pytest benchmarks/test_bench_iv.py -m large --benchmark-only`` (10M group).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

import fastpanel

FML = "y ~ x1 | firm + year | d ~ z1 + z2"
VCOV = {"CRV1": "firm"}
COEF_TOL = 1e-8

#: (size name in conftest.SIZES, row order); the group name follows from both.
CASES = [
    pytest.param(("1M", "sorted"), id="1M"),
    pytest.param(("1M", "shuffled"), id="shuffled-1M"),
    pytest.param(("10M", "sorted"), id="10M", marks=pytest.mark.large),
]
#: (fastpanel rounds, pyfixest rounds) per size.
ROUNDS = {"1M": (5, 3), "10M": (3, 1)}


@dataclass
class IVCase:
    size: str
    order: str
    df: pd.DataFrame
    sorted_df: pd.DataFrame | None = None  # the shuffled case's rows in panel order
    fastpanel_coef: tuple[pd.Series, pd.Series] | None = None  # params, bse of the timed fastpanel fit
    extra: dict = field(default_factory=dict)

    @property
    def group(self) -> str:
        return f"iv-twoway-crv1-{self.order + '-' if self.order != 'sorted' else ''}{self.size}"


def iv_frame(panel) -> pd.DataFrame:
    """The IV DataFrame built from a ``conftest.Panel`` (column by column: no (n, k) temporaries)."""
    X = panel.X
    df = pd.DataFrame({"firm": panel.entity, "year": panel.time})
    df["z1"] = X[:, 0]
    df["z2"] = X[:, 1]
    df["x1"] = X[:, 2]
    d = 0.5 * X[:, 0]
    d += 0.3 * X[:, 1]
    d += 0.5 * X[:, 2]
    d += X[:, 3]
    d += 0.6 * X[:, 4]
    df["d"] = d
    y = X[:, 2] - 0.5 * d
    y += X[:, 4]
    y += X[:, 5]
    df["y"] = y
    return df


@pytest.fixture(scope="module")
def warm_frame(make_panel) -> pd.DataFrame:
    """The 100k panel as an IV frame, for the untimed warm-up calls."""
    return iv_frame(make_panel("100k"))


@pytest.fixture(scope="module", params=CASES)
def case(request, make_panel) -> IVCase:
    size, order = request.param
    panel = make_panel(size)
    df = iv_frame(panel)
    del panel
    if order == "sorted":
        return IVCase(size, order, df)
    perm = np.random.default_rng(2024).permutation(len(df))
    return IVCase(size, order, df.take(perm).reset_index(drop=True), sorted_df=df)


def _fastpanel_fit(df: pd.DataFrame):
    return fastpanel.feols(FML, df, vcov=VCOV, backend="cpp")


def _pyfixest_fit(df: pd.DataFrame):
    import pyfixest as pf

    return pf.feols(FML, df, vcov=VCOV)


def _label(benchmark, case: IVCase, name: str, order: str | None = None) -> None:
    benchmark.group = case.group
    benchmark.name = name
    benchmark.extra_info.update({"library": name, "n": len(case.df), "order": order or case.order})


def test_iv_fastpanel(benchmark, case, warm_frame):
    _label(benchmark, case, "fastpanel-cpp")
    _fastpanel_fit(warm_frame)  # warm (JIT, caches)
    res = benchmark.pedantic(_fastpanel_fit, args=(case.df,), rounds=ROUNDS[case.size][0], warmup_rounds=0)
    assert res.nobs == len(case.df)
    case.fastpanel_coef = (res.params.copy(), res.bse.copy())  # not the whole result: keep memory low
    benchmark.extra_info.update({"backend": res.backend, "first_stage_f": float(res.first_stage_f["d"]),
                                 "beta_d": float(res.params["d"])})


@pytest.mark.parametrize("case", [c for c in CASES if c.values[0][1] == "shuffled"], indirect=True)
def test_iv_fastpanel_sorted_rows(benchmark, case, warm_frame):
    _label(benchmark, case, "fastpanel-cpp-sorted-rows", order="sorted")
    _fastpanel_fit(warm_frame)  # warm
    res = benchmark.pedantic(_fastpanel_fit, args=(case.sorted_df,), rounds=ROUNDS[case.size][0], warmup_rounds=0)
    assert res.nobs == len(case.sorted_df)


def test_iv_pyfixest(benchmark, case, warm_frame):
    pytest.importorskip("pyfixest")
    _label(benchmark, case, "pyfixest")
    _pyfixest_fit(warm_frame)  # warm (numba compilation)
    res = benchmark.pedantic(_pyfixest_fit, args=(case.df,), rounds=ROUNDS[case.size][1], warmup_rounds=0)
    assert res._N == len(case.df)
    # Same work: fastpanel's fit of the same data (the timed one if it ran; otherwise fitted now).
    if case.fastpanel_coef is None:
        fp_res = _fastpanel_fit(case.df)
        case.fastpanel_coef = (fp_res.params.copy(), fp_res.bse.copy())
    fp_params, fp_bse = case.fastpanel_coef
    coef, se = res.coef(), res.se()
    coef_diff = float((fp_params[coef.index] - coef).abs().max())
    se_diff = float((fp_bse[se.index] - se).abs().max())
    benchmark.extra_info.update({"coef_diff_vs_fastpanel": coef_diff, "se_diff_vs_fastpanel": se_diff,
                                 "beta_d": float(coef["d"])})
    assert coef_diff <= COEF_TOL, f"fastpanel and pyfixest coefficients differ by {coef_diff:.3g}"
