"""What a planner reads first: headline figures, the scenario in words, and warnings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from damselfly.reports.figures import download_times
from damselfly.reports.stats import percentile
from damselfly.results import Result
from damselfly.units import format_duration, format_rate, format_size

__all__ = ["SATURATED", "Headline", "describe_scenario", "headline", "warnings"]

# A link busy this much of the whole run, on average, was a bottleneck.
SATURATED = 0.9


@dataclass(frozen=True, slots=True)
class Headline:
    """The figures at the top of every report. Times in seconds, sizes in bytes."""

    peers: int
    succeeded: int
    failed: int
    crashed: int
    unfinished: int
    p50: float
    p95: float
    p100: float
    origin_bytes: float
    origin_egress_ratio: float
    wan_bytes: float | None
    efficiency: float | None
    t_min: float
    t_last_finish: float | None
    wall_time_s: float

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for tables."""

        def seconds(value: float | None) -> str:
            return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f} s"

        return [
            ("peers", f"{self.peers}"),
            ("succeeded", f"{self.succeeded}"),
            (
                "failed / crashed / unfinished",
                f"{self.failed} / {self.crashed} / {self.unfinished}",
            ),
            ("p50 download time", seconds(self.p50)),
            ("p95 download time", seconds(self.p95)),
            ("p100 download time", seconds(self.p100)),
            ("last finish", seconds(self.t_last_finish)),
            ("fluid lower bound", seconds(self.t_min)),
            (
                "efficiency (bound / last finish)",
                "n/a" if self.efficiency is None else f"{self.efficiency:.3f}",
            ),
            (
                "origin egress",
                f"{format_size(self.origin_bytes)} ({self.origin_egress_ratio:.3g} x content)",
            ),
            (
                "bytes across WAN links",
                "n/a (no WAN in this run)"
                if self.wan_bytes is None
                else format_size(self.wan_bytes),
            ),
            ("wall time of the run", seconds(self.wall_time_s)),
        ]


def headline(result: Result) -> Headline:
    """The headline figures of ``result``."""
    times = download_times(result.peers)
    outcomes = result.outcomes()
    totals = result.totals
    wan = totals.get("wan_bytes")
    return Headline(
        peers=sum(1 for peer in result.peers if peer.kind == "normal"),
        succeeded=sum(1 for p in result.peers if p.kind == "normal" and p.outcome == "succeeded"),
        failed=outcomes.get("failed", 0),
        crashed=outcomes.get("crashed", 0),
        unfinished=outcomes.get("unfinished", 0),
        p50=percentile(times, 50),
        p95=percentile(times, 95),
        p100=percentile(times, 100),
        origin_bytes=float(totals.get("origin_bytes", 0.0)),
        origin_egress_ratio=float(totals.get("origin_egress_ratio", math.nan)),
        wan_bytes=None if wan is None else float(wan),
        efficiency=result.efficiency,
        t_min=result.t_min,
        t_last_finish=result.t_last_finish,
        wall_time_s=result.wall_time_s,
    )


_SCENARIO_WORDS = {
    "peers": ("peers", str),
    "seeds": ("seed peers", str),
    "content_bytes": ("content", format_size),
    "size": ("content", lambda v: format_size(v) if isinstance(v, int | float) else str(v)),
    "origin_upload_rate": ("origin upload", format_rate),
    "host_upload_rate": ("host upload", format_rate),
    "evaluator": ("evaluator", str),
    "topology": ("topology", str),
    "arrivals": ("arrivals", str),
}


def describe_scenario(result: Result) -> str:
    """The scenario in one or two plain sentences."""
    scenario: dict[str, Any] = dict(result.scenario)
    name = scenario.pop("name", None)
    parts = []
    for key, (label, render) in _SCENARIO_WORDS.items():
        if key in scenario:
            value = scenario.pop(key)
            try:
                parts.append(f"{label} {render(value)}")
            except (TypeError, ValueError):
                parts.append(f"{label} {value}")
    simple = {
        key: value
        for key, value in scenario.items()
        if (isinstance(value, str | int | float | bool) and not isinstance(value, bool))
        or value is True
    }
    parts.extend(
        f"{key.replace('_', ' ')} {value:.4g}"
        if isinstance(value, float)
        else f"{key.replace('_', ' ')} {value}"
        for key, value in sorted(simple.items())
    )
    driver = "A simulated" if result.driver == "sim" else "A real"
    lead = f"{driver} run" + (f" of '{name}'" if name else "")
    seed = f" (seed {result.seed})" if result.seed is not None else ""
    if not parts:
        return f"{lead}{seed}."
    return f"{lead}{seed}: " + ", ".join(parts) + "."


def warnings(result: Result) -> list[str]:
    """What a planner should not miss: saturated origin or WAN, peers that never finished."""
    found: list[str] = []
    summary = headline(result)
    missing = summary.peers - summary.succeeded
    if missing:
        found.append(
            f"{missing} of {summary.peers} peers never finished ({summary.failed} failed, "
            f"{summary.crashed} crashed, {summary.unfinished} unfinished)."
        )
    for entry in result.links.get("busiest", []):
        name = str(entry.get("name", ""))
        utilisation = float(entry.get("mean_utilisation", 0.0))
        if utilisation < SATURATED:
            continue
        if "origin" in name:
            found.append(
                f"The origin's uplink was {utilisation:.0%} busy over the run: it is the "
                "bottleneck; add seed peers or origin bandwidth."
            )
        elif "wan" in name.lower():
            found.append(f"WAN link {name} was {utilisation:.0%} busy over the run.")
    if summary.origin_egress_ratio > 1.5 and math.isfinite(summary.origin_egress_ratio):
        found.append(
            f"The origin sent {summary.origin_egress_ratio:.1f} copies of the content; "
            "peer-to-peer is not absorbing the load."
        )
    if result.efficiency is not None and result.efficiency > 1.0 + 1e-9:
        found.append(
            f"Efficiency {result.efficiency:.3f} is above 1: faster than physics allows; "
            "this is a bug in the network model."
        )
    if summary.t_last_finish is not None and summary.t_min > 0:
        ratio = summary.t_last_finish / summary.t_min
        if ratio > 3:
            found.append(
                f"The last peer finished {ratio:.1f}x later than the fluid bound "
                f"({format_duration(summary.t_last_finish)} against "
                f"{format_duration(summary.t_min)})."
            )
    return found
