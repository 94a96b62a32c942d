"""The daemon's disk: one pre-allocated content file per task plus a small metadata file.

Layout under the data dir: ``tasks/<task_id>/data`` (the content, allocated at full length
when the length is known), ``tasks/<task_id>/meta.json`` (URL, digest, the origin request
headers, length, piece length, the verified-piece bitmap, per-piece digests, last access;
mode 0600, since headers may carry credentials) and ``tasks/<task_id>/meta.reserve``. A
piece is written with ``pwrite`` and made durable with ``fdatasync`` before it is marked
verified; the metadata is rewritten atomically (temporary file, fsync, rename) before the
daemon reports the pieces it lists, so a restarted daemon finds exactly what it had reported
and fetches nothing twice.

A quota caps the bytes allocated; allocating past it evicts finished tasks that nobody is
downloading, least recently used first (a task's last access is its last download or, in
memory only until its next metadata write, its last upload). An eviction calls
``on_remove(task_id)`` so the daemon can tell the scheduler the task is gone here. An upload
running when its task is evicted still completes: it holds the content file open. When
eviction is not enough, or the disk is full, the allocation raises
:class:`StorageFullError` and the task fails with that reason; every other task keeps being
served.

The disk can also fill up after allocation (another program, a filesystem that does not
reserve blocks). A rewrite of meta.json needs room for a second copy, so each unfinished
task keeps ``meta.reserve``, a file allocated at twice the metadata's size: when the rewrite
hits a full disk, the reserve is deleted and the rewrite tried again, so the verified pieces
are recorded, and the task then stops with :class:`StorageFullError`. A restarted daemon
resumes it and fetches only the pieces that were not recorded.

Task ids are 64 hex digits (checked here too), so no id can walk out of the data dir.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damselfly.scheduling import Bitfield, piece_count, piece_range

__all__ = ["Storage", "StorageError", "StorageFullError", "TaskStore"]

_TASK_ID = re.compile(r"[0-9a-f]{64}")


class StorageError(Exception):
    """The data dir could not hold or read a task."""


class StorageFullError(StorageError):
    """No room for a task: the quota is reached or the disk is full."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(slots=True)
class TaskStore:
    """One task on disk: its content file and what is known about it."""

    directory: Path
    task_id: str
    url: str
    digest: str = ""
    content_length: int | None = None
    piece_length: int = 0
    verified: Bitfield = field(default_factory=lambda: Bitfield(0))
    piece_digests: list[str | None] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    last_access: float = 0.0
    in_use: int = 0
    failure: str | None = None
    _fd: int | None = None

    @property
    def data_path(self) -> Path:
        return self.directory / "data"

    @property
    def meta_path(self) -> Path:
        return self.directory / "meta.json"

    @property
    def reserve_path(self) -> Path:
        return self.directory / "meta.reserve"

    @property
    def piece_count(self) -> int:
        return self.verified.size

    @property
    def has_metadata(self) -> bool:
        return self.content_length is not None

    @property
    def complete(self) -> bool:
        return self.content_length is not None and self.verified.complete

    @property
    def verified_bytes(self) -> int:
        if self.content_length is None:
            return 0
        return sum(self.range(index)[1] for index in self.verified)

    def range(self, index: int) -> tuple[int, int]:
        """``(offset, size)`` of piece ``index``."""
        assert self.content_length is not None
        return piece_range(self.content_length, self.piece_length, index)

    def has_range(self, start: int, end: int) -> bool:
        """Whether bytes ``start .. end-1`` all lie in verified pieces."""
        if self.content_length is None or not self.piece_length or start >= end:
            return False
        if end > self.content_length:
            return False
        first, last = start // self.piece_length, (end - 1) // self.piece_length
        return all(self.verified.has(index) for index in range(first, last + 1))

    # -- writing -------------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def write_piece(self, index: int, data: bytes) -> None:
        """Write piece ``index`` (blocking: call it in a thread). It is durable after the
        next :meth:`checkpoint`. Raises StorageFullError when the disk is full."""
        offset, size = self.range(index)
        if len(data) != size:
            raise StorageError(f"piece {index} has {len(data)} bytes, expected {size}")
        try:
            fd = self._open()
            written = os.pwrite(fd, data, offset)
            while written < size:
                written += os.pwrite(fd, data[written:], offset + written)
        except OSError as error:
            if error.errno in _FULL:
                raise StorageFullError(f"disk full writing task {self.task_id[:12]}") from None
            raise StorageError(f"cannot write task {self.task_id[:12]}: {error}") from None

    def read_piece(self, index: int) -> bytes:
        """Read piece ``index`` back (blocking)."""
        offset, size = self.range(index)
        with open(self.data_path, "rb") as file:
            file.seek(offset)
            return file.read(size)

    def mark_verified(self, index: int, digest: str) -> None:
        self.verified.set(index)
        self.piece_digests[index] = digest

    def checkpoint(self) -> None:
        """Make every piece verified so far durable, then list exactly those in meta.json
        (blocking). Pieces are reported only after a checkpoint that lists them, and one
        fdatasync per batch of pieces is far cheaper than one per piece.

        Raises StorageFullError when the disk is full: meta.json then lists every piece that
        was durable (written with the reserve's room) or, if even that failed, the pieces of
        the previous checkpoint."""
        verified = self.verified.copy()
        if self._fd is not None:
            try:
                os.fdatasync(self._fd)
            except OSError as error:
                raise StorageError(f"cannot sync task {self.task_id[:12]}: {error}") from None
        self.save(verified)

    def save(self, verified: Bitfield | None = None) -> None:
        """Rewrite meta.json atomically and durably (blocking); raises StorageFullError when
        the disk is full (after recording the pieces with the reserve's room, if there is a
        reserve), StorageError on any other failure."""
        verified = self.verified if verified is None else verified
        text = json.dumps(self._meta(verified))
        try:
            self._write_meta(text)
        except OSError as error:
            if error.errno not in _FULL:
                raise StorageError(f"cannot save task {self.task_id[:12]}: {error}") from None
        else:
            if verified.complete:  # a finished task is never rewritten for new pieces
                with contextlib.suppress(OSError):
                    self.reserve_path.unlink()
            return
        if not self.reserve_path.exists():
            raise StorageFullError(
                f"disk full: cannot record the pieces of task {self.task_id[:12]}"
            )
        with contextlib.suppress(OSError):
            self.reserve_path.unlink()
        try:
            self._write_meta(text)
        except OSError as error:
            raise StorageFullError(
                f"disk full: cannot record the pieces of task {self.task_id[:12]} ({error})"
            ) from None
        if verified.complete:
            return  # finished: nothing more to record, so the task need not stop
        raise StorageFullError(
            f"disk full: task {self.task_id[:12]} stopped with {verified.count} of "
            f"{verified.size} pieces verified and kept"
        )

    def _meta(self, verified: Bitfield) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "url": self.url,
            "digest": self.digest,
            "headers": self.headers,
            "content_length": self.content_length,
            "piece_length": self.piece_length,
            "piece_count": self.piece_count,
            "verified": base64.b64encode(verified.to_bytes()).decode(),
            "piece_digests": self.piece_digests,
            "last_access": self.last_access,
        }

    def _write_meta(self, text: str) -> None:
        temporary = self.meta_path.with_suffix(".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.meta_path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def make_reserve(self) -> None:
        """Set aside room for two copies of meta.json (blocking; best effort: on a full disk
        there is simply no reserve). A finished task needs none and has it removed."""
        if self.complete:
            with contextlib.suppress(OSError):
                self.reserve_path.unlink()
            return
        size = 2 * (len(json.dumps(self._meta(self.verified))) + 100 * self.piece_count) + 4096
        try:
            fd = os.open(self.reserve_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve_path.unlink()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def allocated_bytes(self) -> int:
        return self.content_length or 0


class Storage:
    """Every task under one data dir, with a quota (bytes; None for no quota)."""

    def __init__(self, data_dir: Path, *, quota: int | None = None) -> None:
        self.data_dir = data_dir
        self.tasks_dir = data_dir / "tasks"
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        self.quota = quota
        self.stores: dict[str, TaskStore] = {}
        # Called with the id of every task removed (from the thread that removed it).
        self.on_remove: Callable[[str], None] | None = None

    def load(self) -> list[TaskStore]:
        """Read every task's metadata (at start); a task whose metadata is unreadable is
        dropped from disk, since nothing in it can be trusted."""
        for directory in sorted(self.tasks_dir.iterdir()):
            if not _TASK_ID.fullmatch(directory.name):
                continue
            try:
                store = self._read(directory)
            except (OSError, ValueError, KeyError, TypeError):
                _remove_tree(directory)
                continue
            self.stores[store.task_id] = store
            if store.has_metadata:
                store.make_reserve()
        return list(self.stores.values())

    @staticmethod
    def _read(directory: Path) -> TaskStore:
        body = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        length = body["content_length"]
        count = int(body["piece_count"])
        verified = Bitfield.from_bytes(count, base64.b64decode(body["verified"]))
        digests = list(body["piece_digests"])
        if len(digests) != count:
            raise ValueError("digest list length")
        if length is not None and not (directory / "data").exists():
            verified = Bitfield(count)
        return TaskStore(
            directory=directory,
            task_id=directory.name,
            url=body["url"],
            digest=body.get("digest", ""),
            content_length=length,
            piece_length=int(body["piece_length"]),
            verified=verified,
            piece_digests=digests,
            headers=_headers(body.get("headers")),
            last_access=float(body.get("last_access", 0.0)),
        )

    def get(self, task_id: str) -> TaskStore | None:
        return self.stores.get(task_id)

    def open(self, task_id: str, url: str, digest: str) -> TaskStore:
        """The store of ``task_id``, created empty (no length yet) if new."""
        if not _TASK_ID.fullmatch(task_id):
            raise StorageError(f"bad task id {task_id[:80]!r}")
        store = self.stores.get(task_id)
        if store is None:
            directory = self.tasks_dir / task_id
            directory.mkdir(parents=True, exist_ok=True)
            store = TaskStore(directory=directory, task_id=task_id, url=url, digest=digest)
            self.stores[task_id] = store
        store.last_access = time.time()
        return store

    def allocate(self, store: TaskStore, content_length: int, piece_length: int) -> None:
        """Give ``store`` its length and reserve the bytes on disk (blocking).

        Evicts least recently used finished tasks to stay within the quota; raises
        StorageFullError when there is no room.
        """
        if store.content_length is not None:
            return
        if self.quota is not None:
            self._make_room(content_length, keep=store.task_id)
        count = piece_count(content_length, piece_length) if content_length else 0
        try:
            fd = os.open(store.data_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if content_length:
                    os.posix_fallocate(fd, 0, content_length)
            finally:
                os.close(fd)
        except OSError as error:
            if error.errno in _FULL:
                with contextlib.suppress(OSError):
                    os.unlink(store.data_path)
                raise StorageFullError(
                    f"disk full: no room for {content_length} bytes of task {store.task_id[:12]}"
                ) from None
            raise StorageError(f"cannot allocate task {store.task_id[:12]}: {error}") from None
        store.content_length = content_length
        store.piece_length = piece_length
        store.verified = Bitfield(count)
        store.piece_digests = [None] * count
        try:
            store.save()
        except StorageError:
            store.content_length = None  # not allocated after all: no room for metadata
            with contextlib.suppress(OSError):
                os.unlink(store.data_path)
            raise
        store.make_reserve()

    def used_bytes(self) -> int:
        return sum(store.allocated_bytes() for store in self.stores.values())

    def _make_room(self, wanted: int, *, keep: str) -> None:
        assert self.quota is not None
        if wanted > self.quota:
            raise StorageFullError(f"{wanted} bytes exceed the disk quota of {self.quota} bytes")
        victims = sorted(
            (s for s in self.stores.values() if s.task_id != keep and s.complete and s.in_use == 0),
            key=lambda s: s.last_access,
        )
        while self.used_bytes() + wanted > self.quota:
            if not victims:
                raise StorageFullError(
                    f"the disk quota of {self.quota} bytes is full of tasks in use"
                )
            self.remove(victims.pop(0).task_id)

    def remove(self, task_id: str) -> None:
        """Delete a task's files and forget it; ``on_remove`` hears of it."""
        store = self.stores.pop(task_id, None)
        if store is not None:
            store.close()
            _remove_tree(store.directory)
            if self.on_remove is not None:
                self.on_remove(task_id)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(name): str(text) for name, text in value.items()}


def _remove_tree(directory: Path) -> None:
    if not directory.is_dir():
        return  # already gone
    for child in directory.iterdir():
        with contextlib.suppress(OSError):
            child.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()
