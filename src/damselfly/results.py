"""The one results schema: what a distribution run measured, simulated or real.

The simulator writes it, and the runtime benchmarks and the testbed will write the same, so
reports read one thing and plot a simulated run beside a real one. Neutral ground: stdlib
and numpy only.

A :class:`Result` serialises to a JSON object (``Result.to_json`` / ``Result.from_json``):

``schema``
    ``"damselfly.result"``; ``version``: :data:`SCHEMA_VERSION` (an int, bumped on any
    incompatible change; readers refuse a version they do not know).
``driver``
    ``"sim"`` or ``"runtime"``. ``scenario``: a free-form JSON object describing the run
    (peers, sizes, evaluator, seed, faults...). ``seed``: int or null.
``content_bytes``
    Bytes each downloading host must receive (all tasks of the workload).
``peers``
    One :class:`PeerRecord` per (host, task) download: ``peer_id``, ``host_id``, ``task``,
    ``kind`` ("normal" | "seed"), times in seconds since the run started
    (``registered_at``, ``first_byte_at``, ``finished_at``, ``crashed_at``; null when it
    did not happen), ``outcome`` ("succeeded" | "failed" | "crashed" | "unfinished"),
    ``bytes_from`` (``{"origin": int, "seed": int, "peer": int}`` bytes received, wasted
    bytes included), ``back_to_source`` (bool), ``labels`` (optional groups a report may
    split peers by: ``{"idc": ..., "rack": ..., "bandwidth": ...}``).
``totals``
    ``bytes_sent``, ``bytes_received`` (conservation: equal), ``origin_bytes``,
    ``seed_bytes``, ``peer_bytes``, ``wasted_bytes`` (corrupt or cancelled pieces),
    ``piece_transfers`` (completed), ``origin_egress_ratio`` (origin bytes / content bytes),
    ``wan_bytes`` (piece bytes that moved between hosts of different IDCs; null when the
    network has one IDC).
``links``
    Utilisation summaries: ``{"count", "mean", "p50", "p90", "max"}`` of per-link mean
    utilisation (bytes carried / capacity / makespan) for ``"host_upload"``,
    ``"host_download"`` and ``"link"`` (topology links that could bind); plus
    ``"busiest"``: up to 20 ``{"name", "mean_utilisation"}``.
``timeline``
    Sampled at a fixed period: ``{"t": [...], "finished_peers": [...],
    "bytes_in_flight_rate": [...] (bytes/s moving at t), "flows_in_flight": [...] (piece
    transfers moving bytes at t), "bytes_received": [...] (cumulative)}``; optionally
    ``"origin_bytes"``, ``"seed_bytes"``, ``"peer_bytes"`` (cumulative bytes received by
    source class), which reports stack over time.
``decisions``
    Counts of the scheduler's decisions by type name (``"Parents"``, ``"BackToSource"``...).
``wall_time_s``
    Wall-clock seconds the run took (simulator: the computation; runtime: the rollout).
``t_min``, ``t_last_finish``, ``efficiency``
    The fluid lower bound ``T_min = max(F/u_s, F/min(d_i), N*F/(u_s + sum u_i))`` (Kumar and
    Ross), the last finish time, and ``T_min / t_last_finish`` (above 1 is a model bug).
``extra``
    Driver-specific figures (e.g. simulator event counts, and ``compiled``: whether the
    scheduling core ran compiled by mypyc, which changes wall times, never results);
    readers may ignore it.

Every float is finite or null in JSON (``NaN``/``inf`` are written as null).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "PeerRecord",
    "Result",
    "SchemaError",
    "fluid_lower_bound",
    "utilisation_summary",
]

SCHEMA_NAME = "damselfly.result"
SCHEMA_VERSION = 1
SOURCE_CLASSES = ("origin", "seed", "peer")
OUTCOMES = ("succeeded", "failed", "crashed", "unfinished")


class SchemaError(ValueError):
    """A results document does not follow this schema (or is of an unknown version)."""


@dataclass(slots=True)
class PeerRecord:
    """One host's download of one task (see the module docstring for the fields)."""

    peer_id: str
    host_id: str
    task: str
    kind: str = "normal"
    registered_at: float | None = None
    first_byte_at: float | None = None
    finished_at: float | None = None
    crashed_at: float | None = None
    outcome: str = "unfinished"
    bytes_from: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCE_CLASSES, 0))
    back_to_source: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from registration to finish, or None."""
        if self.finished_at is None or self.registered_at is None:
            return None
        return self.finished_at - self.registered_at


@dataclass(slots=True)
class Result:
    """A run's measurements; see the module docstring for every field."""

    driver: str
    content_bytes: int
    peers: list[PeerRecord]
    totals: dict[str, float | None]
    links: dict[str, Any]
    timeline: dict[str, list[float]]
    decisions: dict[str, int]
    wall_time_s: float
    t_min: float
    t_last_finish: float | None
    efficiency: float | None
    scenario: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived figures ----------------------------------------------------------------

    def outcomes(self, kind: str | None = None) -> dict[str, int]:
        """Peers (of ``kind``, "normal" or "seed"; None for all) by outcome."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for peer in self.peers:
            if kind is None or peer.kind == kind:
                counts[peer.outcome] = counts.get(peer.outcome, 0) + 1
        return counts

    def finish_times(self, kind: str | None = "normal") -> np.ndarray:
        """Finish times of succeeded peers (of ``kind``; None for all), sorted."""
        times = [
            p.finished_at
            for p in self.peers
            if p.outcome == "succeeded"
            and p.finished_at is not None
            and (kind is None or p.kind == kind)
        ]
        return np.sort(np.asarray(times, dtype=float))

    # -- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (keys in schema order, non-finite floats as None)."""
        body = {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "driver": self.driver,
            "seed": self.seed,
            "scenario": self.scenario,
            "content_bytes": self.content_bytes,
            "t_min": self.t_min,
            "t_last_finish": self.t_last_finish,
            "efficiency": self.efficiency,
            "wall_time_s": self.wall_time_s,
            "totals": self.totals,
            "decisions": dict(sorted(self.decisions.items())),
            "links": self.links,
            "timeline": self.timeline,
            "peers": [asdict(p) for p in self.peers],
            "extra": self.extra,
        }
        finite: dict[str, Any] = _finite(body)
        return finite

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)

    def write(self, path: str | Path) -> None:
        """Write the JSON document to ``path``."""
        Path(path).write_text(self.to_json(indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """Read a document; raises SchemaError on another schema or version."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
            raise SchemaError(f"not a {SCHEMA_NAME} document")
        if data.get("version") != SCHEMA_VERSION:
            raise SchemaError(
                f"{SCHEMA_NAME} version {data.get('version')!r} is not supported "
                f"(this Damselfly reads version {SCHEMA_VERSION})"
            )
        try:
            peers = [PeerRecord(**p) for p in data["peers"]]
            return cls(
                driver=data["driver"],
                content_bytes=int(data["content_bytes"]),
                peers=peers,
                totals=data["totals"],
                links=data["links"],
                timeline=data["timeline"],
                decisions=data["decisions"],
                wall_time_s=data["wall_time_s"],
                t_min=data["t_min"],
                t_last_finish=data["t_last_finish"],
                efficiency=data["efficiency"],
                scenario=data.get("scenario", {}),
                seed=data.get("seed"),
                extra=data.get("extra", {}),
            )
        except (KeyError, TypeError) as error:
            raise SchemaError(f"malformed {SCHEMA_NAME} document: {error}") from None

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, path: str | Path) -> Result:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return _finite(value.item())
    return value


def fluid_lower_bound(
    content_bytes: float, origin_upload: float, uploads: list[float], downloads: list[float]
) -> float:
    """Kumar and Ross: ``max(F/u_s, F/min(d_i), N*F/(u_s + sum u_i))`` in seconds.

    ``uploads`` and ``downloads`` are those of the N hosts that must receive the content.
    """
    if content_bytes <= 0 or not downloads:
        return 0.0
    n = len(downloads)
    return max(
        content_bytes / origin_upload,
        content_bytes / min(downloads),
        n * content_bytes / (origin_upload + sum(uploads)),
    )


def utilisation_summary(values: list[float] | np.ndarray) -> dict[str, float]:
    """count, mean, p50, p90 and max of a list of utilisations (0 for an empty list)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "max": 0.0}
    return {
        "count": int(array.size),
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "max": float(array.max()),
    }
