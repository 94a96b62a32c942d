"""The slow-download watch in the daemon: a peer whose download from parents runs below half
its download capacity for a second asks the scheduler for other parents.

With real processes on loopback: a holder serves a 32 MiB file at 8 MiB/s, one piece at a
time, to a receiver told its capacity (every daemon uploads at 8 MiB/s, since the first
receiver is a parent of the second). Told 1 KiB/s, the receiver is never slow and sends no
reschedule request; told 100 GiB/s, it is slow after its first second and sends one. The
requests are counted at the scheduler (its per-route request counter) and at the daemon.
"""

from __future__ import annotations

import asyncio

import pytest

from damselfly.runtime.config import DaemonConfig, load_config
from damselfly.runtime.download import _watched_rate
from tests.runtime.conftest import Origin, Swarm, get, make_content, metrics

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
RESCHEDULE_ROUTE = "route=/api/v1/peers/{peer_id}/reschedule"
ONE_PIECE_AT_A_TIME = {"DAMSELFLY_DAEMON_MAX_IN_FLIGHT": "1"}
THROTTLED = ["--upload-rate-limit", "8MiB/s"]  # 4 s for the file: the watch's window is 1 s


def test_the_watch_is_off_unless_the_capacity_is_given() -> None:
    config = load_config(DaemonConfig, "daemon", environ={})
    assert config.download_capacity is None and _watched_rate(config) is None
    environ = {"DAMSELFLY_DAEMON_DOWNLOAD_CAPACITY": "10Gbit/s"}
    config = load_config(DaemonConfig, "daemon", environ=environ)
    assert _watched_rate(config) == 1.25e9
    # A download limit below the capacity is what the host can receive.
    flags = {"download_capacity": "10Gbit/s", "download_rate": "1Gbit/s"}
    assert _watched_rate(load_config(DaemonConfig, "daemon", flags=flags, environ={})) == 1.25e8
    flags = {"download_capacity": "off"}
    assert load_config(DaemonConfig, "daemon", flags=flags, environ={}).download_capacity is None


async def reschedule_requests(address: str) -> float:
    values = await metrics(address)
    return sum(
        value
        for name, value in values.items()
        if name.startswith("damselfly_scheduler_requests_total{") and RESCHEDULE_ROUTE in name
    )


async def test_a_slow_download_asks_for_other_parents(origin: Origin, swarm: Swarm) -> None:
    # 8 pieces of 4 MiB, about 4 s at 8 MiB/s: the watch checks at piece ends once a 1 s
    # window is over and never at the last piece, so a shorter file can finish first.
    data, _ = make_content(origin.root, "f.bin", 32 * MiB)
    url = f"{origin.url}/f.bin"
    scheduler = await swarm.start_scheduler()
    await swarm.start_daemon("holder", extra=THROTTLED)
    result = await asyncio.wait_for(get(str(swarm.directory / "holder.sock"), url), timeout=60)
    assert result["event"] == "done", result

    sent: dict[str, float] = {}
    for name, capacity in (("modest", "1KiB/s"), ("greedy", "100GiB/s")):
        before = await reschedule_requests(scheduler.address)
        receiver = await swarm.start_daemon(
            name, extra=[*THROTTLED, "--download-capacity", capacity], env=ONE_PIECE_AT_A_TIME
        )
        result = await asyncio.wait_for(get(str(swarm.directory / f"{name}.sock"), url), timeout=60)
        assert result["event"] == "done", result
        assert result["bytes_from"]["peer"] == len(data)
        sent[name] = await reschedule_requests(scheduler.address) - before
        slow = (await metrics(receiver.address))["damselfly_daemon_reschedules_total{reason=slow}"]
        assert slow == sent[name]
    assert sent["modest"] == 0
    assert sent["greedy"] >= 1
