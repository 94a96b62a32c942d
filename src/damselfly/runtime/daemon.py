"""The peer daemon: one per node. Upload server, download engine, storage, local API.

:class:`Daemon` owns:

- the storage (:mod:`damselfly.runtime.storage`), loaded at start: finished tasks are
  re-announced to the scheduler (so others may download from them) and unfinished ones
  resume, fetching only the pieces not yet verified;
- an upload server on TCP (``/download/v1/tasks/{task_id}/data`` with a Range header, served
  zero-copy by ``loop.sendfile``, in token-bucket chunks under the upload rate limit;
  ``/download/v1/tasks/{task_id}/bitfield``), which serves only verified pieces and at most
  ``upload_slots`` transfers at once;
- what it offers its children: a seed daemon super-seeds (a
  :class:`~damselfly.scheduling.PieceOffer` per task, as the simulator's seed peers do): its
  bitfield endpoint answers with the offer, which withdraws each piece once an upload of it
  begins (until every piece went out once) and puts it back when that upload does not
  complete. The offer steers children; a verified piece requested anyway is still served.
  ``super_seeding = false`` turns it off; a normal daemon offers every verified piece;
- the download engine (:class:`~damselfly.runtime.download.PeerTask`), one per task;
- the host's decision stream (seed triggers) and heartbeat;
- a local API on a Unix socket for ``damselfly get``: ``POST /api/v1/downloads`` streams
  newline-delimited JSON progress and ends with ``{"event": "done", "path": ...}`` or
  ``{"event": "error", "message": ...}``;
- ``/metrics`` (``damselfly_daemon_*``) and ``/healthz`` on the upload server.

The daemon works without a scheduler (``scheduler=None``, or one that stopped answering):
it then fetches from the origin itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from damselfly.runtime.api import (
    MAX_BODY_BYTES,
    TASK_ID_PATTERN,
    BadRequest,
    Route,
    add_routes,
    auth_middleware,
    check_headers,
    check_origin_url,
    error_middleware,
    json_body,
    path_id,
    url_problem,
)
from damselfly.runtime.client import SchedulerClient, SchedulerRejected, SchedulerUnavailable
from damselfly.runtime.config import DaemonConfig, client_tls, server_tls, split_listen
from damselfly.runtime.download import DownloadError, PeerTask
from damselfly.runtime.ratelimit import TokenBucket
from damselfly.runtime.storage import Storage, StorageError, TaskStore
from damselfly.scheduling import PieceOffer
from damselfly.scheduling import task_id as make_task_id

__all__ = ["DAEMON_KEY", "Daemon", "DaemonMetrics"]

log = logging.getLogger("damselfly.runtime.daemon")


class DaemonMetrics:
    """The daemon's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.downloaded = Counter(
            "damselfly_daemon_downloaded_bytes",
            "Verified bytes downloaded, by source (origin, seed, peer)",
            ["source"],
            registry=registry,
        )
        for source in ("origin", "seed", "peer"):
            self.downloaded.labels(source=source)
        self.uploaded = Counter(
            "damselfly_daemon_uploaded_bytes", "Bytes served to other peers", registry=registry
        )
        self.pieces = Counter(
            "damselfly_daemon_pieces",
            "Piece transfers by result (verified, corrupt, failed)",
            ["result"],
            registry=registry,
        )
        self.piece_seconds = Histogram(
            "damselfly_daemon_piece_seconds",
            "Seconds to fetch and verify one piece",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.tasks = Counter(
            "damselfly_daemon_tasks", "Finished downloads by result", ["result"], registry=registry
        )
        self.active_tasks = Gauge(
            "damselfly_daemon_active_tasks", "Downloads in progress", registry=registry
        )
        self.uploaded_bytes = 0
        self.downloaded_bytes = 0
        self.upload_rate = Gauge(
            "damselfly_daemon_upload_rate_bytes_per_second",
            "Bytes/s served to other peers over the last second",
            registry=registry,
        )
        self.download_rate = Gauge(
            "damselfly_daemon_download_rate_bytes_per_second",
            "Verified bytes/s downloaded (all sources) over the last second",
            registry=registry,
        )
        self.active_uploads = Gauge(
            "damselfly_daemon_active_uploads", "Piece uploads in progress", registry=registry
        )
        self.reschedules = Counter(
            "damselfly_daemon_reschedules",
            "Requests to the scheduler for other parents, by reason (stalled: parents have "
            "nothing to give; slow: download below half the download capacity; "
            "unreachable: a parent stopped answering)",
            ["reason"],
            registry=registry,
        )
        for reason in ("stalled", "slow", "unreachable"):
            self.reschedules.labels(reason=reason)

    def count_upload(self, size: int) -> None:
        self.uploaded.inc(size)
        self.uploaded_bytes += size

    def count_download(self, source: str, size: int) -> None:
        self.downloaded.labels(source=source).inc(size)
        self.downloaded_bytes += size


DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("daemon")


class Daemon:
    """A peer daemon (see the module docstring). ``start`` then ``stop``."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.host_id = config.host_id or f"{socket.gethostname()}-{random.getrandbits(32):08x}"
        self.storage = Storage(Path(config.data_dir), quota=config.quota)
        self.metrics = DaemonMetrics()
        # The peer id under which the scheduler knows each task held here (to leave it when
        # the task is evicted).
        self.announced: dict[str, str] = {}
        self.storage.on_remove = self._task_removed
        self._loop: asyncio.AbstractEventLoop | None = None
        self.downloads: dict[str, asyncio.Task[TaskStore]] = {}
        self.peer_tasks: dict[str, PeerTask] = {}
        # What this seed offers its children, per task (super-seeding; empty otherwise).
        self.offers: dict[str, PieceOffer] = {}
        self.super_seeding = config.seed and config.super_seeding
        self.download_limit = TokenBucket(config.download_rate) if config.download_rate else None
        self.upload_limit = (
            TokenBucket(config.upload_rate_limit) if config.upload_rate_limit else None
        )
        self.source_limit = (
            TokenBucket(config.back_to_source_rate) if config.back_to_source_rate else None
        )
        self.upload_slots = asyncio.Semaphore(
            config.upload_slots if config.upload_slots is not None else (200 if config.seed else 50)
        )
        self.session: aiohttp.ClientSession = None  # type: ignore[assignment]
        self.client: SchedulerClient | None = None
        self.address = ""
        self.socket_path: str | None = None
        self._runners: list[web.AppRunner] = []
        self._background: list[asyncio.Task[Any]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load storage, start the servers, announce the host, resume tasks.

        Raises OSError (say the address is taken) or ConfigError; a failed or cancelled
        start closes whatever it had opened."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        config = self.config
        server_context = server_tls(config.tls_cert, config.tls_key)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=256, limit_per_host=32, ssl=client_tls(config.tls_ca)
            ),
            auto_decompress=False,
        )
        if config.scheduler:
            problem = url_problem(config.scheduler)
            if problem is None:
                self.client = SchedulerClient(self.session, config.scheduler, config.token)
            else:
                log.warning(
                    "scheduler URL %r is not usable (%s): working without a scheduler, "
                    "every download goes to its origin",
                    config.scheduler,
                    problem,
                )
        stores = await asyncio.to_thread(self.storage.load)

        upload_runner = web.AppRunner(self.upload_app(), access_log=None)
        self._runners.append(upload_runner)
        await upload_runner.setup()
        host, port = split_listen(config.listen)
        site = web.TCPSite(upload_runner, host, port, ssl_context=server_context)
        await site.start()
        bound = upload_runner.addresses[0]
        scheme = "https" if server_context is not None else "http"
        self.address = config.advertise or f"{scheme}://{host}:{bound[1]}"

        if config.socket:
            Path(config.socket).parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(config.socket)  # left by a daemon that did not stop cleanly
            local_runner = web.AppRunner(self.local_app(), access_log=None)
            self._runners.append(local_runner)
            await local_runner.setup()
            await web.UnixSite(local_runner, config.socket).start()
            self.socket_path = config.socket

        self._background.append(asyncio.create_task(self._measure_rates()))
        if self.client is not None:
            try:
                await self.announce()
            except (SchedulerUnavailable, SchedulerRejected) as error:
                log.warning(
                    "scheduler %s: %s; downloads go to their origin until it answers",
                    config.scheduler,
                    error,
                )
            self._background.append(asyncio.create_task(self._heartbeat()))
            self._background.append(asyncio.create_task(self._host_stream()))
        # Finished tasks are offered again before the daemon calls itself ready.
        finished = [store for store in stores if store.complete]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(self._reannounce(store) for store in finished)), timeout=30
            )
        for store in stores:
            if not store.complete and store.url:
                # The origin headers given to the first `get` were saved with the task.
                self.download(store.url, store.digest, headers=store.headers)

    async def stop(self) -> None:
        """Leave the scheduler, stop downloads and servers; storage stays for a restart."""
        for job in list(self.downloads.values()):
            job.cancel()
        for job in list(self.downloads.values()):
            with contextlib.suppress(BaseException):
                await job
        if self.client is not None:
            with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
                await self.client.call("DELETE", f"/api/v1/hosts/{self.host_id}")
        await self._close()

    async def _close(self) -> None:
        """Stop background work and servers, close the session and storage, and remove the
        Unix socket file (safe on a half-started daemon)."""
        for job in self._background:
            job.cancel()
        for job in self._background:
            with contextlib.suppress(BaseException):
                await job
        self._background.clear()
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.socket_path)
            self.socket_path = None
        if self.session is not None:
            await self.session.close()
        self.storage.close()

    async def _measure_rates(self) -> None:
        """Turn the byte counters into per-second gauges, once a second."""
        metrics = self.metrics
        previous_up = previous_down = 0.0
        while True:
            uploaded, downloaded = metrics.uploaded_bytes, metrics.downloaded_bytes
            metrics.upload_rate.set(uploaded - previous_up)
            metrics.download_rate.set(downloaded - previous_down)
            previous_up, previous_down = uploaded, downloaded
            await asyncio.sleep(1.0)

    async def announce(self) -> None:
        assert self.client is not None
        config = self.config
        await self.client.call(
            "POST",
            "/api/v1/hosts",
            {
                "host_id": self.host_id,
                "address": self.address,
                "kind": "seed" if config.seed else "normal",
                "upload_rate": config.upload_rate,
                "upload_slots": config.upload_slots,
                "idc": config.idc,
                "location": config.location,
            },
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
                await self.announce()

    async def _host_stream(self) -> None:
        """Follow the host's decisions (seed triggers); reconnect when the stream drops."""
        assert self.client is not None
        while True:
            try:
                async for message in self.client.stream(f"/api/v1/hosts/{self.host_id}/stream"):
                    if message.get("type") == "trigger_seed":
                        headers = message.get("headers")
                        self._on_trigger(
                            str(message.get("url", "")),
                            str(message.get("digest", "")),
                            headers if isinstance(headers, dict) else {},
                        )
                    elif message.get("type") == "host_evicted":
                        await self.announce()
            except SchedulerRejected:
                # The scheduler does not know this host: it restarted or evicted us. Announce
                # the host again, and every finished task, so they can be parents again.
                with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
                    await self.announce()
                    for store in list(self.storage.stores.values()):
                        if store.complete:
                            await self._reannounce(store)
            except SchedulerUnavailable:
                pass
            await asyncio.sleep(1.0)

    def _on_trigger(self, url: str, digest: str, headers: dict[str, str]) -> None:
        """The scheduler wants this seed to fetch ``url``. If it is already here, the
        scheduler has forgotten that (a restart, garbage collection): announce it again."""
        if not url:
            return
        store = self.storage.get(make_task_id(url, digest=digest))
        if store is not None and store.complete:
            self._background.append(asyncio.create_task(self._reannounce(store)))
        else:
            self.download(url, digest, headers={str(k): str(v) for k, v in headers.items()})

    async def _reannounce(self, store: TaskStore) -> None:
        """Tell the scheduler this host holds a finished task (after a restart)."""
        client = self.client
        if client is None:
            return
        peer_id = f"{self.host_id}-{store.task_id[:12]}-{random.getrandbits(32):08x}"
        finished = [
            {
                "piece": index,
                "length": store.range(index)[1],
                "digest": store.piece_digests[index],
            }
            for index in store.verified
        ]
        with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
            await client.call(
                "POST",
                "/api/v1/peers",
                {
                    "peer_id": peer_id,
                    "host_id": self.host_id,
                    "url": store.url,
                    "digest": store.digest,
                    "content_length": store.content_length,
                    "need_back_to_source": True,
                },
            )
            self.announced[store.task_id] = peer_id
            await client.call("POST", f"/api/v1/peers/{peer_id}/pieces", {"finished": finished})
            await client.call("POST", f"/api/v1/peers/{peer_id}/succeeded", {})

    # -- downloads ------------------------------------------------------------------------

    def _task_removed(self, task_id: str) -> None:
        """Storage removed ``task_id`` (a quota eviction, a bad digest), maybe from a worker
        thread: leave its peer at the scheduler, so nobody is sent here for it again."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._leave_task, task_id)

    def _leave_task(self, task_id: str) -> None:
        self.offers.pop(task_id, None)
        peer_id = self.announced.pop(task_id, None)
        if peer_id is not None and self.client is not None:
            self._background.append(asyncio.create_task(self._leave_peer(peer_id)))

    async def _leave_peer(self, peer_id: str) -> None:
        assert self.client is not None
        log.info("peer %s leaves the scheduler: its task was removed here", peer_id)
        with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
            await self.client.call("DELETE", f"/api/v1/peers/{peer_id}")

    def download(
        self,
        url: str,
        digest: str = "",
        *,
        headers: dict[str, str] | None = None,
        disable_back_to_source: bool = False,
    ) -> asyncio.Task[TaskStore]:
        """Start downloading ``url`` (or join the download already running)."""
        identity = make_task_id(url, digest=digest)
        running = self.downloads.get(identity)
        if running is not None and not running.done():
            return running
        store = self.storage.open(identity, url, digest)
        if headers and not store.has_metadata:
            store.headers = dict(headers)  # saved with the metadata, for a resume
        peer_task = PeerTask(
            self,
            store,
            url=url,
            digest=digest,
            headers=headers,
            disable_back_to_source=disable_back_to_source,
        )
        self.peer_tasks[identity] = peer_task
        job = asyncio.create_task(peer_task.run())
        job.add_done_callback(_quiet)
        self.downloads[identity] = job
        return job

    # -- what this daemon offers ----------------------------------------------------------

    def offer(self, store: TaskStore) -> PieceOffer | None:
        """The super-seeding offer of ``store`` (None: this daemon offers every verified
        piece, or the task has no metadata yet)."""
        if not self.super_seeding or not store.has_metadata:
            return None
        offer = self.offers.get(store.task_id)
        if offer is None or offer.held is not store.verified:
            # New, or the task was allocated again (storage replaced its bitfield): offer
            # what is verified now; nothing has gone out of the new bitfield yet.
            offer = PieceOffer(store.verified, super_seeding=True)
            self.offers[store.task_id] = offer
        return offer

    def piece_verified(self, store: TaskStore, index: int) -> None:
        """Piece ``index`` of ``store`` was just marked verified: offer it."""
        offer = self.offer(store)
        if offer is not None:
            offer.held_piece(index)

    # -- the upload server ----------------------------------------------------------------

    def upload_app(self) -> web.Application:
        app = web.Application(
            middlewares=[error_middleware, auth_middleware(self.config.token)],
            client_max_size=MAX_BODY_BYTES,
        )
        app[DAEMON_KEY] = self
        add_routes(app, UPLOAD_ROUTES)
        return app

    def local_app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
        app[DAEMON_KEY] = self
        add_routes(app, LOCAL_ROUTES)
        return app


def _quiet(job: asyncio.Task[Any]) -> None:
    if not job.cancelled():
        job.exception()  # retrieved: a failed download is reported to whoever awaits it


def _store_for(request: web.Request) -> tuple[Daemon, TaskStore]:
    daemon = request.app[DAEMON_KEY]
    task_id = path_id(request, "task_id", TASK_ID_PATTERN)
    store = daemon.storage.get(task_id)
    if store is None:
        # Gone (evicted, removed) or never here: a child should look elsewhere at once.
        raise web.HTTPGone(text=f"task {task_id[:12]} is not held here")
    if not store.has_metadata:
        raise web.HTTPNotFound(text=f"task {task_id[:12]} has no content here yet")
    return daemon, store


async def task_bitfield(request: web.Request) -> web.Response:
    """The pieces offered here: every verified piece, or a super-seeding seed's offer."""
    daemon, store = _store_for(request)
    offer = daemon.offer(store)
    offered = store.verified if offer is None else offer.offered
    return web.json_response(
        {
            "task_id": store.task_id,
            "content_length": store.content_length,
            "piece_length": store.piece_length,
            "piece_count": store.piece_count,
            "bitfield": offered.to_bytes().hex(),
        }
    )


async def task_data(request: web.Request) -> web.StreamResponse:
    daemon, store = _store_for(request)
    try:
        requested = request.http_range
    except ValueError:
        raise BadRequest("a malformed Range header") from None
    start, stop = requested.start, requested.stop
    if start is None or stop is None or start < 0 or requested.step not in (None, 1):
        raise BadRequest("a Range header bytes=START-END is required")
    assert store.content_length is not None
    if stop > store.content_length or start >= stop:
        raise web.HTTPRequestRangeNotSatisfiable(text="the range is outside the content")
    if not store.has_range(start, stop):
        raise web.HTTPNotFound(text="those pieces are not verified here")
    if daemon.upload_slots.locked():
        raise web.HTTPServiceUnavailable(text="every upload slot is busy")
    store.last_access = time.time()  # an upload is a use: LRU eviction takes it last
    # Served even when the offer withdrew these pieces: the offer steers children, and a
    # child that planned on an older bitfield still gets what it asked for.
    offer = daemon.offer(store)
    pieces = range(start // store.piece_length, (stop - 1) // store.piece_length + 1)
    if offer is not None:
        for piece in pieces:
            offer.started(piece)
    sent = 0
    try:
        # Opened before anything is sent: a quota eviction may delete the file from a worker
        # thread at any moment, and an open file stays readable until it is closed.
        file = open(store.data_path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        raise web.HTTPGone(text=f"task {store.task_id[:12]} was just removed here") from None
    async with daemon.upload_slots:
        daemon.metrics.active_uploads.inc()
        try:
            if daemon.config.test_corrupt_uploads:
                response: web.StreamResponse = await _corrupt_range(file, store, start, stop)
                sent = stop - start
            else:
                response, sent = await _send_range(
                    request, daemon.upload_limit, file, store, start, stop
                )
        finally:
            file.close()
            daemon.metrics.active_uploads.dec()
            if offer is not None and sent < stop - start:
                for piece in pieces:  # the upload did not complete: offer the pieces again
                    offer.failed(piece)
    daemon.metrics.count_upload(sent)
    return response


async def _send_range(
    request: web.Request,
    limit: TokenBucket | None,
    file: BinaryIO,
    store: TaskStore,
    start: int,
    stop: int,
) -> tuple[web.StreamResponse, int]:
    """Send bytes ``start .. stop-1`` of the content zero-copy (``loop.sendfile``: the kernel
    moves them from the page cache to the socket); returns the response and the bytes sent.
    Under an upload limit the range goes in chunks of the bucket's chunk size, each after its
    tokens, so limiting costs no copy."""
    response = web.StreamResponse(
        status=206,
        headers={
            "Content-Range": f"bytes {start}-{stop - 1}/{store.content_length}",
            "Content-Type": "application/octet-stream",
        },
    )
    response.content_length = stop - start
    await response.prepare(request)  # sends the headers at once
    transport = request.transport
    loop = asyncio.get_running_loop()
    chunk = limit.chunk_size if limit is not None else stop - start
    position = start
    try:
        while position < stop:
            size = min(chunk, stop - position)
            if limit is not None:
                await limit.take(size)
            if transport is None or transport.is_closing():
                return response, position - start  # the child went away
            await loop.sendfile(transport, file, position, size)
            position += size
        await response.write_eof()
    except ConnectionError:  # the child gave up on this piece (endgame)
        pass
    return response, position - start


async def _corrupt_range(file: BinaryIO, store: TaskStore, start: int, stop: int) -> web.Response:
    """A test hook: serve the range with its first byte flipped (a lying parent)."""

    def read() -> bytes:
        return os.pread(file.fileno(), stop - start, start)

    data = bytearray(await asyncio.to_thread(read))
    data[0] ^= 0xFF
    response = web.Response(
        status=206,
        body=bytes(data),
        headers={"Content-Range": f"bytes {start}-{stop - 1}/{store.content_length}"},
    )
    return response


async def daemon_metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    return web.Response(
        body=generate_latest(daemon.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


UPLOAD_ROUTES = [
    Route(
        method="GET",
        path="/download/v1/tasks/{task_id}/bitfield",
        handler=task_bitfield,
        summary="The verified pieces of a task held here",
    ),
    Route(
        method="GET",
        path="/download/v1/tasks/{task_id}/data",
        handler=task_data,
        summary="Bytes of verified pieces (Range: bytes=START-END)",
        responses={"206": "the range"},
    ),
    Route(
        method="GET",
        path="/metrics",
        handler=daemon_metrics,
        summary="Prometheus metrics",
        public=True,
    ),
    Route(method="GET", path="/healthz", handler=healthz, summary="Liveness", public=True),
]


# -- the local API ------------------------------------------------------------------------------

DOWNLOAD_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "maxLength": 4096,
            "pattern": r"^[a-zA-Z][a-zA-Z0-9+.-]*://",
        },
        "digest": {"type": "string", "maxLength": 200, "pattern": r"^(|sha256:[0-9a-fA-F]{64})$"},
        "headers": {"type": "object"},
        "disable_back_to_source": {"type": "boolean"},
    },
}


async def start_download(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON_KEY]
    body = await json_body(request, DOWNLOAD_BODY)
    check_origin_url(body["url"])
    headers = check_headers(body.get("headers", {}))
    try:
        job = daemon.download(
            body["url"],
            body.get("digest", ""),
            headers=headers,
            disable_back_to_source=body.get("disable_back_to_source", False),
        )
    except StorageError as error:
        raise BadRequest(str(error)) from None
    identity = make_task_id(body["url"], digest=body.get("digest", ""))
    peer_task = daemon.peer_tasks[identity]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)

    async def send(event: dict[str, Any]) -> None:
        await response.write((json.dumps(event) + "\n").encode())

    try:
        while not job.done():
            progress = peer_task.progress
            await send(
                {
                    "event": "progress",
                    "content_length": progress.content_length,
                    "completed_bytes": progress.completed_bytes,
                    "bytes_from": progress.bytes_from,
                    "mode": progress.mode,
                }
            )
            await asyncio.wait([job], timeout=0.25)
        if job.cancelled():
            await send({"event": "error", "message": "the download was cancelled"})
        elif job.exception() is not None:
            failure = job.exception()
            message = str(failure) if isinstance(failure, DownloadError) else f"{failure!r}"
            await send({"event": "error", "message": message})
        else:
            store = job.result()
            await send(
                {
                    "event": "done",
                    "peer_id": peer_task.peer_id,
                    "path": str(store.data_path),
                    "content_length": store.content_length,
                    "bytes_from": peer_task.progress.bytes_from,
                }
            )
        await response.write_eof()
        return response
    except ConnectionResetError:  # `get` went away; the download goes on for others
        return response


async def list_tasks(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    return web.json_response(
        [
            {
                "task_id": store.task_id,
                "url": store.url,
                "content_length": store.content_length,
                "verified_pieces": store.verified.count,
                "piece_count": store.piece_count,
                "complete": store.complete,
            }
            for store in daemon.storage.stores.values()
        ]
    )


LOCAL_ROUTES = [
    Route(
        method="POST",
        path="/api/v1/downloads",
        handler=start_download,
        summary="Download a URL; streams NDJSON progress",
        body=DOWNLOAD_BODY,
    ),
    Route(method="GET", path="/api/v1/tasks", handler=list_tasks, summary="Tasks held here"),
    Route(method="GET", path="/healthz", handler=healthz, summary="Liveness", public=True),
]
