"""An in-memory swarm: one Scheduler, many peers, instant transfers, a manual clock.

Time advances in rounds of ``step`` seconds. In each round every downloading peer plans
requests with its PiecePlanner against its parents' bitfields (read straight from the
scheduler's model, as the simulator does), and each request completes within the round.
Peers back to the source take ``source_pieces_per_round`` pieces from the origin. Decisions
are carried out exactly as a driver would; the harness never decides anything itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from random import Random

from damselfly.scheduling import (
    AlreadyComplete,
    BackToSource,
    Decision,
    Fail,
    HostKind,
    Parents,
    PeerEvicted,
    PeerState,
    PiecePlanner,
    PlannerConfig,
    Retry,
    Scheduler,
    SchedulerConfig,
    TriggerSeed,
)


@dataclass
class SwarmPeer:
    peer_id: str
    host_id: str
    planner: PiecePlanner | None = None
    parents: tuple[str, ...] = ()
    back_to_source: bool = False
    done: bool = False
    failed: bool = False


@dataclass
class Swarm:
    """Drive ``scheduler`` with instant transfers; count bytes by where they came from."""

    scheduler: Scheduler
    url: str = "https://registry.example/blobs/sha256:abc"
    content_length: int = 64 * 1024 * 1024
    piece_length: int = 4 * 1024 * 1024
    step: float = 0.1
    source_pieces_per_round: int = 1
    peer_pieces_per_round: int = 2
    now: float = 0.0
    rng: Random = field(default_factory=lambda: Random(7))
    peers: dict[str, SwarmPeer] = field(default_factory=dict)
    origin_bytes: int = 0
    peer_bytes: int = 0
    decisions: list[Decision] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add_host(
        self, host_id: str, *, seed: bool = False, idc: str = "", location: str = ""
    ) -> None:
        self.scheduler.announce_host(
            self.now,
            host_id,
            upload_rate=125e6,
            kind=HostKind.SEED if seed else HostKind.NORMAL,
            idc=idc,
            location=location,
        )

    def register(self, peer_id: str, host_id: str) -> list[Decision]:
        self.peers[peer_id] = SwarmPeer(peer_id, host_id)
        decisions = self.scheduler.register_peer(
            self.now,
            peer_id,
            host_id=host_id,
            url=self.url,
            content_length=self.content_length,
            forced_piece_length=self.piece_length,
        )
        self.apply(decisions)
        return decisions

    def apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            self.decisions.append(decision)
            self.counts[type(decision).__name__] += 1
            if isinstance(decision, TriggerSeed):
                self.register(f"seed-peer-{decision.host_id}", decision.host_id)
            elif isinstance(decision, Parents):
                self.peers[decision.peer_id].parents = decision.parent_ids
            elif isinstance(decision, BackToSource):
                self.peers[decision.peer_id].back_to_source = True
                self.peers[decision.peer_id].parents = ()
            elif isinstance(decision, Fail):
                self.peers[decision.peer_id].failed = True
            elif isinstance(decision, AlreadyComplete):
                self.peers[decision.peer_id].done = True
            elif isinstance(decision, Retry | PeerEvicted):
                pass

    def _planner(self, peer: SwarmPeer) -> PiecePlanner:
        if peer.planner is None:
            task = self.scheduler.peer(peer.peer_id).task
            peer.planner = PiecePlanner(
                task.piece_count, PlannerConfig(), rng=Random(self.rng.random())
            )
        return peer.planner

    def round(self) -> None:
        """One step: every peer downloads what it can, then the scheduler's timers run."""
        scheduler = self.scheduler
        for peer in list(self.peers.values()):
            if peer.done or peer.failed or peer.peer_id not in scheduler.peers:
                continue
            model = scheduler.peer(peer.peer_id)
            if model.state not in (PeerState.RUNNING, PeerState.BACK_TO_SOURCE):
                continue
            if peer.back_to_source:
                for _ in range(self.source_pieces_per_round):
                    missing = model.finished.missing
                    if not missing:
                        break
                    piece = (missing & -missing).bit_length() - 1
                    self.apply(
                        scheduler.piece_finished(
                            self.now, peer.peer_id, piece, length=self.piece_length
                        )
                    )
                    self.origin_bytes += self.piece_length
            else:
                planner = self._planner(peer)
                parents = {
                    pid: scheduler.peers[pid].finished
                    for pid in peer.parents
                    if pid in scheduler.peers
                }
                requests = planner.plan(model.finished, parents)[: self.peer_pieces_per_round]
                cancelled: set[tuple[int, str]] = set()
                for request in requests:
                    if (request.piece, request.parent_id) in cancelled:
                        continue  # an endgame duplicate whose twin already arrived
                    for loser in planner.completed(request.piece, request.parent_id):
                        cancelled.add((loser.piece, loser.parent_id))
                    self.apply(
                        scheduler.piece_finished(
                            self.now,
                            peer.peer_id,
                            request.piece,
                            length=self.piece_length,
                            parent_id=request.parent_id,
                            duration=self.step,
                        )
                    )
                    self.peer_bytes += self.piece_length
                for request in planner.requests_in_flight():
                    planner.cancelled(request.piece, request.parent_id)
                if not requests and planner.stalled(model.finished, parents):
                    self.apply(scheduler.reschedule(self.now, peer.peer_id))
            if model.finished.complete:
                self.apply(scheduler.peer_succeeded(self.now, peer.peer_id))
                peer.done = True
        self.now += self.step
        if scheduler.next_deadline() <= self.now:
            self.apply(scheduler.tick(self.now))

    def run(self, max_rounds: int = 5000) -> int:
        """Rounds until every peer is done or failed (bounded by ``max_rounds``)."""
        for rounds in range(1, max_rounds + 1):
            self.round()
            if all(peer.done or peer.failed for peer in self.peers.values()):
                return rounds
        return max_rounds


def make_swarm(
    hosts: int,
    *,
    seeds: int = 0,
    evaluator: str = "default",
    seed: int = 1,
    config: SchedulerConfig | None = None,
    **swarm_options: object,
) -> Swarm:
    scheduler = Scheduler(config or SchedulerConfig(), evaluator=evaluator, rng=Random(seed))
    swarm = Swarm(scheduler, **swarm_options)  # type: ignore[arg-type]
    for index in range(seeds):
        swarm.add_host(f"seed{index}", seed=True)
    for index in range(hosts):
        swarm.add_host(f"h{index:04d}")
    return swarm
