"""Storage: durable pieces, restart, quota with LRU eviction, a full disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from damselfly.runtime.storage import Storage, StorageFullError
from damselfly.scheduling import task_id

MiB = 1024 * 1024


def _store(storage: Storage, name: str, size: int, piece: int = MiB):  # type: ignore[no-untyped-def]
    url = f"http://origin/{name}"
    store = storage.open(task_id(url), url, "")
    storage.allocate(store, size, piece)
    return store


def test_pieces_survive_a_restart(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    store = _store(storage, "a", 3 * MiB + 5)
    store.write_piece(1, b"x" * MiB)
    store.mark_verified(1, "sha256:" + "00" * 32)
    store.write_piece(3, b"y" * 5)
    store.mark_verified(3, "sha256:" + "11" * 32)
    store.save()
    storage.close()

    again = Storage(tmp_path)
    (loaded,) = again.load()
    assert loaded.content_length == 3 * MiB + 5
    assert list(loaded.verified) == [1, 3]
    assert loaded.read_piece(3) == b"yyyyy"
    assert loaded.piece_digests[1] == "sha256:" + "00" * 32
    assert loaded.has_range(MiB, 2 * MiB) and not loaded.has_range(0, MiB + 1)


def test_unreadable_metadata_is_dropped(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    store = _store(storage, "a", MiB)
    store.meta_path.write_text("{broken")
    assert Storage(tmp_path).load() == []
    assert not store.directory.exists()


def test_quota_evicts_the_least_recently_used_finished_task(tmp_path: Path) -> None:
    storage = Storage(tmp_path, quota=3 * MiB)
    old = _store(storage, "old", MiB)
    recent = _store(storage, "recent", MiB)
    for store in (old, recent):
        store.write_piece(0, b"z" * MiB)
        store.mark_verified(0, "sha256:" + "22" * 32)
    old.last_access, recent.last_access = 1.0, 2.0
    _store(storage, "new", 2 * MiB)
    assert storage.get(old.task_id) is None and not old.directory.exists()
    assert storage.get(recent.task_id) is recent


def test_quota_never_evicts_a_task_in_use_and_fails_clearly(tmp_path: Path) -> None:
    storage = Storage(tmp_path, quota=2 * MiB)
    busy = _store(storage, "busy", MiB)
    busy.write_piece(0, b"z" * MiB)
    busy.mark_verified(0, "sha256:" + "22" * 32)
    busy.in_use = 1
    with pytest.raises(StorageFullError, match="quota"):
        _store(storage, "new", 2 * MiB)
    with pytest.raises(StorageFullError, match="exceed"):
        _store(storage, "huge", 3 * MiB)
    assert storage.get(busy.task_id) is busy


def test_bad_task_ids_cannot_leave_the_data_dir(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data")
    with pytest.raises(Exception, match="bad task id"):
        storage.open("../../etc", "http://x/", "")


def test_a_full_disk_spends_the_reserve_to_record_the_verified_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    storage = Storage(tmp_path)
    store = _store(storage, "a", 3 * MiB)
    assert store.reserve_path.stat().st_size > 0
    store.write_piece(0, b"a" * MiB)
    store.mark_verified(0, "sha256:" + "00" * 32)
    real_open = os.open
    refusals = {"left": 1}

    def full_once(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".tmp") and refusals["left"]:
            refusals["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", full_once)
    with pytest.raises(StorageFullError, match="stopped with 1 of 3 pieces verified and kept"):
        store.checkpoint()
    assert not store.reserve_path.exists()
    refusals["left"] = 1  # no reserve left: the previous meta.json stays
    store.write_piece(1, b"b" * MiB)
    store.mark_verified(1, "sha256:" + "11" * 32)
    with pytest.raises(StorageFullError, match="cannot record"):
        store.checkpoint()
    monkeypatch.undo()
    assert list(Storage(tmp_path).load()[0].verified) == [0]
