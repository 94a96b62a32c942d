"""Run one scenario in the simulator."""

from __future__ import annotations

from collections.abc import Callable

from damselfly.results import Result
from damselfly.scenarios.build import build
from damselfly.scenarios.spec import Scenario
from damselfly.sim.engine import simulate

__all__ = ["run_scenario"]


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Result:
    """Simulate ``scenario`` (with ``seed`` instead of its run seed, if given).

    ``progress(finished, total, now)`` is called as the run goes. The result's
    ``scenario`` field describes the run in the scenario's terms.
    """
    inputs = build(scenario, seed=seed)
    if progress is not None:
        inputs.options.progress = progress
    result = simulate(
        inputs.topology, inputs.workload, inputs.scheduler_config, inputs.seed, inputs.options
    )
    result.scenario = {**result.scenario, **inputs.description}
    return result
