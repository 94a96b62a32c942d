"""Bitfields, piece lengths, task ids, the hash ring and the state table."""

from __future__ import annotations

import pytest

from damselfly.scheduling import (
    PEER_TRANSITIONS,
    Bitfield,
    HashRing,
    InvalidTransitionError,
    InvalidValueError,
    PeerEvent,
    PeerState,
    PieceOutOfRangeError,
    canonical_url,
    piece_count,
    piece_length,
    piece_range,
    task_id,
    transition_diagram,
)
from damselfly.scheduling.bitfield import next_set_bit
from damselfly.scheduling.states import next_peer_state

MiB = 1024**2
GiB = 1024**3


def test_bitfield_set_clear_count_and_iteration() -> None:
    field = Bitfield(10)
    assert field.set(3) and field.set(7)
    assert not field.set(3)
    assert field.count == 2 and len(field) == 2
    assert list(field) == [3, 7]
    assert field.has(7) and not field.has(0)
    assert field.clear(3) and not field.clear(3)
    assert field.count == 1
    field.set_all()
    assert field.complete and field.missing == 0


def test_bitfield_bytes_round_trip() -> None:
    field = Bitfield(13)
    for index in (0, 5, 8, 12):
        field.set(index)
    data = field.to_bytes()
    assert len(data) == 2
    assert Bitfield.from_bytes(13, data) == field
    with pytest.raises(InvalidValueError):
        Bitfield.from_bytes(13, b"\x00")


@pytest.mark.parametrize("index", [-1, 10, 1000])
def test_bitfield_rejects_out_of_range(index: int) -> None:
    field = Bitfield(10)
    with pytest.raises(PieceOutOfRangeError):
        field.set(index)
    assert field.count == 0


def test_bitfield_stays_small_for_16000_pieces() -> None:
    field = Bitfield.full(16_000)
    assert len(field.to_bytes()) == 2000
    assert field.count == 16_000


def test_next_set_bit_wraps() -> None:
    assert next_set_bit(0b10010, 2) == 4
    assert next_set_bit(0b10010, 5) == 1
    assert next_set_bit(0, 3) == -1


@pytest.mark.parametrize(
    ("content_length", "expected"),
    [
        (0, 4 * MiB),
        (1, 4 * MiB),
        (100 * MiB, 4 * MiB),
        (2 * GiB, 8 * MiB),  # 2 GiB / 500 = 4.1 MiB -> next power of two
        (4 * GiB, 16 * MiB),
        (10 * GiB, 32 * MiB),
        (30 * GiB, 64 * MiB),
        (1024 * GiB, 64 * MiB),  # clamped
        # length / 500 is truncated before rounding up to a power of two, so a remainder
        # under 500 bytes does not double the piece.
        (500 * 8 * MiB, 8 * MiB),
        (500 * 8 * MiB + 499, 8 * MiB),
        (500 * 8 * MiB + 500, 16 * MiB),
    ],
)
def test_piece_length_follows_dragonfly(content_length: int, expected: int) -> None:
    assert piece_length(content_length) == expected


def test_piece_length_can_be_forced_and_rejects_nonsense() -> None:
    assert piece_length(GiB, forced=MiB) == MiB
    with pytest.raises(InvalidValueError):
        piece_length(-1)
    with pytest.raises(InvalidValueError):
        piece_length(GiB, forced=0)


def test_piece_ranges_cover_the_content_exactly() -> None:
    length = 10 * MiB + 3
    count = piece_count(length, 4 * MiB)
    assert count == 3
    ranges = [piece_range(length, 4 * MiB, index) for index in range(count)]
    assert ranges[-1] == (8 * MiB, 2 * MiB + 3)
    assert sum(size for _, size in ranges) == length
    with pytest.raises(PieceOutOfRangeError):
        piece_range(length, 4 * MiB, 3)


def test_task_id_ignores_filtered_query_and_query_order() -> None:
    base = "https://example.com/blob?b=2&a=1"
    signed = "https://example.com/blob?a=1&Expires=99&b=2&Signature=xyz"
    assert task_id(base) == task_id(signed, filtered_query_params=["Expires", "Signature"])
    assert task_id(base) != task_id(signed)
    assert task_id(base) != task_id(base, digest="sha256:00")
    assert canonical_url("https://h/p?z=1&a=2#frag") == "https://h/p?a=2&z=1"


def test_hash_ring_is_stable_and_moves_few_keys() -> None:
    ring = HashRing(replicas=100)
    assert ring.lookup("task") is None
    for member in ("seed-a", "seed-b", "seed-c"):
        ring.add(member)
    keys = [f"task-{index}" for index in range(3000)]
    before = {key: ring.lookup(key) for key in keys}
    counts = {
        member: sum(1 for owner in before.values() if owner == member) for member in ring.members
    }
    assert min(counts.values()) > 600  # roughly even: 1000 each
    ring.add("seed-d")
    after = {key: ring.lookup(key) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert all(after[key] == "seed-d" for key in moved)
    assert 400 < len(moved) < 1100  # about a quarter
    ring.remove("seed-d")
    assert {key: ring.lookup(key) for key in keys} == before


@pytest.mark.parametrize("state", list(PeerState))
@pytest.mark.parametrize("event", list(PeerEvent))
def test_every_move_is_in_the_table_or_raises(state: PeerState, event: PeerEvent) -> None:
    if (state, event) in PEER_TRANSITIONS:
        assert next_peer_state(state, event) is PEER_TRANSITIONS[state, event]
    else:
        with pytest.raises(InvalidTransitionError):
            next_peer_state(state, event)


def test_terminal_states_only_leave() -> None:
    for state in (PeerState.SUCCEEDED, PeerState.FAILED):
        allowed = {event for (source, event) in PEER_TRANSITIONS if source is state}
        assert allowed == {PeerEvent.LEAVE}
    assert not any(source is PeerState.LEFT for source, _ in PEER_TRANSITIONS)


def test_diagram_is_generated_from_the_table() -> None:
    diagram = transition_diagram()
    assert diagram.startswith("stateDiagram-v2")
    assert diagram.count("-->") == len(PEER_TRANSITIONS)
