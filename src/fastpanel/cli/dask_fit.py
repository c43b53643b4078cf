"""``fastpanel fit|threshold 'data/*.parquet' FORMULA --dask [SCHEDULER]``: the fit on Dask.

Without an address a ``distributed.LocalCluster`` sized to the machine (one single-threaded
worker process per core) runs it; with one, the scheduler at that address. The data are read
lazily (``dask.dataframe.read_parquet`` / ``read_csv``, a file, a folder or a glob). The fit is
``fastpanel.distributed.feols_dask`` (``fit``) or ``threshold_dask`` (``threshold``), whose
rounds are reported on stderr; :func:`run_dask` is the path both share (connect, fit, turn any
failure into a :class:`CLIError`, close the cluster). Nothing is printed as a result unless the
whole fit finished.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path
from typing import Any, Callable

from fastpanel.cli._common import CLIError, stderr

__all__ = ["dask_frame", "dask_client", "fit_dask", "run_dask"]


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


def dask_client(address: str, *, quiet: bool = False) -> Any:
    """A client of the scheduler at ``address``, or of a local cluster sized to the machine
    (``address == "local"``; announced on stderr unless ``quiet``)."""
    import os

    from distributed import Client, LocalCluster

    if address == "local":
        workers = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        if not quiet:
            stderr(f"fastpanel: starting a local Dask cluster of {workers} worker process(es)")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        return Client(cluster)
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise CLIError(f"--dask {address}: the Dask scheduler does not answer ({exc}); check the address "
                       "(e.g. tcp://host:8786) or omit it for a local cluster") from exc


def run_dask(source: str, address: str, compute: Callable[[Any, Callable[[str], None] | None], Any], *,
             frame: Any = None, quiet: bool = False) -> Any:
    """``compute(frame, progress)`` on the Dask cluster ``address`` (``"local"``: a local one).

    ``frame`` is the lazy frame of ``source`` (read here when not given); ``progress`` prints a
    line ``fastpanel: ...`` on stderr (None when ``quiet``). Any failure becomes a
    :class:`CLIError` (an unreadable partition file is named; fastpanel's own ``ValueError`` /
    ``TypeError`` keep their message) and no partial result is returned; the client, and a
    local cluster, are closed in every case.
    """
    import logging

    if frame is None:
        frame = dask_frame(source)
    # the shuffle's bookkeeping (logged by a local cluster's scheduler, in this process) is not
    # news to the user: the rounds are reported as progress lines
    shuffle_log = logging.getLogger("distributed.shuffle")
    level = shuffle_log.level
    shuffle_log.setLevel(logging.ERROR)
    client = None
    try:
        client = dask_client(address, quiet=quiet)
        say = None if quiet else (lambda msg: stderr(f"fastpanel: {msg}"))
        return compute(frame, say)
    except CLIError:
        raise
    except Exception as exc:  # a worker error (an unreadable partition, a lost cluster): no partial result
        bad = _unreadable(_files(source))
        if bad:
            raise CLIError(f"cannot read {len(bad)} partition file(s): {', '.join(bad)} ({exc}); nothing was "
                           "estimated") from exc
        if isinstance(exc, (ValueError, TypeError)) and type(exc).__module__ == "builtins":
            raise CLIError(str(exc)) from exc  # fastpanel's own message about the model or the data
        raise CLIError(f"the Dask computation failed: {type(exc).__name__}: {exc}; nothing was estimated") from exc
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and address == "local":
                cluster.close()
        shuffle_log.setLevel(level)


def fit_dask(args: argparse.Namespace, feols_kwargs: dict[str, Any]) -> Any:
    """Run the fit of ``fastpanel fit --dask``; raises CLIError on any failure."""
    from fastpanel.distributed.ols import feols_dask

    def compute(frame: Any, progress: Callable[[str], None] | None) -> Any:
        return feols_dask(args.formula, frame, progress=progress, **feols_kwargs)

    return run_dask(str(args.file), args.dask, compute)
