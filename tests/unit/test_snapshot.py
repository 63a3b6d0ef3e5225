"""Snapshots of the log engine alone: seal + links, manifest checks, damage caught, restore into a dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zkv.core.versions import EMPTY, KeyState, update
from zkv.storage.log import LogStore
from zkv.storage.snapshot import (
    MANIFEST,
    SnapshotError,
    contents,
    link_files,
    read_states,
    restore_files,
    verify,
)


def state(value: bytes | None, base: KeyState = EMPTY) -> KeyState:
    return update(base, "n1", dict(base.clock), value, 1.0)[0]


def take(store: LogStore, out: Path) -> dict:
    return link_files(store.seal(), out, {"node": "n1", **store.snapshot_meta()})


@pytest.fixture
def store(tmp_path: Path):
    s = LogStore(tmp_path / "data", segment_bytes=4096, compaction_min_bytes=0)
    for i in range(300):
        s.put(b"k%d" % i, state(b"v%d" % i))
    s.delete(b"k7")
    s.flush()
    yield s
    s.close()


def test_snapshot_holds_every_key_and_later_writes_stay_out(store: LogStore, tmp_path: Path) -> None:
    manifest = take(store, tmp_path / "snap")
    assert manifest["keys"] == 299
    store.put(b"k1", state(b"newer"))
    store.put(b"late", state(b"x"))
    store.flush()
    assert verify(tmp_path / "snap")["keys"] == 299
    got = {k: s.siblings[0].value for k, s in read_states(tmp_path / "snap")}
    assert got[b"k1"] == b"v1" and b"late" not in got and b"k7" not in got and len(got) == 299


def test_snapshot_survives_compaction_of_its_segments(store: LogStore, tmp_path: Path) -> None:
    take(store, tmp_path / "snap")
    for i in range(300):
        store.put(b"k%d" % i, state(b"w%d" % i))
    store.flush()
    while store.compact_step(1.0):
        pass
    assert store.statistics().compactions >= 1
    assert contents(tmp_path / "snap").keys == 299
    verify(tmp_path / "snap")


def test_non_empty_target_is_refused(store: LogStore, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(SnapshotError, match="not empty"):
        take(store, out)


def test_read_only_target_is_refused(store: LogStore, tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes through permission bits: a read-only file system then
        out = Path("/proc/zkv-snapshot")
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    with pytest.raises(SnapshotError, match="not writable"):
        take(store, out)


def test_damaged_or_truncated_file_fails_verify(store: LogStore, tmp_path: Path) -> None:
    take(store, tmp_path / "snap")
    seg = sorted((tmp_path / "snap").glob("*.log"))[0]
    data = bytearray(seg.read_bytes())
    data[100] ^= 0xFF
    seg.unlink()  # a hard link: write a new file, never into the store's own segment
    seg.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="CRC32"):
        verify(tmp_path / "snap")
    seg.unlink()
    seg.write_bytes(bytes(data[:-10]))
    with pytest.raises(SnapshotError, match="truncated"):
        verify(tmp_path / "snap")


def test_restore_into_empty_dir_opens_with_every_key(store: LogStore, tmp_path: Path) -> None:
    take(store, tmp_path / "snap")
    target = tmp_path / "restored"
    restore_files(tmp_path / "snap", target)
    assert not (tmp_path / "restored.restoring").exists()
    again = LogStore(target, segment_bytes=4096)
    try:
        assert len(again) == 299 and again.get(b"k5").siblings[0].value == b"v5"
        assert again.get(b"k7") is None
    finally:
        again.close()
    with pytest.raises(SnapshotError, match="not empty"):
        restore_files(tmp_path / "snap", target)


def test_interrupted_restore_starts_over(store: LogStore, tmp_path: Path) -> None:
    take(store, tmp_path / "snap")
    staging = tmp_path / "restored.restoring"
    staging.mkdir()
    (staging / "00000001.log").write_bytes(b"half a copy")
    restore_files(tmp_path / "snap", tmp_path / "restored")
    assert not staging.exists()
    assert (tmp_path / "restored" / MANIFEST).exists() is False
    assert contents(tmp_path / "snap").keys == 299
