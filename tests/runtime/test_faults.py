"""Faults with real processes on loopback: killed parents, a lost scheduler, a lying parent,
a restarted daemon. Downloads are slowed with the daemons' own rate limit so that the fault
lands mid-transfer; every wait is bounded."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from damselfly.scheduling import task_id
from tests.runtime.conftest import (
    AUTH,
    Origin,
    Swarm,
    bitfield_count,
    downloaded,
    get,
    make_content,
    metrics,
)

pytestmark = pytest.mark.slow

SIZE = 32 * 1024 * 1024
PIECE = 4 * 1024 * 1024
SLOW = ["--download-rate", "64Mbit/s"]  # 8 MiB/s: 4 s for the whole file


async def wait_for_pieces(address: str, task: str, count: int, limit: float = 30.0) -> int:
    """Poll a daemon until it holds ``count`` verified pieces of ``task`` (bounded)."""
    for _ in range(int(limit / 0.05)):
        held = await bitfield_count(address, task)
        if held >= count:
            return held
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} never held {count} pieces")


async def test_children_finish_when_their_parent_is_killed(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    seed = await swarm.start_daemon("seed0", seed=True)
    names = ["peer0", "peer1", "peer2"]
    for name in names:
        await swarm.start_daemon(name, extra=SLOW)
    downloads = [asyncio.create_task(get(str(tmp_path / f"{n}.sock"), url)) for n in names]
    await wait_for_pieces(swarm.daemons["peer0"].address, task_id(url), 2)
    seed.kill()
    results = await asyncio.wait_for(asyncio.gather(*downloads), timeout=90)
    for result in results:
        assert result["event"] == "done", result
        assert Path(result["path"]).read_bytes() == data


async def test_daemons_fall_back_to_the_source_when_the_scheduler_stops(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    scheduler = await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True)
    names = ["peer0", "peer1"]
    for name in names:
        await swarm.start_daemon(name, extra=SLOW)
    downloads = [asyncio.create_task(get(str(tmp_path / f"{n}.sock"), url)) for n in names]
    await wait_for_pieces(swarm.daemons["peer0"].address, task_id(url), 1)
    scheduler.kill()
    results = await asyncio.wait_for(asyncio.gather(*downloads), timeout=90)
    from_origin = 0.0
    for name, result in zip(names, results, strict=True):
        assert result["event"] == "done", result
        assert Path(result["path"]).read_bytes() == data
        from_origin += downloaded(await metrics(swarm.daemons[name].address), "origin")
    assert from_origin > 0


async def test_a_parent_serving_corrupt_pieces_is_detected_and_avoided(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True, env={"DAMSELFLY_DAEMON_TEST_CORRUPT_UPLOADS": "1"})
    peer = await swarm.start_daemon("peer0")
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), url), timeout=90)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    values = await metrics(peer.address)
    assert values["damselfly_daemon_pieces_total{result=corrupt}"] >= 1
    assert downloaded(values, "seed") == 0  # nothing it accepted came from the liar
    assert swarm.scheduler is not None
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{swarm.scheduler.address}/api/v1/peers/{result['peer_id']}") as answer,
    ):
        blocked = (await answer.json())["blocked"]
    assert any(parent.startswith("seed0-") for parent in blocked)  # the core blocked the liar
    # A second daemon has an honest parent now (peer0) and the liar: it ends correct too.
    await swarm.start_daemon("peer1")
    result = await asyncio.wait_for(get(str(tmp_path / "peer1.sock"), url), timeout=90)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert downloaded(await metrics(swarm.daemons["peer1"].address), "seed") == 0


async def test_a_restarted_daemon_resumes_without_fetching_pieces_again(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True)
    first = await swarm.start_daemon("peer0", extra=SLOW)
    durable = await kill_halfway(first, "peer0", url, tmp_path)

    second = await swarm.start_daemon("peer0")
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), url), timeout=90)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    values = await metrics(second.address)
    fetched = sum(downloaded(values, source) for source in ("origin", "seed", "peer"))
    assert fetched == SIZE - durable * PIECE


async def test_tls_between_scheduler_daemons_and_peers(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    import shutil

    # .ci/run installs Debian's openssl; without it this is a setup error, not a skip.
    assert shutil.which("openssl"), "the openssl command makes the test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    process = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(cert)]
    data, _ = make_content(origin.root, "f.bin", 9 * 1024 * 1024)
    scheduler = await swarm.start_scheduler(tls[:4])
    assert scheduler.address.startswith("https://")
    await swarm.start_daemon("seed0", seed=True, extra=tls)
    peer = await swarm.start_daemon("peer0", extra=tls)
    assert peer.address.startswith("https://")
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), f"{origin.url}/f.bin"), 60)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert result["bytes_from"]["seed"] == len(data)


async def test_a_restarted_daemon_offers_what_it_holds(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", 9 * 1024 * 1024)
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    seed = await swarm.start_daemon("seed0", seed=True)
    holder = await swarm.start_daemon("peer0")
    assert (await get(str(tmp_path / "peer0.sock"), url))["event"] == "done"
    await holder.stop()  # a clean stop: the scheduler forgets its peers
    await seed.stop()
    await swarm.start_daemon("peer0")  # re-announces the finished task
    await swarm.start_daemon("peer1")
    result = await asyncio.wait_for(
        get(str(tmp_path / "peer1.sock"), url, disable_back_to_source=True), timeout=60
    )
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert result["bytes_from"]["peer"] == len(data)


async def test_a_seed_reoffers_its_content_to_a_restarted_scheduler(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data, _ = make_content(origin.root, "f.bin", 9 * 1024 * 1024)
    url = f"{origin.url}/f.bin"
    first = await swarm.start_scheduler(["--listen", f"127.0.0.1:{port}"])
    await swarm.start_daemon("seed0", seed=True)
    await swarm.start_daemon("peer0")
    assert (await get(str(tmp_path / "peer0.sock"), url))["event"] == "done"
    first.kill()
    await first.process.wait()
    second = await swarm.start_scheduler(["--listen", f"127.0.0.1:{port}"])
    for _ in range(200):  # the daemons find the new scheduler and announce their hosts
        if (await metrics(second.address)).get("damselfly_scheduler_hosts{}", 0) >= 2:
            break
        await asyncio.sleep(0.05)
    await swarm.start_daemon("peer1")
    result = await asyncio.wait_for(
        get(str(tmp_path / "peer1.sock"), url, disable_back_to_source=True), timeout=60
    )
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert origin.stats.bytes_served <= len(data) + 1  # the seed did not fetch it again


async def test_peers_wait_their_turn_at_a_parent_with_one_upload_slot(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", 17 * 1024 * 1024)
    url = f"{origin.url}/f.bin"
    await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True, extra=["--upload-slots", "1"])
    names = ["peer0", "peer1", "peer2"]
    for name in names:
        await swarm.start_daemon(name)
    results = await asyncio.wait_for(
        asyncio.gather(*(get(str(tmp_path / f"{n}.sock"), url) for n in names)), timeout=90
    )
    for result in results:
        assert result["event"] == "done", result
        assert Path(result["path"]).read_bytes() == data


async def kill_halfway(daemon: Any, name: str, url: str, tmp_path: Path) -> int:
    """Start a `get` of ``url`` through ``daemon`` (named ``name``), kill the daemon once it
    holds 3 pieces, and return how many verified pieces its metadata file recorded (some,
    not all)."""
    task = task_id(url)
    interrupted = asyncio.create_task(get(str(tmp_path / f"{name}.sock"), url))
    await wait_for_pieces(daemon.address, task, 3)
    await asyncio.sleep(0.5)  # pieces arrive in bursts; let the next checkpoint list them
    daemon.kill()  # no goodbye: only what is on disk survives
    await daemon.process.wait()
    with pytest.raises(Exception):  # noqa: B017 (the daemon died under it)
        await asyncio.wait_for(interrupted, timeout=10)
    meta = json.loads((tmp_path / name / "tasks" / task / "meta.json").read_text())
    durable = int.from_bytes(base64.b64decode(meta["verified"]), "little").bit_count()
    assert 0 < durable < SIZE // PIECE
    return durable


@contextlib.asynccontextmanager
async def private_origin(
    tmp_path: Path, size: int, seen: dict[str, int]
) -> AsyncIterator[tuple[str, bytes]]:
    """A static origin on loopback serving one file of ``size`` bytes only to requests that
    carry ``X-Origin-Key: k1``; ``seen`` counts the requests it granted and denied. Yields
    the file's URL and content."""
    from aiohttp import web

    from damselfly.runtime.origin import make_origin_app

    root = tmp_path / "private"
    root.mkdir()
    data, _ = make_content(root, "f.bin", size)
    seen.update(granted=0, denied=0)

    @web.middleware
    async def require_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("X-Origin-Key") != "k1":
            seen["denied"] += 1
            raise web.HTTPForbidden()
        seen["granted"] += 1
        return await handler(request)

    app = make_origin_app(root)
    app.middlewares.append(require_key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/f.bin", data
    finally:
        await runner.cleanup()


async def test_a_seed_fetches_a_private_origin_with_the_peers_headers(
    swarm: Swarm, tmp_path: Path
) -> None:
    async with private_origin(tmp_path, 9 * 1024 * 1024, {}) as (url, data):
        await swarm.start_scheduler()
        await swarm.start_daemon("seed0", seed=True)
        await swarm.start_daemon("peer0")
        result = await asyncio.wait_for(
            get(str(tmp_path / "peer0.sock"), url, headers={"X-Origin-Key": "k1"}), timeout=60
        )
        assert result["event"] == "done", result
        assert Path(result["path"]).read_bytes() == data
        assert result["bytes_from"]["seed"] == len(data)


async def test_a_daemon_without_a_scheduler_also_resumes(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data, _ = make_content(origin.root, "f.bin", SIZE)
    url = f"{origin.url}/f.bin"
    slow = ["--back-to-source-rate", "64Mbit/s"]
    first = await swarm.start_daemon("lone", extra=slow)
    durable = await kill_halfway(first, "lone", url, tmp_path)

    second = await swarm.start_daemon("lone")
    result = await asyncio.wait_for(get(str(tmp_path / "lone.sock"), url), timeout=60)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    assert downloaded(await metrics(second.address), "origin") == SIZE - durable * PIECE


async def test_a_resumed_download_still_sends_the_origin_headers(
    swarm: Swarm, tmp_path: Path
) -> None:
    seen: dict[str, int] = {}
    async with private_origin(tmp_path, 16 * 1024 * 1024, seen) as (url, data):
        task = task_id(url)
        one_at_a_time = {"DAMSELFLY_DAEMON_SOURCE_CONCURRENCY": "1"}
        first = await swarm.start_daemon(
            "lone", extra=["--back-to-source-rate", "4MiB/s"], env=one_at_a_time
        )
        interrupted = asyncio.create_task(
            get(str(tmp_path / "lone.sock"), url, headers={"X-Origin-Key": "k1"})
        )
        await wait_for_pieces(first.address, task, 1)
        first.kill()  # no goodbye: only what is on disk survives
        await first.process.wait()
        with pytest.raises(Exception):  # noqa: B017 (the daemon died under it)
            await asyncio.wait_for(interrupted, timeout=10)
        meta_path = tmp_path / "lone" / "tasks" / task / "meta.json"
        meta = json.loads(meta_path.read_text())
        assert meta["headers"] == {"X-Origin-Key": "k1"}
        assert meta_path.stat().st_mode & 0o777 == 0o600  # headers may hold credentials
        before = seen["granted"]

        second = await swarm.start_daemon("lone")  # resumes on its own, with no `get`
        for _ in range(600):
            if await bitfield_count(second.address, task) == 4:
                break
            await asyncio.sleep(0.05)
        assert await bitfield_count(second.address, task) == 4
        assert seen["denied"] == 0, "the resumed download lost the origin headers"
        assert seen["granted"] > before
        assert (tmp_path / "lone" / "tasks" / task / "data").read_bytes() == data
