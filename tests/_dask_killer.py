"""Kill a busy Dask worker during a fit (the tests that check that Dask's retries keep the
results exact)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any


def kill_busy_worker(client: Any, delay: float = 0.0) -> tuple[threading.Thread, dict]:
    """Start a thread that, after ``delay`` seconds, SIGKILLs the first worker with tasks.

    Returns the thread (join it after the fit) and the workers' process ids before the kill.
    """
    pids = client.run(os.getpid)

    def killer() -> None:
        time.sleep(delay)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                return
            time.sleep(0.001)

    thread = threading.Thread(target=killer)
    thread.start()
    return thread, pids


def one_worker_died(client: Any, pids: dict) -> bool:
    """Wait for the cluster to be whole again; True when a worker process was replaced."""
    client.wait_for_workers(len(pids), timeout=60)
    return set(pids.values()) != set(client.run(os.getpid).values())
