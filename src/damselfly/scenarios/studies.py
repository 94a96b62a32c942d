"""Studies that run a scenario many times: capacity plans and evaluator comparisons.

Both run their simulations as sweep cells (:mod:`damselfly.scenarios.sweep`), so they run
in parallel, skip what an earlier run already computed, and leave every result on disk for
``damselfly report``. Drawing their answers is the reports layer's job.

Capacity plan: given a target ("p95 <= 120s", "all <= 5min") find the smallest value of one
knob (seed peers, origin bandwidth, WAN capacity, host bandwidth) that meets it. More of
any of these knobs never makes a distribution slower in the model, so the search bisects:
integers exactly, bandwidths geometrically to a relative tolerance. A value meets the
target when the mean of the metric over the repetitions does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from damselfly.results import Result
from damselfly.scenarios.spec import Scenario, ScenarioError
from damselfly.scenarios.sweep import cells, run_sweep
from damselfly.units import UnitError, parse_duration

__all__ = ["KNOBS", "Knob", "PlanResult", "Target", "compare", "metric", "plan"]


@dataclass(frozen=True, slots=True)
class Knob:
    """A scenario key (or keys) a plan may turn, and how."""

    name: str
    paths: tuple[str, ...]
    integer: bool
    low: float
    high: float
    unit: str


KNOBS: dict[str, Knob] = {
    "seeds": Knob("seeds", ("seeds.count",), True, 0, 64, "seed peers"),
    "origin": Knob("origin", ("origin.upload",), False, 1.25e6, 1.25e11, "bytes/s"),
    "wan": Knob("wan", ("topology.wan_capacity",), False, 1.25e6, 1.25e11, "bytes/s"),
    "host": Knob("host", ("hosts.upload", "hosts.download"), False, 1.25e6, 1.25e11, "bytes/s"),
}

_TARGET = re.compile(
    r"^\s*(?P<metric>p\d{1,3}(?:\.\d+)?|all)(?:\s+done)?\s*<=\s*(?P<limit>.+?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Target:
    """``metric <= limit``: metric is a percentile of download time (``p95``) or ``all``
    (the last peer's finish time); ``limit`` in seconds."""

    metric: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> Target:
        """Read "p95 <= 120s" or "all done <= 5min"; raises ScenarioError otherwise."""
        match = _TARGET.match(text)
        if match is None:
            raise ScenarioError(
                f"target {text!r}: expected e.g. 'p95 <= 120s' or 'all done <= 5min'"
            )
        try:
            limit = parse_duration(match["limit"])
        except UnitError as error:
            raise ScenarioError(f"target {text!r}: {error}") from None
        name = match["metric"]
        if name != "all" and not 0 < float(name[1:]) <= 100:
            raise ScenarioError(f"target {text!r}: a percentile between p1 and p100")
        return cls(name, limit)

    def __str__(self) -> str:
        return f"{self.metric} <= {self.limit:g} s"


def metric(result: Result, name: str) -> float:
    """``all``: the last finish time (inf if a peer never finished); ``pNN``: that percentile
    of download times over every normal peer, unfinished ones counting as infinite."""
    normal = [p for p in result.peers if p.kind == "normal"]
    if not normal:
        return math.nan
    times = np.asarray(
        [
            p.finished_at - (p.registered_at or 0.0)
            if p.outcome == "succeeded" and p.finished_at is not None
            else math.inf
            for p in normal
        ],
        dtype=float,
    )
    if name == "all":
        finishes = [p.finished_at for p in normal if p.finished_at is not None]
        return max(finishes) if len(finishes) == len(normal) else math.inf
    return float(np.percentile(times, float(name[1:]), method="higher"))


@dataclass(slots=True)
class PlanResult:
    """The answer of a plan, and every value tried with its metric per repetition."""

    knob: Knob
    target: Target
    value: float | None
    curve: dict[float, list[float]] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.value is not None


def _runs(
    scenario: Scenario, overrides: dict[str, Any], out_dir: Path, workers: int | None, executor: Any
) -> list[Result]:
    """Run ``scenario`` with ``overrides`` over its repetitions; results come back in order."""
    grid = {path: (value,) for path, value in overrides.items()}
    study = Scenario(
        values=scenario.values, grid=grid, repetitions=scenario.repetitions, source=scenario.source
    )
    summary = run_sweep(study, out_dir, executor=executor, workers=workers)
    failures = [line for line in summary.lines.values() if line["status"] != "ok"]
    if failures:
        raise ScenarioError(f"a run failed ({failures[0]['cell']}): {failures[0]['error']}")
    return [Result.read(out_dir / "cells" / f"{cell.name}.json") for cell in cells(study)]


def plan(
    scenario: Scenario,
    knob_name: str,
    target: Target,
    out_dir: str | Path,
    *,
    repetitions: int = 3,
    low: float | None = None,
    high: float | None = None,
    tolerance: float = 0.05,
    workers: int | None = None,
    executor: Any = "local",
    progress: Callable[[float, float], None] | None = None,
) -> PlanResult:
    """The smallest value of ``knob_name`` meeting ``target`` (None if even ``high`` fails).

    ``progress(value, metric)`` is called after each value is measured. Raises
    ScenarioError for an unknown knob or bounds that make no sense.
    """
    knob = KNOBS.get(knob_name)
    if knob is None:
        raise ScenarioError(f"unknown knob {knob_name!r} (known: {', '.join(KNOBS)})")
    low = knob.low if low is None else low
    high = knob.high if high is None else high
    if not 0 <= low < high:
        raise ScenarioError(f"plan bounds must satisfy 0 <= low < high, got {low} and {high}")
    if not knob.integer and low <= 0:
        raise ScenarioError("a bandwidth plan needs a low bound above zero")
    base = Scenario(values=scenario.values, repetitions=repetitions, source=scenario.source)
    out = Path(out_dir)
    answer = PlanResult(knob, target, None)

    def measure(value: float) -> bool:
        typed: Any = int(value) if knob.integer else float(value)
        results = _runs(base, dict.fromkeys(knob.paths, typed), out, workers, executor)
        values = [metric(result, target.metric) for result in results]
        answer.curve[float(typed)] = values
        mean = float(np.mean(values))
        if progress is not None:
            progress(float(typed), mean)
        return mean <= target.limit

    if not measure(high):
        return answer
    if knob.integer:
        good, bad = int(high), int(low) - 1
        if measure(low):
            good = int(low)
        else:
            bad = int(low)
            while good - bad > 1:
                middle = (good + bad) // 2
                if measure(middle):
                    good = middle
                else:
                    bad = middle
        answer.value = float(good)
    else:
        good_rate, bad_rate = high, low
        if measure(low):
            good_rate = low
        else:
            while good_rate / bad_rate > 1 + tolerance:
                middle = math.sqrt(good_rate * bad_rate)
                if measure(middle):
                    good_rate = middle
                else:
                    bad_rate = middle
        answer.value = good_rate
    return answer


def compare(
    scenario: Scenario,
    evaluators: list[str],
    out_dir: str | Path,
    *,
    repetitions: int = 5,
    workers: int | None = None,
    executor: Any = "local",
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, list[Result]]:
    """Run ``scenario`` once per evaluator and repetition, on the same seeds for every
    evaluator; returns the results by evaluator, in repetition order."""
    if not evaluators:
        raise ScenarioError("compare needs at least one evaluator")
    study = Scenario(
        values=scenario.values,
        grid={"scheduler.evaluator": tuple(evaluators)},
        repetitions=repetitions,
        source=scenario.source,
    )
    out = Path(out_dir)
    summary = run_sweep(study, out, executor=executor, workers=workers, progress=progress)
    failures = [line for line in summary.lines.values() if line["status"] != "ok"]
    if failures:
        raise ScenarioError(f"a run failed ({failures[0]['cell']}): {failures[0]['error']}")
    found: dict[str, list[Result]] = {name: [] for name in evaluators}
    for cell in cells(study):
        found[cell.parameters["scheduler.evaluator"]].append(
            Result.read(out / "cells" / f"{cell.name}.json")
        )
    return found
