"""``fastpanel fit 'data/*.parquet' FORMULA --dask [SCHEDULER]``: the fit on Dask.

Without an address a ``distributed.LocalCluster`` sized to the machine (one single-threaded
worker process per core) runs it; with one, the scheduler at that address. The data are read
lazily (``dask.dataframe.read_parquet`` / ``read_csv``, a file, a folder or a glob); the fit is
``fastpanel.distributed.feols_dask``, whose rounds are reported on stderr. Nothing is printed
as a result unless the whole fit finished.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path
from typing import Any

from fastpanel.cli._common import CLIError, stderr

__all__ = ["dask_frame", "dask_client", "fit_dask"]


def _files(source: str) -> list[str]:
    path = Path(source)
    if any(ch in source for ch in "*?["):
        return sorted(glob.glob(source))
    return sorted(str(p) for p in path.iterdir()) if path.is_dir() else [source]


def _unreadable(files: list[str]) -> list[str]:
    """The Parquet files whose footer cannot be read (checked only after a failure)."""
    import pyarrow.parquet as pq

    bad = []
    for f in files:
        if Path(f).suffix.lower() not in (".parquet", ".pq"):
            continue
        try:
            pq.ParquetFile(f)
        except Exception:
            bad.append(f)
    return bad


def dask_frame(source: str) -> Any:
    """A lazy Dask DataFrame of the Parquet or CSV file(s) named by ``source``."""
    import dask.dataframe as dd

    files = _files(source)
    if not files or not all(Path(f).exists() for f in files):
        raise CLIError(f"no data files match {source}")
    suffixes = {Path(f).suffix.lower() for f in files}
    try:
        if suffixes <= {".parquet", ".pq"}:
            return dd.read_parquet(files)
        if suffixes <= {".csv"}:
            return dd.read_csv(files)
    except Exception as exc:  # pyarrow / pandas errors on a file that cannot be read
        raise CLIError(f"cannot read {source}: {exc}") from exc
    raise CLIError(f"--dask reads Parquet (.parquet) or CSV (.csv) files; {source} has {sorted(suffixes)}")


def dask_client(address: str) -> Any:
    """A client of the scheduler at ``address``, or of a local cluster sized to the machine."""
    import os

    from distributed import Client, LocalCluster

    if address == "local":
        workers = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        stderr(f"fastpanel: starting a local Dask cluster of {workers} worker process(es)")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        return Client(cluster)
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise CLIError(f"--dask {address}: the Dask scheduler does not answer ({exc}); check the address "
                       "(e.g. tcp://host:8786) or omit it for a local cluster") from exc


def fit_dask(args: argparse.Namespace, feols_kwargs: dict[str, Any]) -> Any:
    """Run the fit of ``fastpanel fit --dask``; raises CLIError on any failure."""
    from fastpanel.distributed.ols import feols_dask

    frame = dask_frame(str(args.file))
    client = dask_client(args.dask)
    try:
        return feols_dask(args.formula, frame, progress=lambda msg: stderr(f"fastpanel: {msg}"), **feols_kwargs)
    except CLIError:
        raise
    except Exception as exc:  # a worker error (an unreadable partition, a lost cluster): no partial result
        bad = _unreadable(_files(str(args.file)))
        if bad:
            raise CLIError(f"cannot read {len(bad)} partition file(s): {', '.join(bad)} ({exc}); nothing was "
                           "estimated") from exc
        if isinstance(exc, (ValueError, TypeError)) and type(exc).__module__ == "builtins":
            raise CLIError(str(exc)) from exc  # fastpanel's own message about the model or the data
        raise CLIError(f"the Dask computation failed: {type(exc).__name__}: {exc}; nothing was estimated") from exc
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and args.dask == "local":
            cluster.close()
