"""The simulation: hosts that drive the scheduling core the way runtime daemons do.

One :class:`Simulation` holds a simpy environment, the :class:`~damselfly.sim.network.FlowNetwork`
built from the topology, one :class:`~damselfly.scheduling.Scheduler`, the origin, and a
simulated host per host node. Each simulated peer (a host's download of one task) does what
the runtime daemon does, and nothing more:

- it registers with the scheduler and carries out the decisions it gets back (``Parents``,
  ``BackToSource``, ``TriggerSeed`` for seed hosts, ``Retry``, ``Fail``...);
- it asks its :class:`~damselfly.scheduling.PiecePlanner` for the next (piece, parent)
  requests, and each request becomes a flow in the network;
- it verifies every piece (a corrupt one is reported with ``piece_failed``, which blocks the
  parent, and fetched again elsewhere), reports finished pieces in batches every
  ``report_interval`` (0.1 s, as the daemon does), and reports success; it keeps serving
  afterwards;
- as a parent it offers its children what its :class:`~damselfly.scheduling.PieceOffer`
  says: everything it holds, or, on a seed host, each piece once before any piece twice
  (super-seeding);
- when its download from parents runs below half its download rate for a second
  (:class:`~damselfly.scheduling.SlowDownloadWatch`), it asks to be rescheduled;
- when its parents cannot fill its request slots (they have nothing more it lacks, or
  they are at the planner's per-parent limit), it waits ``stall_timeout`` for them to
  progress, then asks to be rescheduled; with no piece for ``source_timeout`` it goes back
  to the source by itself, as the daemon does;
- when a scheduler call fails (an outage), it goes back to the source by itself.

Each live host announces itself again every ``HEARTBEAT_INTERVAL`` seconds, as the daemon's
heartbeat does, so the scheduler's garbage collection forgets only crashed hosts.

Latency: every message between a host and the scheduler (placed at the origin) pays the
one-way path latency; a piece request pays the round trip before its first byte.
Children learn a parent's new pieces at once (the runtime streams them); a child that had
free request slots is woken to plan again.

No scheduling rule lives here: parents come from the Scheduler, pieces from the PiecePlanner.
"""

from __future__ import annotations

import gc
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from damselfly import compiled
from damselfly.results import (
    SOURCE_CLASSES,
    PeerRecord,
    Result,
    fluid_lower_bound,
    utilisation_summary,
)
from damselfly.scheduling import (
    AlreadyComplete,
    BackToSource,
    Bitfield,
    DamselflyError,
    Decision,
    Fail,
    HostKind,
    Parents,
    PeerEvicted,
    PieceOffer,
    PiecePlanner,
    PieceReport,
    PlannerConfig,
    Scheduler,
    SchedulerConfig,
    SlowDownloadWatch,
    TriggerSeed,
    piece_count,
    piece_length,
    task_id,
)
from damselfly.sim.network import Flow, FlowNetwork, network_from_graph, run, send
from damselfly.sim.workload import Content, Workload

__all__ = ["SimOptions", "Simulation", "simulate"]

ORIGIN_ID = "origin"
# The runtime daemon's default heartbeat_interval (seconds).
HEARTBEAT_INTERVAL = 30.0

# Peer states (small ints: compared on the hot path).
WAITING = 0  # registering, or waiting for a decision
P2P = 1  # downloading from parents
SOURCE = 2  # downloading from the origin
DONE = 3
FAILED = 4
CRASHED = 5


class SimOptions:
    """Knobs of the simulator itself (not of the scheduler).

    - ``planner``: the PiecePlanner config every peer uses.
    - ``evaluator`` / ``evaluator_params``: passed to the Scheduler.
    - ``stall_timeout``: seconds a peer whose parents cannot fill its request slots (they
      lack what it lacks, or are at their per-parent limit) waits before asking to be
      rescheduled.
    - ``source_timeout``: a peer that has received no piece from parents for this long goes
      back to the source by itself (the daemon's fallback when scheduling gets it nowhere).
    - ``super_seeding``: a seed peer offers each piece to one child before offering any
      piece twice (see :mod:`damselfly.scheduling.offer`); False: it offers all it holds.
    - ``slow_window`` / ``slow_fraction``: a peer whose download from parents ran below
      ``slow_fraction`` of its download rate over ``slow_window`` seconds asks to be
      rescheduled (see :class:`~damselfly.scheduling.SlowDownloadWatch`); a fraction of 0
      turns it off.
    - ``report_interval``: seconds between a peer's batches of finished-piece reports
      (the runtime daemon's ``REPORT_INTERVAL``, 0.1 s); 0 sends a batch per instant.
    - ``upload_concurrency``: at most this many piece uploads at once per host (the origin
      included); later requests wait in FIFO order, as at a daemon's upload worker pool.
      None (the default): no limit, every request is served at once and concurrent
      uploads share the host's upload rate (TCP's processor sharing).
    - ``rerate`` / ``quantum``: the network's re-rate mode and batching (see network).
    - ``sample_period``: timeline period in seconds (None: about 200 samples of T_min).
    - ``progress``: called as ``progress(finished, total, now)`` at every timeline sample.
    """

    __slots__ = (
        "evaluator",
        "evaluator_params",
        "planner",
        "progress",
        "quantum",
        "report_interval",
        "rerate",
        "sample_period",
        "slow_fraction",
        "slow_window",
        "source_timeout",
        "stall_timeout",
        "super_seeding",
        "upload_concurrency",
    )

    def __init__(
        self,
        *,
        planner: PlannerConfig | None = None,
        evaluator: str = "default",
        evaluator_params: dict[str, Any] | None = None,
        stall_timeout: float = 3.0,
        source_timeout: float = 30.0,
        super_seeding: bool = True,
        report_interval: float = 0.1,
        slow_window: float = 1.0,
        slow_fraction: float = 0.5,
        upload_concurrency: int | None = None,
        rerate: str = "local",
        quantum: float = 0.0,
        sample_period: float | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.planner = planner or PlannerConfig()
        self.evaluator = evaluator
        self.evaluator_params = evaluator_params
        self.stall_timeout = stall_timeout
        self.source_timeout = source_timeout
        self.super_seeding = super_seeding
        if report_interval < 0:
            raise ValueError("report_interval must be >= 0")
        self.report_interval = report_interval
        if slow_window <= 0 or not 0 <= slow_fraction <= 1:
            raise ValueError("slow_window must be > 0 and slow_fraction in 0..1")
        self.slow_window = slow_window
        self.slow_fraction = slow_fraction
        if upload_concurrency is not None and upload_concurrency < 1:
            raise ValueError("upload_concurrency must be >= 1 (or None: unlimited)")
        self.upload_concurrency = upload_concurrency
        self.rerate = rerate
        self.quantum = quantum
        self.sample_period = sample_period
        self.progress = progress


class SimHost:
    """A host node: its network index, what the scheduler is told, and its faults."""

    __slots__ = (
        "corrupt",
        "crashed",
        "download_rate",
        "host_id",
        "index",
        "kind",
        "latency",
        "peers",
        "queue",
        "source",
        "upload_rate",
        "uploads",
    )

    def __init__(self, host_id: str, index: int, kind: str, upload: float, download: float):
        self.host_id = host_id
        self.index = index
        self.kind = kind
        self.upload_rate = upload
        self.download_rate = download
        self.latency = 0.0  # one way to the scheduler
        self.crashed = False
        self.corrupt = False
        self.peers: dict[str, SimPeer] = {}  # by URL
        self.uploads: dict[int, Flow] = {}  # flows this host sends, by flow id
        # Requests waiting for an upload slot: (child, piece, parent_id, size).
        self.queue: deque[tuple[SimPeer, int, str, int]] = deque()
        # What its uploads count as for the receiver, as an index into SOURCE_CLASSES.
        self.source = SOURCE_CLASSES.index(kind if kind in ("origin", "seed") else "peer")


class SimPeer:
    """One host's download of one content."""

    __slots__ = (
        "children",
        "content",
        "first_byte_at",
        "flows",
        "have",
        "host",
        "last_progress",
        "length",
        "links",
        "offer",
        "parent_bits",
        "parents",
        "peer_id",
        "piece_count",
        "piece_length",
        "planner",
        "received",
        "record",
        "registered",
        "reports",
        "reschedule_pending",
        "stall_armed",
        "starved",
        "state",
        "task_id",
        "watch",
    )

    def __init__(
        self,
        peer_id: str,
        host: SimHost,
        content: Content,
        planner: PiecePlanner,
        options: SimOptions,
    ):
        self.peer_id = peer_id
        self.host = host
        self.content = content
        self.task_id = task_id(content.url, digest=content.digest)
        self.length = content.length
        self.piece_length = piece_length(content.length, content.piece_length)
        self.piece_count = piece_count(content.length, self.piece_length) if content.length else 0
        self.have = Bitfield(self.piece_count)
        # What this peer offers its children (a seed's super-seeding), and its watch on
        # slow parents.
        self.offer = PieceOffer(
            self.have, super_seeding=options.super_seeding and host.kind == "seed"
        )
        self.watch = SlowDownloadWatch(
            host.download_rate, window=options.slow_window, fraction=options.slow_fraction
        )
        self.planner = planner
        self.parents: dict[str, SimPeer | SimHost] = {}
        self.parent_bits: dict[str, Bitfield] = {}
        self.children: dict[str, SimPeer] = {}
        self.flows: dict[tuple[int, str], Flow | None] = {}  # None: queued at the parent
        # Per parent id, while downloading: the parent's host, the first byte's delay (a
        # round trip) and the network's route from it, looked up once rather than per piece
        # (a swarm's host pairs number in the millions).
        self.links: dict[str, tuple[SimHost, float, tuple[tuple[int, ...], float, int]]] = {}
        self.state = WAITING
        self.last_progress = 0.0
        self.registered = False
        # Finished pieces not reported yet; a flush is due while it is not empty.
        self.reports: list[PieceReport] = []
        self.reschedule_pending = False
        self.stall_armed = False
        self.starved = False
        # Bytes received by source class (see SimHost.source) and the first byte's time:
        # counted here on the per-piece path, copied into the record at the end.
        self.received = [0, 0, 0]
        self.first_byte_at: float | None = None
        self.record = PeerRecord(
            peer_id=peer_id, host_id=host.host_id, task=content.url, kind=host.kind
        )


# What a piece transfer's flow carries: the child, the piece, the parent's id and host.
PieceTag = tuple[SimPeer, int, str, SimHost]


class Simulation:
    """One run; see the module docstring. Build it, then call :meth:`run` once."""

    def __init__(
        self,
        topology: Any,
        workload: Workload,
        scheduler_config: SchedulerConfig | None = None,
        seed: int = 0,
        options: SimOptions | None = None,
    ) -> None:
        self.workload = workload
        self.options = options or SimOptions()
        self.seed = seed
        self.rng = random.Random(seed)
        self.env = simpy.Environment()
        self.network: FlowNetwork = network_from_graph(
            self.env, topology, rerate=self.options.rerate, quantum=self.options.quantum
        )
        self.scheduler = Scheduler(
            scheduler_config,
            evaluator=self.options.evaluator,
            evaluator_params=self.options.evaluator_params,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        self.planner_rng = random.Random(self.rng.getrandbits(64))
        self.contents = {c.url: c for c in workload.contents}
        self.hosts: dict[str, SimHost] = {}
        self.peers: dict[str, SimPeer] = {}
        self.labels: dict[str, dict[str, str]] = {}
        # What each host tells the scheduler when it announces itself (see _heartbeat).
        self.announcements: dict[str, dict[str, Any]] = {}
        self.origin: SimHost = self._build_hosts(topology)
        # Bytes received so far by source class, and across IDCs (for the timeline and
        # the totals; None when the topology has one IDC, so there is no WAN to count).
        self.received_by_class = [0, 0, 0]  # indexed like SOURCE_CLASSES
        self.idc_of = {host: labels.get("idc", "") for host, labels in self.labels.items()}
        idcs = {idc for host, idc in self.idc_of.items() if self.hosts[host] is not self.origin}
        self.cross_idc_bytes: int | None = 0 if len(idcs) > 1 else None
        self.workload_peers: list[SimPeer] = []
        self.unfinished = 0
        self.done_event = self.env.event()
        self.counters: dict[str, int] = {
            "scheduler_errors": 0,
            "lost_messages": 0,
            "corrupt_pieces": 0,
            "stall_reschedules": 0,
            "slow_reschedules": 0,
            "source_timeouts": 0,
            "queued_requests": 0,
        }
        self.wasted_bytes = 0.0
        self._tick_at = math.inf
        self._tick_generation = 0
        self.timeline: dict[str, list[float]] = {
            "t": [],
            "finished_peers": [],
            "bytes_in_flight_rate": [],
            "flows_in_flight": [],
            "origin_bytes": [],
            "seed_bytes": [],
            "peer_bytes": [],
            "bytes_received": [],
        }

    # -- setup --------------------------------------------------------------------------

    def _build_hosts(self, graph: Any) -> SimHost:
        """Make the hosts and announce them to the scheduler; return the origin."""
        network = self.network
        origin: SimHost | None = None
        for name, index in network.host_index.items():
            data = graph.nodes[name]
            role = data.get("role")
            kind = "origin" if role == "origin" else str(data.get("kind", "normal"))
            upload = network.capacity[2 * index]
            download = network.capacity[2 * index + 1]
            host = SimHost(str(name), index, kind, upload, download)
            self.hosts[host.host_id] = host
            self.labels[host.host_id] = _labels(data, upload)
            if role == "origin":
                origin = host
        if origin is None:
            raise ValueError("the topology has no origin node (role 'origin')")
        origin_index = origin.index
        for host in self.hosts.values():
            if host is not origin:
                host.latency = network.latency(host.index, origin_index)
        now = 0.0
        for name, host in self.hosts.items():
            if host is origin:
                continue
            data = graph.nodes[name]
            announcement = self.announcements[name] = {
                "upload_rate": host.upload_rate,
                "kind": HostKind.SEED if host.kind == "seed" else HostKind.NORMAL,
                "idc": str(data.get("idc", "")),
                "location": str(data.get("location", "")),
                "upload_slots": data.get("upload_slots"),
            }
            self.scheduler.announce_host(now, name, **announcement)
        return origin

    def _normal_hosts(self) -> list[SimHost]:
        wanted = self.workload.hosts
        hosts = [h for h in self.hosts.values() if h.kind == "normal"]
        if wanted is not None:
            chosen = set(wanted)
            unknown = chosen - {h.host_id for h in hosts}
            if unknown:
                raise ValueError(
                    f"the workload names hosts that are not normal hosts: {sorted(unknown)[:5]}"
                )
            hosts = [h for h in hosts if h.host_id in chosen]
        return hosts

    def _apply_faults(self, normal: list[SimHost], horizon: float) -> None:
        faults = self.workload.faults
        rng = self.rng
        network = self.network
        if faults.slow_fraction > 0:
            for host in rng.sample(normal, round(faults.slow_fraction * len(normal))):
                for c in (2 * host.index, 2 * host.index + 1):
                    network.set_capacity(c, network.capacity[c] * faults.slow_factor)
                host.upload_rate *= faults.slow_factor
                host.download_rate *= faults.slow_factor
        if faults.corrupt_fraction > 0:
            for host in rng.sample(normal, round(faults.corrupt_fraction * len(normal))):
                host.corrupt = True
        crashes = dict(faults.crash_at)
        if faults.crash_rate > 0:
            for host in normal:
                at = rng.expovariate(faults.crash_rate)
                if at < horizon and host.host_id not in crashes:
                    crashes[host.host_id] = at
        if faults.seed_crash_at is not None:
            for host in self.hosts.values():
                if host.kind == "seed":
                    crashes.setdefault(host.host_id, faults.seed_crash_at)
        for host_id, at in sorted(crashes.items(), key=lambda item: (item[1], item[0])):
            if host_id not in self.hosts:
                raise ValueError(f"crash_at names an unknown host {host_id!r}")
            self._at(at, self._crash, self.hosts[host_id])

    def _new_peer(self, host: SimHost, content: Content) -> SimPeer:
        index = len(self.peers)
        peer_id = f"{host.host_id}/{index}"
        planner = PiecePlanner(
            piece_count(content.length, piece_length(content.length, content.piece_length))
            if content.length
            else 0,
            self.options.planner,
            rng=self.planner_rng,
        )
        peer = SimPeer(peer_id, host, content, planner, self.options)
        peer.record.labels = self.labels.get(host.host_id, {})
        self.peers[peer_id] = peer
        host.peers[content.url] = peer
        return peer

    # -- time helpers -------------------------------------------------------------------

    def _at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        send(self.env, when - self.env.now, fn, *args)

    def _later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        send(self.env, delay, fn, *args)

    def _outage_end(self) -> float | None:
        """When the scheduler comes back, if it is down now; None while it is up."""
        outage = self.workload.faults.scheduler_outage
        if outage is not None and outage[0] <= self.env.now < outage[1]:
            return outage[1]
        return None

    def _scheduler_up(self) -> bool:
        return self._outage_end() is None

    # -- talking to the scheduler ---------------------------------------------------------

    def _call(self, host: SimHost, fn: Callable[[], list[Decision]], on_lost: Any = None) -> None:
        """Deliver one call to the scheduler after the host's latency and route the answer.

        ``on_lost`` (a callable) runs back at the host a round trip later when the scheduler
        is down: the daemon's call failed.
        """

        def arrive() -> None:
            if host.crashed:
                return
            if not self._scheduler_up():
                self.counters["lost_messages"] += 1
                if on_lost is not None:
                    self._later(host.latency, on_lost)
                return
            try:
                decisions = fn()
            except DamselflyError:
                # The call was refused (the runtime gets a 4xx): like a lost call, the
                # daemon falls back to what it does without a scheduler.
                self.counters["scheduler_errors"] += 1
                if on_lost is not None:
                    self._later(host.latency, on_lost)
                return
            self._dispatch(decisions)
            self._arm_tick()

        self._later(host.latency, arrive)

    def _heartbeat(self) -> None:
        """Every live host announces itself again (the scheduler evicts hosts silent for
        its ``host_ttl``); a crashed host stays silent."""
        if self.unfinished <= 0:
            return
        scheduler = self.scheduler
        for host_id, announcement in self.announcements.items():
            host = self.hosts[host_id]
            if host.crashed:
                continue

            def announce(
                host_id: str = host_id, announcement: dict[str, Any] = announcement
            ) -> list[Decision]:
                scheduler.announce_host(self.env.now, host_id, **announcement)
                return []

            self._call(host, announce)
        self._later(HEARTBEAT_INTERVAL, self._heartbeat)

    def _arm_tick(self) -> None:
        deadline = self.scheduler.next_deadline()
        back = self._outage_end()
        if back is not None:
            # A scheduler that is down runs no timer: the next tick is when it is back (a
            # deadline already due would otherwise fire again at once, and time stand still).
            deadline = max(deadline, back)
        if deadline < self._tick_at:
            self._tick_at = deadline
            self._tick_generation += 1
            generation = self._tick_generation
            self._at(deadline, self._tick, generation)

    def _tick(self, generation: int) -> None:
        if generation != self._tick_generation:
            return
        self._tick_at = math.inf
        if self._scheduler_up():
            self._dispatch(self.scheduler.tick(self.env.now))
        if self.unfinished > 0:
            self._arm_tick()

    def _dispatch(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, TriggerSeed):
                host = self.hosts.get(decision.host_id)
                if host is not None:
                    self._later(host.latency, self._on_trigger_seed, host, decision)
                continue
            peer = self.peers.get(getattr(decision, "peer_id", ""))
            if peer is None:
                continue  # HostEvicted, or a peer the simulation never had
            self._later(peer.host.latency, self._on_decision, peer, decision)

    def _on_decision(self, peer: SimPeer, decision: Decision) -> None:
        if peer.state >= DONE:
            return
        peer.reschedule_pending = False
        if isinstance(decision, Parents):
            self._set_parents(peer, decision.parent_ids)
        elif isinstance(decision, BackToSource):
            self._go_to_source(peer)
        elif isinstance(decision, Fail):
            self._fail(peer)
        elif isinstance(decision, AlreadyComplete):
            self._succeed(peer)
        elif isinstance(decision, PeerEvicted):
            peer.registered = False
        # Retry: the scheduler tries again by itself; nothing to do.

    def _on_trigger_seed(self, host: SimHost, decision: TriggerSeed) -> None:
        content = self.contents.get(decision.url)
        if host.crashed or content is None or content.url in host.peers:
            return
        peer = self._new_peer(host, content)
        self._register(peer)

    # -- a peer's life ------------------------------------------------------------------

    def _arrive(self, peer: SimPeer) -> None:
        if peer.host.crashed:
            return
        self._register(peer)

    def _register(self, peer: SimPeer) -> None:
        peer.record.registered_at = self.env.now
        scheduler = self.scheduler
        content = peer.content

        def register() -> list[Decision]:
            decisions = scheduler.register_peer(
                self.env.now,
                peer.peer_id,
                host_id=peer.host.host_id,
                url=content.url,
                digest=content.digest,
                content_length=content.length,
                forced_piece_length=content.piece_length,
            )
            peer.registered = True
            return decisions

        self._call(peer.host, register, on_lost=lambda: self._go_to_source(peer))

    def _set_parents(self, peer: SimPeer, parent_ids: tuple[str, ...]) -> None:
        if peer.state == SOURCE:
            return
        for old_id, old in peer.parents.items():
            if old_id not in parent_ids and isinstance(old, SimPeer):
                old.children.pop(peer.peer_id, None)
        parents: dict[str, SimPeer | SimHost] = {}
        bits: dict[str, Bitfield] = {}
        for parent_id in parent_ids:
            parent = self.peers.get(parent_id)
            if parent is None:
                continue
            parents[parent_id] = parent
            bits[parent_id] = parent.offer.offered
            parent.children[peer.peer_id] = peer
        peer.parents = parents
        peer.parent_bits = bits
        if peer.state != P2P:
            peer.state = P2P
            peer.last_progress = self.env.now
            peer.watch.restart(self.env.now)
        self._pump(peer)

    def _go_to_source(self, peer: SimPeer) -> None:
        if peer.state >= DONE or peer.state == SOURCE:
            return
        for old in peer.parents.values():
            if isinstance(old, SimPeer):
                old.children.pop(peer.peer_id, None)
        peer.parents = {ORIGIN_ID: self.origin}
        peer.parent_bits = {ORIGIN_ID: Bitfield.full(peer.piece_count)}
        peer.state = SOURCE
        peer.record.back_to_source = True
        if peer.piece_count == 0:
            self._succeed(peer)
            return
        self._pump(peer)

    def _pump(self, peer: SimPeer) -> None:
        """Ask the planner for requests and start them; handle a stall."""
        state = peer.state
        if state != P2P and state != SOURCE:
            return
        planner = peer.planner
        requests = planner.plan(peer.have, peer.parent_bits)
        if requests:
            network = self.network
            start = network.start
            latency = network.latency
            on_done = self._piece_done
            me = peer.host.index
            parents = peer.parents
            links = peer.links
            flows = peer.flows
            limit = self.options.upload_concurrency
            length = peer.length
            plength = peer.piece_length
            for request in requests:
                parent_id = request.parent_id
                parent = parents[parent_id]
                link = links.get(parent_id)
                if link is None:
                    parent_host = parent if isinstance(parent, SimHost) else parent.host
                    index = parent_host.index
                    link = (parent_host, 2.0 * latency(me, index), network.route(index, me))
                    links[parent_id] = link
                parent_host = link[0]
                piece = request.piece
                if parent_host.crashed:
                    self._later(
                        link[1],  # the round trip the request would have taken
                        self._request_failed,
                        peer,
                        piece,
                        parent_id,
                    )
                    continue
                size = min(plength, length - piece * plength)
                # Only a super-seeding offer tracks uploads (the others offer all they hold).
                if not isinstance(parent, SimHost) and parent.offer.super_seeding:
                    self._offer_started(parent, piece)
                if limit is not None and len(parent_host.uploads) >= limit:
                    parent_host.queue.append((peer, piece, parent_id, size))
                    self.counters["queued_requests"] += 1
                    flows[(piece, parent_id)] = None  # queued at the parent
                    continue
                flow = start(
                    parent_host.index,
                    me,
                    size,
                    on_done,
                    (peer, piece, parent_id, parent_host),
                    first_byte_delay=link[1],
                    route=link[2],
                )
                flows[(piece, parent_id)] = flow
                parent_host.uploads[flow.flow_id] = flow
        in_flight = planner.in_flight
        starved = in_flight < planner.config.max_in_flight
        peer.starved = starved
        if not starved or peer.stall_armed or peer.reschedule_pending or state == SOURCE:
            return
        if not peer.parents:
            self._ask_reschedule(peer)
        elif peer.piece_count - peer.have.count > len(peer.flows):
            # Free request slots, and pieces it lacks that its parents cannot give now (they
            # do not have them, or they are at their request limit): give the parents
            # `stall_timeout` to progress, then ask the scheduler for others.
            peer.stall_armed = True
            self._later(self.options.stall_timeout, self._stall_check, peer)

    def _offer_started(self, parent: SimPeer, piece: int) -> None:
        """A request for ``piece`` reached ``parent``'s offer; if that ended a seed's first
        round, children waiting for pieces may now ask it for any."""
        offer = parent.offer
        if not offer.first_round:  # never, without super-seeding
            return
        offer.started(piece)
        if not offer.first_round:
            self._later(0.0, self._wake_children, parent)

    def _wake_children(self, parent: SimPeer) -> None:
        for child in list(parent.children.values()):
            if child.starved:
                self._pump(child)

    def _stall_check(self, peer: SimPeer) -> None:
        peer.stall_armed = False
        if peer.state != P2P or peer.reschedule_pending:
            return
        if self.env.now - peer.last_progress >= self.options.source_timeout:
            self.counters["source_timeouts"] += 1
            self._go_to_source(peer)
            return
        self._pump(peer)
        planner = peer.planner
        if (
            planner.in_flight < planner.config.max_in_flight
            and peer.piece_count - peer.have.count > len(peer.flows)
            and not peer.reschedule_pending
        ):
            self.counters["stall_reschedules"] += 1
            self._ask_reschedule(peer)

    def _ask_reschedule(self, peer: SimPeer) -> None:
        if not peer.registered:
            self._go_to_source(peer)
            return
        peer.reschedule_pending = True
        scheduler = self.scheduler
        self._call(
            peer.host,
            lambda: scheduler.reschedule(self.env.now, peer.peer_id),
            on_lost=lambda: self._go_to_source(peer),
        )

    def _piece_done(self, flow: Flow) -> None:
        tag: PieceTag = flow.tag
        peer, piece, parent_id, parent_host = tag
        del peer.flows[(piece, parent_id)]
        del parent_host.uploads[flow.flow_id]
        if parent_host.queue:
            self._serve_queue(parent_host)
        size = int(flow.size)
        source = parent_host.source
        peer.received[source] += size
        self.received_by_class[source] += size
        if (
            self.cross_idc_bytes is not None
            and parent_host is not self.origin
            and self.idc_of[parent_host.host_id] != self.idc_of[peer.host.host_id]
        ):
            self.cross_idc_bytes += size
        if peer.state >= DONE:
            self.wasted_bytes += size
            return
        if peer.first_byte_at is None:
            peer.first_byte_at = flow.activated_at
        if parent_host.corrupt:
            # The digest does not match: fetch it elsewhere, and tell the scheduler so the
            # parent is blocked.
            self.wasted_bytes += size
            self.counters["corrupt_pieces"] += 1
            self._request_failed(peer, piece, parent_id)
            return
        now = self.env._now  # the `now` property's getter runs interpreted
        planner = peer.planner
        peer.last_progress = now
        have = peer.have
        if not have.set(piece):
            self.wasted_bytes += size  # an endgame duplicate that won the race too late
            planner.cancelled(piece, parent_id)
            self._pump(peer)
            return
        offer = peer.offer
        if offer.super_seeding:  # otherwise the offer is `have` itself
            offer.held_piece(piece)
        duplicates = planner.completed(piece, parent_id)
        if duplicates:
            flows = peer.flows
            for duplicate in duplicates:
                other = flows.pop((piece, duplicate.parent_id), None)
                if other is not None:
                    self._cancel(other)
        if peer.registered:
            reports = peer.reports
            if not reports:
                self._later(self.options.report_interval, self._flush_reports, peer)
            reports.append(
                PieceReport(
                    piece=piece,
                    length=size,
                    parent_id=None if parent_id == ORIGIN_ID else parent_id,
                    duration=now - flow.started_at,
                )
            )
        mask = 1 << piece
        for child in peer.children.values():
            if child.starved and not child.have.bits & mask:
                self._pump(child)
        if have.count == peer.piece_count:
            self._succeed(peer)
            return
        if (
            peer.state == P2P
            and peer.watch.received(now, size)
            and not peer.reschedule_pending
            and peer.registered
        ):
            # Parents busy elsewhere: ask for others (the scheduler's evaluator prefers
            # parents with free upload).
            self.counters["slow_reschedules"] += 1
            self._ask_reschedule(peer)
        self._pump(peer)

    def _flush_reports(self, peer: SimPeer) -> None:
        """Send the pieces finished since the last batch in one message (the daemon sends a
        batch every ``report_interval`` seconds, and at once when it is done)."""
        batch = peer.reports
        if not batch or peer.host.crashed:
            return
        peer.reports = []
        scheduler = self.scheduler
        peer_id = peer.peer_id
        self._call(peer.host, lambda: scheduler.pieces_finished(self.env._now, peer_id, batch))

    def _request_failed(self, peer: SimPeer, piece: int, parent_id: str) -> None:
        self._offer_failed(parent_id, piece)
        if peer.state >= DONE:
            return
        peer.planner.failed(piece, parent_id)
        if peer.registered and parent_id != ORIGIN_ID:
            scheduler = self.scheduler
            peer.reschedule_pending = True
            self._call(
                peer.host,
                lambda: scheduler.piece_failed(
                    self.env.now, peer.peer_id, piece, parent_id=parent_id, reason="piece failed"
                ),
                on_lost=lambda: self._go_to_source(peer),
            )
        self._pump(peer)

    def _succeed(self, peer: SimPeer) -> None:
        peer.state = DONE
        peer.record.finished_at = self.env.now
        peer.record.outcome = "succeeded"
        for parent in peer.parents.values():
            if isinstance(parent, SimPeer):
                parent.children.pop(peer.peer_id, None)
        peer.parents = {}
        peer.parent_bits = {}
        if peer.registered:
            # Sent after the last batch of pieces, so it reaches the scheduler after it.
            self._flush_reports(peer)
            scheduler = self.scheduler
            self._call(peer.host, lambda: scheduler.peer_succeeded(self.env.now, peer.peer_id))
        self._peer_over(peer)

    def _fail(self, peer: SimPeer) -> None:
        peer.state = FAILED
        peer.record.outcome = "failed"
        self._drop_flows(peer)
        self._peer_over(peer)

    def _peer_over(self, peer: SimPeer) -> None:
        peer.links = {}
        if peer.host.kind == "normal" and peer.content.url in self.contents:
            self.unfinished -= 1
            if self.unfinished == 0 and not self.done_event.triggered:
                self.done_event.succeed()

    def _serve_queue(self, host: SimHost) -> None:
        """Start queued requests while the host has free upload slots."""
        limit = self.options.upload_concurrency
        queue = host.queue
        network = self.network
        while queue and (limit is None or len(host.uploads) < limit):
            child, piece, parent_id, size = queue.popleft()
            key = (piece, parent_id)
            if key not in child.flows or child.flows[key] is not None:
                continue  # cancelled while it waited
            # The request is already at the parent: the first byte pays one way.
            flow = network.start(
                host.index,
                child.host.index,
                size,
                self._piece_done,
                (child, piece, parent_id, host),
                first_byte_delay=network.latency(host.index, child.host.index),
            )
            child.flows[key] = flow
            host.uploads[flow.flow_id] = flow

    def _cancel(self, flow: Flow | None) -> None:
        """Stop a piece transfer; the bytes it moved count as received, and wasted.

        ``None`` is a request still queued at its parent: forgetting it is enough (the
        parent skips it when its turn comes)."""
        if flow is None:
            return
        delivered = self.network.cancel(flow)
        tag: PieceTag = flow.tag
        child, _, _, parent_host = tag
        child.received[parent_host.source] += round(delivered)
        self.received_by_class[parent_host.source] += round(delivered)
        self.wasted_bytes += delivered
        parent_host.uploads.pop(flow.flow_id, None)
        if parent_host.queue and not parent_host.crashed:
            self._serve_queue(parent_host)

    def _drop_flows(self, peer: SimPeer) -> None:
        # Forget the requests first: a cancel lets the parent start its next queued
        # request, which must not be another of this peer's.
        flows, peer.flows = peer.flows, {}
        for (piece, parent_id), flow in flows.items():
            self._cancel(flow)
            peer.planner.cancelled(piece, parent_id)
            self._offer_failed(parent_id, piece)

    def _offer_failed(self, parent_id: str, piece: int) -> None:
        """An upload of ``piece`` from ``parent_id`` will not complete: a seed in its first
        round offers the piece again."""
        parent = self.peers.get(parent_id)
        if parent is not None and parent.offer.first_round:
            parent.offer.failed(piece)

    def _crash(self, host: SimHost) -> None:
        if host.crashed:
            return
        host.crashed = True
        now = self.env.now
        network = self.network
        # Children lose the pieces this host was sending; they notice after the latency.
        for flow in list(host.uploads.values()):
            self._cancel(flow)
            tag: PieceTag = flow.tag
            child, piece, parent_id, _ = tag
            child.flows.pop((piece, parent_id), None)
            self._later(
                network.latency(host.index, child.host.index),
                self._request_failed,
                child,
                piece,
                parent_id,
            )
        host.uploads = {}
        for child, piece, parent_id, _ in host.queue:
            if child.flows.get((piece, parent_id), False) is None:
                del child.flows[(piece, parent_id)]
                self._later(
                    network.latency(host.index, child.host.index),
                    self._request_failed,
                    child,
                    piece,
                    parent_id,
                )
        host.queue.clear()
        for peer in host.peers.values():
            peer.record.crashed_at = now
            was_over = peer.state >= DONE
            if not was_over:
                peer.record.outcome = "crashed"
            self._drop_flows(peer)
            for parent in peer.parents.values():
                if isinstance(parent, SimPeer):
                    parent.children.pop(peer.peer_id, None)
            state = peer.state
            peer.state = CRASHED
            if state < DONE:
                self._peer_over(peer)

    # -- sampling -----------------------------------------------------------------------

    def _sampler(self, period: float) -> Any:
        network = self.network
        timeline = self.timeline
        total = len(self.workload_peers)
        progress = self.options.progress
        while True:
            used = network.used
            finished = total - self.unfinished
            timeline["t"].append(self.env.now)
            timeline["finished_peers"].append(finished)
            timeline["bytes_in_flight_rate"].append(
                float(used[1 : 2 * len(network.host_names) : 2].sum())
            )
            timeline["flows_in_flight"].append(network.active_flows)
            timeline["bytes_received"].append(float(network.bytes_received.sum()))
            for source_class, received in zip(SOURCE_CLASSES, self.received_by_class, strict=True):
                timeline[f"{source_class}_bytes"].append(float(received))
            if progress is not None:
                progress(finished, total, self.env.now)
            if self.unfinished <= 0:
                return
            yield self.env.timeout(period)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> Result:
        """Simulate until every downloading peer is over (or ``max_time``); return the result."""
        wall_start = time.perf_counter()
        env = self.env
        workload = self.workload
        normal = self._normal_hosts()
        arrival_times = workload.arrivals.times(len(normal), self.rng)
        for host, at in zip(normal, arrival_times, strict=True):
            for content in workload.contents_for(host.host_id):
                peer = self._new_peer(host, content)
                self.workload_peers.append(peer)
                self._at(at, self._arrive, peer)
        self.unfinished = len(self.workload_peers)
        t_min = self._lower_bound(normal)
        last_arrival = max(arrival_times, default=0.0)
        horizon = workload.max_time
        if horizon is None:
            horizon = last_arrival + 50.0 * t_min + 120.0
        self._apply_faults(normal, horizon)
        t_min = self._lower_bound(normal)  # again: slow hosts have their real rates now
        period = self.options.sample_period or max(t_min / 200.0, 1e-3)
        if self.unfinished == 0:
            self.done_event.succeed()
        env.process(self._sampler(period))
        self._later(HEARTBEAT_INTERVAL, self._heartbeat)
        # The run allocates millions of short-lived objects (events, flows, reports) and
        # few cycles: move what setup built out of the collector's sight and collect the
        # young generation less often. Collection stays on; the settings are restored.
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
        try:
            run(env, env.any_of([self.done_event, env.timeout(horizon)]))
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        wall = time.perf_counter() - wall_start
        return self._result(t_min, wall, horizon)

    def _lower_bound(self, normal: list[SimHost]) -> float:
        seeds = [h for h in self.hosts.values() if h.kind == "seed"]
        uploads = [h.upload_rate for h in normal] + [h.upload_rate for h in seeds]
        downloads = [h.download_rate for h in normal]
        if self.workload.assignment is not None:
            # Hosts pull different contents: every unique byte leaves the origin once, each
            # host receives its own bytes, and all of them cross some upload link.
            wanted = [sum(c.length for c in self.workload.contents_for(h.host_id)) for h in normal]
            if not any(wanted):
                return 0.0
            return max(
                self.workload.content_bytes / self.origin.upload_rate,
                max(b / h.download_rate for b, h in zip(wanted, normal, strict=True)),
                sum(wanted) / (self.origin.upload_rate + sum(uploads)),
            )
        # Seeds add upload capacity but need not receive: pad downloads with normal only and
        # count N as the normal hosts; `uploads` includes the seeds as extra helpers.
        bound = fluid_lower_bound(
            self.workload.content_bytes, self.origin.upload_rate, uploads, downloads
        )
        return bound

    def _result(self, t_min: float, wall: float, horizon: float) -> Result:
        network = self.network
        for peer in self.peers.values():
            peer.record.bytes_from = dict(zip(SOURCE_CLASSES, peer.received, strict=True))
            peer.record.first_byte_at = peer.first_byte_at
        records = [peer.record for peer in self.peers.values()]
        normal_finishes = [
            p.record.finished_at
            for p in self.workload_peers
            if p.record.outcome == "succeeded" and p.record.finished_at is not None
        ]
        t_last = max(normal_finishes) if normal_finishes else None
        all_done = all(p.record.outcome == "succeeded" for p in self.workload_peers)
        efficiency = (t_min / t_last) if (t_last and all_done) else None
        makespan = t_last if t_last else self.env.now
        # The records' bytes_from summed: the same counts, kept as they were received.
        by_class = dict(zip(SOURCE_CLASSES, self.received_by_class, strict=True))
        content_bytes = self.workload.content_bytes
        sent = float(network.bytes_sent.sum())
        received = float(network.bytes_received.sum())
        totals = {
            "bytes_sent": sent,
            "bytes_received": received,
            "origin_bytes": float(by_class["origin"]),
            "seed_bytes": float(by_class["seed"]),
            "peer_bytes": float(by_class["peer"]),
            "wasted_bytes": float(self.wasted_bytes),
            "piece_transfers": network.completed_flows,
            "origin_egress_ratio": by_class["origin"] / content_bytes if content_bytes else 0.0,
            "wan_bytes": None if self.cross_idc_bytes is None else float(self.cross_idc_bytes),
        }
        links = self._link_summary(makespan)
        scenario = {
            "hosts": len(self.hosts) - 1,
            "peers": len(self.workload_peers),
            "contents": [{"url": c.url, "length": c.length} for c in self.workload.contents],
            "arrivals": self.workload.arrivals.kind,
            "evaluator": self.options.evaluator,
            "rerate": self.options.rerate,
            "quantum": self.options.quantum,
            "horizon": horizon,
        }
        extra = {
            "compiled": compiled(),
            "sim_time": self.env.now,
            "rerates": network.rerates,
            **self.counters,
        }
        return Result(
            driver="sim",
            content_bytes=content_bytes,
            peers=records,
            totals=totals,
            links=links,
            timeline=self.timeline,
            decisions=dict(self.scheduler.decision_counts),
            wall_time_s=wall,
            t_min=t_min,
            t_last_finish=t_last,
            efficiency=efficiency,
            scenario=scenario,
            seed=self.seed,
            extra=extra,
        )

    def _link_summary(self, makespan: float) -> dict[str, Any]:
        network = self.network
        hosts = len(network.host_names)
        carried = np.asarray(network.carried_bytes, dtype=float)
        capacity = np.asarray(network.capacity, dtype=float)
        span = makespan if makespan > 0 else 1.0
        utilisation = carried / capacity / span
        summary: dict[str, Any] = {
            "host_upload": utilisation_summary(utilisation[0 : 2 * hosts : 2]),
            "host_download": utilisation_summary(utilisation[1 : 2 * hosts : 2]),
            "link": utilisation_summary(utilisation[2 * hosts :]),
        }
        order = np.argsort(-utilisation, kind="stable")[:20]
        summary["busiest"] = [
            {"name": network.constraint_name[i], "mean_utilisation": float(utilisation[i])}
            for i in order
        ]
        return summary


def simulate(
    topology: Any,
    workload: Workload,
    scheduler_config: SchedulerConfig | None = None,
    seed: int = 0,
    options: SimOptions | None = None,
) -> Result:
    """Simulate ``workload`` on ``topology`` (a networkx graph, see damselfly.topologies)
    under ``scheduler_config``; the same arguments give the same result (wall time aside).

    Raises ValueError on a topology without an origin or a workload naming unknown hosts.
    """
    return Simulation(topology, workload, scheduler_config, seed, options).run()


def _labels(data: dict[str, Any], upload_rate: float) -> dict[str, str]:
    """The groups a report may split a host's peers by: IDC, rack, bandwidth class."""
    labels = {}
    if data.get("idc"):
        labels["idc"] = str(data["idc"])
    location = str(data.get("location", ""))
    if location:
        labels["rack"] = location.split("|")[-1]
    labels["bandwidth"] = f"{upload_rate * 8 / 1e9:.3g} Gbit/s"
    return labels
