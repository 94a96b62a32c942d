"""The upload side of a peer: which of its pieces it offers to its children.

A parent normally offers every verified piece it holds. A seed peer is different: it is the
one source of pieces the swarm does not have yet, so every upload of a piece some child
already received is upload capacity taken from new pieces. Children pick pieces by rarity
among *their* parents, and to every child of a seed the seed's pieces look equally rare, so
without coordination a seed sends the same piece to many children (a 1,000-peer rollout on
one seed measured 3.5 copies of the content leaving the seed, which then bounds the
rollout's time).

:class:`PieceOffer` with ``super_seeding`` on offers each held piece until its first upload
starts, then withdraws it: the child that got it passes it on. Once every piece has been
uploaded at least once, the offer is every held piece again (the swarm has everything, and
stragglers may still need the seed). An upload that fails puts its piece back while the
first round lasts. This is BitTorrent's super-seeding, reduced to the offer a child plans
against: the child's PiecePlanner is unchanged.

The simulator gives :attr:`PieceOffer.offered` to the children's planners; the runtime seed
daemon answers its bitfield endpoint with it. Both call :meth:`held` when a piece is
verified and :meth:`started` when an upload of a piece begins.
"""

from __future__ import annotations

from damselfly.scheduling.bitfield import Bitfield
from damselfly.scheduling.errors import PieceOutOfRangeError

__all__ = ["PieceOffer"]


class PieceOffer:
    """What one uploader offers; see the module docstring.

    ``held`` is the uploader's own verified-piece bitfield (shared, not copied). With
    ``super_seeding`` off, :attr:`offered` *is* ``held``, so offering costs nothing. With it
    on, :attr:`offered` is one Bitfield for the offer's whole life, so a child may keep a
    reference to it.
    """

    __slots__ = ("_first_round", "_uploaded", "held", "offered", "super_seeding")

    def __init__(self, held: Bitfield, *, super_seeding: bool = False) -> None:
        self.held = held
        self.super_seeding = super_seeding
        # Pieces uploaded at least once (bits); the first round lasts until all are.
        self._uploaded = 0
        self._first_round = super_seeding
        self.offered = Bitfield(held.size, held.bits) if super_seeding else held

    @property
    def first_round(self) -> bool:
        """True while some piece has not been uploaded yet (super-seeding only)."""
        return self._first_round

    def _check(self, piece: int) -> None:
        if not 0 <= piece < self.held.size:
            raise PieceOutOfRangeError(f"piece {piece} is outside 0..{self.held.size - 1}")

    def held_piece(self, piece: int) -> None:
        """The uploader verified ``piece`` (call after setting it in ``held``)."""
        self._check(piece)
        if self._first_round and not (self._uploaded >> piece) & 1:
            self.offered.set(piece)

    def started(self, piece: int) -> None:
        """An upload of ``piece`` began: in the first round, stop offering it."""
        self._check(piece)
        if not self._first_round or not (self.held.bits >> piece) & 1:
            return
        self._uploaded |= 1 << piece
        self.offered.clear(piece)
        if self._uploaded.bit_count() == self.held.size:
            # Every piece went out once, so every piece is held: offer them all.
            self._first_round = False
            self.offered.set_all()

    def failed(self, piece: int) -> None:
        """An upload of ``piece`` did not complete: offer it again in the first round."""
        self._check(piece)
        if self._first_round and self.held.bits >> piece & 1:
            self._uploaded &= ~(1 << piece)
            self.offered.set(piece)
