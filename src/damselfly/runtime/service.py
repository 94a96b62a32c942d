"""The scheduler service: the scheduling core behind HTTP/JSON and WebSocket streams.

Every request handler turns a request into one call of the core
(:class:`damselfly.scheduling.Scheduler`) with ``now = time.monotonic()``, and routes the
decisions it returns to mailboxes: one per peer (parents, back-to-source, retry, fail,
eviction) and one per host (seed triggers, host eviction). A daemon reads its peers'
mailboxes over ``GET /api/v1/peers/{peer_id}/stream`` and its host's over
``GET /api/v1/hosts/{host_id}/stream`` (WebSockets); decisions made before a stream is open
wait in the mailbox. A timer task sleeps until the core's ``next_deadline()`` and calls
``tick`` (retries, garbage collection); every request wakes it, since a call may bring the
deadline closer.

The service decides nothing itself: the core does. This module only translates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from random import Random
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from damselfly.runtime.api import (
    ID_PATTERN,
    MAX_BODY_BYTES,
    TASK_ID_PATTERN,
    Route,
    add_routes,
    auth_middleware,
    check_headers,
    check_url,
    error_middleware,
    json_body,
    openapi_document,
    path_id,
)
from damselfly.scheduling import (
    AlreadyComplete,
    BackToSource,
    Decision,
    Fail,
    HostEvicted,
    HostKind,
    Parents,
    PeerEvicted,
    PieceReport,
    Retry,
    Scheduler,
    SchedulerConfig,
    TriggerSeed,
)

__all__ = ["SERVICE_KEY", "SchedulerService", "decision_message", "make_app"]

MAILBOX_LIMIT = 256
API_VERSION = "1"


@dataclass(slots=True)
class Mailbox:
    """Decisions for one peer or host, waiting for (or flowing to) its stream."""

    pending: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAILBOX_LIMIT))
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0

    def put(self, message: dict[str, Any]) -> None:
        self.pending.append(message)
        self.ready.set()


class SchedulerService:
    """The state behind the app: one core, its mailboxes, its metrics."""

    def __init__(
        self,
        config: SchedulerConfig | None = None,
        *,
        evaluator: str = "default",
        seed: int | None = None,
    ) -> None:
        self.core = Scheduler(config, evaluator=evaluator, rng=Random(seed))
        self.peer_mailboxes: dict[str, Mailbox] = {}
        self.host_mailboxes: dict[str, Mailbox] = {}
        self.wake = asyncio.Event()
        # Origin request headers (auth, ...) per task, as the first peer of a task sent them;
        # kept here, not in the core, since they matter only to whoever fetches the origin.
        self.origin_headers: dict[str, dict[str, str]] = {}
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "damselfly_scheduler_decisions",
            "Scheduling decisions by kind",
            ["kind"],
            registry=self.registry,
        )
        self.requests = Counter(
            "damselfly_scheduler_requests",
            "API requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.piece_reports = Counter(
            "damselfly_scheduler_piece_reports",
            "Piece reports by result",
            ["result"],
            registry=self.registry,
        )
        gauges = {
            "hosts": "Hosts known",
            "peers": "Peers known",
            "tasks": "Tasks known",
            "streams": "Open decision streams",
        }
        self.gauges = {
            name: Gauge(f"damselfly_scheduler_{name}", text, registry=self.registry)
            for name, text in gauges.items()
        }

    @staticmethod
    def now() -> float:
        return time.monotonic()

    # -- decisions to mailboxes ----------------------------------------------------------

    def deliver(self, decisions: list[Decision]) -> None:
        """Put each decision in the mailbox of the peer or host it names."""
        for decision in decisions:
            self.decisions.labels(kind=type(decision).__name__).inc()
            message = decision_message(self.core, decision)
            if isinstance(decision, TriggerSeed):
                # The seed fetches from the origin for others: it needs their origin headers.
                message["headers"] = self.origin_headers.get(decision.task_id, {})
            if isinstance(decision, TriggerSeed | HostEvicted):
                self.host_mailboxes.setdefault(decision.host_id, Mailbox()).put(message)
            else:
                self.peer_mailboxes.setdefault(decision.peer_id, Mailbox()).put(message)
        self.wake.set()

    def forget_peer_mailbox(self, peer_id: str) -> None:
        box = self.peer_mailboxes.get(peer_id)
        if box is not None and box.streams == 0:
            del self.peer_mailboxes[peer_id]

    async def run_timer(self) -> None:
        """Call ``tick`` whenever the core's next deadline comes (see the module docstring)."""
        while True:
            self.wake.clear()
            delay = self.core.next_deadline() - self.now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=min(delay, 60.0))
                continue
            self.deliver(self.core.tick(self.now()))
            # Mailboxes of peers the core forgot go once nobody reads them (a last eviction
            # notice for a peer whose daemon is gone would otherwise stay for ever).
            for peer_id in [p for p in self.peer_mailboxes if p not in self.core.peers]:
                self.forget_peer_mailbox(peer_id)

    def refresh_gauges(self) -> None:
        core = self.core
        self.gauges["hosts"].set(len(core.hosts))
        self.gauges["peers"].set(len(core.peers))
        self.gauges["tasks"].set(len(core.tasks))
        self.gauges["streams"].set(
            sum(box.streams for box in self.peer_mailboxes.values())
            + sum(box.streams for box in self.host_mailboxes.values())
        )


def _parent_entry(core: Scheduler, parent_id: str) -> dict[str, Any]:
    parent = core.peers.get(parent_id)
    if parent is None:
        return {"peer_id": parent_id, "host_id": "", "address": "", "kind": "normal"}
    host = parent.host
    return {
        "peer_id": parent_id,
        "host_id": host.id,
        "address": host.address,
        "kind": host.kind.value,
    }


def decision_message(core: Scheduler, decision: Decision) -> dict[str, Any]:
    """The JSON message a stream carries for ``decision``."""
    if isinstance(decision, Parents):
        return {
            "type": "parents",
            "peer_id": decision.peer_id,
            "task_id": decision.task_id,
            "parents": [_parent_entry(core, pid) for pid in decision.parent_ids],
        }
    if isinstance(decision, BackToSource):
        return {
            "type": "back_to_source",
            "peer_id": decision.peer_id,
            "task_id": decision.task_id,
            "reason": decision.reason,
        }
    if isinstance(decision, Retry):
        return {
            "type": "retry",
            "peer_id": decision.peer_id,
            "task_id": decision.task_id,
            "attempt": decision.attempt,
        }
    if isinstance(decision, Fail):
        return {
            "type": "fail",
            "peer_id": decision.peer_id,
            "task_id": decision.task_id,
            "reason": decision.reason,
        }
    if isinstance(decision, PeerEvicted):
        return {
            "type": "evicted",
            "peer_id": decision.peer_id,
            "task_id": decision.task_id,
            "reason": decision.reason,
        }
    if isinstance(decision, AlreadyComplete):
        return {
            "type": "already_complete",
            "peer_id": decision.peer_id,
            "task_id": decision.task_id,
        }
    if isinstance(decision, TriggerSeed):
        return {
            "type": "trigger_seed",
            "host_id": decision.host_id,
            "task_id": decision.task_id,
            "url": decision.url,
            "digest": decision.digest,
        }
    return {"type": "host_evicted", "host_id": decision.host_id, "reason": decision.reason}


# -- request schemas ------------------------------------------------------------------------

_ID = {"type": "string", "pattern": ID_PATTERN}
_DIGEST = {"type": "string", "maxLength": 200, "pattern": r"^(|[a-z0-9]+:[0-9a-fA-F]{1,128})$"}
_URL = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4096,
    "pattern": r"^[a-zA-Z][a-zA-Z0-9+.-]*://",
}
_NAME = {"type": "string", "maxLength": 200}
_COUNT = {"type": "integer", "minimum": 0, "maximum": 2**62}
_INDEX = {"type": "integer", "minimum": 0, "maximum": 2**31}

HOST_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["host_id", "address"],
    "properties": {
        "host_id": _ID,
        "address": {"type": "string", "maxLength": 300},
        "kind": {"type": "string", "enum": ["normal", "seed"]},
        "upload_rate": {"type": "number", "minimum": 0, "maximum": 1e15},
        "upload_slots": {"type": ["integer", "null"], "minimum": 0, "maximum": 100000},
        "idc": _NAME,
        "location": _NAME,
    },
}
PEER_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["peer_id", "host_id", "url"],
    "properties": {
        "peer_id": _ID,
        "host_id": _ID,
        "url": _URL,
        "digest": _DIGEST,
        "content_length": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**62},
        "need_back_to_source": {"type": "boolean"},
        "disable_back_to_source": {"type": "boolean"},
        "headers": {
            "type": "object",
            "maxProperties": 64,
            "additionalProperties": {"type": "string", "maxLength": 8192},
        },
    },
}
PIECES_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "finished": {
            "type": "array",
            "maxItems": 100000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["piece", "length"],
                "properties": {
                    "piece": _INDEX,
                    "length": _COUNT,
                    "parent_id": {"type": ["string", "null"], "pattern": ID_PATTERN},
                    "duration": {"type": "number", "minimum": 0, "maximum": 1e9},
                    "digest": {"type": ["string", "null"], "maxLength": 200},
                },
            },
        },
        "failed": {
            "type": "array",
            "maxItems": 100000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["piece"],
                "properties": {
                    "piece": _INDEX,
                    "parent_id": {"type": ["string", "null"], "pattern": ID_PATTERN},
                    "reason": {"type": "string", "maxLength": 1000},
                },
            },
        },
    },
}
RESCHEDULE_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"exclude": {"type": "array", "maxItems": 1000, "items": _ID}},
}
FAILED_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"reason": {"type": "string", "maxLength": 1000}},
}
EMPTY_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
METADATA_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["content_length"],
    "properties": {"content_length": _COUNT},
}

SERVICE_KEY = web.AppKey("service", SchedulerService)


def _service(request: web.Request) -> SchedulerService:
    return request.app[SERVICE_KEY]


def _task_view(core: Scheduler, task_id: str) -> dict[str, Any]:
    task = core.task(task_id)
    return {
        "task_id": task.id,
        "url": task.url,
        "digest": task.digest,
        "content_length": task.content_length,
        "piece_length": task.piece_length,
        "piece_count": task.piece_count,
        "piece_digests": list(task.piece_digests),
        "peers": len(task.peers),
    }


# -- handlers -------------------------------------------------------------------------------


async def announce_host(request: web.Request) -> web.Response:
    service = _service(request)
    body = await json_body(request, HOST_BODY)
    host = service.core.announce_host(
        service.now(),
        body["host_id"],
        upload_rate=float(body.get("upload_rate", 125e6)),
        kind=HostKind(body.get("kind", "normal")),
        address=body["address"],
        idc=body.get("idc", ""),
        location=body.get("location", ""),
        upload_slots=body.get("upload_slots"),
    )
    service.host_mailboxes.setdefault(host.id, Mailbox())
    return web.json_response({"host_id": host.id, "kind": host.kind.value})


async def host_leave(request: web.Request) -> web.Response:
    service = _service(request)
    host_id = path_id(request, "host_id")
    service.deliver(service.core.host_left(service.now(), host_id))
    service.host_mailboxes.pop(host_id, None)
    return web.json_response({"host_id": host_id, "left": True})


async def register_peer(request: web.Request) -> web.Response:
    service = _service(request)
    body = await json_body(request, PEER_BODY)
    core = service.core
    peer_id = body["peer_id"]
    check_url(body["url"])
    headers = check_headers(body.get("headers", {}))
    decisions = core.register_peer(
        service.now(),
        peer_id,
        host_id=body["host_id"],
        url=body["url"],
        digest=body.get("digest", ""),
        content_length=body.get("content_length"),
        need_back_to_source=body.get("need_back_to_source", False),
        disable_back_to_source=body.get("disable_back_to_source", False),
    )
    task = core.peer(peer_id).task
    if headers and task.id not in service.origin_headers:
        service.origin_headers[task.id] = headers
    service.peer_mailboxes.setdefault(peer_id, Mailbox())
    service.deliver(decisions)
    return web.json_response({"peer_id": peer_id, "task": _task_view(core, task.id)}, status=201)


async def report_pieces(request: web.Request) -> web.Response:
    service = _service(request)
    peer_id = path_id(request, "peer_id")
    body = await json_body(request, PIECES_BODY)
    core = service.core
    now = service.now()
    reports = [
        PieceReport(
            piece=item["piece"],
            length=item["length"],
            parent_id=item.get("parent_id"),
            duration=float(item.get("duration", 0.0)),
            digest=item.get("digest"),
        )
        for item in body.get("finished", ())
    ]
    decisions: list[Decision] = []
    if reports:
        decisions.extend(core.pieces_finished(now, peer_id, reports))
        service.piece_reports.labels(result="finished").inc(len(reports))
    for item in body.get("failed", ()):
        decisions.extend(
            core.piece_failed(
                now,
                peer_id,
                item["piece"],
                parent_id=item.get("parent_id"),
                reason=item.get("reason", ""),
            )
        )
        service.piece_reports.labels(result="failed").inc()
    service.deliver(decisions)
    peer = core.peer(peer_id)
    return web.json_response({"peer_id": peer_id, "finished_pieces": peer.finished.count})


async def reschedule(request: web.Request) -> web.Response:
    service = _service(request)
    peer_id = path_id(request, "peer_id")
    body = await json_body(request, RESCHEDULE_BODY)
    service.deliver(
        service.core.reschedule(service.now(), peer_id, exclude=body.get("exclude", ()))
    )
    return web.json_response({"peer_id": peer_id})


async def peer_succeeded(request: web.Request) -> web.Response:
    service = _service(request)
    peer_id = path_id(request, "peer_id")
    await json_body(request, EMPTY_BODY)
    service.deliver(service.core.peer_succeeded(service.now(), peer_id))
    return web.json_response({"peer_id": peer_id, "state": "succeeded"})


async def peer_failed(request: web.Request) -> web.Response:
    service = _service(request)
    peer_id = path_id(request, "peer_id")
    body = await json_body(request, FAILED_BODY)
    service.deliver(service.core.peer_failed(service.now(), peer_id, body.get("reason", "")))
    return web.json_response({"peer_id": peer_id, "state": "failed"})


async def peer_leave(request: web.Request) -> web.Response:
    service = _service(request)
    peer_id = path_id(request, "peer_id")
    service.deliver(service.core.peer_left(service.now(), peer_id))
    service.forget_peer_mailbox(peer_id)
    return web.json_response({"peer_id": peer_id, "state": "left"})


async def get_peer(request: web.Request) -> web.Response:
    service = _service(request)
    peer = service.core.peer(path_id(request, "peer_id"))
    return web.json_response(
        {
            "peer_id": peer.id,
            "task_id": peer.task.id,
            "host_id": peer.host.id,
            "state": peer.state.value,
            "finished_pieces": peer.finished.count,
            "parents": list(peer.parents),
            "blocked": sorted(peer.blocked),
        }
    )


async def get_task(request: web.Request) -> web.Response:
    service = _service(request)
    task_id = path_id(request, "task_id", TASK_ID_PATTERN)
    return web.json_response(_task_view(service.core, task_id))


async def set_task_metadata(request: web.Request) -> web.Response:
    service = _service(request)
    task_id = path_id(request, "task_id", TASK_ID_PATTERN)
    body = await json_body(request, METADATA_BODY)
    service.deliver(
        service.core.set_task_metadata(
            service.now(), task_id, content_length=body["content_length"]
        )
    )
    return web.json_response(_task_view(service.core, task_id))


async def _stream(request: web.Request, box: Mailbox) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    box.streams += 1
    reader = asyncio.ensure_future(ws.receive())
    try:
        while not ws.closed:
            while box.pending:
                await ws.send_json(box.pending.popleft())
            box.ready.clear()
            waiter = asyncio.ensure_future(box.ready.wait())
            done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                waiter.cancel()
                message = reader.result()
                if message.type in (
                    WSMsgType.CLOSE,
                    WSMsgType.CLOSING,
                    WSMsgType.CLOSED,
                    WSMsgType.ERROR,
                ):
                    break
                reader = asyncio.ensure_future(ws.receive())  # clients send nothing we need
    finally:
        reader.cancel()
        box.streams -= 1
        await ws.close()
    return ws


async def peer_stream(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    peer_id = path_id(request, "peer_id")
    service.core.peer(peer_id)  # 404 for an unknown peer, before the upgrade
    return await _stream(request, service.peer_mailboxes.setdefault(peer_id, Mailbox()))


async def host_stream(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    host_id = path_id(request, "host_id")
    service.core.host(host_id)
    return await _stream(request, service.host_mailboxes.setdefault(host_id, Mailbox()))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document("Damselfly scheduler", API_VERSION, ROUTES))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    service = _service(request)
    service.refresh_gauges()
    return web.Response(
        body=generate_latest(service.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


_PEER = "/api/v1/peers/{peer_id}"
ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/hosts",
        handler=announce_host,
        summary="Announce a host, or refresh it (heartbeat)",
        body=HOST_BODY,
    ),
    Route(
        method="DELETE",
        path="/api/v1/hosts/{host_id}",
        handler=host_leave,
        summary="A host leaves; its peers go with it",
    ),
    Route(
        method="GET",
        path="/api/v1/hosts/{host_id}/stream",
        handler=host_stream,
        summary="WebSocket: seed triggers and evictions for a host",
        websocket=True,
    ),
    Route(
        method="POST",
        path="/api/v1/peers",
        handler=register_peer,
        summary="Register a peer (a host's download of a task)",
        body=PEER_BODY,
        responses={"201": "registered"},
    ),
    Route(method="GET", path=_PEER, handler=get_peer, summary="A peer's state"),
    Route(method="DELETE", path=_PEER, handler=peer_leave, summary="A peer leaves"),
    Route(
        method="POST",
        path=_PEER + "/pieces",
        handler=report_pieces,
        summary="Report finished and failed pieces (batched)",
        body=PIECES_BODY,
    ),
    Route(
        method="POST",
        path=_PEER + "/reschedule",
        handler=reschedule,
        summary="Ask for new parents",
        body=RESCHEDULE_BODY,
    ),
    Route(
        method="POST",
        path=_PEER + "/succeeded",
        handler=peer_succeeded,
        summary="The peer holds every piece",
        body=EMPTY_BODY,
    ),
    Route(
        method="POST",
        path=_PEER + "/failed",
        handler=peer_failed,
        summary="The peer gave up",
        body=FAILED_BODY,
    ),
    Route(
        method="GET",
        path=_PEER + "/stream",
        handler=peer_stream,
        summary="WebSocket: decisions for a peer",
        websocket=True,
    ),
    Route(
        method="GET",
        path="/api/v1/tasks/{task_id}",
        handler=get_task,
        summary="A task's metadata and per-piece digests",
    ),
    Route(
        method="PUT",
        path="/api/v1/tasks/{task_id}/metadata",
        handler=set_task_metadata,
        summary="Record a task's length, as learnt from the origin",
        body=METADATA_BODY,
    ),
    Route(
        method="GET",
        path="/api/v1/openapi.json",
        handler=openapi,
        summary="This document",
        public=True,
    ),
    Route(method="GET", path="/healthz", handler=healthz, summary="Liveness", public=True),
    Route(
        method="GET", path="/metrics", handler=metrics, summary="Prometheus metrics", public=True
    ),
]


def make_app(
    service: SchedulerService | None = None, *, token: str | None = None
) -> web.Application:
    """The scheduler service's aiohttp app (``token=None``: no authentication)."""
    app = web.Application(
        middlewares=[_count_middleware, error_middleware, auth_middleware(token)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SERVICE_KEY] = service or SchedulerService()
    add_routes(app, ROUTES)
    app.cleanup_ctx.append(_timer)
    return app


@web.middleware
async def _count_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    resource = request.match_info.route.resource
    name = resource.canonical if resource is not None else "unmatched"
    request.app[SERVICE_KEY].requests.labels(route=name, status=str(response.status)).inc()
    return response


async def _timer(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE_KEY]
    task = asyncio.create_task(service.run_timer())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
