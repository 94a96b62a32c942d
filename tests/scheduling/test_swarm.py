"""Whole swarms in memory: one scheduler, many peers, instant transfers."""

from __future__ import annotations

import pytest
from harness import make_swarm

from damselfly.scheduling import PeerState, SchedulerConfig


@pytest.mark.parametrize("evaluator", ["default", "random", "bandwidth"])
def test_two_hundred_peers_all_finish_with_one_origin_copy_through_a_seed(evaluator: str) -> None:
    swarm = make_swarm(200, seeds=1, evaluator=evaluator)
    for index in range(200):
        swarm.register(f"p{index}", f"h{index:04d}")
    swarm.run(max_rounds=2000)
    downloads = [peer for peer in swarm.peers.values() if not peer.peer_id.startswith("seed-")]
    assert len(downloads) == 200
    assert all(peer.done for peer in downloads)
    assert all(
        swarm.scheduler.peer(peer.peer_id).state is PeerState.SUCCEEDED for peer in downloads
    )
    # Only the seed went to the origin: exactly one copy of the content.
    assert swarm.counts["TriggerSeed"] == 1
    assert swarm.origin_bytes == swarm.content_length
    assert swarm.peer_bytes == 200 * swarm.content_length


def test_without_a_seed_the_first_peer_fetches_the_one_origin_copy() -> None:
    swarm = make_swarm(200, seeds=0)
    for index in range(200):
        swarm.register(f"p{index}", f"h{index:04d}")
    swarm.run(max_rounds=2000)
    assert all(peer.done for peer in swarm.peers.values())
    assert swarm.counts["BackToSource"] == 1
    assert swarm.origin_bytes == swarm.content_length


def test_peer_to_peer_disabled_means_one_origin_copy_per_peer() -> None:
    swarm = make_swarm(20, config=SchedulerConfig(enable_peer_to_peer=False))
    for index in range(20):
        swarm.register(f"p{index}", f"h{index:04d}")
    swarm.run(max_rounds=2000)
    assert all(peer.done for peer in swarm.peers.values())
    assert swarm.origin_bytes == 20 * swarm.content_length
    assert swarm.peer_bytes == 0


def test_peers_finish_when_parents_leave_midway() -> None:
    swarm = make_swarm(60, seeds=1)
    for index in range(60):
        swarm.register(f"p{index}", f"h{index:04d}")
    for _ in range(5):
        swarm.round()
    for index in range(0, 60, 6):  # a tenth of the swarm leaves half way
        peer_id = f"p{index}"
        if peer_id in swarm.scheduler.peers:
            swarm.apply(swarm.scheduler.peer_left(swarm.now, peer_id))
            swarm.peers[peer_id].failed = True
    swarm.run(max_rounds=2000)
    remaining = [p for p in swarm.peers.values() if not p.failed]
    assert remaining and all(p.done for p in remaining)
