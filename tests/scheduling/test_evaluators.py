"""Evaluators, table-driven: each score term, each ranking, and the registry."""

from __future__ import annotations

from random import Random

import pytest

from damselfly.scheduling import (
    Evaluator,
    HostKind,
    InvalidValueError,
    Peer,
    PeerState,
    Scheduler,
    evaluator_names,
    make_evaluator,
    register_evaluator,
)
from damselfly.scheduling.evaluators import (
    DefaultEvaluator,
    free_upload_rate,
    idc_affinity,
    load_quality,
    location_affinity,
)
from damselfly.scheduling.model import Host, Task

MiB = 1024**2


def peer_on(host: Host, peer_id: str | None = None) -> Peer:
    task = Task(id="t", url="https://o/x", content_length=64 * MiB, piece_count=16)
    return Peer(id=peer_id or f"p-{host.id}", task=task, host=host, created_at=0.0)


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        ("idc-a", "idc-a", 1.0),
        ("IDC-A", "idc-a", 1.0),
        ("idc-a", "idc-b", 0.0),
        ("", "idc-a", 0.0),
        ("", "", 0.0),
    ],
)
def test_idc_affinity(parent: str, child: str, expected: float) -> None:
    assert idc_affinity(parent.lower(), child.lower()) == expected


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        ("cn|bj|hd|z1|c1", "cn|bj|hd|z1|c1", 1.0),
        ("cn|bj|hd|z1|c1", "cn|bj|cy|z2|c2", 0.4),
        ("cn|bj", "cn|sh", 0.2),
        ("us", "cn", 0.0),
        ("", "cn", 0.0),
        ("CN|BJ", "cn|bj", 1.0),
        ("a|b|c|d|e|f|g", "a|b|c|d|e|f|x", 1.0),  # only five elements count
    ],
)
def test_location_affinity(parent: str, child: str, expected: float) -> None:
    assert location_affinity(parent, child) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("uploaded_bytes", "edges", "expected"),
    [
        (0, 0, 1.0),  # idle: every term at its best
        (0, 100, 0.8 + 0.2 * (1.25e9 / (16 * MiB)) / 100),  # too many children
        (1.25e9 * 5, 0, None),  # a busy host scores lower than an idle one
    ],
)
def test_load_quality_terms(uploaded_bytes: float, edges: int, expected: float | None) -> None:
    host = Host(id="h", upload_rate=1.25e9)
    host.upload_edges = edges
    if uploaded_bytes:
        host.record_upload(0.0, int(uploaded_bytes))
    value = load_quality(peer_on(host), 0.0)
    if expected is None:
        assert 0.0 <= value < 0.8
    else:
        assert value == pytest.approx(expected)


def test_load_recovers_as_time_passes() -> None:
    host = Host(id="h", upload_rate=1e8)
    host.record_upload(0.0, int(5e8))
    busy = load_quality(peer_on(host), 0.0)
    later = load_quality(peer_on(host), 600.0)
    assert busy < later == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("parents", "best"),
    [
        # (host id, kind, idc, location, uploaded bytes) -> the expected winner
        ([("a", "normal", "x", "cn|x|r1", 0), ("b", "normal", "y", "cn|y|r1", 0)], "a"),
        ([("a", "normal", "y", "cn|y", 0), ("b", "seed", "y", "cn|y", 0)], "b"),
        ([("a", "normal", "x", "cn|x|r1", 10**10), ("b", "normal", "x", "cn|x|r1", 0)], "b"),
        ([("a", "normal", "x", "cn|x|r9", 0), ("b", "normal", "x", "cn|x|r1", 0)], "b"),
    ],
)
def test_default_evaluator_ranks_by_dragonfly_score(parents, best) -> None:  # type: ignore[no-untyped-def]
    child = peer_on(Host(id="child", upload_rate=1e8, idc="x", location="cn|x|r1"), "child")
    candidates = []
    for host_id, kind, idc, location, uploaded in parents:
        host = Host(id=host_id, upload_rate=1.25e8, kind=HostKind(kind), idc=idc, location=location)
        if uploaded:
            host.record_upload(0.0, uploaded)
        candidate = peer_on(host)
        candidate.state = PeerState.RUNNING
        candidates.append(candidate)
    evaluator = DefaultEvaluator()
    ranked = evaluator.rank(candidates, child, 0.0, Random(0))
    assert ranked[0].host.id == best
    # rank() is score() unrolled: they must agree.
    by_score = sorted(candidates, key=lambda p: -evaluator.score(p, child, 0.0))
    assert [p.id for p in ranked] == [p.id for p in by_score]


def test_bandwidth_evaluator_prefers_free_upload() -> None:
    child = peer_on(Host(id="child", upload_rate=1e8), "child")
    slow = Host(id="slow", upload_rate=1e7)
    fast = Host(id="fast", upload_rate=1e9)
    crowded = Host(id="crowded", upload_rate=1e9)
    crowded.upload_edges = 200
    candidates = [peer_on(slow), peer_on(crowded), peer_on(fast)]
    ranked = make_evaluator("bandwidth").rank(candidates, child, 0.0, Random(0))
    assert [p.host.id for p in ranked] == ["fast", "slow", "crowded"]
    assert free_upload_rate(peer_on(fast), 0.0) == 1e9


def test_topology_evaluator_uses_the_injected_distance() -> None:
    hops = {("near", "child"): 1.0, ("far", "child"): 4.0, ("mid", "child"): 2.0}
    evaluator = make_evaluator("topology", distance=lambda a, b: hops[a, b])
    child = peer_on(Host(id="child", upload_rate=1e8), "child")
    candidates = [peer_on(Host(id=name, upload_rate=1e8)) for name in ("far", "near", "mid")]
    ranked = evaluator.rank(candidates, child, 0.0, Random(0))
    assert [p.host.id for p in ranked] == ["near", "mid", "far"]
    with pytest.raises(InvalidValueError):
        make_evaluator("topology")


def test_random_evaluator_is_seeded() -> None:
    child = peer_on(Host(id="child", upload_rate=1e8), "child")
    candidates = [peer_on(Host(id=f"h{i}", upload_rate=1e8)) for i in range(10)]
    first = make_evaluator("random").rank(candidates, child, 0.0, Random(5))
    again = make_evaluator("random").rank(candidates, child, 0.0, Random(5))
    assert first == again and sorted(p.id for p in first) == sorted(p.id for p in candidates)


@pytest.mark.parametrize(
    ("costs", "bad"),
    [
        ([], False),
        ([1.0], False),
        ([1.0, 1.0, 1.0, 25.0], True),  # 25x the mean of the others
        ([1.0, 1.0, 1.0, 15.0], False),
        ([1.0] * 40 + [1.5], True),  # beyond mean + 3 sigma of a steady series
        ([1.0, 2.0] * 20 + [2.0], False),
        # Beyond mean + 3 sigma of the 39 before it (2.99), though not of all 40 (3.21).
        ([1.0] * 20 + [2.0] * 19 + [3.2], True),
        # Every earlier piece counts, not only the latest few: the slow start keeps the
        # spread wide, so 2.0 is no outlier (it would be against the 63 ones alone).
        ([10.0] * 60 + [1.0] * 63 + [2.0], False),
    ],
)
def test_bad_parent_is_a_piece_cost_outlier(costs: list[float], bad: bool) -> None:
    parent = peer_on(Host(id="h", upload_rate=1e8))
    for cost in costs:
        parent.piece_costs.add(cost)
    assert DefaultEvaluator().is_bad_parent(parent) is bad


def test_equal_piece_costs_never_make_a_bad_parent() -> None:
    # A seed fetching from the origin at a steady rate reports the same cost for every
    # piece; the running sums' rounding must not put one of them above the mean.
    evaluator = DefaultEvaluator()
    parent = peer_on(Host(id="h", upload_rate=1e8))
    for count in range(1, 300):
        parent.piece_costs.add(0.1352)
        assert not evaluator.is_bad_parent(parent), count


def test_a_new_evaluator_is_one_class_found_by_name() -> None:
    @register_evaluator
    class MostPieces(Evaluator):
        name = "test-most-pieces"

        def score(self, parent: Peer, child: Peer, now: float) -> float:
            return parent.finished.count

    assert "test-most-pieces" in evaluator_names()
    scheduler = Scheduler(evaluator="test-most-pieces")
    assert isinstance(scheduler.evaluator, MostPieces)


def test_builtin_names() -> None:
    assert {"default", "random", "bandwidth", "topology"} <= set(evaluator_names())


@pytest.mark.parametrize(
    ("kind", "state", "host_type"),
    [
        # A seed is preferred while it is downloading the task, not once it holds it all:
        # then normal peers are, to spare the seed.
        ("seed", PeerState.RUNNING, 1.0),
        ("seed", PeerState.BACK_TO_SOURCE, 1.0),
        ("seed", PeerState.SUCCEEDED, 0.0),
        ("normal", PeerState.RUNNING, 0.5),
        ("normal", PeerState.BACK_TO_SOURCE, 0.5),
        ("normal", PeerState.SUCCEEDED, 0.5),
    ],
)
def test_host_type_score_of_a_seed_depends_on_its_download(
    kind: str, state: PeerState, host_type: float
) -> None:
    child = peer_on(Host(id="child", upload_rate=1e8), "child")
    parent = peer_on(Host(id="parent", upload_rate=1e8, kind=HostKind(kind)))
    parent.state = state
    evaluator = DefaultEvaluator()
    # An idle parent with no affinity to the child: 0.6 * 1 + 0.1 * host type.
    assert evaluator.score(parent, child, 0.0) == pytest.approx(0.6 + 0.1 * host_type)


def test_a_seed_that_holds_everything_ranks_below_a_normal_parent() -> None:
    child = peer_on(Host(id="child", upload_rate=1e8), "child")
    seed = peer_on(Host(id="seed", upload_rate=1e8, kind=HostKind.SEED))
    normal = peer_on(Host(id="normal", upload_rate=1e8))
    seed.state = normal.state = PeerState.SUCCEEDED
    ranked = DefaultEvaluator().rank([seed, normal], child, 0.0, Random(0))
    assert [p.host.id for p in ranked] == ["normal", "seed"]
