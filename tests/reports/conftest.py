from __future__ import annotations

import pytest

from damselfly.results import Result
from damselfly.sim.engine import simulate
from damselfly.sim.workload import Workload
from damselfly.topologies import flat

MiB = 1024**2


@pytest.fixture(scope="session")
def small_result() -> Result:
    """A real simulated run: 60 peers, one seed, a 64 MiB file."""
    topology = flat(60, upload_rate=125e6, latency=0.0005, origin_upload_rate=1.25e9, seeds=1)
    return simulate(topology, Workload.file(64 * MiB), seed=3)
