"""Quota eviction and tasks that disappear: the scheduler hears of an eviction, a child
avoids a parent that no longer holds the task, and an upload racing an eviction is never a
500. Real sockets on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from damselfly.runtime.config import DaemonConfig
from damselfly.runtime.daemon import Daemon
from damselfly.runtime.storage import _remove_tree
from damselfly.scheduling import task_id
from tests.runtime.conftest import AUTH, Origin, Swarm, downloaded, get, make_content, metrics

MiB = 1024 * 1024
# Far longer than a test waits: a child that falls back on it has stalled.
LONG_WAIT = ["--parent-wait", "120s"]


async def task_peers(scheduler: str, task: str) -> int:
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{scheduler}/api/v1/tasks/{task}") as response,
    ):
        assert response.status == 200, await response.text()
        return int((await response.json())["peers"])


@pytest.mark.slow
async def test_an_evicted_task_leaves_the_scheduler_and_children_go_elsewhere(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    data_a, _ = make_content(origin.root, "A.bin", 8 * MiB)
    make_content(origin.root, "B.bin", 8 * MiB)
    url_a, url_b = f"{origin.url}/A.bin", f"{origin.url}/B.bin"
    scheduler = await swarm.start_scheduler()
    await swarm.start_daemon("seed0", seed=True, extra=["--quota", "12MiB", *LONG_WAIT])
    await swarm.start_daemon("peer0", extra=LONG_WAIT)
    seed_socket = str(tmp_path / "seed0.sock")
    assert (await asyncio.wait_for(get(seed_socket, url_a), timeout=30))["event"] == "done"
    assert await task_peers(scheduler.address, task_id(url_a)) == 1
    assert (await asyncio.wait_for(get(seed_socket, url_b), timeout=30))["event"] == "done"
    for _ in range(100):  # B evicted A: the seed's peer of A leaves (bounded: 5 s)
        if await task_peers(scheduler.address, task_id(url_a)) == 0:
            break
        await asyncio.sleep(0.05)
    assert await task_peers(scheduler.address, task_id(url_a)) == 0
    # Nobody sends peer0 to the seed for A in vain: it finishes long before its parent_wait.
    result = await asyncio.wait_for(get(str(tmp_path / "peer0.sock"), url_a), timeout=40)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data_a


@pytest.mark.slow
async def test_a_parent_that_no_longer_holds_the_task_is_avoided_at_once(
    origin: Origin, swarm: Swarm, tmp_path: Path
) -> None:
    """The scheduler names a parent whose daemon has lost the task (it answers 410): the
    child blocks it and asks for others at once, instead of waiting parent_wait."""
    data, _ = make_content(origin.root, "f.bin", 8 * MiB)
    url = f"{origin.url}/f.bin"
    scheduler = await swarm.start_scheduler()
    empty = await swarm.start_daemon("empty")  # holds nothing
    await swarm.start_daemon("child", extra=LONG_WAIT)
    async with aiohttp.ClientSession(headers=AUTH) as session:

        async def call(method: str, path: str, body: Any) -> None:
            async with session.request(method, scheduler.address + path, json=body) as answer:
                assert answer.status < 300, await answer.text()

        # A host that says it holds the whole task, at the address of the empty daemon.
        await call("POST", "/api/v1/hosts", {"host_id": "liar", "address": empty.address})
        await call("POST", "/api/v1/peers", {
            "peer_id": "liar-peer", "host_id": "liar", "url": url,
            "content_length": len(data), "need_back_to_source": True,
        })  # fmt: skip
        finished = [
            {"piece": index, "length": 4 * MiB, "digest": "sha256:" + f"{index:064x}"}
            for index in range(2)
        ]
        await call("POST", "/api/v1/peers/liar-peer/pieces", {"finished": finished})
        await call("POST", "/api/v1/peers/liar-peer/succeeded", {})
    result = await asyncio.wait_for(get(str(tmp_path / "child.sock"), url), timeout=40)
    assert result["event"] == "done", result
    assert Path(result["path"]).read_bytes() == data
    values = await metrics(swarm.daemons["child"].address)
    assert values["damselfly_daemon_reschedules_total{reason=unreachable}"] >= 1
    assert downloaded(values, "origin") == len(data)


def _finished_task(node: Daemon, name: str, access: float) -> str:
    url = f"http://127.0.0.1:9/{name}"
    store = node.storage.open(task_id(url), url, "")
    node.storage.allocate(store, MiB, MiB)
    store.write_piece(0, (name.encode() * MiB)[:MiB])
    store.mark_verified(0, "sha256:" + "00" * 32)
    store.last_access = access
    store.checkpoint()
    return store.task_id


async def test_an_upload_counts_as_use_for_lru_eviction(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    node = Daemon(DaemonConfig(data_dir=str(tmp_path / "d"), quota=2 * MiB))
    older = _finished_task(node, "older", access=1.0)
    newer = _finished_task(node, "newer", access=2.0)
    client = await aiohttp_client(node.upload_app())
    response = await client.get(
        f"/download/v1/tasks/{older}/data", headers={"Range": f"bytes=0-{MiB - 1}"}
    )
    assert response.status == 206
    await response.read()
    _finished_task(node, "third", access=3.0)  # needs room: one task goes
    assert node.storage.get(older) is not None  # just uploaded: used more recently
    assert node.storage.get(newer) is None


async def test_a_task_removed_under_an_upload_is_410_not_500(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    node = Daemon(DaemonConfig(data_dir=str(tmp_path / "d")))
    identity = _finished_task(node, "gone", access=1.0)
    client = await aiohttp_client(node.upload_app())
    # An eviction in a worker thread deleted the files between the lookup and the read.
    _remove_tree(node.storage.stores[identity].directory)
    response = await client.get(
        f"/download/v1/tasks/{identity}/data", headers={"Range": "bytes=0-9"}
    )
    assert response.status == 410
    assert (await response.json())["error"]["status"] == 410
    node.storage.remove(identity)
    for path in ("data", "bitfield"):
        response = await client.get(
            f"/download/v1/tasks/{identity}/{path}", headers={"Range": "bytes=0-9"}
        )
        assert response.status == 410
