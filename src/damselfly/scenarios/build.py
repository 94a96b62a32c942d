"""From a validated scenario to the simulator's inputs: a topology, a workload, a scheduler
configuration, simulator options and a seed.

Defaults when a scenario leaves a key out: hosts of 10 Gbit/s up and down, an origin of
10 Gbit/s, seeds of 25 Gbit/s, latency 0.1 ms per access link, all hosts at t = 0, no
faults, the ``default`` evaluator, seed 1. A scenario's randomness (bandwidth classes,
which hosts crash) comes from its run seed, so the same file and seed give the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from damselfly import topologies
from damselfly.scenarios.spec import Scenario, ScenarioError
from damselfly.scheduling import PiecePolicy, PlannerConfig, SchedulerConfig
from damselfly.sim.engine import SimOptions
from damselfly.sim.workload import Arrivals, Content, Faults, Workload

__all__ = ["SimInputs", "build"]

DEFAULT_HOST_RATE = 1.25e9  # 10 Gbit/s
DEFAULT_ORIGIN_RATE = 1.25e9
DEFAULT_SEED_RATE = 3.125e9  # 25 Gbit/s
DEFAULT_LATENCY = 1e-4
DEFAULT_SEED = 1

_CONFIG_KEYS = frozenset(SchedulerConfig.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class SimInputs:
    """Everything :func:`damselfly.sim.simulate` takes, plus a description for results."""

    topology: Any
    workload: Workload
    scheduler_config: SchedulerConfig
    options: SimOptions
    seed: int
    description: dict[str, Any]


def build(scenario: Scenario, *, seed: int | None = None) -> SimInputs:
    """The simulator's inputs for ``scenario`` (``seed`` overrides its run seed).

    Raises ScenarioError (one line) when the pieces do not fit together, for example a
    topology file that fails validation or names no seed hosts when seeds are asked for.
    """
    run_seed = seed if seed is not None else scenario.get("run", "seed", DEFAULT_SEED)
    rng = random.Random(run_seed)
    graph = _topology(scenario, rng)
    workload = _workload(scenario, graph, rng)
    config = SchedulerConfig(
        **{k: v for k, v in scenario.values.get("scheduler", {}).items() if k in _CONFIG_KEYS}
    )
    scheduler = scenario.values.get("scheduler", {})
    planner_keys = {k: scheduler[k] for k in ("max_in_flight", "max_per_parent") if k in scheduler}
    if "piece_policy" in scheduler:
        planner_keys["policy"] = PiecePolicy(scheduler["piece_policy"])
    planner = PlannerConfig(**planner_keys)
    options = SimOptions(
        planner=planner,
        evaluator=scheduler.get("evaluator", "default"),
        evaluator_params=_evaluator_params(scheduler.get("evaluator", "default"), graph),
        rerate=scenario.get("run", "rerate", "local"),
        quantum=scenario.get("run", "quantum", 0.0),
        **scenario.values.get("daemon", {}),
    )
    hosts = [n for n, d in graph.nodes(data=True) if d.get("role") == "host"]
    description = {
        "name": scenario.name,
        "peers": sum(1 for n in hosts if graph.nodes[n].get("kind") == "normal"),
        "seeds": sum(1 for n in hosts if graph.nodes[n].get("kind") == "seed"),
        "content_bytes": workload.content_bytes,
        "evaluator": options.evaluator,
        "topology": scenario.get(
            "topology", "generator", "file" if scenario.get("topology", "file") else "flat"
        ),
        "arrivals": workload.arrivals.kind,
        "seed": run_seed,
    }
    return SimInputs(graph, workload, config, options, run_seed, description)


def _evaluator_params(name: str, graph: Any) -> dict[str, Any] | None:
    if name != "topology":
        return None
    return {"distance": topologies.hop_distance(graph)}


# -- topology ------------------------------------------------------------------------------


def _topology(scenario: Scenario, rng: random.Random) -> Any:
    spec = dict(scenario.values.get("topology", {}))
    hosts = scenario.values.get("hosts", {})
    seeds = scenario.values.get("seeds", {})
    origin = scenario.values.get("origin", {})
    if "file" in spec:
        path = Path(spec["file"])
        if not path.is_absolute() and scenario.source is not None:
            path = scenario.source.parent / path
        try:
            graph = topologies.load(path)
        except (OSError, ValueError) as error:
            raise ScenarioError(
                f"{scenario.source or '<scenario>'}: topology.file: {error}"
            ) from None
    else:
        graph = _generate(spec, hosts, seeds, origin)
    if "mix" in hosts:
        topologies.apply_bandwidth_mix(graph, hosts["mix"], rng)
    _set_seed_hosts(graph, seeds)
    _set_origin(graph, origin)
    return graph


def _generate(
    spec: dict[str, Any], hosts: dict[str, Any], seeds: dict[str, Any], origin: dict[str, Any]
) -> Any:
    generator = spec.pop("generator", "flat")
    common = {
        "upload_rate": hosts.get("upload", DEFAULT_HOST_RATE),
        "download_rate": hosts.get("download", hosts.get("upload", DEFAULT_HOST_RATE)),
        "origin_upload_rate": origin.get("upload", DEFAULT_ORIGIN_RATE),
        "seeds": seeds.get("count", 0),
        "seed_upload_rate": seeds.get("upload", DEFAULT_SEED_RATE),
    }
    if "upload_slots" in hosts:
        common["upload_slots"] = hosts["upload_slots"]
    count = hosts["count"]
    try:
        return topologies.generate(generator, count, **common, **spec)
    except TypeError as error:
        raise ScenarioError(
            f"topology: generator {generator!r} does not take that: {error}"
        ) from None
    except ValueError as error:
        raise ScenarioError(f"topology: {error}") from None


def _set_seed_hosts(graph: Any, seeds: dict[str, Any]) -> None:
    nodes = [
        n for n, d in graph.nodes(data=True) if d.get("role") == "host" and d.get("kind") == "seed"
    ]
    if seeds.get("count", len(nodes)) != len(nodes):
        raise ScenarioError(
            f"seeds.count: the topology has {len(nodes)} seed hosts, the scenario asks for "
            f"{seeds['count']}"
        )
    for node in nodes:
        data = graph.nodes[node]
        data["upload_rate"] = float(
            seeds.get("upload", max(data["upload_rate"], DEFAULT_SEED_RATE))
        )
        data["download_rate"] = float(
            seeds.get("download", max(data["download_rate"], DEFAULT_SEED_RATE))
        )
        if "upload_slots" in seeds:
            data["upload_slots"] = seeds["upload_slots"]
        _widen_access_links(graph, node, max(data["upload_rate"], data["download_rate"]))


def _set_origin(graph: Any, origin: dict[str, Any]) -> None:
    if "origin" not in graph:
        raise ScenarioError("topology: no node named 'origin'")
    if "upload" in origin:
        graph.nodes["origin"]["upload_rate"] = float(origin["upload"])
        _widen_access_links(graph, "origin", float(origin["upload"]))
    if "latency" in origin:
        for neighbour in graph.neighbors("origin"):
            graph.edges["origin", neighbour]["latency"] = float(origin["latency"])


def _widen_access_links(graph: nx.Graph, node: Any, rate: float) -> None:
    """A host's own links carry at least its NIC rate (they belong to it alone)."""
    for neighbour in graph.neighbors(node):
        edge = graph.edges[node, neighbour]
        edge["capacity"] = max(float(edge["capacity"]), rate)


# -- workload ------------------------------------------------------------------------------


def _workload(scenario: Scenario, graph: Any, rng: random.Random) -> Workload:
    content = scenario.values["content"]
    piece_length = content.get("piece_length")
    if "size" in content:
        lengths = [content["size"]]
        names = ["content.bin"]
    elif "files" in content:
        lengths = content["files"]
        names = [f"file-{i}.bin" for i in range(len(lengths))]
    else:
        images = content.get("images", 1)
        lengths = [length for _ in range(images) for length in content["layers"]]
        names = [
            f"image-{image}/blobs/layer-{layer}"
            for image in range(images)
            for layer in range(len(content["layers"]))
        ]
    contents = tuple(
        Content(url=f"https://origin.example/{name}", length=length, piece_length=piece_length)
        for name, length in zip(names, lengths, strict=True)
    )
    arrivals_spec = scenario.values.get("arrivals", {})
    arrivals = Arrivals(
        kind=arrivals_spec.get("kind", "all"),
        start=arrivals_spec.get("start", 0.0),
        duration=arrivals_spec.get("duration", 0.0),
        rate=arrivals_spec.get("rate", 0.0),
    )
    normal = sorted(
        str(n)
        for n, d in graph.nodes(data=True)
        if d.get("role") == "host" and d.get("kind") == "normal"
    )
    faults = _faults(scenario.values.get("faults", {}), normal, rng)
    assignment = None
    if content.get("images", 1) > 1:
        # Each host pulls one image, chosen at random: CI runners build different things.
        per_image = len(content["layers"])
        assignment = {}
        for host in normal:
            image = rng.randrange(content["images"])
            chosen = contents[image * per_image : (image + 1) * per_image]
            assignment[host] = tuple(c.url for c in chosen)
    extra: dict[str, Any] = {} if assignment is None else {"assignment": assignment}
    try:
        return Workload(
            contents=contents,
            arrivals=arrivals,
            faults=faults,
            max_time=scenario.get("run", "time_cap"),
            **extra,
        )
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"{scenario.source or '<scenario>'}: {error}") from None


def _faults(spec: dict[str, Any], normal: list[str], rng: random.Random) -> Faults:
    crash_at: dict[str, float] = {}
    if "crash_fraction" in spec:
        victims = rng.sample(normal, round(spec["crash_fraction"] * len(normal)))
        for host in victims:
            if "crash_window" in spec:
                start, end = spec["crash_window"]
                crash_at[host] = rng.uniform(start, end)
            else:
                crash_at[host] = spec["crash_at"]
    return Faults(
        crash_at=crash_at,
        crash_rate=spec.get("crash_rate", 0.0),
        slow_fraction=spec.get("slow_fraction", 0.0),
        slow_factor=spec.get("slow_factor", 0.1),
        seed_crash_at=spec.get("seed_crash_at"),
        scheduler_outage=spec.get("scheduler_outage"),
        corrupt_fraction=spec.get("corrupt_fraction", 0.0),
    )
