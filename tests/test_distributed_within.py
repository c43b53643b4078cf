"""The exact within transform on Dask (``fastpanel.distributed.within_dask``) on a
``distributed.LocalCluster`` of two worker processes (loopback only): equal to the in-memory
``fastpanel.within`` of the same rows, for unbalanced panels with gaps, rows in random order and
partitions that cut entities; also when a worker dies during the computation."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

import fastpanel

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from fastpanel.distributed import within_dask  # noqa: E402


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def panel(seed: int, N: int = 400, T: int = 9, fill: float = 0.8, offset: float = 1e8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(rng.random(N * T) < fill)  # gaps anywhere in an entity
    rows = rows[rng.permutation(rows.size)]  # rows in random order
    e, t = rows // T, rows % T
    X = rng.normal(size=(rows.size, 3)) + rng.normal(size=N)[e, None] + rng.normal(size=T)[t, None]
    X[:, 1] += offset
    return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "firm": (e * 7919).astype(str),
                         "year": t + 1990, "w": rng.uniform(0.2, 3.0, rows.size)})


def reference(df: pd.DataFrame, two_way: bool, weights: str | None) -> np.ndarray:
    ids = [df.firm.to_numpy(), df.year.to_numpy()] if two_way else df.firm.to_numpy()
    return fastpanel.within(df[["a", "b", "c"]].to_numpy(), ids, weights=None if weights is None else df[weights])


def close(got: pd.DataFrame, df: pd.DataFrame, want: np.ndarray) -> None:
    """Equal to rounding: 1e-13 of each column's scale (the 1e8 column differs by ~6e-8, its
    sums being added in another order)."""
    got = got.loc[df.index].to_numpy()  # back to the input rows
    scale = np.maximum(np.abs(df[["a", "b", "c"]].to_numpy()).max(axis=0), 1.0)
    for j in range(3):
        np.testing.assert_allclose(got[:, j], want[:, j], rtol=0, atol=1e-13 * scale[j])


@pytest.mark.parametrize("two_way", [True, False])
@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("npartitions", [1, 5])
def test_equals_in_memory(client, two_way, weights, npartitions) -> None:
    df = panel(1)
    ddf = dd.from_pandas(df, npartitions=npartitions, sort=False)  # partitions cut entities
    got = within_dask(ddf, ["a", "b", "c"], "firm", "year" if two_way else None, weights=weights).compute()
    assert len(got) == len(df)
    close(got, df, reference(df, two_way, weights))


def test_balanced_panel_closed_form(client) -> None:
    df = panel(2, N=120, T=6, fill=1.01, offset=0.0)
    got = within_dask(dd.from_pandas(df, npartitions=4, sort=False), ["a", "b", "c"], "firm", "year").compute()
    close(got, df, reference(df, True, None))


def test_same_bits_for_any_partitioning(client) -> None:
    df = panel(3)
    outs = [within_dask(dd.from_pandas(df, npartitions=k, sort=False), ["a", "b", "c"], "firm", "year")
            .compute().loc[df.index].to_numpy() for k in (2, 3, 7)]
    scale = np.abs(df[["a", "b", "c"]].to_numpy()).max()
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=0, atol=64 * np.finfo(float).eps * scale)


def test_worker_dies_during_the_transform(client) -> None:
    """A worker process killed while the partitions are transformed: Dask reruns its tasks on
    the other worker (the nanny restarts the dead one) and the result is still exact."""
    df = panel(4, N=20_000, T=10)
    ddf = dd.from_pandas(df, npartitions=32, sort=False)
    out = within_dask(ddf, ["a", "b", "c"], "firm", "year")
    pids = client.run(os.getpid)  # worker address -> process id (same machine: LocalCluster)
    future = client.compute(out)
    deadline = time.monotonic() + 30
    busy: list[str] = []
    while not busy and time.monotonic() < deadline:  # a worker with tasks in flight
        busy = [w for w, tasks in client.processing().items() if tasks]
        time.sleep(0.001)
    assert busy, "no task was ever processing"
    os.kill(pids[busy[0]], signal.SIGKILL)
    got = future.result(timeout=120)
    close(got, df, reference(df, True, None))
    client.wait_for_workers(2, timeout=60)
    assert pids[busy[0]] not in client.run(os.getpid).values()  # it did die (the nanny restarted it)


def test_bad_input(client) -> None:
    df = panel(5, N=50)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] are not in the Dask DataFrame"):
        within_dask(ddf, ["a", "nope"], "firm", "year")
    with pytest.raises(TypeError, match="dask.dataframe.DataFrame"):
        within_dask(df, ["a"], "firm")
    bad = df.copy()
    bad.loc[bad.index[:3], "a"] = np.nan
    for time_col in ("year", None):
        with pytest.raises(ValueError, match="3 rows have NaN/inf values"):
            within_dask(dd.from_pandas(bad, npartitions=3, sort=False), ["a", "b"], "firm", time_col)
    many = pd.concat([df] * 8, ignore_index=True)  # more periods than the dense system allows
    many = many.assign(year=np.arange(len(many)) % 2500)
    assert many.year.nunique() > 2000
    with pytest.raises(ValueError, match="at most 2000 periods"):
        within_dask(dd.from_pandas(many, npartitions=3), ["a"], "firm", "year")
