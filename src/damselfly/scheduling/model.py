"""The core's model: hosts, tasks and peers.

A :class:`Host` is a node that can upload (a normal daemon or a seed peer). A :class:`Task`
is one piece of content (a URL and digest), cut into pieces. A :class:`Peer` is one host's
download of one task: its state, the pieces it holds, its parents (who it downloads from)
and its children (who download from it).

These are plain mutable records owned by the :class:`~damselfly.scheduling.Scheduler`;
drivers read them and change them only through the scheduler's calls. Times are ``now``
values handed in by the driver; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from random import Random

from damselfly.scheduling.bitfield import Bitfield
from damselfly.scheduling.errors import InvalidValueError
from damselfly.scheduling.states import (
    TERMINAL_PEER_STATES,
    HostKind,
    PeerEvent,
    PeerState,
    next_peer_state,
)

__all__ = [
    "DEFAULT_NORMAL_UPLOAD_SLOTS",
    "DEFAULT_SEED_UPLOAD_SLOTS",
    "LOCATION_PARTS",
    "Host",
    "Peer",
    "PeerPool",
    "PieceCosts",
    "Task",
    "intern_location",
]

# Dragonfly caps the children a host serves at once; seeds are provisioned to serve more.
DEFAULT_NORMAL_UPLOAD_SLOTS = 50
DEFAULT_SEED_UPLOAD_SLOTS = 200

# Time constants of the upload-load estimate a host keeps from piece reports: a short one
# for "how busy is it now" and Dragonfly's 60 s window for sustained load.
SHORT_LOAD_WINDOW = 5.0
LONG_LOAD_WINDOW = 60.0


_LOCATION_IDS: dict[str, int] = {"": 0}
LOCATION_PARTS: list[tuple[str, ...]] = [()]


def intern_location(location: str) -> int:
    """A small int standing for ``location`` (case-insensitive); 0 for no location.

    Evaluators compare locations for every candidate parent; comparing and hashing ints is
    far cheaper than splitting strings each time. ``LOCATION_PARTS[id]`` gives the parts.
    """
    key = location.lower()
    known = _LOCATION_IDS.get(key)
    if known is None:
        known = _LOCATION_IDS[key] = len(LOCATION_PARTS)
        LOCATION_PARTS.append(tuple(key.split("|")))
    return known


@dataclass(slots=True, eq=False)
class Host:
    """A node that downloads and uploads.

    ``upload_rate`` is the host's upload capacity in bytes/s; ``upload_slots`` caps the
    children (peer-to-peer edges, across all tasks) it serves at once. The counters are kept
    by the scheduler from piece reports.
    """

    id: str
    upload_rate: float
    kind: HostKind = HostKind.NORMAL
    address: str = ""
    idc: str = ""
    location: str = ""
    upload_slots: int = -1
    announced_at: float = 0.0
    upload_count: int = 0
    upload_failed_count: int = 0
    upload_edges: int = 0
    idc_key: str = field(default="", init=False, repr=False)
    location_key: int = field(default=0, init=False, repr=False)
    recent_upload_short: float = 0.0
    recent_upload_long: float = 0.0
    load_stamp: float = 0.0
    load_cache: tuple[float, int, float] = field(default=(-math.inf, 0, 0.0), repr=False)
    load_version: int = 0
    peers: dict[str, Peer] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidValueError("a host needs a non-empty id")
        if not (self.upload_rate >= 0 and math.isfinite(self.upload_rate)):
            raise InvalidValueError(f"host {self.id}: upload rate must be >= 0")
        if self.upload_slots == -1:
            self.upload_slots = (
                DEFAULT_SEED_UPLOAD_SLOTS
                if self.kind is HostKind.SEED
                else DEFAULT_NORMAL_UPLOAD_SLOTS
            )
        if self.upload_slots < 0:
            raise InvalidValueError(f"host {self.id}: upload slots must be >= 0")
        self.set_network(self.idc, self.location)

    def set_network(self, idc: str, location: str) -> None:
        """Set where the host is; the affinity keys (lower case, split) are kept with it."""
        self.idc = idc
        self.location = location
        self.idc_key = idc.lower()
        self.location_key = intern_location(location)

    @property
    def is_seed(self) -> bool:
        return self.kind is HostKind.SEED

    @property
    def free_upload_slots(self) -> int:
        return self.upload_slots - self.upload_edges

    def record_upload(self, now: float, size: int) -> None:
        """Fold ``size`` bytes uploaded at ``now`` into the decaying load estimates."""
        elapsed = now - self.load_stamp
        if elapsed > 0:
            self.recent_upload_short *= math.exp(-elapsed / SHORT_LOAD_WINDOW)
            self.recent_upload_long *= math.exp(-elapsed / LONG_LOAD_WINDOW)
            self.load_stamp = now
        self.recent_upload_short += size
        self.recent_upload_long += size
        self.load_version += 1

    def estimated_upload_rate(self, now: float) -> float:
        """Bytes/s uploaded lately (an exponentially weighted estimate over ~5 s)."""
        elapsed = max(0.0, now - self.load_stamp)
        return self.recent_upload_short * math.exp(-elapsed / SHORT_LOAD_WINDOW) / SHORT_LOAD_WINDOW

    def recent_upload_bytes(self, now: float) -> float:
        """Bytes uploaded over roughly the last 60 s (exponentially weighted)."""
        elapsed = max(0.0, now - self.load_stamp)
        return self.recent_upload_long * math.exp(-elapsed / LONG_LOAD_WINDOW)


@dataclass(slots=True, eq=False)
class Task:
    """One piece of content: where it comes from and how it is cut.

    ``content_length`` is None until someone who reached the origin reports it; until then
    ``piece_count`` is 0 and no peer can be given parents.
    """

    id: str
    url: str
    digest: str = ""
    content_length: int | None = None
    piece_length: int = 0
    piece_count: int = 0
    piece_digests: list[str | None] = field(default_factory=list, repr=False)
    created_at: float = 0.0
    updated_at: float = 0.0
    seed_triggered: bool = False
    peers: dict[str, Peer] = field(default_factory=dict, repr=False)
    back_to_source_peers: set[str] = field(default_factory=set, repr=False)
    waiting: set[str] = field(default_factory=set, repr=False)
    parent_pool: PeerPool = field(default_factory=lambda: PeerPool(), repr=False)
    # Every peer of the task, for Dragonfly's way of sampling candidates (see
    # SchedulerConfig.sample_all_peers).
    members: PeerPool = field(default_factory=lambda: PeerPool(), repr=False)

    @property
    def has_metadata(self) -> bool:
        return self.content_length is not None


@dataclass(slots=True, eq=False)
class Peer:
    """One host's download of one task."""

    id: str
    task: Task
    host: Host
    created_at: float
    state: PeerState = PeerState.PENDING
    finished: Bitfield = field(default_factory=lambda: Bitfield(0))
    parents: dict[str, Peer] = field(default_factory=dict, repr=False)
    children: dict[str, Peer] = field(default_factory=dict, repr=False)
    blocked: set[str] = field(default_factory=set, repr=False)
    updated_at: float = 0.0
    first_piece_at: float | None = None
    finished_at: float | None = None
    need_back_to_source: bool = False
    disable_back_to_source: bool = False
    schedule_attempts: int = 0
    retry_at: float = math.inf
    # Position in the task's topological order: below every child's (kept by the
    # Scheduler while its parent graph is acyclic; see Scheduler._ahead_of).
    order: int = 0
    piece_costs: PieceCosts = field(default_factory=lambda: PieceCosts(), repr=False)
    # The Scheduler's own bookkeeping: ``parents``' values in a list, in the same order
    # (cheaper to walk; kept in place, so an edge allocates nothing the collector tracks),
    # and what its cycle walks mark (see Scheduler._ahead_of).
    parent_peers: list[Peer] = field(default_factory=list, init=False, repr=False)
    walk_stamp: int = field(default=0, init=False, repr=False)
    walk_via: Peer | None = field(default=None, init=False, repr=False)
    memo_stamp: int = field(default=0, init=False, repr=False)
    memo_below: bool = field(default=False, init=False, repr=False)

    def apply(self, event: PeerEvent) -> PeerState:
        """Move the state machine; raises InvalidTransitionError and changes nothing if illegal."""
        self.state = next_peer_state(self.state, event)
        return self.state

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_PEER_STATES

    @property
    def can_serve(self) -> bool:
        """Whether this peer may be offered as a parent (Dragonfly's filter).

        It must be downloading or done; a normal host must also be fed already (it has a
        parent, or it is back to source, or it succeeded), so that it will have pieces.
        """
        state = self.state
        if state is PeerState.BACK_TO_SOURCE or state is PeerState.SUCCEEDED:
            return True
        if state is PeerState.RUNNING:
            return self.host.kind is HostKind.SEED or bool(self.parents)
        return False


class PieceCosts:
    """The durations of every piece a peer downloaded, as running sums for O(1) statistics.

    Like Dragonfly, which keeps all of a peer's piece costs, nothing is forgotten: the
    bad-parent rule compares the last cost with all the ones before it.
    """

    __slots__ = ("count", "last", "total", "total_squares")

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.total = 0.0
        self.total_squares = 0.0

    def add(self, cost: float) -> None:
        self.count += 1
        self.last = cost
        self.total += cost
        self.total_squares += cost * cost

    def __len__(self) -> int:
        return self.count


class PeerPool:
    """An indexable set of peers with O(1) add, remove and random sampling."""

    __slots__ = ("_index", "_items")

    def __init__(self) -> None:
        self._items: list[Peer] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._index

    def add(self, peer: Peer) -> None:
        if peer.id not in self._index:
            self._index[peer.id] = len(self._items)
            self._items.append(peer)

    def discard(self, peer_id: str) -> None:
        position = self._index.pop(peer_id, None)
        if position is None:
            return
        last = self._items.pop()
        if position < len(self._items):
            self._items[position] = last
            self._index[last.id] = position

    def sample(self, rng: Random, k: int) -> list[Peer]:
        """Up to ``k`` distinct peers, uniformly at random."""
        items = self._items
        size = len(items)
        if size <= k:
            return list(items)
        if size < 4 * k:
            return rng.sample(items, k)
        # Rejection sampling: cheaper than random.sample when k is much smaller than size.
        chosen: dict[int, None] = {}
        draw = rng.random
        while len(chosen) < k:
            chosen[int(draw() * size)] = None
        return [items[position] for position in chosen]
