"""Shared test configuration.

CUDA: when no real GPU is present (no ``nvidia-smi`` on PATH) and the user did not choose,
the numba.cuda kernels run on Numba's CPU simulator. The variable must be set before numba is
first imported, which is why it happens here at import time, before any test module loads.
The simulator executes every GPU thread in Python, so CUDA cases use small panels only.
"""

from __future__ import annotations

import os
import shutil

if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests: a quick profile for every CI run, and a "slow" one with many more examples
# to run on purpose: HYPOTHESIS_PROFILE=slow python -m pytest tests/test_properties.py
settings.register_profile("ci", max_examples=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Every backend of the kernels; the CUDA one is marked so it can be selected / deselected.
BACKENDS = ("cpp", "numba", "cuda")

#: Largest number of rows a CUDA test case may use (the simulator runs threads in Python).
CUDA_MAX_ROWS = 300


def backend_params(cuda: bool = True) -> list:
    """``pytest.param`` list over the backends; the CUDA case carries ``pytest.mark.cuda``."""
    params = [pytest.param("cpp", id="cpp"), pytest.param("numba", id="numba")]
    if cuda:
        params.append(pytest.param("cuda", id="cuda", marks=pytest.mark.cuda))
    return params


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend name in turn (cuda marked ``cuda``; keep its data to <= CUDA_MAX_ROWS rows)."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (independent of test order)."""
    return np.random.default_rng(20240601)


def rows_for(backend: str, n: int) -> int:
    """Shrink ``n`` to the CUDA-simulator limit when the backend is cuda."""
    return min(n, CUDA_MAX_ROWS) if backend == "cuda" else n


@pytest.fixture(scope="session")
def dask_client():
    """A ``distributed.LocalCluster`` of two worker processes on the loopback interface, shared
    by the Dask tests of the session (skipped when Dask is not installed)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=":0")
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()
