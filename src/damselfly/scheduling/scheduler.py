"""The scheduler: state in, decisions out.

One :class:`Scheduler` holds every host, task and peer it has been told about. Drivers call
it when something happens (a host announces itself, a peer registers, a piece arrives or
fails, a peer finishes or leaves) and when its deadline comes (:meth:`Scheduler.tick`);
every call takes ``now`` in seconds and returns a list of decisions for the driver to carry
out. It never sleeps, reads a clock or touches the network, so the same object runs inside
the simulator and behind the runtime's HTTP service.

Scheduling a peer follows Dragonfly, with one difference in step 1:

1. Sample at most ``filter_parent_limit`` (15) peers of the task that can serve (a seed
   that is downloading, a peer back to the source or done, or a normal peer that already
   has parents). Dragonfly samples 15 of all the task's peers and then drops those that
   cannot serve, so in a large task most of its draws are wasted and it retries more; the
   core keeps the servable peers in a pool and samples that (the config's
   ``sample_all_peers`` samples as Dragonfly does).
2. Drop the peer itself, peers on its own host, parents it has blocked, hosts with no free
   upload slot, parents the evaluator calls bad, and any parent that would close a cycle in
   the task's parent graph (unless the config's research knob ``acyclic`` is off).
3. Rank the rest with the evaluator and keep ``candidate_parent_limit`` (3). (The cycle
   test of step 2 runs on the ranked list, down to the last parent kept: the same result,
   fewer graph walks.)
4. With none left, retry every ``retry_interval`` (0.5 s); after
   ``retry_back_to_source_limit`` (4) failed tries send the peer back to the source if the
   task may still send one (200 of its peers at once); after ``retry_limit`` (5) fail it.

The first peer of a task with no seed host goes straight to the source. With seed hosts,
a registration that finds no other peer of the task downloading or done (the first one, or
one after every earlier peer is gone) triggers the seed chosen by a consistent hash ring
over task ids, unless the task's latest seed peer has failed (and was created less than 30
minutes ago): then the peer goes to the source. A failed peer is forgotten at the next
garbage collection, and so is this memory of the seed's failure, as in Dragonfly. A second
download of the task on the same host may trigger the seed again while the first trigger is
under way: drivers ignore a trigger for a download they already run.
When a peer fails or leaves, its children are rescheduled without it.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter
from random import Random
from typing import Any, Final

from damselfly.scheduling.bitfield import Bitfield
from damselfly.scheduling.config import SchedulerConfig
from damselfly.scheduling.decisions import (
    AlreadyComplete,
    BackToSource,
    Decision,
    Fail,
    HostEvicted,
    Parents,
    PeerEvicted,
    Retry,
    TriggerSeed,
)
from damselfly.scheduling.errors import (
    InvalidTransitionError,
    InvalidValueError,
    PeerMisbehavedError,
    PieceOutOfRangeError,
    UnknownHostError,
    UnknownPeerError,
    UnknownTaskError,
)
from damselfly.scheduling.evaluators import MIN_COST_SAMPLES, Evaluator, make_evaluator
from damselfly.scheduling.hashring import HashRing
from damselfly.scheduling.ids import task_id as make_task_id
from damselfly.scheduling.model import Host, Peer, Task
from damselfly.scheduling.pieces import piece_count, piece_length
from damselfly.scheduling.states import HostKind, PeerEvent, PeerState

__all__ = ["PieceReport", "Scheduler"]

_RECEIVING = (PeerState.RUNNING, PeerState.BACK_TO_SOURCE)
_AVAILABLE = frozenset(
    {
        PeerState.RECEIVED_NORMAL,
        PeerState.RUNNING,
        PeerState.BACK_TO_SOURCE,
        PeerState.SUCCEEDED,
    }
)
# Dragonfly's SeedPeerFailedTimeout: for this long after a task's seed peer was created and
# failed, peers of the task go to the source instead of asking the seed again.
SEED_FAILED_TIMEOUT = 30 * 60.0
_order_of = attrgetter("order")
# Room between two peers' places in a task's topological order (see Scheduler._move_ahead).
ORDER_SPACING = 1 << 40
TASK_ID_CACHE_SIZE = 4096


class PieceReport:
    """One finished piece, for :meth:`Scheduler.pieces_finished`.

    ``parent_id`` is None when the piece came from the origin; ``duration`` is the seconds
    the transfer took; ``digest`` (e.g. ``"sha256:..."``) is the piece's digest when known.
    A value like :class:`~damselfly.scheduling.PieceRequest`, and written out for the same
    reason: the scheduler service and the simulator make one per piece.
    """

    __slots__ = ("digest", "duration", "length", "parent_id", "piece")

    def __init__(
        self,
        *,
        piece: int,
        length: int,
        parent_id: str | None = None,
        duration: float = 0.0,
        digest: str | None = None,
    ) -> None:
        self.piece: Final = piece
        self.length: Final = length
        self.parent_id: Final = parent_id
        self.duration: Final = duration
        self.digest: Final = digest

    def _fields(self) -> tuple[int, int, str | None, float, str | None]:
        return (self.piece, self.length, self.parent_id, self.duration, self.digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PieceReport):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"PieceReport(piece={self.piece!r}, length={self.length!r}, "
            f"parent_id={self.parent_id!r}, duration={self.duration!r}, digest={self.digest!r})"
        )


class Scheduler:
    """Decides, for every downloading peer, where it downloads from.

    ``evaluator`` is a registered name (``default``, ``random``, ``bandwidth``,
    ``topology``) or an :class:`Evaluator`; ``evaluator_params`` go to the named one's
    constructor (``topology`` needs ``distance``). ``rng`` is the only source of randomness:
    the same seed and the same calls give the same decisions.
    """

    def __init__(
        self,
        config: SchedulerConfig | None = None,
        *,
        evaluator: str | Evaluator = "default",
        evaluator_params: dict[str, Any] | None = None,
        rng: Random | None = None,
    ) -> None:
        self.config = config or SchedulerConfig()
        self.rng = rng if rng is not None else Random(0)
        if isinstance(evaluator, str):
            self.evaluator = make_evaluator(evaluator, **(evaluator_params or {}))
        else:
            self.evaluator = evaluator
        self.hosts: dict[str, Host] = {}
        self.tasks: dict[str, Task] = {}
        self.peers: dict[str, Peer] = {}
        self.seed_ring = HashRing(self.config.seed_ring_replicas)
        self.decision_counts: Counter[str] = Counter()
        self._retries: list[tuple[float, int, str]] = []
        self._retry_sequence = 0
        self._next_gc = self.config.gc_interval
        self._clock = 0.0
        self._woken: dict[str, None] = {}
        self._task_ids: dict[tuple[str, str, str, str, tuple[str, ...]], str] = {}
        # The ends of the peers' topological order (see _ahead_of): new peers go last,
        # peers that will have no parents again go first.
        self._order_spacing = ORDER_SPACING
        self._last_order = 0
        self._first_order = 0
        # How many times a task's order ran out of room and was renumbered.
        self.order_spreads = 0
        # Stamps of the cycle walks and of their memos (see _ahead_of): never reused.
        self._stamp = 0

    # -- lookups -----------------------------------------------------------------------

    def host(self, host_id: str) -> Host:
        try:
            return self.hosts[host_id]
        except KeyError:
            raise UnknownHostError(f"unknown host {host_id!r}") from None

    def task(self, task_id: str) -> Task:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise UnknownTaskError(f"unknown task {task_id!r}") from None

    def peer(self, peer_id: str) -> Peer:
        try:
            return self.peers[peer_id]
        except KeyError:
            raise UnknownPeerError(f"unknown peer {peer_id!r}") from None

    # -- hosts -------------------------------------------------------------------------

    def announce_host(
        self,
        now: float,
        host_id: str,
        *,
        upload_rate: float,
        kind: HostKind = HostKind.NORMAL,
        address: str = "",
        idc: str = "",
        location: str = "",
        upload_slots: int | None = None,
    ) -> Host:
        """Add a host, or refresh one that announced itself before (a heartbeat).

        A refresh keeps the host's counters and peers. Raises InvalidValueError on a
        negative upload rate or slot count.
        """
        existing = self.hosts.get(host_id)
        fresh = Host(
            id=host_id,
            upload_rate=upload_rate,
            kind=kind,
            address=address,
            idc=idc,
            location=location,
            upload_slots=-1 if upload_slots is None else upload_slots,
            announced_at=now,
            load_stamp=now,
        )
        if existing is None:
            self.hosts[host_id] = fresh
            host = fresh
        else:
            host = existing
            host.upload_rate = fresh.upload_rate
            host.address = address
            host.set_network(idc, location)
            reoffer = host.upload_slots != fresh.upload_slots or host.kind is not kind
            host.upload_slots = fresh.upload_slots
            host.announced_at = now
            if host.kind is not kind:
                host.kind = kind
                self.seed_ring.remove(host_id)
            if reoffer:
                # Whether its peers may be offered as parents depends on both.
                for peer in host.peers.values():
                    self._refresh_pool(peer)
        if host.kind is HostKind.SEED:
            self.seed_ring.add(host_id)
        return host

    def host_left(self, now: float, host_id: str) -> list[Decision]:
        """Forget a host and every peer on it; its peers' children are rescheduled."""
        self._clock = max(self._clock, now)
        host = self.host(host_id)
        decisions: list[Decision] = []
        for peer in list(host.peers.values()):
            decisions.extend(self._remove_peer(now, peer))
        self.seed_ring.remove(host_id)
        del self.hosts[host_id]
        return decisions

    # -- registration ------------------------------------------------------------------

    def register_peer(
        self,
        now: float,
        peer_id: str,
        *,
        host_id: str,
        url: str,
        digest: str = "",
        tag: str = "",
        application: str = "",
        filtered_query_params: Iterable[str] = (),
        content_length: int | None = None,
        forced_piece_length: int | None = None,
        need_back_to_source: bool = False,
        disable_back_to_source: bool = False,
    ) -> list[Decision]:
        """A host starts downloading ``url``. Returns the first decision(s) for the peer.

        ``content_length`` may be None when the caller does not know it yet; someone who
        reaches the origin reports it with :meth:`set_task_metadata`. Raises
        UnknownHostError, InvalidValueError (duplicate peer id, negative length, a length
        that contradicts the task's), never leaving a half-registered peer.
        """
        self._clock = max(self._clock, now)
        host = self.host(host_id)
        if peer_id in self.peers:
            raise InvalidValueError(f"peer {peer_id!r} is already registered")
        if not url:
            raise InvalidValueError("a peer needs the URL it downloads")
        identity = self._task_id(url, digest, tag, application, tuple(filtered_query_params))
        task = self.tasks.get(identity)
        if content_length is not None:
            if content_length < 0:
                raise InvalidValueError(f"content length must be >= 0, got {content_length}")
            if task is not None and task.content_length not in (None, content_length):
                raise InvalidValueError(
                    f"task {identity[:12]} has {task.content_length} bytes, "
                    f"peer {peer_id!r} says {content_length}"
                )
        if task is None:
            task = Task(id=identity, url=url, digest=digest, created_at=now, updated_at=now)
            self.tasks[identity] = task
        if content_length is not None and task.content_length is None:
            self._set_metadata(task, content_length, forced_piece_length)

        peer = Peer(
            id=peer_id,
            task=task,
            host=host,
            created_at=now,
            updated_at=now,
            finished=Bitfield(task.piece_count),
            need_back_to_source=need_back_to_source,
            disable_back_to_source=disable_back_to_source,
        )
        peer.apply(PeerEvent.REGISTER)
        self._place_last(peer)
        self.peers[peer_id] = peer
        task.peers[peer_id] = peer
        task.members.add(peer)
        task.updated_at = now
        host.peers[peer_id] = peer

        if task.content_length == 0:
            peer.apply(PeerEvent.SUCCEED)
            peer.finished_at = now
            self._refresh_pool(peer)
            return [self._emit(AlreadyComplete(peer_id=peer_id, task_id=task.id))]
        return self._schedule(now, peer, first=True)

    def set_task_metadata(
        self,
        now: float,
        task_id: str,
        *,
        content_length: int,
        forced_piece_length: int | None = None,
    ) -> list[Decision]:
        """Record a task's length, as learnt from the origin.

        Raises InvalidValueError on a negative length and PeerMisbehavedError when it
        contradicts a length already known.
        """
        task = self.task(task_id)
        if content_length < 0:
            raise InvalidValueError(f"content length must be >= 0, got {content_length}")
        if task.content_length is not None:
            if task.content_length != content_length:
                raise PeerMisbehavedError(
                    f"task {task_id[:12]} has {task.content_length} bytes, not {content_length}"
                )
            return []
        self._set_metadata(task, content_length, forced_piece_length)
        task.updated_at = now
        return []

    @staticmethod
    def _set_metadata(task: Task, content_length: int, forced_piece_length: int | None) -> None:
        """Cut the task into pieces; peers registered before now get bitfields of that size."""
        length = piece_length(content_length, forced_piece_length)
        task.content_length = content_length
        task.piece_length = length
        task.piece_count = piece_count(content_length, length) if content_length else 0
        task.piece_digests = [None] * task.piece_count
        for peer in task.peers.values():
            peer.finished = Bitfield(task.piece_count)

    def _task_id(
        self, url: str, digest: str, tag: str, application: str, filtered: tuple[str, ...]
    ) -> str:
        # A rollout registers thousands of peers for one URL: remember the last few ids.
        key = (url, digest, tag, application, filtered)
        identity = self._task_ids.get(key)
        if identity is None:
            if len(self._task_ids) >= TASK_ID_CACHE_SIZE:
                self._task_ids.clear()
            identity = self._task_ids[key] = make_task_id(
                url, digest=digest, tag=tag, application=application, filtered_query_params=filtered
            )
        return identity

    # -- piece reports -----------------------------------------------------------------

    def piece_finished(
        self,
        now: float,
        peer_id: str,
        piece: int,
        *,
        length: int,
        parent_id: str | None = None,
        duration: float = 0.0,
        digest: str | None = None,
    ) -> list[Decision]:
        """``peer_id`` holds ``piece`` now, fetched from ``parent_id`` (None: the origin).

        This is the per-piece hot path: it updates the bitfield, the parent host's upload
        counters and load estimate, and the peer's piece costs; a succeeded parent and the
        parent's host count as alive (garbage collection spares them). Raises UnknownPeerError,
        PieceOutOfRangeError, InvalidValueError (negative length or duration),
        InvalidTransitionError (a peer that is not receiving), PeerMisbehavedError (a
        digest that contradicts the task's).
        """
        self._apply_piece(
            now, self._reporting_peer(peer_id), piece, length, parent_id, duration, digest
        )
        return []

    def pieces_finished(
        self, now: float, peer_id: str, reports: Sequence[PieceReport]
    ) -> list[Decision]:
        """Several :meth:`piece_finished` reports at once (what a daemon batches), with the
        same checks; the peer is looked up once. Reports before a bad one stay applied."""
        peer = self._reporting_peer(peer_id)
        apply = self._apply_piece
        for report in reports:
            apply(
                now,
                peer,
                report.piece,
                report.length,
                report.parent_id,
                report.duration,
                report.digest,
            )
        return []

    def _reporting_peer(self, peer_id: str) -> Peer:
        peer = self.peers.get(peer_id)
        if peer is None:
            raise UnknownPeerError(f"unknown peer {peer_id!r}")
        state = peer.state
        if state is not PeerState.RUNNING and state is not PeerState.BACK_TO_SOURCE:
            raise InvalidTransitionError(
                f"peer {peer_id!r} is {state.value}; it cannot report pieces"
            )
        return peer

    def _apply_piece(
        self,
        now: float,
        peer: Peer,
        piece: int,
        length: int,
        parent_id: str | None,
        duration: float,
        digest: str | None,
    ) -> None:
        task = peer.task
        if not 0 <= piece < task.piece_count:
            raise PieceOutOfRangeError(
                f"piece {piece} is outside 0..{task.piece_count - 1} of task {task.id[:12]}"
            )
        if length < 0 or duration < 0:
            raise InvalidValueError("piece length and duration must be >= 0")
        if digest is not None:
            known = task.piece_digests[piece]
            if known is None:
                task.piece_digests[piece] = digest
            elif known != digest:
                raise PeerMisbehavedError(
                    f"peer {peer.id!r} reports digest {digest} for piece {piece}, "
                    f"the task knows {known}"
                )
        if parent_id is not None:
            parent = self.peers.get(parent_id)
            if parent is not None:
                parent_host = parent.host
                parent_host.upload_count += 1
                parent_host.record_upload(now, length)
                # As in Dragonfly, a parent that serves is alive: a succeeded parent does not
                # expire and its host is not evicted while it uploads. (A downloading parent
                # is judged by its own reports, like Dragonfly's piece download timeout; a
                # failed one goes at the next collection whatever it does.)
                if parent.state is PeerState.SUCCEEDED:
                    parent.updated_at = now
                parent_host.announced_at = max(parent_host.announced_at, now)
        if peer.finished.set(piece):
            if peer.first_piece_at is None:
                peer.first_piece_at = now
            if duration > 0:
                peer.piece_costs.add(duration)
        peer.updated_at = now

    def piece_failed(
        self,
        now: float,
        peer_id: str,
        piece: int,
        *,
        parent_id: str | None,
        reason: str = "",
    ) -> list[Decision]:
        """Fetching ``piece`` from ``parent_id`` failed (None: from the origin).

        The parent is blocked for this peer, its host's failure count grows, and the peer
        is rescheduled without it. A failure from the origin changes nothing here: the
        peer retries the origin itself.
        """
        self._clock = max(self._clock, now)
        peer = self._receiving_peer(peer_id, "report failed pieces")
        if not 0 <= piece < peer.task.piece_count:
            raise PieceOutOfRangeError(f"piece {piece} is outside 0..{peer.task.piece_count - 1}")
        peer.updated_at = now
        if parent_id is None:
            return []
        parent = self.peers.get(parent_id)
        peer.blocked.add(parent_id)
        if parent is not None:
            parent.host.upload_failed_count += 1
            if parent_id in peer.parents:
                self._unlink(parent, peer)
        if peer.state is PeerState.BACK_TO_SOURCE:
            return []
        return self._reschedule(now, peer)

    # -- asking for parents again --------------------------------------------------------

    def reschedule(
        self, now: float, peer_id: str, *, exclude: Iterable[str] = ()
    ) -> list[Decision]:
        """Find ``peer_id`` a new set of parents (its parents are full or have nothing it
        lacks). ``exclude`` names parents to block from now on."""
        self._clock = max(self._clock, now)
        peer = self._receiving_peer(peer_id, "be rescheduled")
        peer.blocked.update(exclude)
        peer.updated_at = now
        if peer.state is PeerState.BACK_TO_SOURCE:
            return []
        return self._reschedule(now, peer)

    # -- the end of a download ---------------------------------------------------------

    def peer_succeeded(self, now: float, peer_id: str) -> list[Decision]:
        """``peer_id`` holds every piece. Raises InvalidValueError if it does not."""
        self._clock = max(self._clock, now)
        peer = self.peer(peer_id)
        if not peer.task.has_metadata or not peer.finished.complete:
            raise InvalidValueError(
                f"peer {peer_id!r} holds {peer.finished.count} of "
                f"{peer.task.piece_count} pieces; it has not succeeded"
            )
        peer.apply(PeerEvent.SUCCEED)
        peer.finished_at = now
        peer.updated_at = now
        # The back-to-source limit counts downloads from the origin in progress.
        peer.task.back_to_source_peers.discard(peer.id)
        self._clear_retry(peer)
        for parent in list(peer.parents.values()):
            self._unlink(parent, peer)
        self._sink(peer)
        self._refresh_pool(peer)
        return []

    def peer_failed(self, now: float, peer_id: str, reason: str = "") -> list[Decision]:
        """``peer_id`` gave up. Its children are rescheduled without it."""
        self._clock = max(self._clock, now)
        peer = self.peer(peer_id)
        peer.apply(PeerEvent.FAIL)
        peer.updated_at = now
        peer.task.back_to_source_peers.discard(peer.id)
        return self._after_failure(now, peer)

    def peer_left(self, now: float, peer_id: str) -> list[Decision]:
        """``peer_id`` is gone (its daemon stopped or deleted the task)."""
        self._clock = max(self._clock, now)
        return self._remove_peer(now, self.peer(peer_id))

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When :meth:`tick` next has work: a retry, waiting peers to wake, or garbage
        collection."""
        if self._woken:
            return self._clock
        retries = self._retries
        while retries:
            at, _, peer_id = retries[0]
            peer = self.peers.get(peer_id)
            if peer is not None and peer.retry_at == at:
                return min(at, self._next_gc)
            heapq.heappop(retries)
        return self._next_gc

    def tick(self, now: float) -> list[Decision]:
        """Run every retry due by ``now``, wake peers waiting on a task that has a new
        parent, and collect garbage when it is due."""
        self._clock = max(self._clock, now)
        decisions: list[Decision] = self._wake_waiting(now)
        retries = self._retries
        while retries and retries[0][0] <= now:
            at, _, peer_id = heapq.heappop(retries)
            peer = self.peers.get(peer_id)
            if peer is None or peer.retry_at != at:
                continue
            self._clear_retry(peer)
            if peer.state is PeerState.RECEIVED_NORMAL or peer.state is PeerState.RUNNING:
                decisions.extend(self._schedule(now, peer, first=False))
        if now >= self._next_gc:
            decisions.extend(self.collect_garbage(now))
        decisions.extend(self._wake_waiting(now))
        return decisions

    def _wake_waiting(self, now: float) -> list[Decision]:
        """Try the waiting peers of every task that gained a servable parent since they were
        told to retry. A peer that still finds none keeps its retry: waking costs no try."""
        decisions: list[Decision] = []
        # Each round wakes only tasks that grew; peers that find parents join the pool and
        # may wake the rest. The waiting peers bound the rounds.
        rounds = 0
        while self._woken and rounds <= len(self.peers):
            rounds += 1
            woken = list(self._woken)
            self._woken.clear()
            for task_id in woken:
                task = self.tasks.get(task_id)
                if task is None or not task.has_metadata:
                    continue
                for peer_id in sorted(task.waiting):
                    peer = self.peers.get(peer_id)
                    if peer is None or peer.parents:
                        continue
                    if (
                        peer.state is not PeerState.RECEIVED_NORMAL
                        and peer.state is not PeerState.RUNNING
                    ):
                        continue
                    parent_ids = self._find_parents(now, peer)
                    if parent_ids:
                        self._clear_retry(peer)
                        peer.schedule_attempts = 0
                        decisions.append(
                            self._emit(
                                Parents(peer_id=peer.id, task_id=task.id, parent_ids=parent_ids)
                            )
                        )
        return decisions

    def _clear_retry(self, peer: Peer) -> None:
        peer.retry_at = math.inf
        peer.task.waiting.discard(peer.id)

    def collect_garbage(self, now: float) -> list[Decision]:
        """Forget failed peers, idle peers, finished peers past their time, silent hosts,
        empty tasks."""
        config = self.config
        self._next_gc = now + config.gc_interval
        decisions: list[Decision] = []
        for peer in list(self.peers.values()):
            if peer.id not in self.peers:
                continue
            idle = now - peer.updated_at
            if peer.state is PeerState.FAILED:
                # As in Dragonfly, a failed peer is of no use to anyone: it goes at once.
                reason = "failed peer"
            elif peer.terminal and idle >= config.peer_ttl:
                reason = "finished peer expired"
            elif not peer.terminal and idle >= config.peer_idle_timeout:
                reason = f"no report for {idle:.0f} s"
            else:
                continue
            decisions.append(
                self._emit(PeerEvicted(peer_id=peer.id, task_id=peer.task.id, reason=reason))
            )
            decisions.extend(self._remove_peer(now, peer))
        for host in list(self.hosts.values()):
            silent = now - host.announced_at
            if silent >= config.host_ttl:
                for peer in list(host.peers.values()):
                    decisions.append(
                        self._emit(
                            PeerEvicted(
                                peer_id=peer.id, task_id=peer.task.id, reason="host evicted"
                            )
                        )
                    )
                decisions.extend(self.host_left(now, host.id))
                decisions.append(
                    self._emit(HostEvicted(host_id=host.id, reason=f"silent for {silent:.0f} s"))
                )
        for task in list(self.tasks.values()):
            if not task.peers and now - task.updated_at >= config.task_ttl:
                del self.tasks[task.id]
        return decisions

    # -- the scheduling loop -------------------------------------------------------------

    def _schedule(
        self, now: float, peer: Peer, *, first: bool, previous: Sequence[Peer] = ()
    ) -> list[Decision]:
        task = peer.task
        decisions: list[Decision] = []
        config = self.config
        if peer.host.kind is HostKind.SEED:
            task.seed_triggered = True
            return [
                self._back_to_source(peer, "a seed peer fetches from the origin", counted=False)
            ]
        if peer.need_back_to_source:
            return [self._back_to_source(peer, "asked to fetch from the origin")]
        if not config.enable_peer_to_peer:
            return [self._back_to_source(peer, "peer-to-peer is disabled", counted=False)]
        if first and len(self.seed_ring) and not self._has_available_peer(peer):
            # Dragonfly asks the seed whenever a peer registers and no other peer of the
            # task is downloading or done, unless the task's seed failed recently: then the
            # peer goes to the source itself.
            if self._seed_failed_recently(task, now):
                if self._may_back_to_source(peer):
                    return [self._back_to_source(peer, "the task's seed peer failed")]
            else:
                seed_host_id = self.seed_ring.lookup(task.id)
                if seed_host_id is not None:
                    task.seed_triggered = True
                    decisions.append(
                        self._emit(
                            TriggerSeed(
                                host_id=seed_host_id,
                                task_id=task.id,
                                url=task.url,
                                digest=task.digest,
                            )
                        )
                    )
        if task.has_metadata:
            parent_ids = self._find_parents(now, peer) or self._keep(peer, previous)
            if parent_ids:
                peer.schedule_attempts = 0
                decisions.append(
                    self._emit(Parents(peer_id=peer.id, task_id=task.id, parent_ids=parent_ids))
                )
                return decisions
        # Nobody can serve yet. With no seed on its way and no peer able to serve, waiting
        # is pointless: the peer goes to the source at once (Dragonfly does the same for the
        # first peer of a task).
        nobody_coming = not task.seed_triggered and not len(task.parent_pool)
        if nobody_coming and self._may_back_to_source(peer):
            decisions.append(self._back_to_source(peer, "no peer has the content yet"))
            return decisions
        decisions.extend(self._failed_attempt(now, peer))
        return decisions

    @staticmethod
    def _has_available_peer(peer: Peer) -> bool:
        """Whether another host has a peer of the task that is downloading or done
        (Dragonfly's HasAvailablePeer). A peer waiting for parents counts: in Dragonfly it
        is running from the moment its daemon starts the download."""
        host = peer.host
        for other in peer.task.peers.values():
            if other.state in _AVAILABLE and other.host is not host:
                return True
        return False

    @staticmethod
    def _seed_failed_recently(task: Task, now: float) -> bool:
        """Whether the task's latest seed peer is failed and was created less than
        SEED_FAILED_TIMEOUT ago (Dragonfly's IsSeedPeerFailed). Only peers not yet
        collected count."""
        latest: Peer | None = None
        for other in task.peers.values():
            if other.host.kind is HostKind.SEED and (
                latest is None or other.updated_at > latest.updated_at
            ):
                latest = other
        return (
            latest is not None
            and latest.state is PeerState.FAILED
            and now - latest.created_at < SEED_FAILED_TIMEOUT
        )

    def _reschedule(self, now: float, peer: Peer) -> list[Decision]:
        previous = list(peer.parents.values())
        for parent in previous:
            self._unlink(parent, peer)
        peer.schedule_attempts = 0
        self._clear_retry(peer)
        return self._schedule(now, peer, first=False, previous=previous)

    def _keep(self, peer: Peer, previous: Sequence[Peer]) -> tuple[str, ...]:
        """When a reschedule finds no new parent, the peer keeps the parents it had (those
        still there, unblocked and with a free slot) rather than being left with none and
        sent to the source after its tries run out."""
        for parent in previous:
            host = parent.host
            if (
                parent.id in self.peers
                and parent.id not in peer.blocked
                and parent.can_serve
                and host.upload_edges < host.upload_slots
            ):
                ahead = self._edge_ahead(parent, peer)
                if ahead is not None:
                    self._link(parent, peer, ahead)
        if peer.parents and peer.state is PeerState.RECEIVED_NORMAL:
            peer.apply(PeerEvent.DOWNLOAD)
        self._refresh_pool(peer)
        return tuple(peer.parents)

    def _failed_attempt(self, now: float, peer: Peer) -> list[Decision]:
        config = self.config
        peer.schedule_attempts += 1
        attempts = peer.schedule_attempts
        if attempts >= config.retry_back_to_source_limit and self._may_back_to_source(peer):
            return [self._back_to_source(peer, f"no parent after {attempts} tries")]
        if attempts >= config.retry_limit:
            peer.apply(PeerEvent.FAIL)
            peer.updated_at = now
            reason = f"no parent after {attempts} tries and the source is not allowed"
            decisions: list[Decision] = [
                self._emit(Fail(peer_id=peer.id, task_id=peer.task.id, reason=reason))
            ]
            decisions.extend(self._after_failure(now, peer))
            return decisions
        at = now + config.retry_interval
        peer.retry_at = at
        peer.task.waiting.add(peer.id)
        self._retry_sequence += 1
        heapq.heappush(self._retries, (at, self._retry_sequence, peer.id))
        return [self._emit(Retry(peer_id=peer.id, task_id=peer.task.id, at=at, attempt=attempts))]

    def _may_back_to_source(self, peer: Peer) -> bool:
        if peer.disable_back_to_source:
            return False
        return len(peer.task.back_to_source_peers) < self.config.back_to_source_limit

    def _back_to_source(self, peer: Peer, reason: str, *, counted: bool = True) -> BackToSource:
        for parent in list(peer.parents.values()):
            self._unlink(parent, peer)
        self._sink(peer)
        if peer.state is not PeerState.BACK_TO_SOURCE:
            peer.apply(PeerEvent.BACK_TO_SOURCE)
        if counted:
            peer.task.back_to_source_peers.add(peer.id)
        self._clear_retry(peer)
        peer.schedule_attempts = 0
        self._refresh_pool(peer)
        decision = BackToSource(peer_id=peer.id, task_id=peer.task.id, reason=reason)
        self._emit(decision)
        return decision

    def _find_parents(self, now: float, peer: Peer) -> tuple[str, ...]:
        """Steps 1-3 of the module docstring; links the peer to the parents it returns."""
        config = self.config
        evaluator = self.evaluator
        is_bad_parent = evaluator.is_bad_parent
        host = peer.host
        blocked = peer.blocked
        candidates = []
        task = peer.task
        pool = task.parent_pool
        if config.sample_all_peers:
            # Dragonfly's draw: any of the task's peers, then only those that can serve.
            sampled = [
                candidate
                for candidate in task.members.sample(self.rng, config.filter_parent_limit)
                if candidate.id in pool
            ]
        else:
            sampled = pool.sample(self.rng, config.filter_parent_limit)
        # Cheapest tests first: this loop runs for every sampled candidate of every decision.
        for candidate in sampled:
            candidate_host = candidate.host
            if candidate_host is host or candidate_host.upload_edges >= candidate_host.upload_slots:
                continue
            if blocked and candidate.id in blocked:
                continue
            if candidate.piece_costs.count >= MIN_COST_SAMPLES and is_bad_parent(candidate):
                continue
            candidates.append(candidate)
        if not candidates:
            return ()
        chosen: list[Peer] = []
        limit = config.candidate_parent_limit
        # The cycle check, the dearest test, runs on the ranked list and stops once enough
        # parents are found: the same parents as filtering first, since an evaluator ranks
        # each candidate on its own merits (an edge to one parent cannot close a cycle
        # through another, so the checks do not depend on each other either). The walks
        # of one decision share what they learn (see _ahead_of): an edge into the peer
        # changes no peer's descendants.
        memo = self._new_stamp()
        for parent in evaluator.rank(candidates, peer, now, self.rng):
            # Two candidates may share a host (two downloads of one task there): that host's
            # slots count once per edge, so check again as edges are added.
            parent_host = parent.host
            if parent_host.upload_edges >= parent_host.upload_slots:
                continue
            ahead = self._edge_ahead(parent, peer, memo)
            if ahead is None:
                continue
            self._link(parent, peer, ahead)
            chosen.append(parent)
            if len(chosen) == limit:
                break
        if not chosen:
            return ()
        if peer.state is PeerState.RECEIVED_NORMAL:
            peer.apply(PeerEvent.DOWNLOAD)
        self._refresh_pool(peer)
        return tuple(parent.id for parent in chosen)

    def _new_stamp(self) -> int:
        self._stamp += 1
        return self._stamp

    def _edge_ahead(self, parent: Peer, child: Peer, memo: int = 0) -> list[Peer] | None:
        """:meth:`_ahead_of` while the graph is kept acyclic; with the config's ``acyclic``
        off, every edge is allowed and nothing moves (the order is not kept)."""
        if not self.config.acyclic:
            return []
        return self._ahead_of(parent, child, memo)

    def _ahead_of(self, parent: Peer, child: Peer, memo: int = 0) -> list[Peer] | None:
        """None if the edge ``parent`` -> ``child`` would close a cycle; otherwise the peers
        that must move in front of ``child`` when it is added (see :meth:`_move_ahead`).

        Every peer's ``order`` is below its children's, so a parent ordered before
        ``child`` cannot close a cycle: no walk at all, the common case. Otherwise the walk
        goes up from ``parent`` through ancestors ordered at or after ``child`` (an ancestor
        ordered before it cannot be it, nor have it above). Meeting ``child`` means a cycle;
        if not, the walk found exactly the peers to move. Walking up is cheap: a peer has a
        few parents, where it may have dozens of children.

        ``memo`` (a stamp from :meth:`_new_stamp`, 0 for none) lets the walks of one
        decision, all for the same ``child``, share what they learn: a peer whose
        ``memo_stamp`` is ``memo`` is below ``child`` if its ``memo_below`` is True (every
        peer on a path that met it), and not if False (every peer a walk without a meeting
        visited). Meeting a True peer is a cycle at once; a False one has no ``child``
        above it, so the walk need not climb past it, unless the answer is no cycle and its
        ancestors must move too: then it walks again in full.

        The walks mark the peers they reach with a stamp of their own and the peer they came
        from (``walk_stamp``, ``walk_via``), rather than fill a set and a dict: a walk in a
        swarm of thousands reaches dozens of peers, and the checks run for most candidates
        of every decision. ``walk_via`` is cleared once the walk is over, so no peer keeps
        another alive.
        """
        if parent is child:
            return None
        floor = child.order
        if parent.order < floor:
            return []
        if not memo:
            return self._climb(parent, child, floor)
        if parent.memo_stamp == memo:
            if parent.memo_below:
                return None
            return self._climb(parent, child, floor)
        stamp = self._new_stamp()
        parent.walk_stamp = stamp
        ahead = [parent]
        stack = [parent]
        cut = False
        while stack:
            current = stack.pop()
            for ancestor in current.parent_peers:
                if ancestor is child or (ancestor.memo_stamp == memo and ancestor.memo_below):
                    # A cycle: everything on the path up from ``parent`` is below ``child``.
                    node: Peer | None = current
                    while node is not None:
                        node.memo_stamp = memo
                        node.memo_below = True
                        node = node.walk_via
                    for peer in ahead:
                        peer.walk_via = None
                    return None
                if ancestor.order >= floor and ancestor.walk_stamp != stamp:
                    ancestor.walk_stamp = stamp
                    ancestor.walk_via = current
                    ahead.append(ancestor)
                    if ancestor.memo_stamp == memo:
                        cut = True  # False: nothing above it is below ``child``
                    else:
                        stack.append(ancestor)
        for peer in ahead:
            peer.walk_via = None
            peer.memo_stamp = memo
            peer.memo_below = False
        return self._climb(parent, child, floor) if cut else ahead

    def _climb(self, parent: Peer, child: Peer, floor: int) -> list[Peer] | None:
        """The plain walk of :meth:`_ahead_of`, with nothing known beforehand."""
        stamp = self._new_stamp()
        parent.walk_stamp = stamp
        ahead = [parent]
        stack = [parent]
        while stack:
            for ancestor in stack.pop().parent_peers:
                if ancestor is child:
                    return None
                if ancestor.order >= floor and ancestor.walk_stamp != stamp:
                    ancestor.walk_stamp = stamp
                    ahead.append(ancestor)
                    stack.append(ancestor)
        return ahead

    # -- edges, the topological order and the parent pool --------------------------------

    def _link(self, parent: Peer, child: Peer, ahead: list[Peer]) -> None:
        """Add the edge; ``ahead`` is what :meth:`_ahead_of` returned for it."""
        if parent.id not in child.parents:
            child.parent_peers.append(parent)
        child.parents[parent.id] = parent
        parent.children[child.id] = child
        parent.host.upload_edges += 1
        if ahead:
            self._move_ahead(child, ahead)

    def _move_ahead(self, child: Peer, ahead: list[Peer]) -> None:
        """Give the peers in ``ahead`` new orders just in front of ``child``'s, in their
        present sequence.

        Nothing else moves. Each peer in ``ahead`` stays behind its parents outside the set
        (all ordered before ``child``: one after it would be in the set) and in front of its
        children outside it (ordered after it already, so after ``child``). Orders are
        integers spaced ``ORDER_SPACING`` apart when given, so there is room between two
        peers; when a gap runs out, the task's orders are spread out again, at least as far
        apart as there are peers to move.
        """
        count = len(ahead)
        # The room a spread leaves between two peers; with no parent below them, the peers
        # take that much room in front of ``child``, so a spread always makes enough.
        spacing = max(self._order_spacing, count + 1)
        while True:
            ceiling = child.order
            floor = max(
                (
                    above.order
                    for peer in ahead
                    for above in peer.parent_peers
                    if above.order < ceiling
                ),
                default=ceiling - spacing,
            )
            if ceiling - floor > count:
                break
            self._spread_orders(child.task, spacing)
        step = (ceiling - floor) // (count + 1)
        ahead.sort(key=_order_of)
        for rank, peer in enumerate(ahead, 1):
            peer.order = floor + rank * step
        # With no parent below them, the peers may land in front of every sunk peer: the
        # front moves with them, so a peer sunk later still goes in front of all.
        self._first_order = min(self._first_order, floor + step)

    def _spread_orders(self, task: Task, spacing: int) -> None:
        """Renumber a task's peers ``spacing`` apart, keeping their sequence."""
        self.order_spreads += 1
        base = self._first_order
        for rank, peer in enumerate(sorted(task.peers.values(), key=_order_of), 1):
            peer.order = base + rank * spacing
        self._last_order = max(self._last_order, base + (len(task.peers) + 1) * spacing)

    def _place_last(self, peer: Peer) -> None:
        """A new peer has no edges: it goes behind every other."""
        self._last_order += self._order_spacing
        peer.order = self._last_order

    def _sink(self, peer: Peer) -> None:
        """A peer that will have no parents again (it holds everything, or fetches from the
        origin) goes in front of every other: its children stay behind it, and as a
        candidate parent it then passes the cycle check without a walk for every child."""
        self._first_order -= self._order_spacing
        peer.order = self._first_order

    def _unlink(self, parent: Peer, child: Peer) -> None:
        del child.parents[parent.id]
        child.parent_peers.remove(parent)
        del parent.children[child.id]
        parent.host.upload_edges -= 1
        self._refresh_pool(child)

    def _refresh_pool(self, peer: Peer) -> None:
        task = peer.task
        pool = task.parent_pool
        if peer.can_serve and peer.host.upload_slots > 0:
            if peer.id not in pool:
                pool.add(peer)
                if task.waiting and self.config.wake_on_new_parent:
                    self._woken[task.id] = None
        else:
            pool.discard(peer.id)

    def _after_failure(self, now: float, peer: Peer) -> list[Decision]:
        """Detach a failed peer: drop its edges both ways and reschedule its children."""
        self._clear_retry(peer)
        for parent in list(peer.parents.values()):
            self._unlink(parent, peer)
        self._refresh_pool(peer)
        return self._orphan_children(now, peer)

    def _orphan_children(self, now: float, peer: Peer) -> list[Decision]:
        decisions: list[Decision] = []
        for child in list(peer.children.values()):
            child.blocked.add(peer.id)
            self._unlink(peer, child)
            if child.state is PeerState.RUNNING or child.state is PeerState.RECEIVED_NORMAL:
                decisions.extend(self._reschedule(now, child))
        return decisions

    def _remove_peer(self, now: float, peer: Peer) -> list[Decision]:
        if peer.state is not PeerState.LEFT:
            peer.apply(PeerEvent.LEAVE)
        decisions = self._after_failure(now, peer)
        task = peer.task
        del self.peers[peer.id]
        del task.peers[peer.id]
        task.members.discard(peer.id)
        peer.host.peers.pop(peer.id, None)
        task.back_to_source_peers.discard(peer.id)
        task.updated_at = now
        return decisions

    def _receiving_peer(self, peer_id: str, what: str) -> Peer:
        peer = self.peer(peer_id)
        if peer.state not in _RECEIVING and peer.state is not PeerState.RECEIVED_NORMAL:
            raise InvalidTransitionError(
                f"peer {peer_id!r} is {peer.state.value}; it cannot {what}"
            )
        return peer

    def _emit(self, decision: Decision) -> Any:
        self.decision_counts[type(decision).__name__] += 1
        return decision
