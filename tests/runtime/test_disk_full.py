"""A disk that fills up under a running daemon, for real: its data dir is a small tmpfs.

The daemon holds one finished task and is fetching a second when the test fills the rest of
the filesystem. The second task must fail with a reason that says so, keep every piece it
had verified (a restarted daemon resumes it and fetches only the others), and the daemon
must go on serving the first task. Mounting needs root (CAP_SYS_ADMIN), which CI has; the
test is skipped, saying why, when not run as root, and fails if root cannot mount.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from damselfly.scheduling import task_id
from tests.runtime.conftest import AUTH, Origin, Swarm, bitfield_count, get, make_content

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
PIECE = 4 * MiB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root, which CI has")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    # As root the mount must work (CI installs util-linux's mount): a refusal is a failure.
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs: {mounted.stderr.strip()}"
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


def fill(directory: Path) -> int:
    """Write a file until the filesystem refuses a byte; returns the bytes written."""
    written = 0
    with open(directory / "filler", "wb", buffering=0) as file:
        for size in (MiB, 4096, 1):
            for _ in range(64 * MiB // size):  # bounded: the disk is 40 MiB
                try:
                    written += file.write(b"\0" * size)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    return written


async def test_a_full_disk_fails_the_task_keeps_its_pieces_and_serving_goes_on(
    origin: Origin, swarm: Swarm, small_disk: Path
) -> None:
    first, _ = make_content(origin.root, "a.bin", 2 * PIECE)
    second, _ = make_content(origin.root, "b.bin", 6 * PIECE)
    url_a, url_b = f"{origin.url}/a.bin", f"{origin.url}/b.bin"
    data_dir = small_disk / "data"
    args = ["--data-dir", str(data_dir), "--back-to-source-rate", "4MiB/s"]
    one_at_a_time = {"DAMSELFLY_DAEMON_SOURCE_CONCURRENCY": "1"}
    daemon = await swarm.start_daemon("node", extra=args, env=one_at_a_time)
    socket = str(swarm.directory / "node.sock")
    assert (await asyncio.wait_for(get(socket, url_a), timeout=60))["event"] == "done"

    fetching = asyncio.create_task(get(socket, url_b))
    for _ in range(400):
        if await bitfield_count(daemon.address, task_id(url_b)) >= 2:
            break
        await asyncio.sleep(0.05)
    held = await bitfield_count(daemon.address, task_id(url_b))
    assert 2 <= held < 6
    assert fill(small_disk) > 0
    result = await asyncio.wait_for(fetching, timeout=60)
    assert result["event"] == "error", result
    assert "disk full" in result["message"]
    kept = int(re.search(r"with (\d+) of 6 pieces", result["message"]).group(1))  # type: ignore[union-attr]
    assert kept >= held

    # The daemon goes on serving: the finished task, and the failed task's verified pieces.
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for url, expected in ((url_a, first), (url_b, second[:PIECE])):
            path = f"{daemon.address}/download/v1/tasks/{task_id(url)}/data"
            ranged = {"Range": f"bytes=0-{len(expected) - 1}"}
            async with session.get(path, headers=ranged) as response:
                assert response.status == 206
                assert await response.read() == expected
        async with session.get(f"{daemon.address}/healthz") as response:
            assert response.status == 200

    # Restarted with room again, it resumes the failed task from what it had recorded.
    await daemon.stop()
    served_before = origin.stats.bytes_served
    os.unlink(small_disk / "filler")
    daemon = await swarm.start_daemon("node", extra=["--data-dir", str(data_dir)])
    assert await bitfield_count(daemon.address, task_id(url_b)) >= kept
    result = await asyncio.wait_for(get(socket, url_b), timeout=60)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == second
    assert origin.stats.bytes_served - served_before <= (6 - kept) * PIECE
    assert not (Path(result["path"]).parent / "meta.reserve").exists()  # finished: not needed
