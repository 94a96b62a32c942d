"""Helpers for runtime tests: an in-process origin, real component processes on 127.0.0.1.

Components run as separate processes (``damselfly scheduler`` / ``daemon``), like in
production, so fault tests can kill them. Each prints a JSON ready line with the address it
bound; :func:`spawn` waits for it. Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from damselfly.runtime.origin import ORIGIN_KEY, OriginStats, make_origin_app

TOKEN = "test-token"
COMMAND = [sys.executable, "-c", "import sys; from damselfly.cli import main; sys.exit(main())"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Component:
    process: asyncio.subprocess.Process
    info: dict[str, Any]
    log: Path

    @property
    def address(self) -> str:
        return str(self.info["address"])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=15)
            except TimeoutError:
                self.kill()
                await self.process.wait()


async def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Component:
    """Start a component process and wait (at most 30 s) for its ready line."""
    environment = {**os.environ, "DAMSELFLY_TOKEN": TOKEN, **(env or {})}
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=open(log, "ab"),  # noqa: SIM115 (the child holds it)
        env=environment,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    except TimeoutError:
        process.kill()
        raise
    if not line:
        await process.wait()
        raise AssertionError(f"{args[0]} did not start:\n{log.read_text()[-3000:]}")
    return Component(process=process, info=json.loads(line), log=log)


@dataclass
class Origin:
    url: str
    stats: OriginStats
    root: Path


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    root = tmp_path / "origin"
    root.mkdir()
    app = make_origin_app(root)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield Origin(url=f"http://127.0.0.1:{runner.addresses[0][1]}", stats=app[ORIGIN_KEY], root=root)
    await runner.cleanup()


def make_content(root: Path, name: str, size: int) -> tuple[bytes, str]:
    """Random-looking content of ``size`` bytes at ``root/name``; returns (bytes, sha256:)."""
    block = os.urandom(1024 * 1024)
    data = (block * (size // len(block) + 1))[:size]
    # Vary each MiB so no two pieces are equal (a piece mix-up must show).
    data = b"".join(
        bytes([index % 251]) + data[index * 1024 * 1024 + 1 : (index + 1) * 1024 * 1024]
        for index in range((size + 1024 * 1024 - 1) // (1024 * 1024))
    )[:size]
    (root / name).write_bytes(data)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Swarm:
    """A scheduler, seeds and daemons as processes, and the means to drive them."""

    directory: Path
    scheduler: Component | None = None
    daemons: dict[str, Component] = field(default_factory=dict)

    async def start_scheduler(self, extra: list[str] | None = None) -> Component:
        self.scheduler = await spawn(
            ["scheduler", "--listen", "127.0.0.1:0", *(extra or [])],
            self.directory / "scheduler.log",
        )
        return self.scheduler

    async def start_daemon(
        self,
        name: str,
        *,
        seed: bool = False,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Component:
        args = [
            "daemon",
            "--data-dir",
            str(self.directory / name),
            "--socket",
            str(self.directory / f"{name}.sock"),
            "--host-id",
            name,
            "--parent-wait",
            "10s",
        ]
        if self.scheduler is not None:
            args += ["--scheduler", self.scheduler.address]
        if seed:
            args.append("--seed")
        args += extra or []
        component = await spawn(args, self.directory / f"{name}.log", env)
        self.daemons[name] = component
        return component

    async def stop(self) -> None:
        for component in self.daemons.values():
            await component.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    state = Swarm(directory=tmp_path)
    try:
        yield state
    finally:
        await state.stop()


async def get(socket: str, url: str, **request: Any) -> dict[str, Any]:
    """Ask a daemon's local API to download ``url``; returns the final event."""
    connector = aiohttp.UnixConnector(path=socket)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            "http://daemon/api/v1/downloads",
            json={"url": url, **request},
            timeout=aiohttp.ClientTimeout(total=120),
        ) as response,
    ):
        assert response.status == 200, await response.text()
        last: dict[str, Any] = {}
        async for line in response.content:
            last = json.loads(line)
        return last


async def metrics(address: str) -> dict[str, float]:
    """A component's metrics as {"name{label=value,...}": value}."""
    async with aiohttp.ClientSession() as session, session.get(address + "/metrics") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def downloaded(values: dict[str, float], source: str) -> float:
    return values.get(f"damselfly_daemon_downloaded_bytes_total{{source={source}}}", 0.0)


async def bitfield_count(address: str, task: str) -> int:
    """Verified pieces a daemon holds of ``task`` (0 when it has not started)."""
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{address}/download/v1/tasks/{task}/bitfield") as response,
    ):
        if response.status != 200:
            return 0
        body = await response.json()
    return int.from_bytes(bytes.fromhex(body["bitfield"]), "little").bit_count()
