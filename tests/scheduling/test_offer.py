"""The upload side: what a parent offers its children, and the slow-download watch."""

from __future__ import annotations

import pytest

from damselfly.scheduling import Bitfield, InvalidValueError, PieceOffer, SlowDownloadWatch
from damselfly.scheduling.errors import PieceOutOfRangeError


def test_without_super_seeding_the_offer_is_what_the_uploader_holds() -> None:
    held = Bitfield(4)
    offer = PieceOffer(held)
    assert offer.offered is held
    held.set(2)
    offer.held_piece(2)
    offer.started(2)
    assert offer.offered.has(2)
    assert not offer.first_round


def test_super_seeding_offers_each_piece_once_until_all_went_out() -> None:
    held = Bitfield(3)
    offer = PieceOffer(held, super_seeding=True)
    offered = offer.offered
    assert offered is not held and offered.count == 0
    for piece in (0, 1):
        held.set(piece)
        offer.held_piece(piece)
    assert list(offered) == [0, 1]
    offer.started(0)
    assert list(offered) == [1]  # 0 went out once: the child that gets it passes it on
    held.set(2)
    offer.held_piece(2)
    offer.started(1)
    assert list(offered) == [2] and offer.first_round
    offer.started(2)
    # Every piece went out once: the whole content is offered again, in the same object.
    assert not offer.first_round
    assert offer.offered is offered and list(offered) == [0, 1, 2]


def test_a_failed_upload_puts_its_piece_back_in_the_first_round() -> None:
    held = Bitfield(2, 0b11)
    offer = PieceOffer(held, super_seeding=True)
    offer.started(0)
    assert list(offer.offered) == [1]
    offer.failed(0)
    assert list(offer.offered) == [0, 1]
    # Starting a piece the uploader does not hold changes nothing.
    partial = PieceOffer(Bitfield(2, 0b01), super_seeding=True)
    partial.started(1)
    assert list(partial.offered) == [0] and partial.first_round


def test_offer_rejects_pieces_out_of_range() -> None:
    offer = PieceOffer(Bitfield(2), super_seeding=True)
    with pytest.raises(PieceOutOfRangeError):
        offer.started(2)
    with pytest.raises(PieceOutOfRangeError):
        offer.held_piece(-1)


def test_slow_watch_asks_once_a_window_when_throughput_is_below_the_fraction() -> None:
    watch = SlowDownloadWatch(100.0, window=1.0, fraction=0.5)
    watch.restart(0.0)
    assert not watch.received(0.5, 10)  # the window is not over yet
    assert watch.received(1.0, 10)  # 20 bytes in 1 s < 50
    watch.restart(1.0)
    assert not watch.received(1.5, 40)
    assert not watch.received(2.0, 40)  # 80 bytes in 1 s >= 50
    assert not watch.received(2.5, 10)  # a new window began at 2.0


def test_slow_watch_is_off_without_a_download_rate() -> None:
    watch = SlowDownloadWatch(None)
    assert not watch.received(100.0, 0)
    with pytest.raises(InvalidValueError):
        SlowDownloadWatch(1.0, window=0)
    with pytest.raises(InvalidValueError):
        SlowDownloadWatch(1.0, fraction=1.5)
