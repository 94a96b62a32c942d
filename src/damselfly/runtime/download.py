"""The download engine: one :class:`PeerTask` per task a daemon downloads.

A peer task registers with the scheduler, opens its decision stream and follows it:

- ``parents``: the new parent set. A p2p loop polls each parent's verified-piece bitfield,
  asks the core's :class:`~damselfly.scheduling.PiecePlanner` for the next (piece, parent)
  requests (about 8 in flight), fetches each piece with an HTTP Range request, checks its
  sha256 against the digest the scheduler hands out, writes it durably, and only then marks
  it verified (servable) and queues its report. A parent that fails or sends a bad piece is
  reported with ``piece_failed`` (the scheduler blocks it and sends new parents) and dropped
  here. A peer whose parents have nothing it lacks asks to be rescheduled, and so does a
  peer whose download from parents ran below half its download capacity for a second (the
  core's :class:`~damselfly.scheduling.SlowDownloadWatch`; on only when the daemon is told
  its ``download_capacity``).
- ``back_to_source``: fetch the missing pieces from the origin (Range requests, retries with
  exponential backoff and jitter), computing each piece's digest.
- ``fail``: give up with the scheduler's reason.

Without a scheduler, or when it stops answering, or when no parent appears within
``parent_wait`` seconds, the task goes to the origin by itself (unless back-to-source is
disabled). Reports are batched every ``REPORT_INTERVAL`` seconds, after the metadata file
listing the pieces is durable.

Nothing here decides a scheduling rule: parents come from the scheduler and pieces from the
planner.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import aiohttp

from damselfly.runtime.api import url_problem
from damselfly.runtime.client import (
    SchedulerClient,
    SchedulerRejected,
    SchedulerUnavailable,
    auth_headers,
)
from damselfly.runtime.ratelimit import TokenBucket
from damselfly.runtime.storage import StorageError, TaskStore
from damselfly.scheduling import (
    Bitfield,
    PiecePlanner,
    PieceRequest,
    PlannerConfig,
    SlowDownloadWatch,
    piece_length,
)

if TYPE_CHECKING:
    from damselfly.runtime.config import DaemonConfig
    from damselfly.runtime.daemon import Daemon

__all__ = ["DownloadError", "PeerTask"]

log = logging.getLogger("damselfly.runtime.download")

REPORT_INTERVAL = 0.1
BITFIELD_POLL_INTERVAL = 0.2
RESCHEDULE_AFTER = 2.0
PIECE_TIMEOUT = aiohttp.ClientTimeout(total=120.0, sock_connect=3.0, sock_read=20.0)
SOURCE_TIMEOUT = aiohttp.ClientTimeout(total=300.0, sock_connect=5.0, sock_read=30.0)
PARENT_FAILURES_BEFORE_DROP = 2
STREAM_ATTEMPTS = 3
BUSY_BACKOFF = 0.2
OFFLINE_CHECKPOINT_INTERVAL = 1.0


class DownloadError(Exception):
    """A download failed; the message is the one line a user sees."""


class _ParentError(Exception):
    """A parent could not deliver a piece (connection, status); it is reported."""


class _CorruptPiece(_ParentError):
    """A parent's piece did not match its digest."""


class _ParentGone(_ParentError):
    """A parent no longer holds the task (410: evicted or removed); never ask it again."""


class _Busy(Exception):
    """A parent's upload slots are full; try another parent, report nothing."""


@dataclass(slots=True)
class Parent:
    peer_id: str
    host_id: str
    address: str
    kind: str
    bitfield: Bitfield | None = None
    failures: int = 0


@dataclass(slots=True)
class Progress:
    """What a watcher of the download sees."""

    content_length: int | None = None
    completed_bytes: int = 0
    bytes_from: dict[str, int] = field(default_factory=lambda: {"origin": 0, "seed": 0, "peer": 0})
    mode: str = "registering"


class PeerTask:
    """One download of ``url`` by a daemon (see the module docstring)."""

    def __init__(
        self,
        daemon: Daemon,
        store: TaskStore,
        *,
        url: str,
        digest: str,
        headers: dict[str, str] | None = None,
        disable_back_to_source: bool = False,
    ) -> None:
        self.daemon = daemon
        self.store = store
        self.url = url
        self.digest = digest
        self.headers = dict(headers or store.headers)
        self.disable_back_to_source = disable_back_to_source
        self.task_id = store.task_id
        self.peer_id = f"{daemon.host_id}-{self.task_id[:12]}-{random.getrandbits(32):08x}"
        self.progress = Progress(
            content_length=store.content_length, completed_bytes=store.verified_bytes
        )
        self.parents: dict[str, Parent] = {}
        self.blocked: set[str] = set()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.wake = asyncio.Event()
        self.finished_reports: list[dict[str, Any]] = []
        self.failed_reports: list[dict[str, Any]] = []
        self.reporting = False  # the scheduler accepts reports once it made a decision
        self.registered = False
        self.online = daemon.client is not None
        self.scheduler_digests: list[str | None] = []
        self.digest_refresh: asyncio.Task[None] | None = None
        self.report_lock = asyncio.Lock()
        self.rng = random.Random()
        self.listeners: list[Callable[[], None]] = []
        self.progress_stamp = 0.0
        self.checkpoint_stamp = time.monotonic()
        self.watch = SlowDownloadWatch(_watched_rate(daemon.config))
        # A reschedule was asked for and no decision has come since (as in the simulator,
        # a slow download asks again only after the scheduler answered).
        self.reschedule_pending = False
        # While the p2p loop runs, it cancels the requests to a parent that is dropped.
        self.parent_dropped: Callable[[str], None] = _ignore

    # -- entry point ----------------------------------------------------------------------

    async def run(self) -> TaskStore:
        """Download the task into its store; raises DownloadError with a one-line reason."""
        store = self.store
        store.in_use += 1
        metrics = self.daemon.metrics
        metrics.active_tasks.inc()
        background: list[asyncio.Task[Any]] = []
        try:
            if not store.complete:
                await self._download(background)
                # A task is done only once meta.json says so: else a restart would fetch
                # it again, or (a full disk) find it unfinished.
                await asyncio.to_thread(store.checkpoint)
            await self._check_content_digest()
            metrics.tasks.labels(result="succeeded").inc()
            return store
        except DownloadError as error:
            metrics.tasks.labels(result="failed").inc()
            await self._give_up(str(error))
            raise
        except StorageError as error:
            metrics.tasks.labels(result="failed").inc()
            await self._give_up(str(error))
            raise DownloadError(str(error)) from None
        finally:
            for job in background:
                job.cancel()
            for job in background:
                with contextlib.suppress(BaseException):
                    await job
            store.in_use -= 1
            metrics.active_tasks.dec()
            with contextlib.suppress(OSError, StorageError):
                await asyncio.to_thread(store.checkpoint)

    async def _download(self, background: list[asyncio.Task[Any]]) -> None:
        client = self.daemon.client
        if client is not None and self.online:
            try:
                await self._register(client)
            except SchedulerUnavailable as error:
                log.warning("task %s: %s; working without the scheduler", self.task_id[:12], error)
                self.online = False
            except SchedulerRejected as error:
                raise DownloadError(f"the scheduler refused the download: {error}") from None
        if not self.online:
            await self._from_source("the scheduler is unreachable")
            return
        assert client is not None
        background.append(asyncio.create_task(self._read_stream(client)))
        background.append(asyncio.create_task(self._report_loop(client)))
        try:
            await self._follow(background)
        except (SchedulerUnavailable, SchedulerRejected) as error:
            self.online = False
            await self._from_source(f"lost the scheduler ({error})")
        with contextlib.suppress(SchedulerUnavailable):
            await self._flush(client)
        if self.online:
            with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
                await client.call("POST", f"/api/v1/peers/{self.peer_id}/succeeded", {})

    async def _register(self, client: SchedulerClient) -> None:
        answer = await client.call(
            "POST",
            "/api/v1/peers",
            {
                "peer_id": self.peer_id,
                "host_id": self.daemon.host_id,
                "url": self.url,
                "digest": self.digest,
                "content_length": self.store.content_length,
                "disable_back_to_source": self.disable_back_to_source,
                "headers": self.headers,
            },
        )
        self.registered = True
        self.daemon.announced[self.task_id] = self.peer_id
        task = answer.get("task", {})
        if task.get("task_id") != self.task_id:
            raise DownloadError("the scheduler names this content by another task id")
        self._take_task_view(task)

    def _take_task_view(self, task: dict[str, Any]) -> None:
        digests = task.get("piece_digests")
        if isinstance(digests, list):
            self.scheduler_digests = digests

    async def _give_up(self, reason: str) -> None:
        client = self.daemon.client
        self.store.failure = reason
        if client is not None and self.registered and self.online:
            with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
                await client.call(
                    "POST", f"/api/v1/peers/{self.peer_id}/failed", {"reason": reason[:1000]}
                )

    # -- following the scheduler ----------------------------------------------------------

    async def _read_stream(self, client: SchedulerClient) -> None:
        """Feed the decision stream into the inbox; reopen it (a few times) if it drops."""
        reason = "the decision stream closed"
        for attempt in range(STREAM_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.5)
            try:
                async for message in client.stream(f"/api/v1/peers/{self.peer_id}/stream"):
                    await self.inbox.put(message)
            except SchedulerRejected as error:  # the scheduler forgot this peer
                reason = str(error)
                break
            except SchedulerUnavailable as error:
                reason = str(error)
        await self.inbox.put({"type": "scheduler_lost", "reason": reason})

    async def _follow(self, background: list[asyncio.Task[Any]]) -> None:
        """Carry out decisions until the content is complete."""
        config = self.daemon.config
        p2p: asyncio.Task[None] | None = None
        waiting_since = time.monotonic()
        self.progress.mode = "waiting for parents"
        try:
            while not self.store.complete:
                # Checked on every turn: a stream of retries or new parents that bring no
                # bytes must not keep the peer waiting for ever.
                stalled = time.monotonic() - max(waiting_since, self._last_progress())
                if stalled > config.parent_wait:
                    await self._to_source(p2p, f"no progress from peers in {stalled:.0f} s")
                    return
                try:
                    message = await asyncio.wait_for(self.inbox.get(), timeout=0.5)
                except TimeoutError:
                    continue
                kind = message.get("type")
                self.reschedule_pending = False
                if kind == "parents":
                    self._set_parents(message.get("parents", []))
                    if self.store.has_metadata is False:
                        await self._learn_metadata_from_scheduler()
                    self._start_reporting()
                    if p2p is None:
                        p2p = asyncio.create_task(self._p2p())
                        background.append(p2p)
                    self.wake.set()
                elif kind == "back_to_source":
                    self._start_reporting()
                    await self._to_source(p2p, message.get("reason", "ordered by the scheduler"))
                    return
                elif kind == "fail":
                    raise DownloadError(f"the scheduler gave up: {message.get('reason', '')}")
                elif kind in ("scheduler_lost", "evicted"):
                    self.online = False  # gone, or it forgot this peer: stop reporting
                    reason = message.get("reason", "")
                    await self._to_source(p2p, f"lost the scheduler ({reason})")
                    return
                elif kind == "p2p_done":
                    return
                elif kind == "p2p_error":
                    raise message["error"]
                elif kind == "already_complete":  # empty content
                    await self._allocate(0, piece_length(0))
                    return
        finally:
            if p2p is not None and not p2p.done():
                p2p.cancel()

    def _last_progress(self) -> float:
        return self.progress_stamp

    def _touch(self) -> None:
        self.progress_stamp = time.monotonic()

    def _start_reporting(self) -> None:
        if self.reporting:
            return
        self.reporting = True
        # Pieces verified before this registration (a resumed task) are reported now.
        for index in self.store.verified:
            self._queue_finished(index, None, 0.0)

    async def _to_source(self, p2p: asyncio.Task[None] | None, reason: str) -> None:
        if p2p is not None and not p2p.done():
            p2p.cancel()
            with contextlib.suppress(BaseException):
                await p2p
        await self._from_source(reason)

    def _set_parents(self, entries: list[dict[str, Any]]) -> None:
        fresh: dict[str, Parent] = {}
        for entry in entries:
            peer_id = str(entry.get("peer_id", ""))
            address = str(entry.get("address", ""))
            if not peer_id or not address or peer_id in self.blocked:
                continue
            fresh[peer_id] = self.parents.get(peer_id) or Parent(
                peer_id=peer_id,
                host_id=str(entry.get("host_id", "")),
                address=address.rstrip("/"),
                kind=str(entry.get("kind", "normal")),
            )
        dropped = [pid for pid in self.parents if pid not in fresh]
        self.parents = fresh
        for pid in dropped:
            self.parent_dropped(pid)

    async def _learn_metadata_from_scheduler(self) -> None:
        client = self.daemon.client
        assert client is not None
        task = await client.call("GET", f"/api/v1/tasks/{self.task_id}")
        self._take_task_view(task)
        length = task.get("content_length")
        if not isinstance(length, int):
            raise DownloadError("the scheduler sent parents for a task of unknown length")
        await self._allocate(length, int(task["piece_length"]))

    async def _allocate(self, content_length: int, length: int) -> None:
        store = self.store
        if store.has_metadata:
            return
        await asyncio.to_thread(self.daemon.storage.allocate, store, content_length, length)
        self.progress.content_length = content_length

    # -- reports --------------------------------------------------------------------------

    def _queue_finished(self, index: int, parent_id: str | None, duration: float) -> None:
        self.finished_reports.append(
            {
                "piece": index,
                "length": self.store.range(index)[1],
                "parent_id": parent_id,
                "duration": duration,
                "digest": self.store.piece_digests[index],
            }
        )

    async def _report_loop(self, client: SchedulerClient) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            try:
                await self._flush(client)
            except SchedulerUnavailable as error:
                await self.inbox.put({"type": "scheduler_lost", "reason": str(error)})
                return
            except StorageError as error:  # say a full disk: the task stops with it
                await self.inbox.put({"type": "p2p_error", "error": error})
                return

    async def _flush(self, client: SchedulerClient) -> None:
        """Send the queued reports, after the metadata naming their pieces is durable."""
        async with self.report_lock:
            if not self.reporting or not self.online:
                return
            if not self.finished_reports and not self.failed_reports:
                return
            finished, self.finished_reports = self.finished_reports, []
            failed, self.failed_reports = self.failed_reports, []
            if finished:
                await asyncio.to_thread(self.store.checkpoint)
            try:
                await client.call(
                    "POST",
                    f"/api/v1/peers/{self.peer_id}/pieces",
                    {"finished": finished, "failed": failed},
                )
            except SchedulerRejected as error:
                # A report the core refuses (say a digest it disputes) is dropped, not retried;
                # a scheduler that no longer knows the peer gets no more reports.
                log.warning("task %s: report refused: %s", self.task_id[:12], error)
                if error.status == 404:
                    self.online = False

    # -- peer to peer ---------------------------------------------------------------------

    async def _p2p(self) -> None:
        try:
            await self._p2p_loop()
            await self.inbox.put({"type": "p2p_done"})
        except asyncio.CancelledError:
            raise
        except (DownloadError, StorageError) as error:
            await self.inbox.put({"type": "p2p_error", "error": error})

    async def _p2p_loop(self) -> None:
        store = self.store
        config = self.daemon.config
        planner = PiecePlanner(
            store.piece_count,
            PlannerConfig(max_in_flight=config.max_in_flight, max_per_parent=config.max_per_parent),
            rng=self.rng,
        )
        fetches: dict[asyncio.Task[tuple[int, float]], PieceRequest] = {}

        def dropped(peer_id: str) -> None:
            planner.drop_parent(peer_id)
            for job, request in list(fetches.items()):
                if request.parent_id == peer_id:
                    job.cancel()

        self.parent_dropped = dropped
        poller = asyncio.create_task(self._poll_parents())
        self.watch.restart(time.monotonic())  # the peer starts receiving from parents
        stalled_since: float | None = None
        client = self.daemon.client
        assert client is not None
        try:
            while not store.complete:
                bitfields = {
                    pid: parent.bitfield
                    for pid, parent in self.parents.items()
                    if parent.bitfield is not None and parent.bitfield.size == store.piece_count
                }
                for request in planner.plan(store.verified, bitfields):
                    parent = self.parents[request.parent_id]
                    job = asyncio.create_task(self._fetch_from_parent(request.piece, parent))
                    fetches[job] = request
                if not fetches and planner.stalled(store.verified, bitfields):
                    now = time.monotonic()
                    if stalled_since is None:
                        stalled_since = now
                    elif now - stalled_since > RESCHEDULE_AFTER:
                        stalled_since = None
                        await self._reschedule(client, [], "stalled")
                else:
                    stalled_since = None
                self.wake.clear()
                waiter = asyncio.create_task(self.wake.wait())
                done, _ = await asyncio.wait(
                    {*fetches, waiter}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                for finished in done:
                    if finished in fetches:
                        job = cast("asyncio.Task[tuple[int, float]]", finished)
                        await self._settle(planner, fetches, job, fetches.pop(job))
        finally:
            poller.cancel()
            for job in fetches:
                job.cancel()
            self.parent_dropped = _ignore

    async def _settle(
        self,
        planner: PiecePlanner,
        fetches: dict[asyncio.Task[tuple[int, float]], PieceRequest],
        job: asyncio.Task[tuple[int, float]],
        request: PieceRequest,
    ) -> None:
        metrics = self.daemon.metrics
        piece, parent_id = request.piece, request.parent_id
        parent = self.parents.get(parent_id)
        if job.cancelled():
            with contextlib.suppress(Exception):
                planner.cancelled(piece, parent_id)
            return
        error = job.exception()
        if error is None:
            size, duration = job.result()
            for duplicate in planner.completed(piece, parent_id):
                for other, other_request in list(fetches.items()):
                    if other_request == duplicate:
                        other.cancel()
            if size:  # 0: a duplicate that lost the race
                kind = "seed" if parent is not None and parent.kind == "seed" else "peer"
                self._count(kind, size)
                metrics.pieces.labels(result="verified").inc()
                metrics.piece_seconds.observe(duration)
                self._queue_finished(piece, parent_id, duration)
                await self._watch_speed(size)
            if parent is not None:
                parent.failures = 0
            return
        if isinstance(error, _Busy):  # not the parent's fault: it may be asked again
            planner.cancelled(piece, parent_id)
            return
        if isinstance(error, StorageError | DownloadError):
            raise error
        planner.failed(piece, parent_id)
        corrupt = isinstance(error, _CorruptPiece)
        metrics.pieces.labels(result="corrupt" if corrupt else "failed").inc()
        log.warning("task %s: piece %d from %s: %s", self.task_id[:12], piece, parent_id, error)
        if parent is not None:
            parent.failures += 1
        if (
            corrupt
            or isinstance(error, _ParentGone)
            or parent is None
            or parent.failures >= PARENT_FAILURES_BEFORE_DROP
        ):
            self._block(parent_id)
            self.failed_reports.append(
                {"piece": piece, "parent_id": parent_id, "reason": str(error)[:500]}
            )
            client = self.daemon.client
            if client is not None:
                try:
                    await self._flush(client)
                except SchedulerUnavailable as lost:
                    await self.inbox.put({"type": "scheduler_lost", "reason": str(lost)})

    def _block(self, peer_id: str) -> None:
        self.blocked.add(peer_id)
        if self.parents.pop(peer_id, None) is not None:
            self.parent_dropped(peer_id)

    async def _watch_speed(self, size: int) -> None:
        """``size`` new bytes came from a parent: if the download has been running below
        half its capacity, ask the scheduler for other parents (whose evaluator prefers
        parents with free upload)."""
        client = self.daemon.client
        if (
            self.watch.received(time.monotonic(), size)
            and not self.store.complete
            and not self.reschedule_pending
            and client is not None
        ):
            self.reschedule_pending = True
            await self._reschedule(client, [], "slow")

    async def _reschedule(self, client: SchedulerClient, exclude: list[str], reason: str) -> None:
        self.daemon.metrics.reschedules.labels(reason=reason).inc()
        try:
            await client.call(
                "POST", f"/api/v1/peers/{self.peer_id}/reschedule", {"exclude": exclude}
            )
        except SchedulerRejected as error:
            log.info("task %s: reschedule refused: %s", self.task_id[:12], error)
        except SchedulerUnavailable as error:
            await self.inbox.put({"type": "scheduler_lost", "reason": str(error)})

    async def _poll_parents(self) -> None:
        """Keep every parent's verified-piece bitfield fresh (Dragonfly's piece sync)."""
        session = self.daemon.session
        headers = auth_headers(self.daemon.config.token)
        while True:
            for parent in list(self.parents.values()):
                url = f"{parent.address}/download/v1/tasks/{self.task_id}/bitfield"
                try:
                    async with session.get(
                        url, headers=headers, timeout=aiohttp.ClientTimeout(total=3.0)
                    ) as response:
                        if response.status == 404:
                            continue  # it has not allocated the task yet
                        if response.status == 410:
                            raise _ParentGone("it no longer holds the task")
                        if response.status != 200:
                            raise _ParentError(f"bitfield answered {response.status}")
                        body = await response.json()
                    count = int(body["piece_count"])
                    field_ = Bitfield.from_bytes(count, bytes.fromhex(body["bitfield"]))
                except (
                    aiohttp.ClientError,
                    TimeoutError,
                    OSError,
                    ValueError,
                    KeyError,
                    TypeError,
                    _ParentError,
                ) as error:
                    parent.failures += 1
                    if (
                        isinstance(error, _ParentGone)
                        or parent.failures >= PARENT_FAILURES_BEFORE_DROP + 1
                    ):
                        log.warning("parent %s unreachable: %s", parent.peer_id, error)
                        self._block(parent.peer_id)
                        client = self.daemon.client
                        if client is not None:
                            await self._reschedule(client, [parent.peer_id], "unreachable")
                    continue
                if parent.bitfield is None or parent.bitfield.bits != field_.bits:
                    parent.bitfield = field_
                    self.wake.set()
            await asyncio.sleep(BITFIELD_POLL_INTERVAL)

    async def _fetch_from_parent(self, piece: int, parent: Parent) -> tuple[int, float]:
        """Fetch, verify and store one piece; returns (bytes, seconds)."""
        store = self.store
        offset, size = store.range(piece)
        started = time.monotonic()
        headers = auth_headers(self.daemon.config.token)
        headers["Range"] = f"bytes={offset}-{offset + size - 1}"
        url = f"{parent.address}/download/v1/tasks/{self.task_id}/data"
        try:
            async with self.daemon.session.get(
                url, headers=headers, timeout=PIECE_TIMEOUT
            ) as response:
                if response.status == 503:
                    await asyncio.sleep(BUSY_BACKOFF)  # its slots are full: not at once
                    raise _Busy()
                if response.status == 410:
                    raise _ParentGone("it no longer holds the task")
                if response.status != 206:
                    raise _ParentError(f"answered {response.status}")
                data = await self._read(response, size, self.daemon.download_limit)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise _ParentError(f"transfer failed: {error or type(error).__name__}") from None
        if len(data) != size:
            raise _ParentError(f"sent {len(data)} of {size} bytes")
        expected = await self._expected_digest(piece)
        if expected is None:
            raise _Busy()  # nobody vouched for this piece yet: ask again later
        if store.verified.has(piece):
            return 0, time.monotonic() - started
        # Hash and write in one trip to a worker thread. Only bytes matching the digest are
        # written (a duplicate writes the same bytes), and nobody reads them before
        # mark_verified.
        digest = await asyncio.to_thread(_check_and_write, store, piece, data, expected)
        if digest != expected:
            raise _CorruptPiece(f"piece {piece} digest {digest[:20]} != {expected[:20]}")
        if store.verified.has(piece):  # a duplicate request (endgame) won while we wrote
            return 0, time.monotonic() - started
        store.mark_verified(piece, digest)
        self.daemon.piece_verified(store, piece)
        return size, time.monotonic() - started

    async def _expected_digest(self, piece: int) -> str | None:
        """The scheduler's digest of ``piece`` (asked again, a few times, when unknown)."""
        for attempt in range(5):
            if piece < len(self.scheduler_digests) and self.scheduler_digests[piece]:
                return self.scheduler_digests[piece]
            if self.digest_refresh is None or self.digest_refresh.done():
                self.digest_refresh = asyncio.create_task(self._refresh_digests())
            with contextlib.suppress(Exception):
                await asyncio.shield(self.digest_refresh)
            if piece < len(self.scheduler_digests) and self.scheduler_digests[piece]:
                return self.scheduler_digests[piece]
            await asyncio.sleep(0.1 * (attempt + 1))
        return None

    async def _refresh_digests(self) -> None:
        client = self.daemon.client
        if client is None:
            return
        task = await client.call("GET", f"/api/v1/tasks/{self.task_id}")
        self._take_task_view(task)

    # -- back to source -------------------------------------------------------------------

    async def _from_source(self, reason: str) -> None:
        if self.disable_back_to_source:
            raise DownloadError(f"back-to-source is disabled and {reason}")
        problem = url_problem(self.url)
        if problem is not None:  # no retry can help
            raise DownloadError(f"cannot fetch {self.url[:200]} from the origin: {problem}")
        self.progress.mode = "origin"
        log.info("task %s: from the origin (%s)", self.task_id[:12], reason)
        store = self.store
        if not store.has_metadata:
            length = await self._origin_length()
            await self._allocate(length, piece_length(length))
            client = self.daemon.client
            if client is not None and self.online and self.registered:
                with contextlib.suppress(SchedulerUnavailable, SchedulerRejected):
                    await client.call(
                        "PUT", f"/api/v1/tasks/{self.task_id}/metadata", {"content_length": length}
                    )
        semaphore = asyncio.Semaphore(self.daemon.config.source_concurrency)

        async def one(index: int) -> None:
            async with semaphore:
                await self._fetch_from_source(index)

        missing = [index for index in range(store.piece_count) if not store.verified.has(index)]
        jobs = [asyncio.create_task(one(index)) for index in missing]
        try:
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.cancel()

    async def _origin_length(self) -> int:
        """The content length, from a one-byte Range request to the origin."""
        headers = dict(self.headers)
        headers["Range"] = "bytes=0-0"

        async def attempt() -> int:
            async with self.daemon.session.get(
                self.url, headers=headers, timeout=SOURCE_TIMEOUT
            ) as response:
                if response.status == 416:
                    return 0
                if response.status == 206:
                    total = response.headers.get("Content-Range", "").rpartition("/")[2]
                    if total.isdigit():
                        return int(total)
                if response.status == 200 and response.content_length is not None:
                    return response.content_length
                if 400 <= response.status < 500:
                    raise DownloadError(f"the origin answered {response.status} for {self.url}")
                raise _ParentError(f"origin answered {response.status}")

        length: int = await self._with_retries(attempt, "asking the origin for the length")
        return length

    async def _with_retries(self, attempt: Callable[[], Any], what: str) -> Any:
        config = self.daemon.config
        for number in range(config.source_retries):
            try:
                return await attempt()
            except (aiohttp.InvalidURL, ValueError) as error:  # no retry can help
                raise DownloadError(f"{what}: {self.url[:200]} is not usable: {error}") from None
            except (aiohttp.ClientError, TimeoutError, OSError, _ParentError) as error:
                if number + 1 == config.source_retries:
                    raise DownloadError(
                        f"{what} failed {config.source_retries} times: {_describe(error)}"
                    ) from None
                backoff = min(10.0, config.source_backoff * 2**number)
                await asyncio.sleep(backoff * (0.5 + self.rng.random()))
        raise AssertionError("unreachable")

    async def _fetch_from_source(self, index: int) -> None:
        store = self.store
        offset, size = store.range(index)
        headers = dict(self.headers)
        headers["Range"] = f"bytes={offset}-{offset + size - 1}"

        async def attempt() -> bytes:
            async with self.daemon.session.get(
                self.url, headers=headers, timeout=SOURCE_TIMEOUT
            ) as response:
                if response.status == 206:
                    return await self._read(response, size, self.daemon.source_limit)
                if response.status == 200:  # an origin without Range support
                    body = await response.read()
                    return body[offset : offset + size]
                if 400 <= response.status < 500:
                    raise DownloadError(f"the origin answered {response.status} for {self.url}")
                raise _ParentError(f"origin answered {response.status}")

        started = time.monotonic()
        data: bytes = await self._with_retries(attempt, f"fetching piece {index} from the origin")
        if len(data) != size:
            raise DownloadError(f"the origin sent {len(data)} bytes for a {size}-byte piece")
        digest = await asyncio.to_thread(_check_and_write, store, index, data, None)
        store.mark_verified(index, digest)
        self.daemon.piece_verified(store, index)
        if not (self.online and self.reporting):
            # Nobody receives reports, so no report batch makes pieces durable: checkpoint
            # now and then, so a restart still resumes.
            now = time.monotonic()
            if now - self.checkpoint_stamp >= OFFLINE_CHECKPOINT_INTERVAL:
                self.checkpoint_stamp = now
                await asyncio.to_thread(store.checkpoint)
        metrics = self.daemon.metrics
        metrics.pieces.labels(result="verified").inc()
        duration = time.monotonic() - started
        metrics.piece_seconds.observe(duration)
        self._count("origin", size)
        self._queue_finished(index, None, duration)

    async def _read(
        self, response: aiohttp.ClientResponse, size: int, limit: TokenBucket | None
    ) -> bytes:
        """The body, each chunk let through by ``limit`` (the whole body at once without)."""
        if limit is None:
            return await response.read()
        chunks = []
        async for chunk in response.content.iter_any():  # as received: no extra copy
            await limit.take(len(chunk))
            chunks.append(chunk)
        return b"".join(chunks)

    def _count(self, source: str, size: int) -> None:
        self.progress.bytes_from[source] += size
        self.progress.completed_bytes += size
        self.daemon.metrics.count_download(source, size)
        self._touch()
        for listener in self.listeners:
            listener()

    # -- the end --------------------------------------------------------------------------

    async def _check_content_digest(self) -> None:
        digest = self.digest
        if not digest.startswith("sha256:"):
            return
        actual = await asyncio.to_thread(_file_sha256, self.store)
        if actual != digest.lower():
            self.daemon.storage.remove(self.task_id)
            raise DownloadError(f"content digest {actual} does not match {digest}")


def _watched_rate(config: DaemonConfig) -> float | None:
    """The rate the slow-download watch holds a download to: the configured capacity, or
    the download limit when that binds lower. None (the watch is off) without a capacity:
    the limit is a ceiling, not what the host can receive."""
    capacity = config.download_capacity
    if capacity is None:
        return None
    limit = config.download_rate
    return capacity if limit is None else min(capacity, limit)


def _describe(error: BaseException) -> str:
    """One line on why a request failed (some aiohttp errors print only the URL)."""
    text = str(error)
    if isinstance(error, TimeoutError) or not text:
        return f"{type(error).__name__} {text}".strip()
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port}: {error.os_error.strerror or error}"
    return text


def _ignore(peer_id: str) -> None:
    """No p2p loop is running: nothing to cancel."""


def _check_and_write(store: TaskStore, index: int, data: bytes, expected: str | None) -> str:
    """Hash ``data``; write it as piece ``index`` unless it differs from ``expected``."""
    digest = _sha256(data)
    if expected is None or digest == expected:
        store.write_piece(index, data)
    return digest


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_sha256(store: TaskStore) -> str:
    hasher = hashlib.sha256()
    with open(store.data_path, "rb") as file:
        while chunk := file.read(4 * 1024 * 1024):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()
