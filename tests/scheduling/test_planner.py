"""The piece planner: policies, in-flight limits, failures and endgame."""

from __future__ import annotations

from collections import Counter
from random import Random

import pytest

from damselfly.scheduling import (
    Bitfield,
    InvalidValueError,
    PiecePlanner,
    PiecePolicy,
    PlannerConfig,
)


def field(size: int, pieces: list[int] | range) -> Bitfield:
    bits = Bitfield(size)
    for piece in pieces:
        bits.set(piece)
    return bits


def test_rarest_first_prefers_pieces_few_parents_hold() -> None:
    planner = PiecePlanner(10, PlannerConfig(max_in_flight=2, max_per_parent=2), rng=Random(1))
    parents = {"a": field(10, range(10)), "b": field(10, range(8)), "c": field(10, range(8))}
    requests = planner.plan(Bitfield(10), parents)
    assert sorted(r.piece for r in requests) == [8, 9]
    assert {r.parent_id for r in requests} == {"a"}


def test_sequential_takes_the_lowest_missing_piece() -> None:
    config = PlannerConfig(policy=PiecePolicy.SEQUENTIAL, max_in_flight=3)
    planner = PiecePlanner(10, config, rng=Random(1))
    requests = planner.plan(field(10, [0, 2]), {"a": field(10, range(10))})
    assert [r.piece for r in requests] == [1, 3, 4]


def test_random_policy_spreads_over_wanted_pieces() -> None:
    seen: Counter[int] = Counter()
    for seed in range(200):
        planner = PiecePlanner(
            8, PlannerConfig(policy=PiecePolicy.RANDOM, max_in_flight=1), rng=Random(seed)
        )
        (request,) = planner.plan(Bitfield(8), {"a": field(8, range(8))})
        seen[request.piece] += 1
    assert set(seen) == set(range(8))


def test_in_flight_limits_per_peer_and_per_parent() -> None:
    planner = PiecePlanner(100, PlannerConfig(max_in_flight=8, max_per_parent=3), rng=Random(2))
    parents = {name: field(100, range(100)) for name in "abc"}
    requests = planner.plan(Bitfield(100), parents)
    assert len(requests) == 8
    per_parent = Counter(r.parent_id for r in requests)
    assert max(per_parent.values()) <= 3
    assert len({r.piece for r in requests}) == 8
    assert planner.plan(Bitfield(100), parents) == []  # full
    planner.completed(requests[0].piece, requests[0].parent_id)
    assert len(planner.plan(field(100, [requests[0].piece]), parents)) == 1


def test_load_spreads_to_the_least_busy_parent() -> None:
    planner = PiecePlanner(50, PlannerConfig(max_in_flight=6, max_per_parent=6), rng=Random(3))
    parents = {name: field(50, range(50)) for name in "abc"}
    requests = planner.plan(Bitfield(50), parents)
    assert Counter(r.parent_id for r in requests) == {"a": 2, "b": 2, "c": 2}


def test_a_failed_piece_is_asked_of_another_parent() -> None:
    planner = PiecePlanner(4, PlannerConfig(max_in_flight=1), rng=Random(4))
    parents = {"a": field(4, [0]), "b": field(4, [0])}
    (first,) = planner.plan(Bitfield(4), parents)
    planner.failed(first.piece, first.parent_id)
    (second,) = planner.plan(Bitfield(4), parents)
    assert second.piece == 0 and second.parent_id != first.parent_id
    planner.failed(second.piece, second.parent_id)
    assert planner.plan(Bitfield(4), parents) == []  # nobody left who has not failed it


def test_endgame_duplicates_the_last_pieces_and_cancels_losers() -> None:
    config = PlannerConfig(max_in_flight=4, max_per_parent=2, endgame_pieces=2)
    planner = PiecePlanner(6, config, rng=Random(5))
    have = field(6, range(4))
    parents = {"a": field(6, range(6)), "b": field(6, range(6))}
    requests = planner.plan(have, parents)
    pieces = Counter(r.piece for r in requests)
    assert pieces == {4: 2, 5: 2}  # each of the last two pieces asked of both parents
    winner = requests[0]
    losers = planner.completed(winner.piece, winner.parent_id)
    assert [(r.piece, r.parent_id) for r in losers] == [
        (winner.piece, "b" if winner.parent_id == "a" else "a")
    ]
    assert planner.in_flight == 2


def test_no_endgame_while_many_pieces_are_missing() -> None:
    config = PlannerConfig(max_in_flight=8, max_per_parent=8, endgame_pieces=2)
    planner = PiecePlanner(6, config, rng=Random(6))
    parents = {"a": field(6, range(6)), "b": field(6, range(6))}
    requests = planner.plan(Bitfield(6), parents)
    assert len(requests) == 6 and len({r.piece for r in requests}) == 6


def test_stalled_when_parents_have_nothing_new() -> None:
    planner = PiecePlanner(4, rng=Random(7))
    have = field(4, [0, 1])
    assert planner.stalled(have, {"a": field(4, [0, 1])})
    assert not planner.stalled(have, {"a": field(4, [2])})
    assert planner.plan(have, {"a": field(4, [0])}) == []


def test_drop_parent_forgets_its_requests() -> None:
    planner = PiecePlanner(10, PlannerConfig(max_in_flight=4, max_per_parent=2), rng=Random(8))
    parents = {"a": field(10, range(10)), "b": field(10, range(10))}
    planner.plan(Bitfield(10), parents)
    dropped = planner.drop_parent("a")
    assert len(dropped) == 2 and planner.in_flight == 2 and planner.in_flight_from("a") == 0


def test_bad_sizes_are_rejected() -> None:
    planner = PiecePlanner(4)
    with pytest.raises(InvalidValueError):
        planner.plan(Bitfield(5), {})
    with pytest.raises(InvalidValueError):
        planner.plan(Bitfield(4), {"a": Bitfield(3)})
    with pytest.raises(InvalidValueError):
        PlannerConfig(max_in_flight=0)


def test_planning_is_reproducible() -> None:
    def run(seed: int) -> list[tuple[int, str]]:
        planner = PiecePlanner(64, rng=Random(seed))
        parents = {name: field(64, range(i, 64, 2)) for i, name in enumerate("abcd")}
        return [(r.piece, r.parent_id) for r in planner.plan(Bitfield(64), parents)]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("n", [1, 2, 3, 255, 256, 257, 1000])
def test_the_planners_draw_is_randranges_draw(n: int) -> None:
    # The planner draws a start index with its own copy of randrange's rejection sampling
    # (without the interpreted frames): the same seed must give the same numbers.
    from damselfly.scheduling.planner import _below

    ours, theirs = Random(7), Random(7)
    assert [_below(ours, n) for _ in range(500)] == [theirs.randrange(n) for _ in range(500)]
    assert ours.getstate() == theirs.getstate()  # the same bits drawn, even where n = 1
    with pytest.raises(ValueError):
        _below(ours, 0)
