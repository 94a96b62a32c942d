"""Rate limits with real processes on loopback: each limit holds a transfer to its rate.

Every assertion is a lower bound on time (4 MiB at 2 MiB/s cannot take less than about 1.75
s once the first burst is spent), never an upper bound, so a slow machine cannot fail them;
without the limit each transfer takes a small fraction of that.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from damselfly.runtime.config import ConfigError, DaemonConfig, load_config
from damselfly.runtime.ratelimit import DEFAULT_RATE_LIMIT, TokenBucket
from damselfly.scheduling import task_id
from tests.runtime.conftest import AUTH, Origin, Swarm, downloaded, get, make_content, metrics

MiB = 1024 * 1024
SIZE = 4 * MiB  # one piece
LIMIT = "2MiB/s"
AT_LEAST = 1.5  # seconds: (4 MiB - a 512 KiB burst) / 2 MiB/s = 1.75 s, with slack


def test_defaults_are_dragonfly_like_and_a_limit_can_be_turned_off() -> None:
    config = load_config(DaemonConfig, "daemon", environ={})
    assert DEFAULT_RATE_LIMIT == 10 * 1024**3  # dfdaemon's download/upload rateLimit: 10GiB
    assert config.upload_rate_limit == config.download_rate == DEFAULT_RATE_LIMIT
    assert config.back_to_source_rate == DEFAULT_RATE_LIMIT
    config = load_config(
        DaemonConfig,
        "daemon",
        flags={"download_rate": "off", "upload_rate_limit": "1Gbit/s"},
        environ={"DAMSELFLY_DAEMON_BACK_TO_SOURCE_RATE": "0"},
    )
    assert config.download_rate is None and config.back_to_source_rate is None
    assert config.upload_rate_limit == 125e6
    for bad in ("-1MB/s", "fast", "nanMB/s"):
        with pytest.raises(ConfigError, match="download_rate"):
            load_config(DaemonConfig, "daemon", flags={"download_rate": bad}, environ={})


def test_chunks_never_exceed_the_burst() -> None:
    assert TokenBucket(2 * MiB).chunk_size == 512 * 1024
    assert TokenBucket(DEFAULT_RATE_LIMIT).chunk_size == 4 * MiB
    assert TokenBucket(1024).chunk_size == 256 * 1024  # the smallest burst
    assert TokenBucket(1024, burst=1024).chunk_size == 64 * 1024


async def test_the_upload_limit_holds_a_zero_copy_upload(origin: Origin, swarm: Swarm) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    holder = await swarm.start_daemon("holder", extra=["--upload-rate-limit", LIMIT])
    result = await asyncio.wait_for(get(str(swarm.directory / "holder.sock"), url), timeout=60)
    assert result["event"] == "done", result
    path = f"{holder.address}/download/v1/tasks/{task_id(url)}/data"
    async with aiohttp.ClientSession(headers=AUTH) as session:
        started = time.monotonic()
        async with session.get(path, headers={"Range": f"bytes=0-{SIZE - 1}"}) as response:
            assert response.status == 206
            body = await response.read()
        elapsed = time.monotonic() - started
    assert body == data
    assert elapsed >= AT_LEAST, f"{SIZE} bytes served in {elapsed:.2f} s under {LIMIT}"
    sent = await metrics(holder.address)
    assert sent["damselfly_daemon_uploaded_bytes_total{}"] == SIZE


async def test_the_download_limit_holds_pieces_from_peers(origin: Origin, swarm: Swarm) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    await swarm.start_daemon("holder")
    result = await asyncio.wait_for(get(str(swarm.directory / "holder.sock"), url), timeout=60)
    assert result["event"] == "done", result
    receiver = await swarm.start_daemon("receiver", extra=["--download-rate", LIMIT])
    started = time.monotonic()
    result = await asyncio.wait_for(get(str(swarm.directory / "receiver.sock"), url), timeout=60)
    elapsed = time.monotonic() - started
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert result["bytes_from"]["peer"] == SIZE  # the limited path is the one that moved it
    assert elapsed >= AT_LEAST, f"{SIZE} bytes from a peer in {elapsed:.2f} s under {LIMIT}"
    assert downloaded(await metrics(receiver.address), "peer") == SIZE


async def test_the_back_to_source_limit_holds_the_origin(origin: Origin, swarm: Swarm) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    await swarm.start_daemon("lone", extra=["--back-to-source-rate", LIMIT])
    started = time.monotonic()
    result = await asyncio.wait_for(get(str(swarm.directory / "lone.sock"), url), timeout=60)
    elapsed = time.monotonic() - started
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert result["bytes_from"]["origin"] == SIZE
    assert elapsed >= AT_LEAST, f"{SIZE} bytes from the origin in {elapsed:.2f} s under {LIMIT}"
