"""The log engine and the hint store under disk errors: a failed fsync is never retried, a full disk
loses nothing buffered, metadata survives a refused save."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from zkv.core.versions import EMPTY, update
from zkv.storage import segment
from zkv.storage.log import META_FILE, LogStore


def _state(value: bytes):
    return update(EMPTY, "n1~t", {}, value, 1.0)[0]


@pytest.fixture
def fsync_trigger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    trigger = tmp_path / "fail-next-fsync"
    monkeypatch.setattr(segment, "FSYNC_FAULT_TRIGGER", str(trigger))
    return trigger


def test_failed_fsync_seals_the_segment_and_rewrites_its_unsynced_records(
    tmp_path: Path, fsync_trigger: Path
) -> None:
    store = LogStore(tmp_path / "s")
    store.put(b"before", _state(b"durable"))
    store.flush()
    first = store.active
    synced_at = first.synced
    store.put(b"a", _state(b"A"))
    store.put(b"b", _state(b"B"))
    store.put(b"before", _state(b"newer"))
    fsync_trigger.touch()
    with pytest.raises(OSError) as failed:
        store.flush()
    assert failed.value.errno == errno.EIO and str(first.path) in str(failed.value)
    assert not fsync_trigger.exists()
    # sealed where the last good fsync ended, never fsynced again; a new segment holds the copies
    assert store.active is not first and first.sync_failed
    assert first.written == synced_at == first.path.stat().st_size
    assert store.get(b"a").values == [b"A"] and store.get(b"before").values == [b"newer"]
    store.flush()  # the copies go to the new segment and are fsynced there
    assert store.active.synced == store.active.written > 0
    store.put(b"c", _state(b"C"))
    store.flush()
    store.close()
    reopened = LogStore(tmp_path / "s")
    try:
        got = {k: reopened.get(k).values for k in (b"before", b"a", b"b", b"c")}
        assert got == {b"before": [b"newer"], b"a": [b"A"], b"b": [b"B"], b"c": [b"C"]}
        assert reopened.statistics().corrupt_records == 0
    finally:
        reopened.close()


def test_a_refused_write_keeps_the_buffer_and_cuts_the_file_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LogStore(tmp_path / "s")
    store.put(b"k", _state(b"v1"))
    store.flush()
    size = store.active.written  # the records' end (the preallocated zeros after it may go)
    store.put(b"k2", _state(b"v2" * 1000))

    def full(fd: int, data: object, offset: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment, "pwrite_all", full)
    with pytest.raises(OSError) as refused:
        store.flush()
    assert refused.value.errno == errno.ENOSPC and str(store.active.path) in str(refused.value)
    assert store.active.path.stat().st_size == size and store.needs_flush()
    monkeypatch.undo()
    store.flush()  # space is back: the same bytes go out
    store.close()
    reopened = LogStore(tmp_path / "s")
    try:
        assert reopened.get(b"k2").values == [b"v2" * 1000]
    finally:
        reopened.close()


def test_a_refused_metadata_save_leaves_the_old_file_and_no_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LogStore(tmp_path / "s")
    store.save_meta({"generation": 5, "actor": "n1~a"})

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    # the write itself fails (os.write, not records.write_all: a compiled records module calls its
    # own write_all directly, so only the system call is a seam in both builds)
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        store.save_meta({"generation": 6, "actor": "n1~b"})
    monkeypatch.undo()
    assert store.load_meta() == {"generation": 5, "actor": "n1~a"}
    assert not (tmp_path / "s" / (META_FILE + ".tmp")).exists()
    store.close()
