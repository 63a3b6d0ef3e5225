"""The log engine on its own: its files, group commit by fsync, compaction, recovery from torn and damaged
files. What every engine must do is in ``test_store_contract.py``."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from zkv.core.merkle import state_digest
from zkv.core.versions import EMPTY, KeyState, pack_state, update
from zkv.storage import open_store
from zkv.storage.hints import HintStore, open_hints
from zkv.storage.log import LogStore
from zkv.storage.memory import MemoryStore
from zkv.storage.records import HEADER_BYTES, INDEX_MAGIC, Damage, Record, encode, scan

SMALL = 4096  # segment size in these tests, so a few hundred records span several segments


def state(value: bytes | None, actor: str = "n1", ts: float = 1.0, base: KeyState = EMPTY) -> KeyState:
    return update(base, actor, dict(base.clock), value, ts)[0]


def value_of(store, key: bytes) -> bytes | None:
    got = store.get(key)
    return None if got is None else got.siblings[0].value


def open_log(path: Path, **options) -> LogStore:
    options.setdefault("segment_bytes", SMALL)
    options.setdefault("compaction_min_bytes", 0)
    return LogStore(path, **options)


def contents(store, states: bool = False) -> dict:
    keys = list(store.keys())
    return {k: store.get(k) if states else value_of(store, k) for k in keys}


def crash_image(src: Path, dst: Path) -> Path:
    """The files as a kill -9 right now would leave them (what was written to the OS; no close).

    A file that vanishes while being copied was being unlinked by compaction's helper thread: a crash
    just after that unlink would not have it either.
    """
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, target)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
    return dst


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.log"))


# ---------------------------------------------------------------------------------------------- basics


def test_reads_see_writes_of_the_same_turn_before_the_flush(tmp_path: Path) -> None:
    store = open_log(tmp_path, cache_bytes=0)  # no cache: the value must come from the write buffer
    [segment] = segment_files(tmp_path)
    store.put(b"k", state(b"v"))
    assert segment.stat().st_size == 0 and store.needs_flush()
    assert value_of(store, b"k") == b"v"
    store.flush()
    assert segment.stat().st_size > 0 and not store.needs_flush()
    assert value_of(store, b"k") == b"v" and store.statistics().values_read == 2
    store.close()


def test_a_turn_bigger_than_the_write_buffer_and_big_values(tmp_path: Path) -> None:
    store = open_log(tmp_path, segment_bytes=16 << 20, cache_bytes=0)
    big = b"x" * 10_000
    for i in range(300):  # 3 MB in one turn: handed to the OS early, still read back
        store.put(b"k%d" % i, state(big + b"%d" % i))
    store.put(b"huge", state(os.urandom(1 << 20)))
    assert all(value_of(store, b"k%d" % i) == big + b"%d" % i for i in range(300))
    huge = store.get(b"huge")
    with pytest.raises(ValueError, match="keys up to"):
        store.put(b"k" * 70_000, state(b"v"))
    store.close()
    store = open_log(tmp_path, segment_bytes=16 << 20)
    assert len(store) == 301 and store.get(b"huge") == huge and value_of(store, b"k299") == big + b"299"
    store.close()


def test_a_put_without_a_current_digest_gets_one_at_recovery(tmp_path: Path) -> None:
    store = open_log(tmp_path)
    store.put(b"a", state(b"1"))
    store.close()
    [segment] = segment_files(tmp_path)
    s = state(b"2")
    with segment.open("ab") as f:  # as an older version, with no digest in its header, would write it
        f.write(encode(1, 99, b"b", pack_state(s)))
    store = open_log(tmp_path)
    assert store.digest(b"b") == state_digest(b"b", s) and store.get(b"b") == s
    assert store.statistics().recovery_scanned_records == 1
    store.close()


def test_open_store_names_the_engines(tmp_path: Path) -> None:
    store = open_store("log", tmp_path / "x", "never", cache_bytes=1 << 20, segment_bytes=1 << 20)
    assert isinstance(store, LogStore) and store.fsync == "never" and store.segment_bytes == 1 << 20
    store.close()
    assert isinstance(open_store("memory"), MemoryStore)
    with pytest.raises(ValueError, match="fsync"):
        LogStore(tmp_path / "y", fsync="sometimes")


def test_a_missing_data_dir_is_created_and_a_used_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c"
    store = open_log(path)
    with pytest.raises(OSError, match="in use by another process"):
        open_log(path)
    store.close()
    open_log(path).close()


# ---------------------------------------------------------------------------------------------- fsync policy


def test_always_is_a_group_commit_with_one_fsync_per_flush(tmp_path: Path) -> None:
    store = open_log(tmp_path, segment_bytes=1 << 20)
    for i in range(100):
        store.put(b"k%d" % i, state(b"v"))
    store.flush()
    assert store.statistics().fsyncs == 1
    store.flush()  # nothing written since: no fsync
    assert store.statistics().fsyncs == 1
    store.put(b"k", state(b"v"))
    store.flush()
    assert store.statistics().fsyncs == 2 and store.statistics().flushes == 2
    store.close()


def test_interval_fsyncs_only_when_the_interval_passed(tmp_path: Path) -> None:
    now = [100.0]
    store = open_log(tmp_path, fsync="interval", fsync_interval_ms=100, clock=lambda: now[0])
    store.put(b"a", state(b"v"))
    store.flush()  # written to the OS, but the interval has not passed
    assert store.statistics().fsyncs == 0 and store.needs_flush()
    now[0] += 0.05
    store.flush()
    assert store.statistics().fsyncs == 0 and store.needs_flush()
    now[0] += 0.06
    store.flush()
    assert store.statistics().fsyncs == 1 and not store.needs_flush()
    now[0] += 1
    store.flush()  # nothing new
    assert store.statistics().fsyncs == 1
    store.close()


def test_never_writes_to_the_os_without_fsync(tmp_path: Path) -> None:
    store = open_log(tmp_path / "d", fsync="never")
    store.put(b"a", state(b"v"))
    assert store.needs_flush()
    store.flush()
    assert not store.needs_flush() and store.statistics().fsyncs == 0
    image = crash_image(tmp_path / "d", tmp_path / "image")
    assert value_of(reopened := open_log(image), b"a") == b"v"  # a process crash loses nothing written
    reopened.close()
    store.close()


# ---------------------------------------------------------------------------------------------- compaction


def test_compaction_keeps_exactly_the_live_set_while_puts_interleave(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = open_log(tmp_path, cache_bytes=0, compaction_min_bytes=3 * SMALL)
    model: dict[bytes, bytes] = {}
    interleaved = 0
    for i in range(3000):
        key = b"k%d" % rng.randrange(60)
        interleaved += store.statistics().compacting
        if rng.random() < 0.05 and key in model:
            store.delete(key)
            del model[key]
        else:
            model[key] = b"v%d-" % i + b"x" * rng.randrange(40)
            store.put(key, state(model[key]))
        if i % 5 == 0:
            store.flush()
        store.compact_step(budget_s=0.0)  # one tiny slice per turn: puts land between slices
        if i % 97 == 0:
            assert contents(store) == model
    store.flush()
    while store.compact_step():
        pass
    stats = store.statistics()
    assert stats.compactions >= 3 and interleaved > stats.compactions
    assert contents(store) == model and len(store) == len(model)
    live = stats.bytes
    assert stats.disk_bytes < live * 2 + 2 * SMALL  # bounded under overwrites and deletes
    store.close()
    store = open_log(tmp_path)
    assert contents(store) == model
    assert all(store.get(b"k%d" % i) is None for i in range(60) if b"k%d" % i not in model)
    store.close()


def test_reopen_after_compaction_reads_index_files_not_values(tmp_path: Path) -> None:
    store = open_log(tmp_path)
    for i in range(2000):
        store.put(b"k%d" % (i % 100), state(b"value-%d" % i))
        if i % 10 == 0:
            store.flush()
    while store.compact_step():
        pass
    assert store.statistics().compactions >= 1
    store.close()
    assert len(list(tmp_path.glob("*.idx"))) == len(segment_files(tmp_path))
    store = open_log(tmp_path, cache_bytes=0)
    stats = store.statistics()
    assert stats.recovery_scanned_records == 0 and stats.values_read == 0
    assert stats.recovery_index_entries >= 100 and len(store) == 100
    assert value_of(store, b"k7") == b"value-1907"
    store.close()


def test_reopen_after_a_crash_scans_only_what_no_index_covers(tmp_path: Path) -> None:
    store = open_log(tmp_path / "d", segment_bytes=1 << 20)
    for i in range(300):
        store.put(b"k%d" % i, state(b"v%d" % i))
    store.close()  # indexes the segment, which the next open appends to
    store = open_log(tmp_path / "d", segment_bytes=1 << 20)
    for i in range(300, 350):
        store.put(b"k%d" % i, state(b"v%d" % i))
    store.flush()
    image = crash_image(tmp_path / "d", tmp_path / "image")
    store.close()
    crashed = open_log(image, segment_bytes=1 << 20)
    stats = crashed.statistics()
    assert stats.recovery_index_entries == 300 and stats.recovery_scanned_records == 50
    assert all(value_of(crashed, b"k%d" % i) == b"v%d" % i for i in range(350))
    crashed.close()


def test_compaction_interrupted_by_close_or_crash_loses_nothing(tmp_path: Path) -> None:
    store = open_log(tmp_path / "d")
    for i in range(1500):
        store.put(b"k%d" % (i % 200), state(b"v%d" % i))
        if i % 50 == 0:
            store.flush()
    store.flush()
    expected = contents(store)
    store.compact_step(budget_s=0.0)
    store.compact_step(budget_s=0.0)
    assert store.statistics().compacting
    image = crash_image(tmp_path / "d", tmp_path / "image")  # inputs and half-written copies, side by side
    store.close()
    for path in (tmp_path / "d", image):
        again = open_log(path)
        assert contents(again) == expected
        while again.compact_step():
            pass
        assert contents(again) == expected
        again.close()


def test_compaction_keeps_an_old_value_until_its_successor_is_written(tmp_path: Path) -> None:
    """An overwrite still in the turn's buffer makes the old record dead; compacting it away must not
    leave a crash with neither (compaction hands the buffer to the OS, and fsyncs it, first)."""
    store = open_log(tmp_path / "d")
    store.put(b"k", state(b"old"))
    for i in range(100):  # fill and close segments so the old record sits in a closed one
        store.put(b"filler", state(b"x" * 100 + b"%d" % i))
        store.flush()
    store.put(b"k", state(b"new"))  # not flushed
    while store.compact_step():
        pass
    assert store.statistics().compactions >= 1
    image = crash_image(tmp_path / "d", tmp_path / "image")
    store.close()
    crashed = open_log(image)
    assert value_of(crashed, b"k") in (b"old", b"new")
    crashed.close()


def test_deleted_keys_stay_deleted_through_compaction(tmp_path: Path) -> None:
    store = open_log(tmp_path)
    for i in range(100):
        store.put(b"doomed%d" % i, state(b"x" * 50))
    store.flush()
    for i in range(100):
        store.delete(b"doomed%d" % i)
    for i in range(600):  # overwrites make every older segment mostly dead
        store.put(b"k%d" % (i % 10), state(b"v%d" % i))
        store.flush()
        store.compact_step()
    while store.compact_step():
        pass
    assert store.statistics().deleted_keys == 0  # nothing older left anywhere: the delete records went too
    store.close()
    store = open_log(tmp_path)
    assert sorted(store.keys()) == sorted(b"k%d" % i for i in range(10))
    assert all(store.get(b"doomed%d" % i) is None for i in range(100))
    store.close()


# ---------------------------------------------------------------------------------------------- recovery


def _write_unique(store: LogStore, count: int, offset: int = 0) -> dict[bytes, bytes]:
    written = {}
    for i in range(offset, offset + count):
        key, value = b"key%04d" % i, b"value-%d" % i
        store.put(key, state(value))
        written[key] = value
        if i % 3 == 0:
            store.flush()
    store.flush()
    return written


def _record_bounds(path: Path) -> list[int]:
    """Where each record of a segment file starts, and where the last one ends (zeros may follow)."""
    data = path.read_bytes()
    records = [item for item in scan(data, 0, len(data)) if isinstance(item, Record)]
    return [r.offset for r in records] + [records[-1].offset + records[-1].size]


@pytest.mark.parametrize("indexed_prefix", [False, True], ids=["unindexed", "index-covers-a-prefix"])
def test_a_torn_tail_is_cut_at_every_byte_offset(tmp_path: Path, indexed_prefix: bool) -> None:
    src = tmp_path / "src"
    store = open_log(src, segment_bytes=1 << 20)
    written = _write_unique(store, 20)
    if indexed_prefix:
        store.close()
        store = open_log(src, segment_bytes=1 << 20)
        written |= _write_unique(store, 10, offset=20)
    [segment] = segment_files(src)
    bounds = _record_bounds(segment)  # record i is bytes [bounds[i], bounds[i + 1])
    data = segment.read_bytes()
    keys = list(written)
    image = crash_image(src, tmp_path / "image")
    store.close()
    for cut in range(bounds[-4], bounds[-1]):
        case = tmp_path / f"cut{cut}"
        shutil.copytree(image, case)
        os.truncate(case / segment.name, cut)
        store = open_log(case, segment_bytes=1 << 20)
        complete = sum(1 for i in range(len(bounds) - 1) if bounds[i + 1] <= cut)
        for n, key in enumerate(keys):
            assert value_of(store, key) == (written[key] if n < complete else None), (cut, key)
        # counted up to the last non-zero byte: zeros after it read as the preallocated end
        torn = data[bounds[complete] : cut]
        assert store.statistics().recovery_torn_bytes == len(torn.rstrip(b"\0"))
        assert store.statistics().corrupt_records == 0
        store.put(b"after", state(b"crash"))  # appends where the cut left off
        store.close()
        store = open_log(case, segment_bytes=1 << 20)
        assert value_of(store, b"after") == b"crash" and len(store) == complete + 1
        store.close()
        shutil.rmtree(case)


def test_the_active_segment_keeps_zeros_ahead_and_a_crash_reads_them_as_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Preallocation: zeros after the records make later fsyncs data-only; they are never a torn write."""
    src = tmp_path / "src"
    store = open_log(src, segment_bytes=1 << 20)
    written = _write_unique(store, 20)
    [segment] = segment_files(src)
    end = _record_bounds(segment)[-1]
    data = segment.read_bytes()
    assert len(data) > end and not data[end:].strip(b"\0")  # zeros, and only zeros, after the records
    size = len(data)
    written |= _write_unique(store, 5, offset=20)  # lands inside the zeros: the file does not grow
    assert segment.stat().st_size == size and _record_bounds(segment)[-1] > end
    image = crash_image(src, tmp_path / "image")
    store.close()
    assert segment.stat().st_size == _record_bounds(segment)[-1]  # a clean close drops the zeros
    caplog.clear()
    store = open_log(image, segment_bytes=1 << 20)
    assert {key: value_of(store, key) for key in written} == written
    stats = store.statistics()
    assert stats.recovery_torn_bytes == 0 and stats.corrupt_records == 0
    assert "torn" not in caplog.text
    store.put(b"after", state(b"crash"))  # appends right after the last record, not after the zeros
    store.flush()
    [reopened] = segment_files(image)
    assert _record_bounds(reopened)[-1] == _record_bounds(segment)[-1] + len(
        encode(1, 0, b"after", pack_state(state(b"crash")), 0)
    )
    store.close()
    store = open_log(image, segment_bytes=1 << 20)
    assert value_of(store, b"after") == b"crash" and len(store) == len(written) + 1
    store.close()


def test_a_closed_segment_has_no_zeros_after_its_records(tmp_path: Path) -> None:
    store = open_log(tmp_path)  # 4 KiB segments: these writes roll several
    _write_unique(store, 200)
    *closed, active = segment_files(tmp_path)
    assert len(closed) >= 3
    for path in closed:
        assert path.stat().st_size == _record_bounds(path)[-1], path
    assert active.stat().st_size > _record_bounds(active)[-1]  # only the active one runs ahead
    store.close()


def test_a_write_half_on_disk_in_the_zeros_is_a_torn_tail(tmp_path: Path) -> None:
    """A crash can leave the start of a record in the preallocated zeros: that record is cut, counted
    up to its last non-zero byte, and every record before it is kept."""
    src = tmp_path / "src"
    store = open_log(src, segment_bytes=1 << 20)
    written = _write_unique(store, 10)
    image = crash_image(src, tmp_path / "image")
    store.close()
    [segment] = segment_files(image)
    bounds = _record_bounds(segment)
    data = bytearray(segment.read_bytes())
    last = bytes(data[bounds[-2] : bounds[-1]])
    half = len(last) // 2
    data[bounds[-2] + half : bounds[-1]] = bytes(len(last) - half)  # the second half never reached the disk
    segment.write_bytes(data)
    store = open_log(image, segment_bytes=1 << 20)
    lost = list(written)[-1]
    assert {k: value_of(store, k) for k in written} == {**written, lost: None}
    assert store.statistics().recovery_torn_bytes == len(last[:half].rstrip(b"\0"))
    store.close()


@pytest.mark.parametrize("where", ["active", "closed"])
def test_bit_flips_are_skipped_counted_and_never_returned(tmp_path: Path, where: str) -> None:
    """A flip anywhere in a record loses that record only; in a closed (indexed) segment it is caught when
    the value is read, in the segment that was active at the crash it is caught by the recovery scan."""
    src = tmp_path / "src"
    store = open_log(src, segment_bytes=1 << 20)
    written = _write_unique(store, 40)
    if where == "closed":
        store.close()
    else:
        image = crash_image(src, tmp_path / "image")
        store.close()
        src = image
    [segment] = segment_files(src)
    *starts, size = _record_bounds(segment)  # the active segment's preallocated zeros are not flipped
    rng = random.Random(3)
    positions = sorted(rng.sample(range(size), 40))
    positions += [starts[5] + 4, starts[6] + 1, starts[7]]  # a key length, a magic byte, a record's start
    for pos in positions:
        case = tmp_path / f"flip{pos}"
        shutil.copytree(src, case)
        data = bytearray((case / segment.name).read_bytes())
        data[pos] ^= 1 << rng.randrange(8)
        (case / segment.name).write_bytes(data)
        hit = max(i for i, s in enumerate(starts) if s <= pos)
        store = open_log(case, segment_bytes=1 << 20)
        for n, key in enumerate(written):
            got = value_of(store, key)
            assert got == (None if n == hit else written[key]), (pos, key, got)
        stats = store.statistics()
        if where == "active" and hit == len(starts) - 1:  # damage at the very end looks like a torn write
            assert stats.corrupt_records == 0 and stats.recovery_torn_bytes > 0, pos
        else:
            assert stats.corrupt_records == 1 and stats.recovery_torn_bytes == 0, pos
        store.close()
        shutil.rmtree(case)


def test_a_damaged_index_file_falls_back_to_scanning(tmp_path: Path) -> None:
    store = open_log(tmp_path, segment_bytes=1 << 20)
    written = _write_unique(store, 50)
    store.close()
    [index] = tmp_path.glob("*.idx")
    data = bytearray(index.read_bytes())
    assert data.startswith(INDEX_MAGIC)
    data[len(data) // 2] ^= 0xFF
    index.write_bytes(data)
    store = open_log(tmp_path, segment_bytes=1 << 20)
    assert store.statistics().recovery_scanned_records == 50
    assert all(value_of(store, k) == v for k, v in written.items())
    store.close()


def test_compaction_scans_a_segment_whose_index_went_missing(tmp_path: Path) -> None:
    store = open_log(tmp_path)
    for i in range(200):
        store.put(b"k%d" % (i % 40), state(b"v%d" % i))
        store.flush()
    for index in tmp_path.glob("*.idx"):
        index.unlink()
    for i in range(200, 400):
        store.put(b"k%d" % (i % 40), state(b"v%d" % i))
        store.flush()
    while store.compact_step():
        pass
    assert store.statistics().compactions >= 1
    assert contents(store) == {b"k%d" % (i % 40): b"v%d" % i for i in range(360, 400)}
    store.close()


def test_a_record_cut_anywhere_is_found_by_scan() -> None:
    records = [encode(1, i + 1, b"k%d" % i, b"v" * i, digest=100 + i, flags=1) for i in range(5)]
    data = b"".join(records)
    for cut in range(len(data)):
        items = list(scan(data[:cut], 0, cut))
        whole = [r for r in items if isinstance(r, Record)]
        assert [r.seq for r in whole] == list(range(1, len(whole) + 1))
        assert all(r.digest == 99 + r.seq and r.flags == 1 for r in whole)
        damage = [d for d in items if isinstance(d, Damage)]
        assert all(d.torn for d in damage) and len(damage) <= 1
    assert HEADER_BYTES == 34


# ---------------------------------------------------------------------------------------------- a dict model


# ---------------------------------------------------------------------------------------------- metadata


def test_node_metadata_is_saved_atomically_and_damage_is_refused(tmp_path: Path) -> None:
    store = open_log(tmp_path)
    store.save_meta({"generation": 7})
    store.save_meta({"generation": 8})
    store.close()
    assert not list(tmp_path.glob("*.tmp"))
    meta = tmp_path / "meta.msgpack"
    meta.write_bytes(meta.read_bytes()[:-1] + b"\x00")
    store = open_log(tmp_path)
    with pytest.raises(OSError, match="damaged"):
        store.load_meta()
    store.close()


# ---------------------------------------------------------------------------------------------- hints


def test_hints_queue_per_target_and_survive_a_restart(tmp_path: Path) -> None:
    hints = HintStore(tmp_path / "h")
    a1 = hints.add("n2", b"k1", state(b"v1"))
    a2 = hints.add("n2", b"k2", state(b"v2"))
    b1 = hints.add("node/3", b"k1", state(b"v1"))
    assert hints.counts() == {"n2": 2, "node/3": 1} and hints.bytes() > 0
    assert [(i, k) for i, k, _ in hints.pending("n2")] == [(a1, b"k1"), (a2, b"k2")]
    hints.remove("n2", [a1])
    hints.flush()
    image = crash_image(tmp_path / "h", tmp_path / "image")
    hints.close()
    for path in (tmp_path / "h", image):
        again = HintStore(path)
        assert again.counts() == {"n2": 1, "node/3": 1}
        [(hint_id, key, got)] = list(again.pending("n2"))
        assert (hint_id, key, got.values) == (a2, b"k2", [b"v2"])
        assert [i for i, _, _ in again.pending("node/3")] == [b1]
        assert again.add("n2", b"k3", state(b"v3")) > b1  # ids never reused while hints remain
        again.close()


def test_delivered_hints_free_their_file(tmp_path: Path) -> None:
    hints = HintStore(tmp_path)
    ids = [hints.add("n2", b"k%d" % i, state(b"x" * 1000)) for i in range(3000)]
    hints.flush()
    [path] = tmp_path.glob("*.hints")
    hints.remove("n2", ids[:2500])  # mostly delivered: rewritten with the live ones only
    assert path.stat().st_size < 600 * 1100
    hints.remove("n2", ids[2500:])
    hints.flush()
    assert path.stat().st_size == 0 and hints.counts() == {} and len(hints) == 0
    hints.close()
    again = HintStore(tmp_path)
    assert again.counts() == {} and list(again.pending("n2")) == []
    again.close()


def test_a_damaged_hint_is_dropped_and_counted(tmp_path: Path) -> None:
    hints = HintStore(tmp_path)
    ids = [hints.add("n2", b"k%d" % i, state(b"value-%d" % i)) for i in range(3)]
    hints.flush()
    hints.close()
    [path] = tmp_path.glob("*.hints")
    data = bytearray(path.read_bytes())
    data[data.index(b"value-1")] ^= 0xFF
    path.write_bytes(data)
    again = HintStore(tmp_path)
    assert [i for i, _, _ in again.pending("n2")] == [ids[0], ids[2]]
    assert again.statistics().corrupt_records == 1 and again.counts() == {"n2": 2}
    again.close()


def test_a_torn_hint_file_keeps_every_complete_hint(tmp_path: Path) -> None:
    hints = HintStore(tmp_path)
    for i in range(5):
        hints.add("n2", b"k%d" % i, state(b"v%d" % i))
    hints.flush()
    hints.close()
    [path] = tmp_path.glob("*.hints")
    os.truncate(path, path.stat().st_size - 3)
    again = HintStore(tmp_path)
    assert [k for _, k, _ in again.pending("n2")] == [b"k0", b"k1", b"k2", b"k3"]
    again.close()
    memory = open_hints("memory")
    memory.add("n2", b"k", state(b"v"))
    assert memory.counts() == {"n2": 1}
    durable = open_hints("log", tmp_path / "x")
    assert isinstance(durable, HintStore) and durable.directory == tmp_path / "x" / "hints"
    durable.close()


def test_paxos_journal_cuts_a_torn_tail_and_rewrites_when_mostly_dead(tmp_path) -> None:
    from zkv.storage import paxoslog

    store = LogStore(tmp_path)
    store.paxos_put(b"a", b"1")
    store.paxos_put(b"b", b"2")
    store.flush()
    store.close()
    journal = tmp_path / paxoslog.JOURNAL_FILE
    size = journal.stat().st_size
    with open(journal, "ab") as f:
        f.write(b"\xb7K torn half record")
    store = LogStore(tmp_path)
    assert store.paxos_get(b"a") == b"1" and store.paxos_get(b"b") == b"2"
    assert journal.stat().st_size == size  # the torn tail was cut
    big = b"v" * 10_000
    for i in range(500):  # 5 MB of records for two live keys: rewritten along the way
        store.paxos_put(b"a", big + b"%d" % i)
        store.flush()
    assert journal.stat().st_size < 4 * paxoslog.REWRITE_MIN_BYTES
    store.close()
    store = LogStore(tmp_path)
    assert store.paxos_get(b"a") == big + b"499" and store.paxos_get(b"b") == b"2"
    store.close()


def test_purged_keys_leave_the_disk_near_empty_after_compaction(tmp_path: Path) -> None:
    """The purge's path through the engine: tombstone states, then delete records (what the core does
    once every replica agreed), then compaction until it has nothing left to do: no byte of them stays,
    not even in the segment that was active, and nothing comes back after a restart."""
    store = open_log(tmp_path, segment_bytes=64 * 1024, compaction_min_bytes=4 << 20)  # the default
    keys = [b"key-%05d" % i for i in range(3000)]
    for i, key in enumerate(keys):
        store.put(key, state(b"v" * 100))
        if i % 100 == 0:
            store.flush()
    for key in keys:
        store.put(key, state(None, base=store.get(key)))
    store.flush()
    full = store.statistics().disk_bytes
    for key in keys:
        store.delete(key)
    store.flush()
    store.put(b"kept", state(b"here"))
    store.flush()
    for _ in range(10_000):
        if not store.compact_step(0.05):
            break
    stats = store.statistics()
    assert stats.keys == 1 and stats.deleted_keys == 0, stats
    assert stats.disk_bytes < full / 20, (stats.disk_bytes, full)
    store.close()
    store = open_log(tmp_path, segment_bytes=64 * 1024, compaction_min_bytes=4 << 20)  # the default
    assert len(store) == 1 and value_of(store, b"kept") == b"here"
    assert all(store.get(key) is None for key in keys)
    store.close()
