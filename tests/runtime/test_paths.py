"""Paths that were built but not exercised: the scheduler's TOML file, token files, JSON logs
end to end, the progress bar on a terminal, the daemon's own fall back to the source after
parent_wait, and several pieces in flight to several parents at once. Real processes on
127.0.0.1; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.runtime.conftest import (
    AUTH,
    COMMAND,
    TOKEN,
    Origin,
    Swarm,
    downloaded,
    get,
    make_content,
    metrics,
)

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


async def status(url: str, token: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.get(url) as response,
    ):
        return response.status


async def test_token_files_for_the_scheduler_and_the_daemon(swarm: Swarm, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    # The environment holds another token: the flag wins.
    scheduler = await swarm.start_scheduler(["--token-file", str(token_file)])
    task = "/api/v1/tasks/" + "0" * 64
    assert await status(scheduler.address + task, TOKEN) == 401
    assert await status(scheduler.address + task, "from-the-file") == 404
    daemon = await swarm.start_daemon("peer0", extra=["--token-file", str(token_file)])
    bitfield = f"{daemon.address}/download/v1/tasks/{'0' * 64}/bitfield"
    assert await status(bitfield, TOKEN) == 401
    assert await status(bitfield, "from-the-file") == 410
    # It announced itself with the file's token.
    values = await metrics(scheduler.address)
    assert values["damselfly_scheduler_hosts{}"] == 1


async def test_an_unknown_evaluator_in_the_scheduler_toml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "scheduler.toml"
    config.write_text('listen = "127.0.0.1:0"\nevaluator = "no-such-evaluator"\n')
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "scheduler", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "no-such-evaluator" in lines[0], lines


def json_lines(log: Path) -> list[dict[str, object]]:
    """Every line of a component's stderr, each of which must be one JSON object."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def test_the_daemon_falls_back_to_the_source_after_parent_wait(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    """The scheduler (its TOML file: retries a minute apart, JSON logs) triggers a seed that
    never answers and so never sends parents nor the peer back to the source; the daemon
    goes to the origin by itself once parent_wait passes without progress."""
    data, _ = make_content(origin.root, "f.bin", 8 * MiB)
    config = tmp_path / "scheduler.toml"
    config.write_text('listen = "127.0.0.1:0"\nretry_interval = "60s"\nlog_format = "json"\n')
    scheduler = await swarm.start_scheduler(["--config", str(config)])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", scheduler.address)
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.post(
            scheduler.address + "/api/v1/hosts",
            json={"host_id": "ghost", "address": "http://127.0.0.1:9", "kind": "seed"},
        ) as response,
    ):
        assert response.status == 200
    await swarm.start_daemon("peer0", extra=["--parent-wait", "1s", "--log-format", "json"])
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), f"{origin.url}/f.bin"), 60)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert downloaded(await metrics(swarm.daemons["peer0"].address), "origin") == len(data)
    messages = [str(line["message"]) for line in json_lines(tmp_path / "peer0.log")]
    assert any("no progress from peers" in message for message in messages), messages
    await swarm.stop()  # every line written, including the stop
    assert json_lines(tmp_path / "scheduler.log") is not None


async def test_json_logs_end_to_end(origin: Origin, swarm: Swarm, tmp_path: Path) -> None:
    make_content(origin.root, "f.bin", MiB)
    await swarm.start_daemon(
        "peer0", extra=["--log-format", "json", "--scheduler", "http://127.0.0.1:9"]
    )
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), f"{origin.url}/f.bin"), 60)
    assert result["event"] == "done", result
    await swarm.stop()
    lines = json_lines(tmp_path / "peer0.log")
    assert {"warning", "info"} <= {line["level"] for line in lines}, lines
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def run_in_terminal(args: list[str], limit: float = 90.0) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as stdin, stdout and stderr; returns the exit
    status and everything it wrote (bounded by ``limit`` seconds)."""
    master, slave = pty.openpty()
    environment = {**os.environ, "DAMSELFLY_TOKEN": TOKEN, "COLUMNS": "160", "TERM": "xterm"}
    environment.pop("NO_COLOR", None)
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=environment)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            output += chunk
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, output.decode(errors="replace")


async def test_the_progress_bar_shows_rate_and_sources(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    # 8 pieces, 4 at a time from the origin, slowed to about a second: the bar is drawn
    # several times and sees two batches of pieces land, so it can tell a rate.
    data, _ = make_content(origin.root, "f.bin", 32 * MiB)
    await swarm.start_daemon("peer0", extra=["--back-to-source-rate", "256Mbit/s"])
    output = tmp_path / "out.bin"
    args = [*COMMAND, "get", f"{origin.url}/f.bin", "-O", str(output)]
    code, text = await asyncio.to_thread(
        run_in_terminal, [*args, "--daemon", str(tmp_path / "peer0.sock")]
    )
    assert code == 0, text
    assert output.read_bytes() == data
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", plain), plain
    assert "origin:32MiB" in plain, plain
    assert "33.6/33.6 MB" in plain, plain


async def sample_uploads(addresses: list[str], stop: asyncio.Event) -> list[list[float]]:
    """Each parent's active uploads, sampled until ``stop`` (bounded: 60 s)."""
    samples: list[list[float]] = []
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        row = []
        for address in addresses:
            row.append((await metrics(address))["damselfly_daemon_active_uploads{}"])
        samples.append(row)
        await asyncio.sleep(0.02)
    return samples


async def test_about_eight_pieces_are_in_flight_across_several_parents(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", 32 * MiB)  # 8 pieces of 4 MiB
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    parents = ["peer0", "peer1"]
    for name in parents:
        # Each parent serves at 16 MiB/s: an upload lasts while its bytes trickle out (a
        # slow reader would not do: a 4 MiB piece fits in loopback socket buffers).
        await swarm.start_daemon(name, extra=["--upload-rate-limit", "128Mbit/s"])
        result = await asyncio.wait_for(get(str(tmp_path / f"{name}.sock"), url), 60)
        assert result["event"] == "done", result
    await swarm.start_daemon("child")
    stop = asyncio.Event()
    sampler = asyncio.create_task(
        sample_uploads([swarm.daemons[name].address for name in parents], stop)
    )
    result = await asyncio.wait_for(get(str(tmp_path / "child.sock"), url), 60)
    stop.set()
    samples = await sampler
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert downloaded(await metrics(swarm.daemons["child"].address), "peer") == len(data)
    most = max(sum(row) for row in samples)
    # max_in_flight = 8 (Dragonfly's default). The parents may briefly count more: an
    # endgame duplicate the child cancelled still runs at its parent until the next chunk.
    assert most >= 6, samples
    for index in range(len(parents)):  # both parents served ranges at the same time
        assert max(row[index] for row in samples) >= 2, samples
