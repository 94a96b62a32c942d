"""The scheduler service in process: its API document, auth, decisions and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damselfly.runtime.service import ROUTES, SERVICE_KEY, make_app
from damselfly.scheduling import task_id

TOKEN = "secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "http://origin.example/file.bin"


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(make_app(token=TOKEN))


def _concrete(path: str) -> str:
    return (
        path.replace("{host_id}", "h1")
        .replace("{peer_id}", "p1")
        .replace("{task_id}", task_id(URL))
    )


async def announce(client: TestClient, host_id: str, kind: str = "normal") -> None:
    response = await client.post(
        "/api/v1/hosts",
        json={"host_id": host_id, "address": f"http://{host_id}:1", "kind": kind},
        headers=AUTH,
    )
    assert response.status == 200


async def test_openapi_document_lists_exactly_the_app_routes(client: TestClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    document = await response.json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert documented == served
    for route in ROUTES:  # every body schema is in the document
        operation = document["paths"][route.path][route.method.lower()]
        if route.body is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema == route.body


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.public], ids=lambda r: r.path)
@pytest.mark.parametrize("token", [None, "wrong"])
async def test_every_private_route_needs_the_token(
    client: TestClient, route: Any, token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.request(route.method, _concrete(route.path), headers=headers, json={})
    assert response.status == 401
    assert (await response.json())["error"]["status"] == 401


async def test_public_routes_answer_without_a_token(client: TestClient) -> None:
    for path in ("/healthz", "/metrics", "/api/v1/openapi.json"):
        assert (await client.get(path)).status == 200


async def test_register_then_stream_pushes_decisions(client: TestClient) -> None:
    await announce(client, "seed", "seed")
    await announce(client, "h1")
    await announce(client, "h2")
    response = await client.post(
        "/api/v1/peers",
        json={"peer_id": "p1", "host_id": "h1", "url": URL, "content_length": 10 << 20},
        headers=AUTH,
    )
    assert response.status == 201
    task = (await response.json())["task"]
    assert task["piece_count"] == 3
    # The seed host is told to fetch; the peer is told to retry while the seed starts.
    async with client.ws_connect("/api/v1/hosts/seed/stream", headers=AUTH) as ws:
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "trigger_seed" and message["url"] == URL
    response = await client.post(
        "/api/v1/peers", json={"peer_id": "s1", "host_id": "seed", "url": URL}, headers=AUTH
    )
    assert response.status == 201
    digests = [{"piece": 0, "length": 4 << 20, "digest": "sha256:" + "ab" * 32}]
    response = await client.post(
        "/api/v1/peers/s1/pieces", json={"finished": digests}, headers=AUTH
    )
    assert response.status == 200
    async with client.ws_connect("/api/v1/peers/p1/stream", headers=AUTH) as ws:
        kinds = []
        for _ in range(10):  # retries, then parents (the seed), within the core's retry budget
            message = await ws.receive_json(timeout=5)
            kinds.append(message["type"])
            if message["type"] == "parents":
                assert message["parents"][0]["peer_id"] == "s1"
                assert message["parents"][0]["address"] == "http://seed:1"
                assert message["parents"][0]["kind"] == "seed"
                break
        assert kinds[-1] == "parents"
    response = await client.get(f"/api/v1/tasks/{task['task_id']}", headers=AUTH)
    assert (await response.json())["piece_digests"][0] == "sha256:" + "ab" * 32
    values = await (await client.get("/metrics")).text()
    assert 'damselfly_scheduler_decisions_total{kind="TriggerSeed"} 1.0' in values
    assert (await client.get("/api/v1/peers/p1")).status == 401
    assert (await client.get("/nope", headers=AUTH)).status == 404
    values = await (await client.get("/metrics")).text()
    assert 'route="/api/v1/peers/{peer_id}",status="401"' in values
    assert 'route="unmatched",status="404"' in values


BAD_REQUESTS = [
    ("POST", "/api/v1/hosts", b"{not json", 400),
    ("POST", "/api/v1/hosts", b"[]", 400),
    ("POST", "/api/v1/hosts", json.dumps({"host_id": "../etc", "address": ""}).encode(), 400),
    (
        "POST",
        "/api/v1/peers",
        json.dumps({"peer_id": "p", "host_id": "nope", "url": URL}).encode(),
        404,
    ),
    ("POST", "/api/v1/peers", b'{"peer_id": "p", "host_id": "h", "url": "http://[x"}', 400),
    ("POST", "/api/v1/peers", b'{"peer_id": "p", "host_id": "h", "url": "http://\\udcff/"}', 400),
    (
        "POST",
        "/api/v1/peers",
        b'{"peer_id": "p", "host_id": "h", "url": "http://a/", "headers": {"X": "a\\nb"}}',
        400,
    ),
    ("POST", "/api/v1/peers/p9/pieces", b"{}", 404),
    ("POST", "/api/v1/peers/..%2F..%2Fetc/pieces", b"{}", 400),
    ("GET", "/api/v1/tasks/../../etc/passwd", b"", 404),
    ("GET", "/api/v1/tasks/abc", b"", 400),
    ("POST", "/api/v1/hosts", b"x" * (2 * 1024 * 1024), 413),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
async def test_bad_requests_get_4xx_json(
    client: TestClient, method: str, path: str, body: bytes, status: int
) -> None:
    response = await client.request(method, path, data=body, headers=AUTH)
    assert response.status == status
    assert (await response.json())["error"]["status"] == status


async def test_piece_out_of_range_and_illegal_moves_are_4xx(client: TestClient) -> None:
    await announce(client, "h1")
    await client.post(
        "/api/v1/peers",
        json={"peer_id": "p1", "host_id": "h1", "url": URL, "content_length": 5},
        headers=AUTH,
    )  # no seed and no parent: straight back to the source
    report = {"finished": [{"piece": 7, "length": 1}]}
    response = await client.post("/api/v1/peers/p1/pieces", json=report, headers=AUTH)
    assert response.status == 400
    response = await client.post("/api/v1/peers/p1/succeeded", json={}, headers=AUTH)
    assert response.status == 400
    await client.post("/api/v1/peers/p1/failed", json={}, headers=AUTH)
    response = await client.post("/api/v1/peers/p1/failed", json={}, headers=AUTH)
    assert response.status == 409


_urls = st.builds(lambda rest: "http://" + rest, st.text(max_size=15))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | _urls,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "host_id",
        "address",
        "kind",
        "peer_id",
        "url",
        "digest",
        "content_length",
        "finished",
        "failed",
        "piece",
        "length",
        "parent_id",
        "exclude",
        "reason",
        "upload_slots",
    ]
)
_bodies = st.one_of(
    _json,
    st.dictionaries(_field_names, _json, max_size=6),
    st.binary(max_size=64),
)
_ids = st.one_of(
    st.sampled_from(["h1", "p1", "s1", task_id(URL), "..", "%2e%2e", "a" * 300]),
    st.text(alphabet="abc./%-_:0123456789", min_size=1, max_size=12),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    identity=_ids,
    body=_bodies,
)
async def test_generated_requests_never_get_a_500(
    client: TestClient, route: Any, identity: str, body: Any
) -> None:
    service = client.app[SERVICE_KEY]
    if "h1" not in service.core.hosts:
        await announce(client, "h1")
        await client.post(
            "/api/v1/peers", json={"peer_id": "p1", "host_id": "h1", "url": URL}, headers=AUTH
        )
    path = route.path
    for name in ("{host_id}", "{peer_id}", "{task_id}"):
        path = path.replace(name, identity.replace("/", "%2F"))
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.request(route.method, path, data=data, headers=AUTH)
    assert response.status < 500, await response.text()
    if response.status >= 400:
        assert "error" in await response.json()


def test_app_is_an_aiohttp_application() -> None:
    assert isinstance(make_app(), web.Application)


async def test_the_timer_collects_idle_peers_and_their_mailboxes(aiohttp_client: Any) -> None:
    import asyncio

    from damselfly.runtime.service import SchedulerService
    from damselfly.scheduling import SchedulerConfig

    service = SchedulerService(SchedulerConfig(gc_interval=0.05, peer_idle_timeout=0.1))
    client = await aiohttp_client(make_app(service, token=TOKEN))
    await announce(client, "h1")
    response = await client.post(
        "/api/v1/peers", json={"peer_id": "p1", "host_id": "h1", "url": URL}, headers=AUTH
    )
    assert response.status == 201
    for _ in range(100):  # bounded: about 2 s
        if "p1" not in service.core.peers and "p1" not in service.peer_mailboxes:
            break
        await asyncio.sleep(0.02)
    assert "p1" not in service.core.peers
    assert "p1" not in service.peer_mailboxes
    text = await (await client.get("/metrics")).text()
    assert 'damselfly_scheduler_decisions_total{kind="PeerEvicted"} 1.0' in text
