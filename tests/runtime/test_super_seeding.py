"""A seed daemon super-seeds, as the simulator's seed peers do.

In process: the bitfield endpoint answers with the seed's PieceOffer (a piece is withdrawn
once its upload begins, put back when the upload does not complete, and every piece comes
back once all went out), and a withdrawn piece asked for is still served. With real
processes on loopback: the same swarm, super-seeding on and off, gets byte-identical
content, and the seed serves fewer bytes with it on.

Super-seeding matters while the seed is still receiving the content: each new piece goes to
one child, which passes it on. On loopback an unthrottled origin hands the seed everything
in a fraction of a second and the first round is over within a bitfield poll or two, so the
swarm test throttles the seed's origin fetch (16 MiB/s: 4 s for 64 MiB), as a seed far from
its origin is. Measured there: the seed served about 240 MiB of the 384 MiB the children got
with super-seeding, all 384 MiB without.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from damselfly.runtime.config import DaemonConfig, load_config
from damselfly.runtime.daemon import Daemon
from damselfly.scheduling import Bitfield, task_id
from tests.runtime.conftest import Origin, Swarm, get, make_content, metrics

TOKEN = "secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "http://127.0.0.1:9/f.bin"
MiB = 1024 * 1024
PIECES = 4


def piece_bytes(index: int) -> bytes:
    return bytes([index + 1]) * MiB


async def start_seed(tmp_path: Path, **settings: Any) -> Daemon:
    """A seed daemon (no scheduler) holding all of URL: 4 pieces of 1 MiB."""
    config = DaemonConfig(data_dir=str(tmp_path / "data"), token=TOKEN, seed=True, **settings)
    node = Daemon(config)
    store = node.storage.open(task_id(URL), URL, "")
    node.storage.allocate(store, PIECES * MiB, MiB)
    for index in range(PIECES):
        store.write_piece(index, piece_bytes(index))
        store.mark_verified(index, "sha256:" + "00" * 32)
    store.checkpoint()
    await node.start()
    return node


async def offered(client: TestClient) -> list[int]:
    response = await client.get(f"/download/v1/tasks/{task_id(URL)}/bitfield", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    return list(Bitfield.from_bytes(body["piece_count"], bytes.fromhex(body["bitfield"])))


async def request_piece(client: TestClient, index: int) -> Any:
    """Ask for piece ``index`` (1 MiB); the response's body is not read yet."""
    headers = {**AUTH, "Range": f"bytes={index * MiB}-{(index + 1) * MiB - 1}"}
    response = await client.get(f"/download/v1/tasks/{task_id(URL)}/data", headers=headers)
    assert response.status == 206
    return response


async def fetch(client: TestClient, index: int) -> bytes:
    return bytes(await (await request_piece(client, index)).read())


async def test_the_bitfield_endpoint_answers_the_seeds_offer(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    # 1 MiB/s: a piece takes about 0.75 s to serve, so an upload can be cut off midway.
    node = await start_seed(tmp_path, upload_rate_limit=MiB)
    try:
        client = await aiohttp_client(node.upload_app())
        assert await offered(client) == [0, 1, 2, 3]
        assert await fetch(client, 0) == piece_bytes(0)
        assert await offered(client) == [1, 2, 3]  # piece 0 went out once
        # The offer steers; it does not forbid: a child asking for piece 0 still gets it.
        assert await fetch(client, 0) == piece_bytes(0)

        # An upload that does not complete puts its piece back.
        response = await request_piece(client, 1)
        await response.content.readexactly(1024)
        assert await offered(client) == [2, 3]
        response.close()  # the child gives up on the piece
        for _ in range(100):  # the seed notices at its next chunk (bounded: 10 s)
            if 1 in await offered(client):
                break
            await asyncio.sleep(0.1)
        assert await offered(client) == [1, 2, 3]

        for index in (1, 2):
            assert await fetch(client, index) == piece_bytes(index)
        assert await offered(client) == [3]
        # Once every piece went out, the seed offers all of them again (for stragglers).
        assert await fetch(client, 3) == piece_bytes(3)
        assert await offered(client) == [0, 1, 2, 3]
    finally:
        await node.stop()


async def test_without_super_seeding_the_seed_offers_every_verified_piece(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    node = await start_seed(tmp_path, super_seeding=False)
    try:
        client = await aiohttp_client(node.upload_app())
        assert await fetch(client, 0) == piece_bytes(0)
        assert await offered(client) == [0, 1, 2, 3]
    finally:
        await node.stop()


def test_super_seeding_is_on_by_default_and_can_be_turned_off() -> None:
    assert load_config(DaemonConfig, "daemon", environ={}).super_seeding is True
    environ = {"DAMSELFLY_DAEMON_SUPER_SEEDING": "off"}
    assert load_config(DaemonConfig, "daemon", environ=environ).super_seeding is False
    flags = {"super_seeding": False}
    assert load_config(DaemonConfig, "daemon", flags=flags, environ={}).super_seeding is False


SWARM_SIZE = 64 * MiB  # 16 pieces of 4 MiB
SWARM_PEERS = 6


async def seed_served(origin: Origin, directory: Path, url: str, *, super_seeding: bool) -> float:
    """Run a scheduler, a seed and SWARM_PEERS daemons that all get ``url``; returns the
    bytes the seed served. Every daemon's copy must equal the origin's file."""
    directory.mkdir()
    swarm = Swarm(directory=directory)
    data = (origin.root / "model.bin").read_bytes()
    try:
        await swarm.start_scheduler()
        seed_flags = ["--back-to-source-rate", "16MiB/s"]
        seed_flags += [] if super_seeding else ["--no-super-seeding"]
        seed = await swarm.start_daemon("seed0", seed=True, extra=seed_flags)
        names = [f"peer{index}" for index in range(SWARM_PEERS)]
        await asyncio.gather(*(swarm.start_daemon(name) for name in names))
        results = await asyncio.wait_for(
            asyncio.gather(*(get(str(directory / f"{name}.sock"), url) for name in names)),
            timeout=180,
        )
        for result in results:
            assert result["event"] == "done", result
            assert Path(result["path"]).read_bytes() == data
        return (await metrics(seed.address))["damselfly_daemon_uploaded_bytes_total{}"]
    finally:
        await swarm.stop()


@pytest.mark.slow
async def test_super_seeding_takes_load_off_the_seed(origin: Origin, tmp_path: Path) -> None:
    make_content(origin.root, "model.bin", SWARM_SIZE)
    url = f"{origin.url}/model.bin"
    without = await seed_served(origin, tmp_path / "off", url, super_seeding=False)
    with_it = await seed_served(origin, tmp_path / "on", url, super_seeding=True)
    assert with_it < without
