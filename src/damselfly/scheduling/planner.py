"""The peer side of scheduling: which piece to ask for next, and from which parent.

A :class:`PiecePlanner` belongs to one downloading peer. Given the pieces the peer holds
and its parents' bitfields, :meth:`PiecePlanner.plan` returns the next requests, keeping at
most ``max_in_flight`` (8, Dragonfly's default) pieces in flight in all and
``max_per_parent`` per parent. The simulator and the runtime daemon both call it, so a
simulated peer picks pieces exactly as a real one does.

Policies:

- ``rarest-first`` (default): among the pieces a free parent has, those held by the fewest
  parents first; equally rare pieces are picked at random. Rare pieces spread first, so
  parents stay useful to each other.
- ``sequential``: lowest index first, for readers that stream the content in order.
- ``random``: any wanted piece.

The parent for a piece is the least busy parent that has it (ties at random) and has not
failed that piece before. Endgame: when every missing piece is already in flight and at
most ``endgame_pieces`` are missing, each is also asked of a second parent; the first copy
to arrive wins and :meth:`PiecePlanner.completed` returns the duplicates to cancel.

Bitfields are Python ints (see :mod:`damselfly.scheduling.bitfield`), so one plan costs a
few big-int operations per parent rather than a loop over pieces.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random
from typing import Final

from damselfly.scheduling.bitfield import Bitfield, lowest_set_bit, next_set_bit
from damselfly.scheduling.errors import InvalidValueError, PieceOutOfRangeError

__all__ = ["PiecePlanner", "PiecePolicy", "PieceRequest", "PlannerConfig", "SlowDownloadWatch"]


class PiecePolicy(enum.Enum):
    RAREST_FIRST = "rarest-first"
    SEQUENTIAL = "sequential"
    RANDOM = "random"


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannerConfig:
    """How many pieces a peer keeps in flight, and in what order it asks for them."""

    policy: PiecePolicy = PiecePolicy.RAREST_FIRST
    max_in_flight: int = 8
    max_per_parent: int = 4
    endgame_pieces: int = 8

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_per_parent < 1:
            raise InvalidValueError("max_in_flight and max_per_parent must be >= 1")
        if self.endgame_pieces < 0:
            raise InvalidValueError("endgame_pieces must be >= 0")


class PieceRequest:
    """Ask ``parent_id`` for ``piece``.

    A value: equal and hashed by its fields, its attributes read-only (``Final``: the type
    checker refuses an assignment, and so does the compiled build at run time; the Python
    build does not check at run time). Written out rather than a frozen dataclass, whose
    generated ``__init__`` runs interpreted even in the compiled build, at about 15 times
    the cost: the planner makes one per request.
    """

    __slots__ = ("parent_id", "piece")

    def __init__(self, *, piece: int, parent_id: str) -> None:
        self.piece: Final = piece
        self.parent_id: Final = parent_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PieceRequest):
            return NotImplemented
        return self.piece == other.piece and self.parent_id == other.parent_id

    def __hash__(self) -> int:
        return hash((self.piece, self.parent_id))

    def __repr__(self) -> str:
        return f"PieceRequest(piece={self.piece!r}, parent_id={self.parent_id!r})"


class PiecePlanner:
    """Chooses (piece, parent) requests for one peer; see the module docstring.

    The planner tracks what is in flight; the caller tells it how each request ended with
    :meth:`completed`, :meth:`failed` or :meth:`cancelled`. The caller owns the bitfields.
    """

    __slots__ = (
        "_all_bits",
        "_failed",
        "_in_flight",
        "_in_flight_bits",
        "_per_parent",
        "_requests",
        "config",
        "piece_count",
        "rng",
    )

    def __init__(
        self, piece_count: int, config: PlannerConfig | None = None, *, rng: Random | None = None
    ) -> None:
        if piece_count < 0:
            raise InvalidValueError(f"piece count must be >= 0, got {piece_count}")
        self.piece_count: Final = piece_count
        self.config = config or PlannerConfig()
        self.rng = rng if rng is not None else Random(0)
        self._in_flight: dict[int, list[str]] = {}
        self._in_flight_bits = 0
        self._per_parent: dict[str, int] = {}
        self._requests = 0  # the sum of _per_parent's values
        self._failed: dict[int, set[str]] = {}
        self._all_bits = (1 << piece_count) - 1

    # -- what is in flight ------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests in flight, duplicates included."""
        return self._requests

    def requests_in_flight(self) -> list[PieceRequest]:
        return [
            PieceRequest(piece=piece, parent_id=parent_id)
            for piece, parent_ids in self._in_flight.items()
            for parent_id in parent_ids
        ]

    def in_flight_from(self, parent_id: str) -> int:
        return self._per_parent.get(parent_id, 0)

    # -- planning ---------------------------------------------------------------------

    def plan(self, have: Bitfield, parents: dict[str, Bitfield]) -> list[PieceRequest]:
        """The next requests, given the pieces held and each parent's bitfield (by id).

        Returns an empty list when the peer is at its in-flight limit or no free parent has
        a piece it lacks. Raises InvalidValueError when a bitfield has the wrong size.
        """
        size = self.piece_count
        if have.size != size:
            raise InvalidValueError(f"bitfield of {have.size} pieces for a task of {size}")
        config = self.config
        slots = config.max_in_flight - self._requests
        if slots <= 0 or not parents:
            return []
        missing = ~have.bits & self._all_bits
        if not missing:
            return []
        per_parent = self._per_parent
        cap = config.max_per_parent
        holders: list[tuple[str, int]] = []  # parents with a piece the peer lacks
        free: list[tuple[str, int]] = []  # those of them below their request limit
        for parent_id, field in parents.items():
            if field.size != size:
                raise InvalidValueError(
                    f"parent {parent_id!r} has a bitfield of {field.size} pieces"
                )
            bits = field.bits
            if bits & missing:
                holder = (parent_id, bits)
                holders.append(holder)
                if per_parent.get(parent_id, 0) < cap:
                    free.append(holder)
        if not holders:
            return []
        # Counted only once a piece is wanted: many calls end before that (a child woken by
        # a parent's new piece that it has already asked another parent for).
        rarity: list[int] | None = None
        requests: list[PieceRequest] = []
        skipped = 0
        while slots > 0 and free:
            available = 0
            for _, bits in free:
                available |= bits
            wanted = available & missing & ~self._in_flight_bits
            if skipped:
                wanted &= ~skipped
            if not wanted:
                break
            if rarity is None:
                rarity = (
                    self._rarity_levels(holders)
                    if config.policy is PiecePolicy.RAREST_FIRST
                    else []
                )
            piece = self._choose_piece(wanted, rarity)
            chosen = self._choose_parent(piece, free)
            if chosen is None:
                skipped |= 1 << piece
                continue
            self._start(piece, chosen)
            requests.append(PieceRequest(piece=piece, parent_id=chosen))
            slots -= 1
            if per_parent[chosen] >= cap:
                free = [(pid, bits) for pid, bits in free if pid != chosen]
        if slots > 0 and free:
            requests.extend(self._endgame(missing, free, slots))
        return requests

    def stalled(self, have: Bitfield, parents: Mapping[str, Bitfield]) -> bool:
        """True when nothing is in flight and no parent has a piece the peer lacks: the
        peer should ask the scheduler for other parents."""
        if self._per_parent:
            return False
        missing = ~have.bits & self._all_bits
        return not any(field.bits & missing for field in parents.values())

    @staticmethod
    def _rarity_levels(holders: list[tuple[str, int]]) -> list[int]:
        """``levels[c]`` = pieces held by at least ``c + 1`` parents (bit-sliced counting)."""
        levels: list[int] = []
        for _, bits in holders:
            carry = bits
            for level, held in enumerate(levels):
                levels[level] = held | carry
                carry &= held
                if not carry:
                    break
            else:
                if carry:
                    levels.append(carry)
        return levels

    def _choose_piece(self, wanted: int, rarity: list[int]) -> int:
        policy = self.config.policy
        if policy is PiecePolicy.SEQUENTIAL:
            return lowest_set_bit(wanted)
        if policy is PiecePolicy.RAREST_FIRST:
            for level in range(len(rarity)):
                above = rarity[level + 1] if level + 1 < len(rarity) else 0
                rarest = wanted & rarity[level] & ~above
                if rarest:
                    wanted = rarest
                    break
        return next_set_bit(wanted, _below(self.rng, self.piece_count))

    def _choose_parent(self, piece: int, free: list[tuple[str, int]]) -> str | None:
        failed = self._failed.get(piece, ())
        asked = self._in_flight.get(piece, ())
        per_parent = self._per_parent
        draw = self.rng.random
        best: str | None = None
        best_load = 0
        best_draw = 0.0
        for parent_id, bits in free:
            if not (bits >> piece) & 1 or parent_id in failed or parent_id in asked:
                continue
            # The least loaded parent, ties broken by a random draw: (load, draw) compared
            # as a pair, without building one.
            load = per_parent.get(parent_id, 0)
            tie = draw()
            if best is None or load < best_load or (load == best_load and tie < best_draw):
                best, best_load, best_draw = parent_id, load, tie
        return best

    def _endgame(self, missing: int, free: list[tuple[str, int]], slots: int) -> list[PieceRequest]:
        if missing.bit_count() > self.config.endgame_pieces:
            return []
        requests: list[PieceRequest] = []
        for piece, asked in list(self._in_flight.items()):
            if slots <= 0:
                break
            if len(asked) != 1:
                continue
            parent_id = self._choose_parent(piece, free)
            if parent_id is None:
                continue
            self._start(piece, parent_id)
            requests.append(PieceRequest(piece=piece, parent_id=parent_id))
            slots -= 1
            if self._per_parent[parent_id] >= self.config.max_per_parent:
                free = [(pid, bits) for pid, bits in free if pid != parent_id]
        return requests

    # -- outcomes ---------------------------------------------------------------------

    def _start(self, piece: int, parent_id: str) -> None:
        asked = self._in_flight.get(piece)
        if asked is None:
            self._in_flight[piece] = [parent_id]
            self._in_flight_bits |= 1 << piece
        else:
            asked.append(parent_id)  # an endgame duplicate
        self._per_parent[parent_id] = self._per_parent.get(parent_id, 0) + 1
        self._requests += 1

    def _finish(self, piece: int, parent_id: str) -> bool:
        asked = self._in_flight.get(piece)
        if asked is None or parent_id not in asked:
            return False
        asked.remove(parent_id)
        self._requests -= 1
        count = self._per_parent[parent_id] - 1
        if count:
            self._per_parent[parent_id] = count
        else:
            del self._per_parent[parent_id]
        if not asked:
            del self._in_flight[piece]
            self._in_flight_bits ^= 1 << piece  # set while the piece is in _in_flight
        return True

    def _check(self, piece: int) -> None:
        if not 0 <= piece < self.piece_count:
            raise PieceOutOfRangeError(f"piece {piece} is outside 0..{self.piece_count - 1}")

    def completed(self, piece: int, parent_id: str) -> list[PieceRequest]:
        """``piece`` arrived from ``parent_id``; returns the duplicate requests to cancel."""
        self._check(piece)
        self._finish(piece, parent_id)
        self._failed.pop(piece, None)
        duplicates = [
            PieceRequest(piece=piece, parent_id=other) for other in self._in_flight.get(piece, ())
        ]
        for duplicate in duplicates:
            self._finish(piece, duplicate.parent_id)
        return duplicates

    def failed(self, piece: int, parent_id: str) -> None:
        """Fetching ``piece`` from ``parent_id`` failed; it will be asked of another parent."""
        self._check(piece)
        self._finish(piece, parent_id)
        self._failed.setdefault(piece, set()).add(parent_id)

    def cancelled(self, piece: int, parent_id: str) -> None:
        """The caller abandoned this request (not the parent's fault)."""
        self._check(piece)
        self._finish(piece, parent_id)

    def drop_parent(self, parent_id: str) -> list[int]:
        """Forget every request in flight to ``parent_id``; returns their pieces."""
        pieces = [piece for piece, asked in self._in_flight.items() if parent_id in asked]
        for piece in pieces:
            self._finish(piece, parent_id)
        return pieces


def _below(rng: Random, n: int) -> int:
    """``rng.randrange(n)`` for n > 0, drawn the same way from the same bits (Python's
    ``Random._randbelow_with_getrandbits``), without its interpreted frames: the planner
    draws once per request."""
    if n <= 0:
        raise ValueError(f"empty range for a draw below {n}")
    k = n.bit_length()
    r = rng.getrandbits(k)
    while r >= n:
        r = rng.getrandbits(k)
    return r


class SlowDownloadWatch:
    """The daemon's rule for parents that are busy elsewhere: ask for other parents.

    A peer whose parents have pieces it lacks but are shared by many children downloads
    well below its own rate, and nothing else would ever change its parents. Fed with the
    bytes of every piece received from parents, :meth:`received` answers True once the
    peer's throughput over the last ``window`` seconds fell below ``fraction`` of
    ``download_rate``: the peer should ask the scheduler to reschedule it (whose evaluator
    then prefers parents with free upload). Windows restart after each answer, so a peer
    asks at most once per window.

    ``download_rate`` is what the peer could receive (bytes/s: its link, or a configured
    limit that binds); None or 0 turns the watch off, as when a daemon does not know it.
    """

    __slots__ = ("_bytes", "_start", "download_rate", "fraction", "window")

    def __init__(
        self, download_rate: float | None, *, window: float = 1.0, fraction: float = 0.5
    ) -> None:
        if window <= 0 or not 0 <= fraction <= 1:
            raise InvalidValueError("the slow-download window must be > 0, fraction in 0..1")
        self.download_rate = download_rate or 0.0
        self.window = window
        self.fraction = fraction
        self._bytes = 0
        self._start = 0.0

    def restart(self, now: float) -> None:
        """Start a new window (the peer got new parents, or started receiving)."""
        self._bytes = 0
        self._start = now

    def received(self, now: float, size: int) -> bool:
        """``size`` bytes arrived from a parent at ``now``; True: ask for other parents."""
        if self.download_rate <= 0 or self.fraction <= 0:
            return False
        self._bytes += size
        span = now - self._start
        if span < self.window:
            return False
        slow = self._bytes < self.fraction * self.download_rate * span
        self._bytes = 0
        self._start = now
        return slow
