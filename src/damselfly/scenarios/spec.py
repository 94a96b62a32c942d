"""The scenario file: a what-if study in one TOML file, read and checked in one place.

A scenario has these sections (every key optional unless marked; units are strings such
as "2GiB", "10Gbit/s", "5ms", parsed by :mod:`damselfly.units`)::

    [scenario]   name, description
    [topology]   generator = "flat" | "leaf-spine" | "multi-idc" | "edge", its parameters,
                 or file = "path.graphml" / "path.json" (relative to the scenario file)
    [hosts]      count (required unless a file), upload, download, upload_slots,
                 mix = { "10Gbit/s" = 0.7, "1Gbit/s" = 0.3 }  (bandwidth classes)
    [origin]     upload, latency
    [seeds]      count, upload, download, upload_slots
    [content]    size (one file) | files = [sizes] | layers = [sizes] (one image) |
                 images = N with layers (N images; each host pulls one), piece_length
    [arrivals]   kind = "all" | "ramp" | "poisson", start, duration, rate (per second)
    [faults]     crash_fraction + crash_at (or crash_window), crash_rate, slow_fraction,
                 slow_factor, seed_crash_at, scheduler_outage = [start, end],
                 corrupt_fraction
    [scheduler]  evaluator, any SchedulerConfig field, max_in_flight, max_per_parent,
                 piece_policy
    [daemon]     what every simulated daemon does (see damselfly.sim.SimOptions):
                 super_seeding, slow_window, slow_fraction, stall_timeout,
                 source_timeout, report_interval, upload_concurrency
    [run]        seed, time_cap, rerate, quantum
    [sweep]      "section.key" = [values...] (a grid), repetitions = N;
                 shorthands: seeds = [...] (seed peer counts), evaluator = [...]

An unknown section or key, a wrong type, a negative size or an unknown evaluator raises
:class:`ScenarioError` with one line: the file, the key path and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damselfly.scheduling import PiecePolicy, SchedulerConfig, evaluator_names
from damselfly.units import UnitError, parse_duration, parse_rate, parse_size

__all__ = ["SECTIONS", "Scenario", "ScenarioError", "parse_scenario", "read_scenario"]

GENERATORS = ("flat", "leaf-spine", "multi-idc", "edge")


class ScenarioError(ValueError):
    """A scenario file that cannot be read; the message is one line naming file and key."""


class _Invalid(Exception):
    """Raised by a key parser: the text says what was expected."""


# -- key parsers -----------------------------------------------------------------------


def _units(parser: Callable[[Any], Any], example: str) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _Invalid(f"a string such as {example!r}")
        try:
            return parser(value)
        except UnitError as error:
            raise _Invalid(str(error)) from None

    return parse


size = _units(parse_size, "2GiB")
rate = _units(parse_rate, "10Gbit/s")
duration = _units(parse_duration, "5ms")


def positive_duration(value: Any) -> float:
    parsed = duration(value)
    if not parsed > 0:
        raise _Invalid(f"a duration above zero, such as '1s', not {value!r}")
    return float(parsed)


def positive_rate(value: Any) -> float:
    parsed = rate(value)
    if not parsed > 0:
        raise _Invalid(f"a rate above zero, such as '10Gbit/s', not {value!r}")
    return float(parsed)


def integer(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"a whole number >= {minimum}, not {value!r}")
        if value < minimum:
            raise _Invalid(f"a whole number >= {minimum}, not {value}")
        return value

    return parse


def number(minimum: float = 0.0, *, strictly: bool = False) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _Invalid(f"a number, not {value!r}")
        if value < minimum or (strictly and value == minimum):
            relation = ">" if strictly else ">="
            raise _Invalid(f"a number {relation} {minimum}, not {value}")
        return float(value)

    return parse


def fraction(value: Any) -> float:
    parsed = number()(value)
    if parsed > 1:
        raise _Invalid(f"a fraction between 0 and 1, not {value}")
    return parsed


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"a string, not {value!r}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"true or false, not {value!r}")
    return value


def choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            raise _Invalid(f"one of {', '.join(options)}, not {value!r}")
        return str(value)

    return parse


def evaluator(value: Any) -> str:
    names = evaluator_names()
    if value not in names:
        raise _Invalid(f"an evaluator name ({', '.join(names)}), not {value!r}")
    return str(value)


def sizes(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"a non-empty list of sizes such as ['300MiB', '200MiB'], not {value!r}")
    return [size(item) for item in value]


def window(value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise _Invalid(f"[start, end] such as ['10s', '40s'], not {value!r}")
    start, end = duration(value[0]), duration(value[1])
    if end < start:
        raise _Invalid(f"an end after the start, not {value!r}")
    return start, end


def bandwidth_mix(value: Any) -> dict[float, float]:
    if not isinstance(value, dict) or not value:
        raise _Invalid('a table such as { "10Gbit/s" = 0.7, "1Gbit/s" = 0.3 }')
    mix = {positive_rate(key): fraction(share) for key, share in value.items()}
    if not math.isclose(sum(mix.values()), 1.0, abs_tol=1e-6):
        raise _Invalid(f"shares that add up to 1, not {sum(mix.values()):.4g}")
    return mix


def generator(value: Any) -> str:
    return choice(*GENERATORS)(value)


_CONFIG_PARSERS: dict[str, Callable[[Any], Any]] = {
    "filter_parent_limit": integer(1),
    "candidate_parent_limit": integer(1),
    "retry_limit": integer(0),
    "retry_back_to_source_limit": integer(0),
    "retry_interval": duration,
    "back_to_source_limit": integer(0),
    "enable_peer_to_peer": boolean,
    "peer_idle_timeout": duration,
    "peer_ttl": duration,
    "host_ttl": duration,
    "task_ttl": duration,
    "gc_interval": duration,
    "seed_ring_replicas": integer(1),
    "wake_on_new_parent": boolean,
    "acyclic": boolean,
    "sample_all_peers": boolean,
}
assert set(_CONFIG_PARSERS) == set(SchedulerConfig.__dataclass_fields__), "keep in step"

SECTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "scenario": {"name": text, "description": text},
    "topology": {
        "generator": generator,
        "file": text,
        "latency": duration,
        "hosts_per_rack": integer(1),
        "spines": integer(1),
        "oversubscription": number(1.0),
        "fabric_latency": duration,
        "idcs": integer(1),
        "wan_capacity": positive_rate,
        "wan_latency": duration,
        "sites": integer(1),
        "site_uplink": positive_rate,
        "site_latency": duration,
        "central_hosts": integer(0),
        "wan": choice("mesh", "star"),
        "origin_idc": integer(0),
        "idc": text,
    },
    "hosts": {
        "count": integer(1),
        "upload": positive_rate,
        "download": positive_rate,
        "upload_slots": integer(1),
        "mix": bandwidth_mix,
    },
    "origin": {"upload": positive_rate, "latency": duration},
    "seeds": {
        "count": integer(0),
        "upload": positive_rate,
        "download": positive_rate,
        "upload_slots": integer(1),
    },
    "content": {
        "size": size,
        "files": sizes,
        "layers": sizes,
        "images": integer(1),
        "piece_length": size,
    },
    "arrivals": {
        "kind": choice("all", "ramp", "poisson"),
        "start": duration,
        "duration": duration,
        "rate": number(0.0, strictly=True),
    },
    "faults": {
        "crash_fraction": fraction,
        "crash_at": duration,
        "crash_window": window,
        "crash_rate": number(),
        "slow_fraction": fraction,
        "slow_factor": number(0.0, strictly=True),
        "seed_crash_at": duration,
        "scheduler_outage": window,
        "corrupt_fraction": fraction,
    },
    "scheduler": {
        "evaluator": evaluator,
        "max_in_flight": integer(1),
        "max_per_parent": integer(1),
        "piece_policy": choice(*(policy.value for policy in PiecePolicy)),
        **_CONFIG_PARSERS,
    },
    "daemon": {
        "super_seeding": boolean,
        "slow_window": positive_duration,
        "slow_fraction": fraction,
        "stall_timeout": duration,
        "source_timeout": duration,
        "report_interval": duration,
        "upload_concurrency": integer(1),
    },
    "run": {
        "seed": integer(0),
        "time_cap": duration,
        "rerate": choice("local", "component"),
        "quantum": duration,
    },
}

SWEEP_SHORTHANDS = {"seeds": "seeds.count", "evaluator": "scheduler.evaluator"}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario: typed values by section, plus the sweep grid.

    ``values[section][key]`` holds parsed values (bytes, seconds, bytes/s). ``source`` is
    the file it came from (None for text), which relative topology files resolve against.
    """

    values: Mapping[str, Mapping[str, Any]]
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    repetitions: int = 1
    source: Path | None = None

    @property
    def name(self) -> str:
        fallback = self.source.stem if self.source else "scenario"
        return str(self.values.get("scenario", {}).get("name", fallback))

    @property
    def description(self) -> str:
        return str(self.values.get("scenario", {}).get("description", ""))

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.values.get(section, {}).get(key, default)

    def with_values(self, overrides: Mapping[str, Any]) -> Scenario:
        """A copy with ``{"section.key": parsed value}`` replaced, and no grid."""
        values = {section: dict(keys) for section, keys in self.values.items()}
        for path, value in overrides.items():
            section, key = path.split(".", 1)
            values.setdefault(section, {})[key] = value
        return Scenario(values=values, grid={}, repetitions=1, source=self.source)


def read_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError (one line) on any problem."""
    path = Path(path)
    try:
        text_ = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{path}: cannot read: {error}") from None
    return parse_scenario(text_, source=path)


def parse_scenario(document: str, *, source: Path | None = None) -> Scenario:
    """Validate TOML ``document``; ``source`` names it in errors."""
    where = str(source) if source else "<scenario>"
    try:
        raw = tomllib.loads(document)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{where}: not valid TOML: {error}") from None
    values: dict[str, dict[str, Any]] = {}
    grid: dict[str, tuple[Any, ...]] = {}
    repetitions = 1
    for section, body in raw.items():
        if section == "sweep":
            grid, repetitions = _parse_sweep(where, body)
            continue
        keys = SECTIONS.get(section)
        if keys is None:
            known = ", ".join([*SECTIONS, "sweep"])
            raise ScenarioError(f"{where}: [{section}]: unknown section (known: {known})")
        if not isinstance(body, dict):
            raise ScenarioError(f"{where}: {section}: expected a [{section}] table")
        values[section] = {}
        for key, value in body.items():
            parser = keys.get(key)
            if parser is None:
                raise ScenarioError(
                    f"{where}: {section}.{key}: unknown key (known: {', '.join(sorted(keys))})"
                )
            try:
                values[section][key] = parser(value)
            except _Invalid as error:
                raise ScenarioError(f"{where}: {section}.{key}: expected {error}") from None
    scenario = Scenario(values=values, grid=grid, repetitions=repetitions, source=source)
    _check_whole(where, scenario)
    return scenario


def _parse_sweep(where: str, body: Any) -> tuple[dict[str, tuple[Any, ...]], int]:
    if not isinstance(body, dict):
        raise ScenarioError(f"{where}: sweep: expected a [sweep] table")
    grid: dict[str, tuple[Any, ...]] = {}
    repetitions = 1
    for key, values in body.items():
        if key == "repetitions":
            try:
                repetitions = integer(1)(values)
            except _Invalid as error:
                raise ScenarioError(f"{where}: sweep.repetitions: expected {error}") from None
            continue
        path = SWEEP_SHORTHANDS.get(key, key)
        section, _, name = path.partition(".")
        parser = SECTIONS.get(section, {}).get(name)
        if parser is None:
            raise ScenarioError(
                f"{where}: sweep.{key}: expected 'section.key' naming a scenario key "
                f"(or {', '.join(SWEEP_SHORTHANDS)}), got {key!r}"
            )
        if not isinstance(values, list) or not values:
            raise ScenarioError(f"{where}: sweep.{key}: expected a non-empty list of values")
        parsed = []
        for value in values:
            try:
                parsed.append(parser(value))
            except _Invalid as error:
                raise ScenarioError(f"{where}: sweep.{key}: expected {error}") from None
        grid[path] = tuple(parsed)
    return grid, repetitions


def _check_whole(where: str, scenario: Scenario) -> None:
    """Rules that span keys."""
    topology = scenario.values.get("topology", {})
    if "file" in topology and len(topology) > 1:
        extra = sorted(set(topology) - {"file"})
        raise ScenarioError(
            f"{where}: topology.{extra[0]}: a topology file takes no generator parameters"
        )
    if "file" not in topology and "count" not in scenario.values.get("hosts", {}):
        raise ScenarioError(f"{where}: hosts.count: expected the number of hosts (required)")
    content = scenario.values.get("content", {})
    shapes = [key for key in ("size", "files", "layers") if key in content]
    if len(shapes) != 1:
        raise ScenarioError(
            f"{where}: content: expected exactly one of size, files or layers, got "
            f"{', '.join(shapes) or 'none'}"
        )
    if "images" in content and "layers" not in content:
        raise ScenarioError(f"{where}: content.images: expected layers to go with images")
    faults = scenario.values.get("faults", {})
    if "crash_fraction" in faults and not ({"crash_at", "crash_window"} & set(faults)):
        raise ScenarioError(f"{where}: faults.crash_fraction: expected crash_at or crash_window")
    arrivals = scenario.values.get("arrivals", {})
    if arrivals.get("kind") == "poisson" and "rate" not in arrivals:
        raise ScenarioError(f"{where}: arrivals.rate: expected a rate for poisson arrivals")
