"""The log engine: append-only segments, a key directory in memory, values on disk (Bitcask's design).

Theory of operation
-------------------
Every ``put`` appends one framed record (``zkv.storage.records``: length, CRC32, sequence number) to the
*active* segment and points the in-memory **key directory** at it: key -> one int packing segment, offset,
size, a 64-bit digest of the state (the version summary) and the record's sequence number. Values stay on
disk; a bounded LRU cache keeps the hot ones, so memory grows with the number of keys, not with the data.

Durability is the runtime's group commit: ``put`` only buffers; ``flush`` writes the buffer and fsyncs it
under the policy (``always``: every flush that wrote something fsyncs once; ``interval``: at most every
``fsync_interval_ms``; ``never``: the OS decides). Reads see buffered records, so a turn reads its own
writes. When the active segment passes ``segment_bytes`` it is closed: fsynced, and an **index file**
listing every record's entry and key is written beside it.

A record is dead once a newer record of its key exists. **Compaction** (:meth:`LogStore.compact_step`,
in slices of a few ms between loop turns) rewrites the live records of closed segments whose dead share
passed ``compaction_threshold`` into new segments, byte for byte (records hold no offsets), moving each
key's directory entry as it goes; a put that lands between slices simply wins, since only records the
directory still points at are copied. The outputs are fsynced and indexed before the inputs are removed.
Tombstone states are ordinary states and survive. Delete records (:meth:`LogStore.delete`, the future
purge of tombstones) are dropped only when no other segment could hold an older record of their key.

**Recovery** rebuilds the directory from index files, scanning only what no index covers (the segment that
was active at a crash, or a segment whose index is damaged). The newest sequence number of a key wins, so
segment order never matters, and a crash mid-compaction (inputs and copies both present) is harmless. A
torn tail (an interrupted write) fails its CRC and is cut; a damaged record in the middle is skipped and
counted. A damaged record met later (by ``get`` or by compaction) is counted, and its key is dropped from
the directory so anti-entropy can repair it: a damaged value is never returned.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import os
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import msgpack

from zkv.core.merkle import state_digest
from zkv.core.versions import KeyState, pack_state, unpack_state
from zkv.storage.background import BackgroundIO, sync_all
from zkv.storage.base import FSYNC_POLICIES, StoreStats
from zkv.storage.cache import CACHE_ENTRY_OVERHEAD_BYTES, ValueCache
from zkv.storage.records import (
    DELETE,
    DIGEST_VERSION,
    LOCATION_MASK,
    MAX_SEGMENT_ID,
    PUT,
    DirLock,
    Record,
    decode,
    decode_index,
    encode,
    encode_index,
    entry,
    entry_deleted,
    entry_digest,
    entry_offset,
    entry_segment,
    entry_seq,
    entry_size,
    fsync_dir,
    index_item,
    iter_index,
    relocate,
    scan,
    write_atomic,
)
from zkv.storage.segment import SEGMENT_SUFFIX, Segment, segment_name

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
DEFAULT_COMPACTION_THRESHOLD = 0.5
DEFAULT_COMPACTION_MIN_BYTES = 4 * 1024 * 1024
SPILL_BYTES = 1024 * 1024  # a turn that buffers more than this hands it to the OS early (no fsync)
PREALLOCATE_BYTES = 1024 * 1024  # zeros kept ahead of the active segment's records (see segment.py)
COMPACTION_SYNC_BYTES = 256 * 1024  # compaction writes and fsyncs its output in steps this big
META_FILE = "meta.msgpack"


class LogStore:
    """A replica's key states in append-only segment files under ``data_dir`` (see the module doc)."""

    def __init__(
        self,
        data_dir: Path | str,
        fsync: str = "always",
        fsync_interval_ms: int = 100,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        compaction_threshold: float = DEFAULT_COMPACTION_THRESHOLD,
        compaction_min_bytes: int = DEFAULT_COMPACTION_MIN_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync = {fsync!r}: expected one of {', '.join(FSYNC_POLICIES)}")
        if not 0 < compaction_threshold <= 1:
            raise ValueError(
                f"compaction_threshold = {compaction_threshold!r}: expected a fraction in (0, 1]"
            )
        if not 4096 <= segment_bytes < (1 << 40):
            raise ValueError(f"segment_bytes = {segment_bytes!r}: expected 4096 bytes to 1 TiB")
        self.directory = Path(data_dir)
        self.fsync = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self.segment_bytes = segment_bytes
        self.compaction_threshold = compaction_threshold
        self.compaction_min_bytes = compaction_min_bytes
        self._clock = clock
        self._cache = ValueCache(cache_bytes)
        self._dir: dict[bytes, int] = {}  # key -> entry of its newest record (a put)
        self._deleted: dict[bytes, int] = {}  # key -> entry of its newest record, when that is a delete
        self._segments: dict[int, Segment] = {}
        self._next_segment_id = 1  # never reused while open: a removed segment may still be unlinking
        self._seq = 0
        self._live_bytes = 0
        self._last_sync = clock()
        self._compaction: Iterator[futures.Future | None] | None = None
        self._outputs: set[int] = set()  # segments the running compaction is writing
        self._active: Segment  # the segment appended to; set by _recover below
        self._background = BackgroundIO()  # the compaction's fsyncs and unlinks
        self._closed = False
        self._counters = dict.fromkeys(
            (
                "flushes",
                "fsyncs",
                "corrupt_records",
                "compactions",
                "values_read",
                "recovery_index_entries",
                "recovery_scanned_records",
                "recovery_torn_bytes",
            ),
            0,
        )
        self._recovery_s = 0.0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = DirLock(self.directory)
        try:
            self._recover()
        except BaseException:
            for seg in self._segments.values():
                seg.close()
            self._lock.release()
            raise

    # ------------------------------------------------------------------------------------------ reads

    def get(self, key: bytes) -> KeyState | None:
        state = self._cache.get(key)
        if state is not None:
            return state
        e = self._dir.get(key)
        if e is None:
            return None
        size = entry_size(e)
        data = self._segments[entry_segment(e)].read(entry_offset(e), size)
        self._counters["values_read"] += 1
        rec = decode(data)
        if rec is None or rec.kind != PUT or rec.key != key:
            self._damaged(key, e)
            return None
        try:
            state = unpack_state(rec.value)
        except Exception:  # noqa: BLE001 - a CRC-valid record that is still not a state: damaged too
            self._damaged(key, e)
            return None
        self._cache.put(key, state, size + CACHE_ENTRY_OVERHEAD_BYTES)
        return state

    keeps_digests = True  # put() hashes every state: digest() is a lookup, not a hash

    def digest(self, key: bytes) -> int | None:
        """``zkv.core.merkle.state_digest`` of ``key``'s stored state, from memory; None if absent.

        Anti-entropy can build its Merkle leaves from this without reading a single value.
        """
        e = self._dir.get(key)
        return None if e is None else entry_digest(e)

    def keys(self) -> Iterator[bytes]:
        return iter(list(self._dir))

    def __len__(self) -> int:
        return len(self._dir)

    def __contains__(self, key: object) -> bool:
        return key in self._dir

    # ------------------------------------------------------------------------------------------ writes

    def put(self, key: bytes, state: KeyState) -> None:
        summary = state_digest(key, state)
        self._seq += 1
        record = encode(PUT, self._seq, key, pack_state(state), summary, DIGEST_VERSION)
        seg = self._active
        e = entry(len(record), seg.append(record), seg.id, summary, self._seq)
        self._supersede(key)
        self._dir[key] = e
        self._live_bytes += len(record)
        self._note(seg, e, key)
        self._cache.put(key, state, len(record) + CACHE_ENTRY_OVERHEAD_BYTES)

    def delete(self, key: bytes) -> None:
        """Remove ``key`` for good with a delete record (purging a tombstone is the core's decision)."""
        if key not in self._dir:
            return
        self._seq += 1
        record = encode(DELETE, self._seq, key)
        seg = self._active
        e = entry(len(record), seg.append(record), seg.id, 0, self._seq, deleted=True)
        self._supersede(key)
        self._deleted[key] = e
        self._note(seg, e, key)
        self._cache.discard(key)

    def _supersede(self, key: bytes) -> None:
        old = self._dir.pop(key, None)
        if old is not None:
            self._live_bytes -= entry_size(old)
            self._segments[entry_segment(old)].dead += entry_size(old)
            return
        old = self._deleted.pop(key, None)
        if old is not None:
            seg = self._segments[entry_segment(old)]
            seg.dead += entry_size(old)
            seg.tomb_bytes -= entry_size(old)

    def _note(self, seg: Segment, e: int, key: bytes) -> None:
        seg.index += index_item(e, key)
        seg.count += 1
        seg.min_seq = min(seg.min_seq, self._seq)
        if entry_deleted(e):
            seg.tomb_bytes += entry_size(e)
            seg.max_delete_seq = self._seq
        if len(seg.buf) >= SPILL_BYTES:
            with contextlib.suppress(OSError):  # disk full: the buffer stays, and flush() reports it
                seg.write_out()

    def _damaged(self, key: bytes, e: int) -> None:
        """A record failed its check on reading: count it, forget it (anti-entropy repairs the key)."""
        self._counters["corrupt_records"] += 1
        log.warning(
            "damaged record of key %r in segment %d at %d; dropped", key, entry_segment(e), entry_offset(e)
        )
        if self._dir.get(key) == e:
            del self._dir[key]
            self._live_bytes -= entry_size(e)
            self._segments[entry_segment(e)].dead += entry_size(e)
        self._cache.discard(key)
        return None

    # ------------------------------------------------------------------------------------------ durability

    def needs_flush(self) -> bool:
        """Is something buffered or not yet fsynced that a later :meth:`flush` must take care of?"""
        seg = self._active
        return bool(seg.buf) or seg.sync_failed or (self.fsync == "interval" and seg.unsynced)

    def flush(self) -> None:
        """The group commit: write every buffered record, and fsync once if the policy asks for it now.

        Raises ``OSError`` when the disk refuses (full, or an I/O error); nothing buffered is lost then,
        and a later flush tries again. A write that failed is cut back off the file; an fsync that failed
        is never retried: the segment is sealed where the last good fsync ended and what it held since
        is written again into a new segment (:meth:`_seal_after_failed_sync`).
        """
        if self._active.sync_failed:  # the seal did not finish (no room for a new segment): again
            self._seal_after_failed_sync(self._active)
        seg = self._active
        if seg.buf:
            seg.write_out()
            self._counters["flushes"] += 1
        if seg.unsynced and self.fsync != "never":
            now = self._clock()
            if self.fsync == "always" or now - self._last_sync >= self.fsync_interval:
                self._sync_active(seg)
                self._counters["fsyncs"] += 1
                self._last_sync = now
        if seg.written >= self.segment_bytes:
            # "never" does not fsync even here: after a power cut an index may then point at lost
            # records, which the CRC check on reading catches (the key reads as missing, never wrong)
            if seg.unsynced and self.fsync != "never":
                self._sync_active(seg)
            self._close_segment(seg, sync=self.fsync != "never")
            self._active = self._writable(self._new_segment(durable=self.fsync != "never"))

    def _sync_active(self, seg: Segment) -> None:
        try:
            seg.sync()
        except OSError:
            seg.sync_failed = True
            self._seal_after_failed_sync(seg)
            raise

    def _seal_after_failed_sync(self, seg: Segment) -> None:
        """After a failed fsync of the active segment: never trust its unsynced part again.

        The records written since the last good fsync are copied (from memory, ``seg.tail``) into the
        buffer of a new active segment, which a later flush writes and fsyncs; ``seg`` is cut back to
        where that fsync ended and closed. Nothing of it was acknowledged (the runtime answers only after
        a good flush), and the copies keep their sequence numbers, so a crash in between is harmless.
        """
        fresh = self._writable(self._new_segment(durable=False))
        start, tail = seg.synced, bytes(seg.tail) + bytes(seg.buf)  # every record from ``start`` on
        kept, count = bytearray(), 0
        for e, key in iter_index(bytes(seg.index)):
            offset, size = entry_offset(e), entry_size(e)
            if offset < start:
                kept += index_item(e, key)
                count += 1
                continue
            table = self._deleted if entry_deleted(e) else self._dir
            current = table.get(key)
            if current is None or current & LOCATION_MASK != e & LOCATION_MASK:
                continue  # superseded already: nothing to carry over
            moved = relocate(current, fresh.id, fresh.append(tail[offset - start : offset - start + size]))
            table[key] = moved
            fresh.index += index_item(moved, key)
            fresh.count += 1
            fresh.min_seq = min(fresh.min_seq, entry_seq(moved))
            seg.dead += size
            if table is self._deleted:
                seg.tomb_bytes -= size
                fresh.tomb_bytes += size
                fresh.max_delete_seq = max(fresh.max_delete_seq, entry_seq(moved))
        seg.index, seg.count = kept, count
        seg.buf.clear()
        with contextlib.suppress(OSError):
            seg.truncate(start)
        seg.unsynced = False
        seg.keep_tail = False
        log.error(
            "fsync of segment %d failed: sealed at %d bytes, %d records carried to segment %d",
            seg.id,
            start,
            fresh.count,
            fresh.id,
        )
        with contextlib.suppress(OSError):
            self._close_segment(seg, sync=False)
        self._active = fresh

    def seal(self) -> list[Path]:
        """Close the active segment (fsynced, indexed) and start a new one; the files a snapshot links.

        Every record written so far is then in a closed segment, which never changes again. The new
        active segment's name is made durable first, so a restart never reopens a sealed (possibly
        hard-linked) segment for appending. A running compaction's outputs are left out: they hold
        copies of records their inputs, which are listed, still hold.
        """
        if self._active.size:
            seg = self._active
            seg.write_out()
            if seg.unsynced:  # as flush does: a failed fsync is handled once, never retried
                self._sync_active(seg)
                self._counters["fsyncs"] += 1
            self._close_segment(seg)
            self._active = self._writable(self._new_segment(durable=True))
        files = []
        for seg in sorted(self._segments.values(), key=lambda s: s.id):
            if seg is self._active or seg.id in self._outputs or not seg.written:
                continue
            files.append(seg.path)
            if seg.index_path.exists():
                files.append(seg.index_path)
        return files

    def snapshot_meta(self) -> dict:
        """What the sealed segments hold, for a snapshot's manifest: keys, record bytes, Merkle root."""
        from zkv.storage.snapshot import merkle_root

        return {
            "keys": len(self._dir),
            "bytes": self._live_bytes,
            "merkle_root": merkle_root((key, entry_digest(e)) for key, e in self._dir.items()),
        }

    def _close_segment(self, seg: Segment, sync: bool = True) -> None:
        """Make ``seg`` durable (unless ``sync`` is off) and write its index file: it is read-only now."""
        seg.write_out()
        if seg.unsynced and sync:
            seg.sync()
            self._counters["fsyncs"] += 1
        seg.trim()
        # the index is a shortcut with its own CRC: no fsync (a lost one means a scan at the next start),
        # and a full disk may refuse it: compaction and the next start then scan the segment instead
        try:
            write_atomic(seg.index_path, encode_index(seg.written, seg.count, seg.index), durable=False)
            seg.indexed = True
        except OSError as exc:
            log.warning("index of segment %d not written (%s); it will be scanned", seg.id, exc)
        seg.keep_tail = False
        seg.index = bytearray()

    def _writable(self, seg: Segment) -> Segment:
        """``seg`` as the active segment: it keeps zeros ahead of its records, for cheaper fsyncs, and
        the bytes not yet fsynced, to write them again elsewhere if an fsync fails."""
        seg.preallocate = min(PREALLOCATE_BYTES, self.segment_bytes // 4)
        seg.keep_tail = self.fsync != "never"
        return seg

    def _new_segment(self, durable: bool = True) -> Segment:
        """A new empty segment; ``durable``: its name is fsynced into the directory now."""
        seg_id = self._next_segment_id = max(self._next_segment_id, max(self._segments, default=0) + 1)
        self._next_segment_id += 1
        if seg_id > MAX_SEGMENT_ID:
            raise OSError(f"{self.directory}: out of segment ids")
        seg = Segment(self.directory / segment_name(seg_id), seg_id)
        self._segments[seg_id] = seg
        if durable:
            fsync_dir(self.directory)
        return seg

    def close(self) -> None:
        """Flush and fsync everything, index the active segment and release the directory."""
        if self._closed:
            return
        self._closed = True
        try:
            self._abandon_compaction(closing=True)
            self._close_segment(self._active)
        except OSError as exc:  # disk full or failing: what is not on disk was never acknowledged
            log.error("closing the log store in %s: %s", self.directory, exc)
        finally:
            for seg in self._segments.values():
                seg.close()
            self._cache.clear()
            self._lock.release()

    # ------------------------------------------------------------------------------------------ metadata

    def load_meta(self) -> dict:
        """The node metadata saved last (generation, incarnation, tokens...); ``{}`` when none was."""
        path = self.directory / META_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        if len(data) < 4 or zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "big"):
            raise OSError(f"{path} is damaged (CRC mismatch); restore it or remove it to start afresh")
        meta = msgpack.unpackb(data[:-4], raw=False)
        if not isinstance(meta, dict):
            raise OSError(f"{path} does not hold node metadata")
        return meta

    def save_meta(self, meta: dict) -> None:
        """Replace the node metadata, atomically and durably (tmp file, fsync, rename, fsync dir)."""
        body = msgpack.packb(meta, use_bin_type=True)
        write_atomic(self.directory / META_FILE, body + zlib.crc32(body).to_bytes(4, "big"))

    # ------------------------------------------------------------------------------------------ compaction

    def compact_step(self, budget_s: float = 0.005) -> bool:
        """Do up to ``budget_s`` of compaction; True while more remains (call again when idle).

        The slice copies records and writes to the OS; the fsyncs run in a helper thread, and a slice
        that reaches a point where it must wait for one waits at most until its budget is spent.
        """
        if self._compaction is None:
            inputs = self._compaction_inputs()
            if not inputs:
                return False
            self._compaction = self._compact(inputs)
        deadline = time.perf_counter() + budget_s
        try:
            for waiting in self._compaction:
                if waiting is not None:
                    futures.wait([waiting], timeout=max(0.0, deadline - time.perf_counter()))
                    if not waiting.done():
                        return True
                if time.perf_counter() >= deadline:
                    return True
        except BaseException:
            self._abandon_compaction(closing=False)
            raise
        self._compaction = None
        return bool(self._compaction_inputs())

    def _compaction_inputs(self) -> list[Segment]:
        """Closed segments whose reclaimable share passed the threshold, if together they free enough.

        Reclaimable: dead records, and delete records once nothing older than them is left elsewhere.
        """
        chosen, reclaimable = [], 0
        for seg in self._segments.values():
            if seg is self._active or seg.id in self._outputs or not seg.written:
                continue
            free = seg.dead
            if seg.tomb_bytes and self._may_drop_delete(seg, seg.max_delete_seq):
                free += seg.tomb_bytes
            if free and free >= self.compaction_threshold * seg.written:
                chosen.append(seg)
                reclaimable += free
        if reclaimable < self.compaction_min_bytes:
            return []
        return sorted(chosen, key=lambda seg: seg.id)

    def _compact(self, inputs: list[Segment]) -> Iterator[futures.Future | None]:
        """Copy the live records of ``inputs`` to new segments, then remove ``inputs``.

        Yields after each record (None) or a future to wait for (a background fsync). The inputs go only
        once every output is fsynced and named durably in the directory; the outputs' index files need
        no fsync (see :meth:`_close_segment`).
        """
        outputs: list[Segment] = []
        syncing: futures.Future | None = None
        for seg in inputs:
            items = self._index_items(seg)
            yield None
            if not seg.written:
                continue
            with mmap.mmap(seg.fd, seg.written, access=mmap.ACCESS_READ) as data:
                for e, key in iter_index(items):
                    yield None
                    table = self._deleted if entry_deleted(e) else self._dir
                    current = table.get(key)
                    if current is None or current & LOCATION_MASK != e & LOCATION_MASK:
                        continue  # dead
                    offset, size = entry_offset(e), entry_size(e)
                    raw = data[offset : offset + size]
                    rec = decode(raw)
                    if rec is None or rec.key != key or rec.seq != entry_seq(e):
                        if table is self._dir:
                            self._damaged(key, e)
                        else:
                            self._counters["corrupt_records"] += 1
                            del table[key]
                        continue
                    if table is self._deleted and self._may_drop_delete(seg, rec.seq):
                        del table[key]
                        continue
                    out = outputs[-1] if outputs else None
                    if out is None or out.size >= self.segment_bytes:
                        if out is not None:
                            self._close_segment(out, sync=False)
                        out = self._new_segment(durable=False)
                        self._outputs.add(out.id)
                        outputs.append(out)
                    moved = relocate(current, out.id, out.append(raw))
                    table[key] = moved
                    out.index += index_item(moved, key)
                    out.count += 1
                    out.min_seq = min(out.min_seq, rec.seq)
                    if table is self._deleted:
                        out.tomb_bytes += size
                        out.max_delete_seq = max(out.max_delete_seq, rec.seq)
                    if len(out.buf) >= COMPACTION_SYNC_BYTES:
                        out.write_out()
                        if syncing is None or syncing.done():  # keep dirty data small, never queue up
                            syncing = self._background.run(functools.partial(os.fdatasync, out.fd))
        for out in outputs:
            out.write_out()
        fds = [out.fd for out in outputs]
        # A record is dropped here because a newer one superseded it; if that newer one is still in the
        # active segment's buffer, or written but not yet fsynced, a crash could lose both. So it goes
        # to the OS now (enough for kill -9), and is fsynced with the outputs (enough for a power cut).
        self._active.write_out()
        if self.fsync != "never":
            fds.append(self._active.fd)
        done = self._background.run(functools.partial(sync_all, fds, self.directory))
        yield done
        try:
            done.result()  # an fsync error ends the compaction here, before any input is removed
        except OSError:
            self._active.sync_failed = True  # it fsynced the active segment too: never trust that again
            raise
        self._counters["fsyncs"] += len(outputs) + 1
        for out in outputs:
            out.unsynced = False
            if not out.indexed:
                self._close_segment(out, sync=False)
                yield None
        for seg in inputs:
            del self._segments[seg.id]
            seg.close()
            # unlinking a big file takes ms: the helper thread does it (the loop never reuses the name)
            self._background.run(seg.remove)
        self._background.run(functools.partial(fsync_dir, self.directory))  # the inputs are gone for good
        self._outputs.clear()
        self._counters["compactions"] += 1
        log.info("compaction: %d segments rewritten into %d", len(inputs), len(outputs))

    def _may_drop_delete(self, seg: Segment, seq: int) -> bool:
        """A delete record may go once no other segment can hold an older record of its key.

        Older records of the key in ``seg`` itself disappear with it, in one unlink.
        """
        return all(
            other.min_seq > seq
            for other in self._segments.values()
            if other is not seg and other.id not in self._outputs
        )

    def _index_items(self, seg: Segment) -> bytes | bytearray | memoryview:
        """The index items of a closed segment, from its index file (or, if that is damaged, by scanning)."""
        try:
            parsed = decode_index(seg.index_path.read_bytes())
        except FileNotFoundError:
            parsed = None
        if parsed is not None and parsed[0] == seg.written:
            return parsed[2]
        log.warning("index of segment %d is missing or damaged; scanning it", seg.id)
        items = bytearray()
        for e, key in self._entries(seg, 0):
            items += index_item(e, key)
        return items

    def _abandon_compaction(self, closing: bool) -> None:
        """Stop a running compaction.

        When the store is closing, its outputs are removed: they only hold copies of records its inputs
        still have. After an error (disk full...) they stay, closed like any segment, since the directory
        already points into them; the inputs stay too, and a later compaction takes them again.
        """
        self._background.wait()  # no fsync may still run on a descriptor closed below
        if self._compaction is None:
            return
        self._compaction.close()  # type: ignore[attr-defined]
        self._compaction = None
        outputs = [self._segments[seg_id] for seg_id in sorted(self._outputs)]
        self._outputs.clear()
        for seg in outputs:
            if closing:
                del self._segments[seg.id]
                seg.remove()
            elif not seg.indexed:
                with contextlib.suppress(OSError):
                    self._close_segment(seg)
        fsync_dir(self.directory)

    # ------------------------------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        started = time.perf_counter()
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()
        ids = sorted(int(p.stem) for p in self.directory.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
        for seg_id in ids:
            seg = self._segments[seg_id] = Segment(self.directory / segment_name(seg_id), seg_id)
            self._load_segment(seg, keep_index=seg_id == ids[-1])
        last = self._segments[ids[-1]] if ids else None
        for seg in list(self._segments.values()):
            if seg is last:
                continue
            if not seg.written:
                del self._segments[seg.id]
                seg.remove()
            elif not seg.indexed:
                seg.unsynced = True  # what the last process wrote may not be on disk yet: sync, then index
                self._close_segment(seg)
        if last is not None and last.written < self.segment_bytes:
            self._active = self._writable(last)
            last.indexed = False
        else:
            if last is not None and not last.indexed:
                last.unsynced = True
                self._close_segment(last)
            self._active = self._writable(self._new_segment())
        self._recovery_s = time.perf_counter() - started
        if self._segments:
            log.info(
                "recovered %d keys from %d segments in %.2fs",
                len(self._dir),
                len(self._segments),
                self._recovery_s,
            )

    def _load_segment(self, seg: Segment, keep_index: bool) -> None:
        """Apply the records of ``seg`` to the directory: from its index file, then by scanning the rest.

        ``keep_index``: keep the index items in memory even when the file covers the segment (it may
        become the active segment again, whose index is rewritten whole when it closes).
        """
        covered = 0
        try:
            parsed = decode_index(seg.index_path.read_bytes())
        except FileNotFoundError:
            parsed = None
        if parsed is not None and parsed[0] <= seg.written:
            covered, count, items = parsed
            self._apply_all(seg, iter_index(items))
            seg.index = bytearray(items)
            seg.count = count
            self._counters["recovery_index_entries"] += count
        elif seg.index_path.exists():
            log.warning("index of segment %d is damaged; scanning the segment", seg.id)
        if covered == seg.written:
            seg.indexed = True
            if not keep_index:
                seg.index = bytearray()
            return
        self._apply_all(seg, self._scanned_items(seg, covered))

    def _scanned_items(self, seg: Segment, start: int) -> Iterator[tuple[int, bytes]]:
        """:meth:`_entries` of ``seg`` from ``start``, noted in its in-memory index as they pass."""
        index, scanned = seg.index, 0
        for e, key in self._entries(seg, start):
            index += index_item(e, key)
            scanned += 1
            yield e, key
        seg.count += scanned
        self._counters["recovery_scanned_records"] += scanned

    def _entries(self, seg: Segment, start: int) -> Iterator[tuple[int, bytes]]:
        """``(entry, key)`` of each valid record of ``seg`` from ``start``, read from the segment itself."""
        seg_bits = seg.id << 72
        for rec in self._scan_segment(seg, start):
            if rec.kind == PUT:
                summary = rec.digest if rec.flags == DIGEST_VERSION else self._summary_of(rec)
                if summary:
                    yield rec.size | rec.offset << 32 | seg_bits | summary << 96 | rec.seq << 160, rec.key
                else:
                    seg.dead += rec.size
            elif rec.kind == DELETE:
                yield rec.size | rec.offset << 32 | seg_bits | rec.seq << 160 | 1 << 224, rec.key
            else:  # a hint record has no business here: skip it like damage
                seg.dead += rec.size

    def _summary_of(self, rec: Record) -> int:
        """The digest of a put written under another digest version (0, counted, if it is no state)."""
        try:
            return state_digest(rec.key, unpack_state(rec.value))
        except Exception:  # noqa: BLE001 - CRC-valid bytes that are still no state: damaged
            self._counters["corrupt_records"] += 1
            return 0

    def _scan_segment(self, seg: Segment, start: int) -> Iterator[Record]:
        """The valid records of ``seg`` from ``start``: damage in the middle is counted, a torn tail cut."""
        if seg.written <= start:
            return
        torn = None  # (offset, bytes up to the last non-zero one): zeros after it are preallocation
        with mmap.mmap(seg.fd, seg.written, access=mmap.ACCESS_READ) as data:
            for item in scan(data, start, seg.written):
                if isinstance(item, Record):
                    yield item
                elif item.torn:
                    torn = item.offset, len(data[item.offset :].rstrip(b"\0"))
                else:
                    self._counters["corrupt_records"] += 1
                    seg.dead += item.size
                    log.warning("segment %d: %d damaged bytes at %d skipped", seg.id, item.size, item.offset)
        if torn is not None:
            offset, damaged = torn
            if damaged:  # only zeros: the preallocated end (segment.py), not a torn write
                log.warning("segment %d: torn tail of %d bytes at %d cut", seg.id, damaged, offset)
                self._counters["recovery_torn_bytes"] += damaged
            seg.truncate(offset)

    def _apply_all(self, seg: Segment, items: Iterator[tuple[int, bytes]]) -> None:
        """Recovery: each record ``(entry, key)`` of ``seg`` wins if it is its key's newest seen so far.

        An equal sequence number is a copy left by an interrupted compaction: the first seen stays.
        (The bookkeeping of :meth:`_supersede` inlined: with a million keys, recovery time is spent here.)
        """
        live, deleted, segments = self._dir, self._deleted, self._segments
        m24, m32, m64 = (1 << 24) - 1, (1 << 32) - 1, (1 << 64) - 1
        min_seq, max_seq = seg.min_seq, self._seq
        for e, key in items:
            seq = e >> 160 & m64
            if seq < min_seq:
                min_seq = seq
            if seq > max_seq:
                max_seq = seq
            is_delete = e >> 224
            if is_delete and seq > seg.max_delete_seq:
                seg.max_delete_seq = seq
            current = live.get(key)
            if current is not None:
                if current >> 160 & m64 >= seq:
                    seg.dead += e & m32
                    continue
                del live[key]
                self._live_bytes -= current & m32
                segments[current >> 72 & m24].dead += current & m32
            else:
                current = deleted.get(key)
                if current is not None:
                    if current >> 160 & m64 >= seq:
                        seg.dead += e & m32
                        continue
                    del deleted[key]
                    older = segments[current >> 72 & m24]
                    older.dead += current & m32
                    older.tomb_bytes -= current & m32
            if is_delete:
                deleted[key] = e
                seg.tomb_bytes += e & m32
            else:
                live[key] = e
                self._live_bytes += e & m32
        seg.min_seq, self._seq = min_seq, max_seq

    # ------------------------------------------------------------------------------------------ statistics

    def statistics(self) -> StoreStats:
        segments = self._segments.values()
        c = self._counters
        return StoreStats(
            engine="log",
            keys=len(self._dir),
            bytes=self._live_bytes,
            flushes=c["flushes"],
            fsyncs=c["fsyncs"],
            segments=len(self._segments),
            disk_bytes=sum(seg.size for seg in segments),
            dead_bytes=sum(seg.dead for seg in segments),
            deleted_keys=len(self._deleted),
            corrupt_records=c["corrupt_records"],
            compactions=c["compactions"],
            compacting=self._compaction is not None,
            cache_bytes=self._cache.bytes,
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            values_read=c["values_read"],
            recovery_s=round(self._recovery_s, 4),
            recovery_index_entries=c["recovery_index_entries"],
            recovery_scanned_records=c["recovery_scanned_records"],
            recovery_torn_bytes=c["recovery_torn_bytes"],
        )
