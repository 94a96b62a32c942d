"""Random sequences of calls against the scheduler; invariants checked after every step."""

from __future__ import annotations

from random import Random
from typing import ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from damselfly.scheduling import (
    Decision,
    HostKind,
    Parents,
    PeerState,
    Scheduler,
    SchedulerConfig,
    UsageError,
)

HOSTS = 24
SEEDS = 2
URLS = ["https://origin.example/a", "https://origin.example/b"]
PIECE = 1024 * 1024
LENGTH = 8 * PIECE  # eight 1 MiB pieces
RECEIVING = (PeerState.RUNNING, PeerState.BACK_TO_SOURCE)


class SchedulerMachine(RuleBasedStateMachine):
    # Research knobs for a variant of the machine (see MeshSchedulerMachine).
    knobs: ClassVar[dict[str, bool]] = {}

    @initialize(seed=st.integers(0, 2**16))
    def start(self, seed: int) -> None:
        config = SchedulerConfig(
            peer_idle_timeout=30.0,
            peer_ttl=60.0,
            host_ttl=1e9,
            task_ttl=5.0,
            gc_interval=5.0,
            **self.knobs,
        )
        self.scheduler = Scheduler(config, rng=Random(seed))
        self.now = 0.0
        self.next_peer = 0
        self.decisions: list[Decision] = []
        for index in range(HOSTS):
            self.scheduler.announce_host(
                0.0,
                f"h{index}",
                upload_rate=1e8,
                kind=HostKind.SEED if index < SEEDS else HostKind.NORMAL,
                upload_slots=3,
                idc=f"idc{index % 2}",
            )

    def _receiving(self) -> list[str]:
        return sorted(p.id for p in self.scheduler.peers.values() if p.state in RECEIVING)

    def _carry(self, decisions: list[Decision]) -> None:
        # Within one batch a later Parents decision for a peer supersedes an earlier one
        # (a cascade may block a parent after it was first offered): check the last.
        latest: dict[str, Decision] = {}
        for decision in decisions:
            peer_id = getattr(decision, "peer_id", None)
            if peer_id is not None:
                latest[peer_id] = decision
        for peer_id, decision in latest.items():
            peer = self.scheduler.peers.get(peer_id)
            if not isinstance(decision, Parents) or peer is None:
                continue
            assert tuple(peer.parents) == decision.parent_ids
            assert not set(decision.parent_ids) & peer.blocked, "offered a blocked parent"
            for parent_id in decision.parent_ids:
                assert self.scheduler.peers[parent_id].host is not peer.host

    @rule(host=st.integers(0, HOSTS - 1), url=st.sampled_from(URLS), data=st.data())
    def register(self, host: int, url: str, data: st.DataObject) -> None:
        peer_id = f"p{self.next_peer}"
        self.next_peer += 1
        length = data.draw(st.sampled_from([LENGTH, None]))
        try:
            decisions = self.scheduler.register_peer(
                self.now,
                peer_id,
                host_id=f"h{host}",
                url=url,
                content_length=length,
                forced_piece_length=PIECE,
            )
        except UsageError:
            return
        assert decisions, "every registered peer gets a decision"
        self._carry(decisions)

    @rule(data=st.data())
    def piece_finished(self, data: st.DataObject) -> None:
        receiving = self._receiving()
        if not receiving:
            return
        peer = self.scheduler.peers[data.draw(st.sampled_from(receiving))]
        if not peer.task.piece_count:
            self.scheduler.set_task_metadata(
                self.now, peer.task.id, content_length=LENGTH, forced_piece_length=PIECE
            )
        piece = data.draw(st.integers(0, peer.task.piece_count - 1))
        parents = sorted(peer.parents)
        parent_id = data.draw(st.sampled_from(parents)) if parents else None
        self._carry(
            self.scheduler.piece_finished(
                self.now, peer.id, piece, length=PIECE, parent_id=parent_id
            )
        )
        if peer.finished.complete:
            self._carry(self.scheduler.peer_succeeded(self.now, peer.id))

    @rule(data=st.data())
    def piece_failed(self, data: st.DataObject) -> None:
        candidates = [p for p in self._receiving() if self.scheduler.peers[p].parents]
        if not candidates:
            return
        peer = self.scheduler.peers[data.draw(st.sampled_from(candidates))]
        if not peer.task.piece_count:
            return
        parent_id = data.draw(st.sampled_from(sorted(peer.parents)))
        self._carry(self.scheduler.piece_failed(self.now, peer.id, 0, parent_id=parent_id))
        assert parent_id not in peer.parents

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        if not self.scheduler.peers:
            return
        peer_id = data.draw(st.sampled_from(sorted(self.scheduler.peers)))
        self._carry(self.scheduler.peer_left(self.now, peer_id))
        assert peer_id not in self.scheduler.peers

    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        alive = sorted(p.id for p in self.scheduler.peers.values() if not p.terminal)
        if alive:
            self._carry(self.scheduler.peer_failed(self.now, data.draw(st.sampled_from(alive))))

    @rule(data=st.data())
    def reschedule(self, data: st.DataObject) -> None:
        receiving = [p for p in self._receiving() if self.scheduler.peers[p].task.piece_count]
        if receiving:
            self._carry(self.scheduler.reschedule(self.now, data.draw(st.sampled_from(receiving))))

    @rule(seconds=st.floats(0.1, 20.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self._carry(self.scheduler.tick(self.now))
        assert self.scheduler.next_deadline() > self.now

    @invariant()
    def no_peer_is_its_own_ancestor(self) -> None:
        if not hasattr(self, "scheduler") or not self.scheduler.config.acyclic:
            return
        for peer in self.scheduler.peers.values():
            stack = list(peer.parents.values())
            seen: set[str] = set()
            while stack:
                current = stack.pop()
                assert current is not peer, f"{peer.id} is its own ancestor"
                if current.id not in seen:
                    seen.add(current.id)
                    stack.extend(current.parents.values())

    @invariant()
    def edges_counts_and_bitfields_agree(self) -> None:
        if not hasattr(self, "scheduler"):
            return
        scheduler = self.scheduler
        edges = {host_id: 0 for host_id in scheduler.hosts}
        for peer in scheduler.peers.values():
            assert peer.finished.count == peer.finished.bits.bit_count()
            assert peer.finished.size == peer.task.piece_count
            assert not set(peer.parents) & peer.blocked
            assert peer.parent_peers == list(peer.parents.values()), "the walks' copy"
            assert peer.walk_via is None, "a cycle walk left a reference behind"
            for parent in peer.parents.values():
                assert parent.children[peer.id] is peer
                if scheduler.config.acyclic:
                    assert parent.order < peer.order, "the topological order holds"
                assert parent.host is not peer.host
                assert parent.id in scheduler.peers
                edges[parent.host.id] += 1
            for child in peer.children.values():
                assert child.parents[peer.id] is peer
            if peer.terminal:
                assert not peer.parents
            assert scheduler.tasks[peer.task.id].peers[peer.id] is peer
        for host_id, host in scheduler.hosts.items():
            assert host.upload_edges == edges[host_id]
            assert host.upload_edges <= host.upload_slots
        for task in scheduler.tasks.values():
            assert len(task.back_to_source_peers) <= scheduler.config.back_to_source_limit
            # Only peers fetching from the origin now count towards the limit.
            for peer_id in task.back_to_source_peers:
                assert scheduler.peers[peer_id].state is PeerState.BACK_TO_SOURCE
            # The pool Dragonfly-style sampling draws from holds exactly the task's peers.
            assert len(task.members) == len(task.peers)
            assert all(peer_id in task.members for peer_id in task.peers)


SchedulerMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestScheduler = SchedulerMachine.TestCase


class MeshSchedulerMachine(SchedulerMachine):
    """The same rules with the cycle test off and candidates drawn as Dragonfly draws them:
    every invariant but the acyclic graph's must still hold."""

    knobs: ClassVar[dict[str, bool]] = {"acyclic": False, "sample_all_peers": True}


MeshSchedulerMachine.TestCase.settings = SchedulerMachine.TestCase.settings
TestMeshScheduler = MeshSchedulerMachine.TestCase
