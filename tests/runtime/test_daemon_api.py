"""The daemon's HTTP surfaces in process: auth on pieces, only verified ranges, bad input
answered 4xx (generated requests included), the quota failing a task clearly, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damselfly.runtime.config import ConfigError, DaemonConfig, load_config
from damselfly.runtime.daemon import LOCAL_ROUTES, UPLOAD_ROUTES, Daemon
from damselfly.scheduling import task_id

TOKEN = "secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "http://127.0.0.1:9/f.bin"  # a closed port: a resumed download fails at once
MiB = 1024 * 1024


@pytest.fixture
async def daemon(tmp_path: Path) -> Any:
    node = Daemon(DaemonConfig(data_dir=str(tmp_path / "data"), token=TOKEN, source_retries=1))
    store = node.storage.open(task_id(URL), URL, "")
    node.storage.allocate(store, 3 * MiB, MiB)
    store.write_piece(1, b"b" * MiB)
    store.mark_verified(1, "sha256:" + "00" * 32)
    store.checkpoint()
    await node.start()  # reloads the store from disk (and tries to resume it, in vain)
    yield node
    await node.stop()


@pytest.fixture
async def upload(daemon: Daemon, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(daemon.upload_app())


@pytest.fixture
async def local(daemon: Daemon, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(daemon.local_app())


async def test_pieces_need_the_token(upload: TestClient) -> None:
    bitfield = f"/download/v1/tasks/{task_id(URL)}/bitfield"
    assert (await upload.get(bitfield)).status == 401
    assert (await upload.get(bitfield, headers={"Authorization": "Bearer no"})).status == 401
    assert (await upload.get(bitfield, headers=AUTH)).status == 200
    path = f"/download/v1/tasks/{task_id(URL)}/data"
    response = await upload.get(path, headers={"Range": f"bytes={MiB}-{2 * MiB - 1}"})
    assert response.status == 401
    response = await upload.get(path, headers={**AUTH, "Range": f"bytes={MiB}-{2 * MiB - 1}"})
    assert response.status == 206
    assert await response.read() == b"b" * MiB
    text = await (await upload.get("/metrics")).text()
    assert "damselfly_daemon_uploaded_bytes_total 1.048576e+06" in text
    assert "damselfly_daemon_upload_rate_bytes_per_second" in text


@pytest.mark.parametrize(
    ("range_header", "status"),
    [
        (None, 400),
        ("bytes=0-10", 404),  # piece 0 is not verified
        (f"bytes={MiB}-{2 * MiB}", 404),  # spills into piece 2
        ("bytes=abc", 400),
        (f"bytes={3 * MiB}-{4 * MiB}", 416),
    ],
)
async def test_only_verified_ranges_are_served(
    upload: TestClient, range_header: str | None, status: int
) -> None:
    headers = dict(AUTH)
    if range_header:
        headers["Range"] = range_header
    response = await upload.get(f"/download/v1/tasks/{task_id(URL)}/data", headers=headers)
    assert response.status == status
    assert (await response.json())["error"]["status"] == status


async def test_quota_fails_the_task_clearly(tmp_path: Path, origin: Any) -> None:
    (origin.root / "big.bin").write_bytes(b"x" * (5 * MiB))
    node = Daemon(DaemonConfig(data_dir=str(tmp_path / "d"), quota=MiB, source_retries=1))
    await node.start()
    try:
        job = node.download(f"{origin.url}/big.bin")
        with pytest.raises(Exception, match="quota"):
            await job
        assert node.storage.used_bytes() == 0
    finally:
        await node.stop()


_ids = st.one_of(
    st.sampled_from([task_id(URL), "..", "%2e%2e%2f", "a" * 300, "0" * 64]),
    st.text(alphabet="abc./%-_0123456789", min_size=1, max_size=12),
)
_bodies = st.one_of(
    st.binary(max_size=40),
    st.dictionaries(
        st.sampled_from(["url", "digest", "headers", "disable_back_to_source", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
                  # Valid ones download from a closed loopback port: no DNS, no network.
                  st.builds(lambda rest: "http://127.0.0.1:9/" + rest, st.text(max_size=12)),
                  st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)),
        max_size=4,
    ),
)  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(UPLOAD_ROUTES + LOCAL_ROUTES),
    identity=_ids,
    body=_bodies,
    range_header=st.one_of(st.none(), st.text(max_size=20), st.just(f"bytes=0-{MiB}")),
)
async def test_generated_requests_never_get_a_500(
    upload: TestClient, local: TestClient, route: Any, identity: str, body: Any,
    range_header: str | None,
) -> None:  # fmt: skip
    client = local if route in LOCAL_ROUTES else upload
    path = route.path.replace("{task_id}", identity.replace("/", "%2F"))
    headers = dict(AUTH)
    if range_header is not None and range_header.isprintable():
        headers["Range"] = range_header
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.request(route.method, path, data=data, headers=headers)
    assert response.status < 500, await response.text()


def test_flags_win_over_environment_over_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text('quota = "1GiB"\nupload_rate = "1Gbit/s"\nparent_wait = "5s"\n')
    config = load_config(
        DaemonConfig,
        "daemon",
        path=str(path),
        environ={"DAMSELFLY_DAEMON_UPLOAD_RATE": "2Gbit/s", "DAMSELFLY_DAEMON_PARENT_WAIT": "7s"},
        flags={"parent_wait": "9s", "seed": None},
    )
    assert config.quota == 1024**3
    assert config.upload_rate == 2e9 / 8
    assert config.parent_wait == 9.0
    with pytest.raises(ConfigError, match="nope"):
        path.write_text("nope = 1\n")
        load_config(DaemonConfig, "daemon", path=str(path), environ={})
    with pytest.raises(ConfigError, match="quota"):
        load_config(DaemonConfig, "daemon", flags={"quota": "lots"}, environ={})


async def test_busy_upload_slots_answer_503(tmp_path: Path, aiohttp_client: Any) -> None:
    node = Daemon(DaemonConfig(data_dir=str(tmp_path / "d"), upload_slots=0))
    store = node.storage.open(task_id(URL), URL, "")
    node.storage.allocate(store, MiB, MiB)
    store.write_piece(0, b"a" * MiB)
    store.mark_verified(0, "sha256:" + "00" * 32)
    client = await aiohttp_client(node.upload_app())
    response = await client.get(
        f"/download/v1/tasks/{task_id(URL)}/data", headers={"Range": "bytes=0-9"}
    )
    assert response.status == 503


async def test_the_source_is_retried_with_backoff_and_gets_the_headers(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    from aiohttp import web

    body = bytes(range(256)) * (6 * 4096)  # 6 MiB: two pieces
    calls = {"count": 0}

    async def flaky(request: web.Request) -> web.StreamResponse:
        calls["count"] += 1
        if request.headers.get("X-Secret") != "s3":
            raise web.HTTPForbidden()
        if calls["count"] % 2:  # every other request fails
            raise web.HTTPServiceUnavailable()
        start, stop = request.http_range.start or 0, request.http_range.stop or len(body)
        return web.Response(
            status=206,
            body=body[start:stop],
            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(body)}"},
        )

    app = web.Application()
    app.router.add_get("/blob", flaky)
    server = await aiohttp_server(app)
    node = Daemon(
        DaemonConfig(data_dir=str(tmp_path / "d"), source_backoff=0.01, source_concurrency=1)
    )
    await node.start()
    try:
        url = f"http://127.0.0.1:{server.port}/blob"
        store = await node.download(url, headers={"X-Secret": "s3"})
        assert store.data_path.read_bytes() == body
        assert calls["count"] >= 6  # length + 2 pieces, each after one failure
        denied = node.download(f"http://127.0.0.1:{server.port}/blob?other", headers={})
        with pytest.raises(Exception, match="403"):
            await denied
    finally:
        await node.stop()


def test_a_full_disk_fails_the_piece_write_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from damselfly.runtime.storage import Storage, StorageFullError

    storage = Storage(tmp_path)
    store = storage.open(task_id(URL), URL, "")
    storage.allocate(store, 2 * MiB, MiB)
    store.write_piece(0, b"a" * MiB)
    store.mark_verified(0, "sha256:" + "00" * 32)
    store.checkpoint()

    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(StorageFullError, match="disk full"):
        store.write_piece(1, b"b" * MiB)
    monkeypatch.undo()
    assert list(Storage(tmp_path).load()[0].verified) == [0]  # nothing verified was lost


def test_json_logs_are_one_object_per_line() -> None:
    import logging

    from damselfly.runtime.process import JsonFormatter

    record = logging.LogRecord("damselfly", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    line = JsonFormatter().format(record)
    assert json.loads(line)["message"] == "hello x"
    assert "\n" not in line
