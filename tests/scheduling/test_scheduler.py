"""The scheduler's rules, one at a time, through its public API."""

from __future__ import annotations

from random import Random

import pytest

from damselfly.scheduling import (
    AlreadyComplete,
    BackToSource,
    Decision,
    Fail,
    HostEvicted,
    HostKind,
    InvalidTransitionError,
    InvalidValueError,
    Parents,
    PeerEvicted,
    PeerMisbehavedError,
    PeerState,
    PieceOutOfRangeError,
    PieceReport,
    Retry,
    Scheduler,
    SchedulerConfig,
    TriggerSeed,
    UnknownEvaluatorError,
    UnknownHostError,
    UnknownPeerError,
    UnknownTaskError,
    UsageError,
)
from damselfly.scheduling.scheduler import SEED_FAILED_TIMEOUT

URL = "https://origin.example/file.bin"
MiB = 1024**2
LENGTH = 64 * MiB  # 16 pieces of 4 MiB


def make(hosts: int = 10, seeds: int = 0, **config: object) -> Scheduler:
    scheduler = Scheduler(SchedulerConfig(**config), rng=Random(3))  # type: ignore[arg-type]
    for index in range(seeds):
        scheduler.announce_host(0.0, f"seed{index}", upload_rate=1.25e9, kind=HostKind.SEED)
    for index in range(hosts):
        scheduler.announce_host(0.0, f"h{index}", upload_rate=125e6, idc="a", location="cn|a|r1")
    return scheduler


def register(scheduler: Scheduler, peer_id: str, host_id: str, now: float = 0.0, **options: object):
    return scheduler.register_peer(
        now,
        peer_id,
        host_id=host_id,
        url=URL,
        content_length=LENGTH,
        **options,  # type: ignore[arg-type]
    )


def only(decisions, kind):  # type: ignore[no-untyped-def]
    found = [decision for decision in decisions if isinstance(decision, kind)]
    assert len(found) == 1, decisions
    return found[0]


def test_first_peer_without_seed_goes_to_the_source_and_second_gets_it_as_parent() -> None:
    scheduler = make()
    first = only(register(scheduler, "p0", "h0"), BackToSource)
    assert first.peer_id == "p0"
    assert scheduler.peer("p0").state is PeerState.BACK_TO_SOURCE
    second = only(register(scheduler, "p1", "h1"), Parents)
    assert second.parent_ids == ("p0",)
    assert scheduler.peer("p1").state is PeerState.RUNNING
    assert scheduler.host("h0").upload_edges == 1


def test_first_peer_with_seed_hosts_triggers_the_ring_seed_once() -> None:
    scheduler = make(seeds=3)
    decisions = register(scheduler, "p0", "h0")
    trigger = only(decisions, TriggerSeed)
    assert trigger.host_id == scheduler.seed_ring.lookup(trigger.task_id)
    retry = only(decisions, Retry)
    assert retry.at == pytest.approx(0.5) and retry.attempt == 1
    assert not any(isinstance(d, TriggerSeed) for d in register(scheduler, "p1", "h1"))
    # The seed registers: it goes to the source and is preferred as parent thereafter.
    seed_decision = only(register(scheduler, "s0", trigger.host_id, now=0.1), BackToSource)
    assert seed_decision.peer_id == "s0"
    parents = {d.peer_id: d.parent_ids for d in scheduler.tick(0.5) if isinstance(d, Parents)}
    assert parents["p0"] == ("s0",)
    assert "s0" in parents["p1"]


@pytest.mark.parametrize("seed_end", ["left", "failed"])
def test_a_task_left_with_no_peer_to_serve_triggers_its_seed_again(seed_end: str) -> None:
    scheduler = make(seeds=1)
    trigger = only(register(scheduler, "p0", "h0"), TriggerSeed)
    register(scheduler, "s0", trigger.host_id, now=0.1)
    assert not any(isinstance(d, TriggerSeed) for d in register(scheduler, "p1", "h1", now=0.2))
    # The seed's download ends and the peers give up: nobody holds or fetches the task.
    if seed_end == "left":
        scheduler.peer_left(1.0, "s0")
    else:
        scheduler.peer_failed(1.0, "s0", "origin unreachable")
    scheduler.peer_left(1.0, "p0")
    scheduler.peer_left(1.0, "p1")
    decisions = register(scheduler, "p2", "h2", now=2.0)
    if seed_end == "left":
        # The next peer triggers the seed again, as the first one did.
        assert only(decisions, TriggerSeed).host_id == trigger.host_id
    else:
        # A seed that failed just now is not asked again: the peer goes to the source.
        assert not any(isinstance(d, TriggerSeed) for d in decisions)
        assert only(decisions, BackToSource).peer_id == "p2"


def test_a_failed_seed_is_remembered_for_thirty_minutes_until_it_is_collected() -> None:
    # Dragonfly's IsSeedPeerFailed: the seed peer failed and was created less than 30 min
    # ago. The memory is the failed peer itself, so it also ends when the peer is collected.
    def orphan_task(scheduler: Scheduler) -> tuple[str, float]:
        trigger = only(register(scheduler, "p0", "h0"), TriggerSeed)
        register(scheduler, "s0", trigger.host_id, now=0.1)
        scheduler.peer_failed(1.0, "s0", "origin unreachable")
        scheduler.peer_left(1.0, "p0")
        return trigger.host_id, scheduler.peer("s0").created_at

    def first_decision(
        scheduler: Scheduler, peer_id: str, host_id: str, now: float
    ) -> list[Decision]:
        decisions = register(scheduler, peer_id, host_id, now=now)
        scheduler.peer_left(now, peer_id)  # nobody left holding or fetching the task
        return decisions

    # Not collected (no tick): to the source until 30 min after the seed peer's creation,
    # then the seed is triggered again.
    scheduler = make(seeds=1)
    seed_host, created = orphan_task(scheduler)
    deadline = created + SEED_FAILED_TIMEOUT
    only(first_decision(scheduler, "p1", "h1", deadline - 0.5), BackToSource)
    assert only(first_decision(scheduler, "p2", "h2", deadline + 0.5), TriggerSeed).host_id == (
        seed_host
    )
    # Collected by the garbage collection that follows the failure: triggered at once.
    scheduler = make(seeds=1)
    seed_host, _ = orphan_task(scheduler)
    scheduler.tick(1.0 + scheduler.config.gc_interval)
    with pytest.raises(UnknownPeerError):
        scheduler.peer("s0")
    later = 2.0 + scheduler.config.gc_interval
    assert only(first_decision(scheduler, "p1", "h1", later), TriggerSeed).host_id == seed_host


def test_retries_then_back_to_source_after_four_tries() -> None:
    scheduler = make(seeds=1)
    decisions = register(scheduler, "p0", "h0")
    assert only(decisions, Retry).attempt == 1
    now = 0.0
    attempts = [1]
    while True:
        now = scheduler.next_deadline()
        assert now < 10
        decisions = scheduler.tick(now)
        if any(isinstance(d, BackToSource) for d in decisions):
            break
        attempts.append(only(decisions, Retry).attempt)
    assert attempts == [1, 2, 3]
    assert now == pytest.approx(1.5)  # tries at 0, 0.5, 1.0; the fourth at 1.5 fails
    assert scheduler.peer("p0").state is PeerState.BACK_TO_SOURCE


def test_disable_back_to_source_fails_after_five_tries() -> None:
    scheduler = make(seeds=1)
    register(scheduler, "p0", "h0", disable_back_to_source=True)
    fail = None
    for _ in range(10):
        decisions = scheduler.tick(scheduler.next_deadline())
        fail = next((d for d in decisions if isinstance(d, Fail)), None)
        if fail:
            break
    assert fail is not None and fail.peer_id == "p0"
    assert scheduler.peer("p0").state is PeerState.FAILED
    assert scheduler.decision_counts["Retry"] == 4


def test_back_to_source_limit_per_task() -> None:
    scheduler = make(hosts=6, seeds=1, back_to_source_limit=2)
    for index in range(5):
        register(scheduler, f"p{index}", f"h{index}", need_back_to_source=index < 2)
    assert len(scheduler.task(scheduler.peer("p0").task.id).back_to_source_peers) == 2
    # p2..p4 wait for parents (p0 and p1 are back to source, so they are parents).
    assert all(scheduler.peer(f"p{i}").state is PeerState.RUNNING for i in range(2, 5))


def test_the_back_to_source_limit_counts_downloads_in_progress() -> None:
    # Dragonfly's limit is on peers fetching from the origin now: one that succeeded or
    # failed frees its place (a daemon re-announcing content after a scheduler restart
    # passes through the back-to-source state, and must not use the limit up for good).
    for ending in ("succeeded", "failed"):
        scheduler = make(hosts=2, back_to_source_limit=1)
        only(register(scheduler, "p0", "h0"), BackToSource)
        if ending == "succeeded":
            for piece in range(16):
                scheduler.piece_finished(1.0, "p0", piece, length=4 * MiB)
            scheduler.peer_succeeded(1.0, "p0")
        else:
            scheduler.peer_failed(1.0, "p0", "disk full")
        task = scheduler.task(scheduler.peer("p0").task.id)
        assert task.back_to_source_peers == set()
        # A second peer on the same host has no parent it may use: after its tries it
        # goes to the source, since nobody else is fetching from it.
        decisions = register(scheduler, "p1", "h0", now=2.0)
        sent_back = [d for d in decisions if isinstance(d, BackToSource)]
        while not sent_back and scheduler.peer("p1").state is PeerState.RECEIVED_NORMAL:
            decisions = scheduler.tick(scheduler.next_deadline())
            sent_back = [d for d in decisions if isinstance(d, BackToSource)]
        assert [d.peer_id for d in sent_back] == ["p1"], ending
        assert task.back_to_source_peers == {"p1"}


@pytest.mark.parametrize("acyclic", [True, False])
def test_without_the_cycle_test_two_peers_may_download_from_each_other(acyclic: bool) -> None:
    scheduler = make(hosts=3, acyclic=acyclic)
    only(register(scheduler, "p0", "h0"), BackToSource)
    assert only(register(scheduler, "p1", "h1"), Parents).parent_ids == ("p0",)
    assert set(only(register(scheduler, "p2", "h2"), Parents).parent_ids) == {"p0", "p1"}
    # p1's only other candidate is its own child p2.
    decisions = scheduler.reschedule(1.0, "p1", exclude=["p0"])
    if acyclic:
        assert not any(isinstance(d, Parents) for d in decisions)
        assert "p2" not in scheduler.peer("p1").parents
    else:
        assert only(decisions, Parents).parent_ids == ("p2",)
        assert "p1" in scheduler.peer("p2").parents  # a mesh: each is the other's parent


@pytest.mark.parametrize("sample_all_peers", [False, True])
def test_dragonflys_sampling_draws_from_every_peer_of_the_task(sample_all_peers: bool) -> None:
    # One peer can serve; 40 wait on its host, where it cannot be their parent. A newcomer
    # draws one candidate: from the servable peers it always finds p0; from all 42 peers,
    # as Dragonfly draws, it rarely does.
    found = 0
    for seed in range(20):
        scheduler = Scheduler(
            SchedulerConfig(filter_parent_limit=1, sample_all_peers=sample_all_peers),
            rng=Random(seed),
        )
        for host_id in ("h0", "h1"):
            scheduler.announce_host(0.0, host_id, upload_rate=125e6)
        only(register(scheduler, "p0", "h0"), BackToSource)
        for index in range(40):
            only(register(scheduler, f"w{index}", "h0"), Retry)
        found += any(isinstance(d, Parents) for d in register(scheduler, "x", "h1"))
    if sample_all_peers:
        assert found <= 5
    else:
        assert found == 20


def test_peer_to_peer_disabled_sends_everyone_to_the_source() -> None:
    scheduler = make(enable_peer_to_peer=False, back_to_source_limit=1)
    for index in range(5):
        only(register(scheduler, f"p{index}", f"h{index}"), BackToSource)


def test_never_itself_nor_its_own_host() -> None:
    scheduler = make(hosts=2)
    register(scheduler, "p0", "h0")
    # A second task on the same host is a different peer of the same host.
    decisions = register(scheduler, "p0b", "h0")
    assert not any(isinstance(d, Parents) and "p0" in d.parent_ids for d in decisions)


def test_blocked_parent_is_never_offered_again() -> None:
    scheduler = make(hosts=4)
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    parents = only(register(scheduler, "p2", "h2"), Parents)
    failed_parent = parents.parent_ids[0]
    decisions = scheduler.piece_failed(1.0, "p2", 0, parent_id=failed_parent, reason="corrupt")
    for decision in decisions:
        if isinstance(decision, Parents):
            assert failed_parent not in decision.parent_ids
    assert failed_parent in scheduler.peer("p2").blocked
    assert scheduler.host(scheduler.peer(failed_parent).host.id).upload_failed_count == 1


def test_parent_with_no_free_upload_slot_is_skipped() -> None:
    scheduler = Scheduler(rng=Random(1))
    scheduler.announce_host(0.0, "h0", upload_rate=1e8, upload_slots=1)
    for index in range(1, 4):
        scheduler.announce_host(0.0, f"h{index}", upload_rate=1e8, upload_slots=0)
    register(scheduler, "p0", "h0")
    assert only(register(scheduler, "p1", "h1"), Parents).parent_ids == ("p0",)
    # h0's single slot is taken; p1's host has no slots: nobody can serve p2 now.
    assert only(register(scheduler, "p2", "h2"), Retry).peer_id == "p2"


def test_no_cycles_in_a_tasks_parent_graph() -> None:
    scheduler = make(hosts=3)
    register(scheduler, "a", "h0")  # back to source
    register(scheduler, "b", "h1")  # parent a
    register(scheduler, "c", "h2")  # parents among a, b
    # a leaves the source path: make b and c reschedule repeatedly; no ancestor loop forms.
    for round_ in range(20):
        for name in ("b", "c"):
            scheduler.reschedule(float(round_), name)
            for peer in scheduler.peers.values():
                assert not _is_ancestor(peer, peer)


def _is_ancestor(peer, target) -> bool:  # type: ignore[no-untyped-def]
    stack = list(peer.parents.values())
    seen = set()
    while stack:
        current = stack.pop()
        if current is target:
            return True
        if current.id in seen:
            continue
        seen.add(current.id)
        stack.extend(current.parents.values())
    return False


def test_sampling_and_candidate_limits() -> None:
    scheduler = make(hosts=60, filter_parent_limit=15, candidate_parent_limit=3)
    register(scheduler, "p0", "h0")
    for index in range(1, 40):
        register(scheduler, f"p{index}", f"h{index}")
    decisions = register(scheduler, "new", "h59")
    assert len(only(decisions, Parents).parent_ids) == 3


def test_children_are_rescheduled_when_a_parent_leaves() -> None:
    scheduler = make(hosts=5)
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    parents = only(register(scheduler, "p2", "h2"), Parents)
    leaving = parents.parent_ids[0]
    decisions = scheduler.peer_left(1.0, leaving)
    assert leaving not in scheduler.peers
    rescheduled = [d for d in decisions if d.peer_id == "p2"]  # type: ignore[union-attr]
    assert rescheduled, decisions
    for decision in rescheduled:
        if isinstance(decision, Parents):
            assert leaving not in decision.parent_ids


def test_children_are_rescheduled_when_a_parent_fails() -> None:
    scheduler = make(hosts=5)
    register(scheduler, "p0", "h0")
    parents = only(register(scheduler, "p1", "h1"), Parents)
    assert parents.parent_ids == ("p0",)
    decisions = scheduler.peer_failed(1.0, "p0", "disk full")
    assert scheduler.peer("p0").state is PeerState.FAILED
    assert any(d.peer_id == "p1" for d in decisions)  # type: ignore[union-attr]
    assert "p0" not in scheduler.peer("p1").parents
    assert scheduler.host("h0").upload_edges == 0


def test_piece_reports_update_bitfield_and_parent_host() -> None:
    scheduler = make(hosts=3)
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    scheduler.piece_finished(1.0, "p0", 0, length=4 * MiB, duration=0.1, digest="sha256:aa")
    scheduler.pieces_finished(
        2.0, "p1", [PieceReport(piece=0, length=4 * MiB, parent_id="p0", duration=0.2)]
    )
    assert scheduler.peer("p1").finished.has(0)
    assert scheduler.peer("p1").first_piece_at == 2.0
    assert scheduler.host("h0").upload_count == 1
    assert scheduler.host("h0").estimated_upload_rate(2.0) > 0
    assert scheduler.task(scheduler.peer("p0").task.id).piece_digests[0] == "sha256:aa"


def test_success_requires_every_piece_and_frees_the_parents_slots() -> None:
    scheduler = make(hosts=2)
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    with pytest.raises(InvalidValueError):
        scheduler.peer_succeeded(1.0, "p1")
    for piece in range(16):
        scheduler.piece_finished(1.0, "p1", piece, length=4 * MiB, parent_id="p0")
    scheduler.peer_succeeded(2.0, "p1")
    assert scheduler.peer("p1").state is PeerState.SUCCEEDED
    assert scheduler.host("h0").upload_edges == 0
    assert "p1" in scheduler.peer("p1").task.parent_pool


def test_empty_content_is_complete_at_once() -> None:
    scheduler = make()
    decisions = scheduler.register_peer(
        0.0, "p0", host_id="h0", url=URL + "?empty", content_length=0
    )
    assert only(decisions, AlreadyComplete).peer_id == "p0"
    assert scheduler.peer("p0").state is PeerState.SUCCEEDED


def test_unknown_length_waits_for_metadata() -> None:
    scheduler = make(hosts=3)
    decisions = scheduler.register_peer(0.0, "p0", host_id="h0", url=URL)
    only(decisions, BackToSource)
    task_id = scheduler.peer("p0").task.id
    scheduler.set_task_metadata(0.5, task_id, content_length=LENGTH)
    assert scheduler.task(task_id).piece_count == 16
    assert scheduler.peer("p0").finished.size == 16
    with pytest.raises(PeerMisbehavedError):
        scheduler.set_task_metadata(0.6, task_id, content_length=LENGTH + 1)


def test_garbage_collection_of_idle_peers_silent_hosts_and_empty_tasks() -> None:
    scheduler = make(
        hosts=3, peer_idle_timeout=100.0, host_ttl=1000.0, task_ttl=10.0, gc_interval=50.0
    )
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    task_id = scheduler.peer("p0").task.id
    assert scheduler.next_deadline() == 50.0
    assert scheduler.tick(50.0) == []
    scheduler.piece_finished(90.0, "p1", 0, length=4 * MiB, parent_id="p0")
    decisions = scheduler.tick(150.0)
    evicted = {d.peer_id for d in decisions if isinstance(d, PeerEvicted)}
    assert evicted == {"p0"}  # p1 reported at 90 s
    for host_id in ("h0", "h1"):
        scheduler.announce_host(900.0, host_id, upload_rate=125e6)
    decisions = scheduler.collect_garbage(1100.0)
    assert {d.host_id for d in decisions if isinstance(d, HostEvicted)} == {"h2"}
    assert {d.peer_id for d in decisions if isinstance(d, PeerEvicted)} == {"p1"}
    scheduler.collect_garbage(1200.0)
    assert task_id not in scheduler.tasks


def test_a_failed_peer_is_forgotten_at_the_next_collection_a_finished_one_after_its_ttl() -> None:
    scheduler = make(hosts=3, peer_ttl=3600.0, gc_interval=60.0)
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    for piece in range(16):
        scheduler.piece_finished(1.0, "p0", piece, length=4 * MiB)
    scheduler.peer_succeeded(2.0, "p0")
    scheduler.peer_failed(3.0, "p1", "disk full")
    decisions = scheduler.tick(60.0)
    assert {d.peer_id for d in decisions if isinstance(d, PeerEvicted)} == {"p1"}
    assert "p1" not in scheduler.peers
    assert scheduler.peer("p0").state is PeerState.SUCCEEDED
    evicted = scheduler.collect_garbage(3602.0)
    assert {d.peer_id for d in evicted if isinstance(d, PeerEvicted)} == {"p0"}


def test_a_parent_that_keeps_uploading_is_not_collected() -> None:
    scheduler = make(hosts=3, peer_ttl=3600.0, host_ttl=600.0, gc_interval=60.0)
    register(scheduler, "p0", "h0")
    for piece in range(16):
        scheduler.piece_finished(1.0, "p0", piece, length=4 * MiB)
    scheduler.peer_succeeded(2.0, "p0")
    register(scheduler, "p1", "h1", now=3500.0)
    for host_id in ("h1", "h2"):
        scheduler.announce_host(3500.0, host_id, upload_rate=125e6)
    # h0 announces nothing more, but p0 serves a piece to p1: both count as alive.
    scheduler.piece_finished(3590.0, "p1", 0, length=4 * MiB, parent_id="p0")
    decisions = scheduler.collect_garbage(3700.0)
    assert not [d for d in decisions if isinstance(d, PeerEvicted | HostEvicted)]
    assert scheduler.peer("p0").state is PeerState.SUCCEEDED


def test_host_left_removes_its_peers_and_its_seed_position() -> None:
    scheduler = make(hosts=2, seeds=2)
    assert len(scheduler.seed_ring) == 2
    scheduler.host_left(0.0, "seed0")
    assert len(scheduler.seed_ring) == 1
    with pytest.raises(UnknownHostError):
        scheduler.host("seed0")


def test_announce_refreshes_without_losing_counters() -> None:
    scheduler = make(hosts=1)
    scheduler.host("h0").upload_count = 7
    scheduler.announce_host(5.0, "h0", upload_rate=2e8, idc="b", kind=HostKind.SEED)
    host = scheduler.host("h0")
    assert host.upload_count == 7 and host.upload_rate == 2e8 and host.idc == "b"
    assert "h0" in scheduler.seed_ring


def test_a_host_that_announces_upload_slots_again_offers_its_peers() -> None:
    scheduler = make(hosts=2)
    scheduler.announce_host(0.0, "h0", upload_rate=125e6, upload_slots=0)
    register(scheduler, "p0", "h0")  # back to source, but its host uploads to nobody
    assert not scheduler.task(scheduler.peer("p0").task.id).parent_pool
    # The host comes back with upload slots: what its peers hold is on offer again.
    scheduler.announce_host(1.0, "h0", upload_rate=125e6, upload_slots=4)
    assert only(register(scheduler, "p1", "h1", now=1.0), Parents).parent_ids == ("p0",)
    # And with none, it is not offered.
    scheduler.announce_host(2.0, "h0", upload_rate=125e6, upload_slots=0)
    assert "p0" not in scheduler.task(scheduler.peer("p0").task.id).parent_pool


def test_same_seed_same_decisions() -> None:
    def run(seed: int) -> list[object]:
        scheduler = Scheduler(rng=Random(seed))
        for index in range(30):
            scheduler.announce_host(0.0, f"h{index}", upload_rate=1e8)
        decisions: list[object] = []
        for index in range(30):
            decisions += register(scheduler, f"p{index}", f"h{index}")
        return decisions

    assert run(1) == run(1)
    assert run(1) != run(2)


# -- bad input: a specific error, and nothing changes ----------------------------------


def snapshot(scheduler: Scheduler) -> object:
    return (
        sorted(scheduler.peers),
        sorted(scheduler.tasks),
        {pid: (p.state, p.finished.bits, tuple(p.parents)) for pid, p in scheduler.peers.items()},
        {hid: (h.upload_edges, h.upload_count) for hid, h in scheduler.hosts.items()},
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: register(s, "x", "nope"), UnknownHostError),
        (lambda s: register(s, "p0", "h3"), InvalidValueError),  # duplicate id
        (
            lambda s: s.register_peer(0.0, "x", host_id="h3", url=URL, content_length=-5),
            InvalidValueError,
        ),
        (
            lambda s: s.register_peer(0.0, "x", host_id="h3", url=URL, content_length=LENGTH + 1),
            InvalidValueError,
        ),
        (lambda s: s.register_peer(0.0, "x", host_id="h3", url=""), InvalidValueError),
        (lambda s: s.piece_finished(1.0, "ghost", 0, length=1), UnknownPeerError),
        (lambda s: s.piece_finished(1.0, "p1", 16, length=1), PieceOutOfRangeError),
        (lambda s: s.piece_finished(1.0, "p1", -1, length=1), PieceOutOfRangeError),
        (lambda s: s.piece_finished(1.0, "p1", 0, length=-1), InvalidValueError),
        (lambda s: s.piece_failed(1.0, "p1", 99, parent_id="p0"), PieceOutOfRangeError),
        (lambda s: s.piece_finished(1.0, "done", 0, length=1), InvalidTransitionError),
        (lambda s: s.reschedule(1.0, "done"), InvalidTransitionError),
        (lambda s: s.peer_failed(1.0, "gone"), UnknownPeerError),
        (lambda s: s.set_task_metadata(1.0, "no-such-task", content_length=1), UnknownTaskError),
        (lambda s: s.announce_host(1.0, "bad", upload_rate=-1.0), InvalidValueError),
        (
            lambda s: s.announce_host(1.0, "bad", upload_rate=1.0, upload_slots=-2),
            InvalidValueError,
        ),
    ],
)
def test_bad_input_raises_a_specific_error_and_changes_nothing(call, error) -> None:  # type: ignore[no-untyped-def]
    scheduler = make(hosts=4)
    register(scheduler, "p0", "h0")
    register(scheduler, "p1", "h1")
    register(scheduler, "done", "h2")
    for piece in range(16):
        scheduler.piece_finished(0.5, "done", piece, length=4 * MiB, parent_id="p0")
    scheduler.peer_succeeded(0.6, "done")
    before = snapshot(scheduler)
    with pytest.raises(error):
        call(scheduler)
    assert snapshot(scheduler) == before
    assert issubclass(error, UsageError)


def test_conflicting_piece_digest_is_a_misbehaving_peer() -> None:
    scheduler = make(hosts=2)
    register(scheduler, "p0", "h0")
    scheduler.piece_finished(0.1, "p0", 0, length=4 * MiB, digest="sha256:aa")
    register(scheduler, "p1", "h1")
    with pytest.raises(PeerMisbehavedError):
        scheduler.piece_finished(0.2, "p1", 0, length=4 * MiB, parent_id="p0", digest="sha256:bb")
    assert not scheduler.peer("p1").finished.has(0)


def test_unknown_evaluator_names_the_known_ones() -> None:
    with pytest.raises(UnknownEvaluatorError, match="default"):
        Scheduler(evaluator="clairvoyant")


@pytest.mark.parametrize("wake", [True, False])
def test_waiting_peers_wake_when_a_parent_appears(wake: bool) -> None:
    scheduler = make(seeds=1, wake_on_new_parent=wake)
    decisions = register(scheduler, "p0", "h0")
    trigger = only(decisions, TriggerSeed)
    assert only(decisions, Retry).at == pytest.approx(0.5)
    register(scheduler, "s0", trigger.host_id, now=0.01)  # the seed arrives 10 ms later
    if wake:
        assert scheduler.next_deadline() == pytest.approx(0.01)
        parents = only(scheduler.tick(0.01), Parents)
        assert parents.parent_ids == ("s0",)
        assert scheduler.peer("p0").schedule_attempts == 0
        assert scheduler.next_deadline() > 0.5  # the retry was cancelled
    else:
        assert scheduler.next_deadline() == pytest.approx(0.5)
        assert only(scheduler.tick(0.5), Parents).parent_ids == ("s0",)


def test_a_wake_that_finds_nothing_costs_no_try() -> None:
    scheduler = make(hosts=2, seeds=1, wake_on_new_parent=True)
    register(scheduler, "p0", "h0")  # triggers the seed, waits
    # A second download on p0's own host goes to the source: it can serve, so p0 wakes,
    # but a peer on its own host is never its parent.
    register(scheduler, "p0-again", "h0", now=0.1, need_back_to_source=True)
    assert scheduler.next_deadline() == pytest.approx(0.1)
    assert not any(isinstance(d, Parents) for d in scheduler.tick(0.1))
    assert scheduler.peer("p0").schedule_attempts == 1
    assert scheduler.peer("p0").retry_at == pytest.approx(0.5)
    assert scheduler.next_deadline() == pytest.approx(0.5)


def _churned_swarm(seed: int, *, order_spacing: int | None = None) -> Scheduler:
    """30 peers rescheduled 300 times at random: a deep parent graph, built and rebuilt."""
    scheduler = make(hosts=30, candidate_parent_limit=3)
    if order_spacing is not None:
        scheduler._order_spacing = order_spacing
    register(scheduler, "p0", "h0")
    for index in range(1, 30):
        register(scheduler, f"p{index}", f"h{index}")
    rng = Random(seed)
    for step in range(300):
        scheduler.reschedule(float(step), f"p{rng.randrange(1, 30)}")
    return scheduler


def _assert_cycle_answers_agree_with_full_walks(scheduler: Scheduler) -> None:
    peers = list(scheduler.peers.values())
    for parent in peers:
        for child in peers:
            expected = parent is child or _is_ancestor(parent, child)
            assert (scheduler._ahead_of(parent, child) is None) == expected


def test_cycle_check_agrees_with_a_full_ancestor_walk() -> None:
    # For every pair, the order-pruned check must answer what a full walk answers.
    _assert_cycle_answers_agree_with_full_walks(_churned_swarm(11))


def test_the_cycle_walks_of_one_decision_may_share_what_they_learn() -> None:
    # One decision checks several candidates for the same peer with one shared memo; every
    # answer must still be the full walk's, in any order of candidates.
    scheduler = _churned_swarm(7)
    rng = Random(7)
    peers = list(scheduler.peers.values())
    for child in peers:
        memo = scheduler._new_stamp()
        for parent in rng.sample(peers, len(peers)):
            expected = parent is child or _is_ancestor(parent, child)
            ahead = scheduler._ahead_of(parent, child, memo)
            assert (ahead is None) == expected
            # The same peers to move as a walk that knows nothing (their sequence is the
            # order's business: _move_ahead sorts them).
            assert set(ahead or ()) == set(scheduler._ahead_of(parent, child) or ())


def test_the_topological_order_survives_running_out_of_room() -> None:
    # With two order numbers between neighbours, moving peers ahead soon finds no room and
    # the task's orders are spread out again; the order and the cycle test must hold.
    scheduler = _churned_swarm(5, order_spacing=2)
    assert scheduler.order_spreads > 0
    for peer in scheduler.peers.values():
        for parent in peer.parents.values():
            assert parent.order < peer.order
    _assert_cycle_answers_agree_with_full_walks(scheduler)


def _peers_moved_ahead_level_by_level(scheduler: Scheduler, levels: int) -> None:
    """Each level, a new parentless peer and its one child are moved in front of the last
    level's parentless peer (now that child's child): each such move takes the peers a
    little further forward, past the peers already sent to the source."""
    register(scheduler, "p0", "h0")  # back to the source: the front of the order
    register(scheduler, "r0", "h1")
    scheduler.reschedule(0.0, "r0", exclude=["p0"])  # r0 keeps no parent
    for level in range(1, levels + 1):
        root, leaf = f"r{level}", f"q{level}"
        register(scheduler, root, f"h{2 * level}")
        register(scheduler, leaf, f"h{2 * level + 1}")
        others = [peer_id for peer_id in scheduler.peers if peer_id not in (root, leaf)]
        assert only(scheduler.reschedule(0.0, leaf, exclude=others), Parents).parent_ids == (root,)
        only(scheduler.reschedule(0.0, root, exclude=others), Retry)  # root keeps no parent
        below = only(scheduler.reschedule(0.0, f"r{level - 1}"), Parents)
        assert below.parent_ids == (leaf,)


def _assert_parents_ordered_first(scheduler: Scheduler) -> None:
    for peer in scheduler.peers.values():
        for parent in peer.parents.values():
            assert parent.order < peer.order, (parent.id, peer.id)


def test_a_peer_that_stops_taking_parents_stays_in_front_of_its_children() -> None:
    scheduler = make(hosts=20)
    _peers_moved_ahead_level_by_level(scheduler, 7)
    _assert_parents_ordered_first(scheduler)
    # r7 (the last level's parentless peer, with child q7) has gone furthest forward;
    # when it succeeds it goes to the front, which must still be in front of q7.
    for piece in range(16):
        scheduler.piece_finished(1.0, "r7", piece, length=4 * MiB)
    scheduler.peer_succeeded(1.0, "r7")
    assert "q7" in scheduler.peer("r7").children
    _assert_parents_ordered_first(scheduler)
    _assert_cycle_answers_agree_with_full_walks(scheduler)


@pytest.mark.timeout(20)
def test_peers_with_no_parent_below_them_move_ahead_when_the_order_is_out_of_room() -> None:
    # Two order numbers between neighbours: moving two peers with no parent below them
    # needs the orders spread out further than that, and then it must find the room.
    scheduler = make(hosts=20)
    scheduler._order_spacing = 2
    _peers_moved_ahead_level_by_level(scheduler, 7)
    _assert_parents_ordered_first(scheduler)
    _assert_cycle_answers_agree_with_full_walks(scheduler)


def test_a_reschedule_that_finds_nothing_new_keeps_the_parents_it_had() -> None:
    scheduler = make(hosts=3)
    register(scheduler, "p0", "h0")  # back to source
    assert only(register(scheduler, "p1", "h1"), Parents).parent_ids == ("p0",)
    # p0's last piece was an outlier, so sampling rejects it as a bad parent; with no one
    # else to offer, p1 keeps p0 instead of being left with no parent at all.
    for piece, cost in enumerate([1.0, 1.0, 1.0, 30.0]):
        scheduler.piece_finished(1.0, "p0", piece, length=4 * MiB, duration=cost)
    assert scheduler.evaluator.is_bad_parent(scheduler.peer("p0"))
    decisions = scheduler.reschedule(2.0, "p1")
    assert only(decisions, Parents).parent_ids == ("p0",)
    assert scheduler.peer("p1").schedule_attempts == 0
    # A parent the peer blocked is not kept.
    decisions = scheduler.reschedule(3.0, "p1", exclude=["p0"])
    assert only(decisions, Retry).peer_id == "p1"
    assert not scheduler.peer("p1").parents
