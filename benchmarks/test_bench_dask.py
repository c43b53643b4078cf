"""feols on Dask against the in-memory feols of the same rows (same group, same run).

Data: ``n_entities`` entities x 10 periods, 10% of the cells deleted at random, rows in random
order, 5 regressors, written as Parquet (4 files per million rows) under the pytest temporary
folder. Model ``y ~ x1 + ... + x5 | firm + year``, CRV1 by firm. The Dask fit runs on a
``LocalCluster`` of 2 single-threaded worker processes with a memory limit per worker
(``DASK_BENCH_MEMORY``, default 2 GiB) so that large sizes work out of core.

Groups ``dask-feols-<size>``: ``fastpanel-dask`` (read + shuffle + fit, everything timed) and
``fastpanel-in-memory`` (pandas.read_parquet + feols). ``extra_info`` records the peak memory
of each worker process (``ru_maxrss``), the bytes of the columns the shuffle moves (the data
that cross between the workers is about half of it with 2 workers), the bytes the P2P shuffle
handed to its comms (``p2p_comm_bytes``, from distributed's performance metrics: the Arrow
shards for every worker, the sending worker itself included) and whether the two fits agree to
1e-10. Sizes: ``200k`` (default), ``10M`` and ``100M`` (``large``).

Groups ``dask-threshold-<size>`` and ``dask-threshold-twoway-<size>`` (200k and 10M):
``fastpanel.threshold`` with threshold variable ``x5``, regime variable ``x4``, firm effects
(and year effects), 400 quantiles and 50 wild-bootstrap draws,
on Dask and in memory; ``extra_info`` says whether thresholds, p-values and critical values are
identical and F statistics equal to 1e-10.
"""

from __future__ import annotations

import os
import resource

import numpy as np
import pandas as pd
import pytest

import fastpanel

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

SIZES = {"200k": 20_000, "10M": 1_000_000, "100M": 10_000_000}
FML = "y ~ x1 + x2 + x3 + x4 + x5 | firm + year"


def write_panel(folder, n_entities: int, seed: int = 0, chunk: int = 200_000) -> None:
    """Write the panel as Parquet, ``chunk`` entities per file (rows shuffled within files and
    files in entity order shuffled too, so that files cut nothing but rows are in no order)."""
    rng = np.random.default_rng(seed)
    starts = list(range(0, n_entities, chunk))
    for i, s in enumerate(rng.permutation(starts)):
        n_e = min(chunk, n_entities - s)
        rows = np.flatnonzero(rng.random(n_e * 10) >= 0.1)
        rows = rows[rng.permutation(rows.size)]
        e, t = rows // 10 + s, rows % 10
        X = rng.normal(size=(rows.size, 5))
        y = X @ np.arange(1.0, 6.0) + rng.normal(size=n_e)[e - s] + rng.normal(size=10)[t] + rng.normal(size=rows.size)
        frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(1, 6)]).assign(y=y, firm=e, year=t + 2000)
        # split each file into 4 Parquet files by row position: entities are cut across files
        for q, part in enumerate(np.array_split(np.arange(len(frame)), 4)):
            frame.iloc[part].to_parquet(folder / f"part-{i:04d}-{q}.parquet")


@pytest.fixture(scope="module", params=[pytest.param(k, marks=[pytest.mark.large] if k != "200k" else [])
                                        for k in SIZES])
def parquet(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"dask_{request.param}")
    write_panel(folder, SIZES[request.param])
    return request.param, folder


@pytest.fixture(scope="module")
def cluster_client():
    limit = os.environ.get("DASK_BENCH_MEMORY", "2GiB")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=limit,
                                       host="127.0.0.1", dashboard_address=":0")
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _p2p_bytes(dask_worker) -> float:
    """Bytes the worker's P2P shuffle handed to its comms (shards for the other worker and for
    itself), from distributed's fine performance metrics."""
    return float(sum(v for k, v in dask_worker.digests_total.items()
                     if len(k) == 5 and k[0] == "p2p" and k[2:] == ("background-comms", "process", "bytes")))


def _timed_with_wire(benchmark, client, fit, rounds: int):
    """Run the benchmark and return (result, P2P comm bytes per fit summed over the workers)."""
    before = sum(client.run(_p2p_bytes).values())
    res = benchmark.pedantic(fit, rounds=rounds, iterations=1)
    return res, (sum(client.run(_p2p_bytes).values()) - before) / rounds


def test_feols_dask(benchmark, parquet, cluster_client) -> None:
    name, folder = parquet
    benchmark.group = f"dask-feols-{name}"
    benchmark.name = "fastpanel-dask"

    def fit():
        ddf = dd.read_parquet(str(folder / "*.parquet"))
        return fastpanel.feols(FML, ddf, vcov={"CRV1": "firm"})

    res, wire = _timed_with_wire(benchmark, cluster_client, fit, 1 if name != "200k" else 3)
    ddf = dd.read_parquet(str(folder / "*.parquet"))
    shuffled = int(ddf.memory_usage(index=False).sum().compute())
    peaks = cluster_client.run(_peak_rss)
    benchmark.extra_info.update({"nobs": int(res.nobs), "shuffled_column_bytes": shuffled,
                                 "p2p_comm_bytes": wire,
                                 "worker_peak_rss_bytes": sorted(peaks.values()),
                                 "memory_limit": os.environ.get("DASK_BENCH_MEMORY", "2GiB")})
    if name != "100M":  # the in-memory check (100M rows: checked on a 10M-row subset, see docs/scale-out.md)
        want = fastpanel.feols(FML, pd.read_parquet(folder), vcov={"CRV1": "firm"})
        np.testing.assert_allclose(res.params.to_numpy(), want.params.to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(res.bse.to_numpy(), want.bse.to_numpy(), rtol=1e-10)
        benchmark.extra_info["equals_in_memory_1e-10"] = True


TH_FML = {"threshold": "y ~ x1 + x2 + x3 | firm", "threshold-twoway": "y ~ x1 + x2 + x3 | firm + year"}
TH_KW = dict(threshold_var="x5", regime_vars="x4", time="year", n_boot=50, bootstrap="wild", seed=0, grid=400,
             progress=False)
IN_MEMORY = {"feols": lambda frame: fastpanel.feols(FML, frame, vcov={"CRV1": "firm"}),
             **{m: (lambda frame, fml=fml: fastpanel.threshold(fml, frame, **TH_KW)) for m, fml in TH_FML.items()}}


@pytest.mark.parametrize("model", list(TH_FML))
def test_threshold_dask(benchmark, parquet, cluster_client, model) -> None:
    name, folder = parquet
    if name == "100M":
        pytest.skip("the threshold benchmark stops at 10M rows (its in-memory peer must fit)")
    benchmark.group = f"dask-{model}-{name}"
    benchmark.name = "fastpanel-dask"

    def fit():
        return fastpanel.threshold(TH_FML[model], dd.read_parquet(str(folder / "*.parquet")), **TH_KW)

    res, wire = _timed_with_wire(benchmark, cluster_client, fit, 1 if name != "200k" else 2)
    want = IN_MEMORY[model](pd.read_parquet(folder))
    np.testing.assert_array_equal(res.thresholds, want.thresholds)
    np.testing.assert_array_equal(res.tests["pvalue"].to_numpy(), want.tests["pvalue"].to_numpy())
    np.testing.assert_allclose(res.tests[["F", "crit5"]].to_numpy(), want.tests[["F", "crit5"]].to_numpy(),
                               rtol=1e-10)
    benchmark.extra_info.update({"nobs": int(res.nobs), "equals_in_memory_1e-10": True, "p2p_comm_bytes": wire,
                                 "worker_peak_rss_bytes": sorted(cluster_client.run(_peak_rss).values())})


@pytest.mark.parametrize("model", list(IN_MEMORY))
def test_in_memory(benchmark, parquet, model) -> None:
    """The peer of each Dask fit: pandas.read_parquet + the in-memory fit."""
    name, folder = parquet
    if name == "100M":
        pytest.skip("100M rows do not fit this machine's memory in pandas: the point of the Dask fit")
    benchmark.group = f"dask-{model}-{name}"
    benchmark.name = "fastpanel-in-memory"
    benchmark.pedantic(lambda: IN_MEMORY[model](pd.read_parquet(folder)), rounds=1 if name != "200k" else 3,
                       iterations=1)
