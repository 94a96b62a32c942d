"""The simpy network simulator: simulated hosts driven by the shared scheduling core.

One call runs a study::

    from damselfly.sim import simulate, Workload
    from damselfly.topologies import flat
    graph = flat(1000, upload_rate=125e6, origin_upload_rate=1.25e9, seeds=1)
    result = simulate(graph, Workload.file(2**30), SchedulerConfig(), seed=1)

- :mod:`damselfly.sim.network`: piece transfers as max-min fair flows (the model and its
  approximations are documented there).
- :mod:`damselfly.sim.engine`: simulated hosts calling the core as runtime daemons do.
- :mod:`damselfly.sim.workload`: contents, arrivals and faults.
- Results follow the one schema of :mod:`damselfly.results`.
"""

from __future__ import annotations

from damselfly.sim.engine import SimOptions, Simulation, simulate
from damselfly.sim.network import Flow, FlowNetwork, network_from_graph
from damselfly.sim.workload import Arrivals, Content, Faults, Workload, image

__all__ = [
    "Arrivals",
    "Content",
    "Faults",
    "Flow",
    "FlowNetwork",
    "SimOptions",
    "Simulation",
    "Workload",
    "image",
    "network_from_graph",
    "simulate",
]
