"""What the scheduler decides: frozen, keyword-only records that name the peers they concern.

The scheduler never acts; it answers every call with a list of these, and the driver (a
simulated host, or the runtime's WebSocket stream to a daemon) carries each one out.
Drivers dispatch on the type.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlreadyComplete",
    "BackToSource",
    "Decision",
    "Fail",
    "HostEvicted",
    "Parents",
    "PeerEvicted",
    "Retry",
    "TriggerSeed",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Parents:
    """Download ``task_id`` from these parents (the complete new set, best first)."""

    peer_id: str
    task_id: str
    parent_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class BackToSource:
    """Fetch ``task_id`` from the origin yourself."""

    peer_id: str
    task_id: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TriggerSeed:
    """Seed host ``host_id`` should download ``task_id`` from the origin and register for it."""

    host_id: str
    task_id: str
    url: str
    digest: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Retry:
    """No parent could be found for ``peer_id`` yet; the scheduler tries again at ``at``."""

    peer_id: str
    task_id: str
    at: float
    attempt: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Fail:
    """The download of ``peer_id`` cannot succeed; give up."""

    peer_id: str
    task_id: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerEvicted:
    """The scheduler forgot ``peer_id`` (garbage collection or its host went away)."""

    peer_id: str
    task_id: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class HostEvicted:
    """The scheduler forgot ``host_id``: it stopped announcing itself."""

    host_id: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AlreadyComplete:
    """Nothing to download: the content of ``task_id`` is empty; the peer has succeeded."""

    peer_id: str
    task_id: str


Decision = (
    Parents
    | BackToSource
    | TriggerSeed
    | Retry
    | Fail
    | PeerEvicted
    | HostEvicted
    | AlreadyComplete
)
