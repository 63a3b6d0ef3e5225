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

A record is dead once a newer record of its key exists. **Compaction** (``zkv.storage.compaction``, in
slices of a few ms between loop turns) rewrites the live records of closed segments whose dead share
passed ``compaction_threshold``. Tombstone states are ordinary states and survive; delete records
(:meth:`LogStore.delete`: a tombstone the core purged) go once nothing older of their key remains.

**Recovery** (``zkv.storage.logrecovery``) rebuilds the directory from index files, scanning only what no
index covers. A damaged record met later (by ``get`` or by compaction) is counted, and its key is dropped
from the directory so anti-entropy can repair it: a damaged value is never returned.

The module's parts: ``zkv.storage.records`` (the bytes of records, index files and directory entries),
``zkv.storage.segment`` (one segment file), ``zkv.storage.logfiles`` (the segments and the key directory),
recovery, compaction, and this front, which is the engine's ``Store``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack

from zkv.core.merkle import packed_digest
from zkv.core.versions import KeyState, pack_state, unpack_state
from zkv.storage.base import FSYNC_POLICIES, StoreStats
from zkv.storage.cache import CACHE_ENTRY_OVERHEAD_BYTES, ValueCache
from zkv.storage.compaction import Compactor
from zkv.storage.logfiles import LogFiles
from zkv.storage.logrecovery import recover
from zkv.storage.paxoslog import PaxosJournal
from zkv.storage.records import (
    DELETE,
    DIGEST_VERSION,
    LOCATION_MASK,
    PUT,
    DirLock,
    decode,
    encode,
    entry,
    entry_deleted,
    entry_digest,
    entry_offset,
    entry_segment,
    entry_seq,
    entry_size,
    index_item,
    iter_index,
    relocate,
    write_atomic,
)
from zkv.storage.segment import Segment

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
DEFAULT_COMPACTION_THRESHOLD = 0.5
DEFAULT_COMPACTION_MIN_BYTES = 4 * 1024 * 1024
SPILL_BYTES = 1024 * 1024  # a turn that buffers more than this hands it to the OS early (no fsync)
META_FILE = "meta.msgpack"
ACTIVE_RECLAIM_MIN_BYTES = 64 * 1024  # a mostly dead active segment smaller than this stays open


class LogStore(LogFiles):
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
        super().__init__(Path(data_dir), fsync, segment_bytes)
        self.fsync_interval = fsync_interval_ms / 1000
        self.compaction_threshold = compaction_threshold
        self.compaction_min_bytes = compaction_min_bytes
        self._clock = clock
        self._cache = ValueCache(cache_bytes)
        self._last_sync = clock()
        self._compactor = Compactor(self, compaction_threshold, compaction_min_bytes)
        self._closed = False
        self._recovery_s = 0.0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = DirLock(self.directory)
        try:
            self._recovery_s = recover(self)
            self._paxos = PaxosJournal(self.directory, fsync)
        except BaseException:
            self.close_all()
            self._lock.release()
            raise

    # ------------------------------------------------------------------------------------------ reads

    def get(self, key: bytes) -> KeyState | None:
        state = self._cache.get(key)
        if state is not None:
            return state
        e = self.keydir.get(key)
        if e is None:
            return None
        size = entry_size(e)
        data = self.segments[entry_segment(e)].read(entry_offset(e), size)
        self.counters["values_read"] += 1
        rec = decode(data)
        if rec is None or rec.kind != PUT or rec.key != key:
            self.damaged(key, e)
            return None
        try:
            state = unpack_state(rec.value)
        except Exception:  # noqa: BLE001 - a CRC-valid record that is still not a state: damaged too
            self.damaged(key, e)
            return None
        self._cache.put(key, state, size + CACHE_ENTRY_OVERHEAD_BYTES)
        return state

    # ------------------------------------------------------------------------------------------ writes

    def put(self, key: bytes, state: KeyState) -> None:
        packed = pack_state(state)
        summary = packed_digest(key, packed)  # hashes the stored bytes: one msgpack pass per state
        self.seq += 1
        record = encode(PUT, self.seq, key, packed, summary, DIGEST_VERSION)
        seg = self.active
        e = entry(len(record), seg.append(record), seg.id, summary, self.seq)
        self.supersede(key)
        self.keydir[key] = e
        self.live_bytes += len(record)
        self._note(seg, e, key)
        self._cache.put(key, state, len(record) + CACHE_ENTRY_OVERHEAD_BYTES)

    def delete(self, key: bytes) -> None:
        """Remove ``key`` for good with a delete record (purging a tombstone is the core's decision)."""
        if key not in self.keydir:
            return
        self.seq += 1
        record = encode(DELETE, self.seq, key)
        seg = self.active
        e = entry(len(record), seg.append(record), seg.id, 0, self.seq, deleted=True)
        self.supersede(key)
        self.deleted[key] = e
        self._note(seg, e, key)
        self._cache.discard(key)

    def _note(self, seg: Segment, e: int, key: bytes) -> None:
        seg.index += index_item(e, key)
        seg.count += 1
        seg.min_seq = min(seg.min_seq, self.seq)
        if not entry_deleted(e):
            seg.min_put_seq = min(seg.min_put_seq, self.seq)
        if entry_deleted(e):
            seg.tomb_bytes += entry_size(e)
            seg.max_delete_seq = self.seq
        if len(seg.buf) >= SPILL_BYTES:
            with contextlib.suppress(OSError):  # disk full: the buffer stays, and flush() reports it
                seg.write_out()

    def damaged(self, key: bytes, e: int) -> None:
        """As ``LogFiles.damaged``, and the key's cached value goes too."""
        super().damaged(key, e)
        self._cache.discard(key)

    # ------------------------------------------------------------------------------------------ durability

    def paxos_get(self, key: bytes) -> bytes | None:
        return self._paxos.get(key)

    def paxos_put(self, key: bytes, blob: bytes) -> None:
        self._paxos.put(key, blob)

    def paxos_keys(self) -> list[bytes]:
        return self._paxos.keys()

    def needs_flush(self) -> bool:
        """Is something buffered or not yet fsynced that a later :meth:`flush` must take care of?"""
        seg = self.active
        return (
            self._paxos.needs_flush()
            or bool(seg.buf)
            or seg.sync_failed
            or (self.fsync == "interval" and seg.unsynced)
        )

    def flush(self) -> None:
        """The group commit: write every buffered record, and fsync once if the policy asks for it now.

        Raises ``OSError`` when the disk refuses (full, or an I/O error); nothing buffered is lost then,
        and a later flush tries again. A write that failed is cut back off the file; an fsync that failed
        is never retried: the segment is sealed where the last good fsync ended and what it held since
        is written again into a new segment (:meth:`_seal_after_failed_sync`).
        """
        self._paxos.flush()  # acceptor state: its own small file (zkv.storage.paxoslog)
        if self.active.sync_failed:  # the seal did not finish (no room for a new segment): again
            self._seal_after_failed_sync(self.active)
        seg = self.active
        if seg.buf:
            seg.write_out()
            self.counters["flushes"] += 1
        if seg.unsynced and self.fsync != "never":
            now = self._clock()
            if self.fsync == "always" or now - self._last_sync >= self.fsync_interval:
                self._sync_active(seg)
                self.counters["fsyncs"] += 1
                self._last_sync = now
        if seg.written >= self.segment_bytes:
            # "never" does not fsync even here: after a power cut an index may then point at lost
            # records, which the CRC check on reading catches (the key reads as missing, never wrong)
            if seg.unsynced and self.fsync != "never":
                self._sync_active(seg)
            self.close_segment(seg, sync=self.fsync != "never")
            self.active = self.writable(self.new_segment(durable=self.fsync != "never"))

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
        fresh = self.writable(self.new_segment(durable=False))
        start, tail = seg.synced, bytes(seg.tail) + bytes(seg.buf)  # every record from ``start`` on
        kept, count = bytearray(), 0
        for e, key in iter_index(bytes(seg.index)):
            offset, size = entry_offset(e), entry_size(e)
            if offset < start:
                kept += index_item(e, key)
                count += 1
                continue
            table = self.deleted if entry_deleted(e) else self.keydir
            current = table.get(key)
            if current is None or current & LOCATION_MASK != e & LOCATION_MASK:
                continue  # superseded already: nothing to carry over
            moved = relocate(current, fresh.id, fresh.append(tail[offset - start : offset - start + size]))
            table[key] = moved
            fresh.index += index_item(moved, key)
            fresh.count += 1
            fresh.min_seq = min(fresh.min_seq, entry_seq(moved))
            if table is self.keydir:
                fresh.min_put_seq = min(fresh.min_put_seq, entry_seq(moved))
            seg.dead += size
            if table is self.deleted:
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
            self.close_segment(seg, sync=False)
        self.active = fresh

    def seal(self) -> list[Path]:
        """Close the active segment (fsynced, indexed) and start a new one; the files a snapshot links.

        Every record written so far is then in a closed segment, which never changes again. The new
        active segment's name is made durable first, so a restart never reopens a sealed (possibly
        hard-linked) segment for appending. A running compaction's outputs are left out: they hold
        copies of records their inputs, which are listed, still hold.
        """
        if self.active.size:
            seg = self.active
            seg.write_out()
            if seg.unsynced:  # as flush does: a failed fsync is handled once, never retried
                self._sync_active(seg)
                self.counters["fsyncs"] += 1
            self.close_segment(seg)
            self.active = self.writable(self.new_segment(durable=True))
        files = []
        for seg in sorted(self.closed_segments(), key=lambda s: s.id):
            files.append(seg.path)
            if seg.index_path.exists():
                files.append(seg.index_path)
        return files

    def snapshot_meta(self) -> dict:
        """What the sealed segments hold, for a snapshot's manifest: keys, record bytes, Merkle root."""
        from zkv.storage.snapshot import merkle_root

        return {
            "keys": len(self.keydir),
            "bytes": self.live_bytes,
            "merkle_root": merkle_root((key, entry_digest(e)) for key, e in self.keydir.items()),
        }

    def close(self) -> None:
        """Flush and fsync everything, index the active segment and release the directory."""
        if self._closed:
            return
        self._closed = True
        try:
            self._compactor.abandon(closing=True)
            self.close_segment(self.active)
            self._paxos.flush()
        except OSError as exc:  # disk full or failing: what is not on disk was never acknowledged
            log.error("closing the log store in %s: %s", self.directory, exc)
        finally:
            self.close_all()
            self._paxos.release()
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
        """Do up to ``budget_s`` of compaction (``zkv.storage.compaction``); True while more remains.

        With nothing else to compact, an active segment that is mostly reclaimable (after a purge: the
        delete records, once the older segments are gone) is closed, so that compaction can take it too
        and the disk goes back to near empty; an idle store would otherwise keep it forever.
        """
        if self._compactor.step(budget_s):
            return True
        seg = self.active
        if seg.written < ACTIVE_RECLAIM_MIN_BYTES or self._compactor.running:
            return False
        free = self._compactor.reclaimable(seg)
        if free < self.compaction_threshold * seg.written or not self._compactor.worth():
            return False
        self.seal()
        return True

    # ------------------------------------------------------------------------------------------ statistics

    def statistics(self) -> StoreStats:
        segments = self.segments.values()
        c = self.counters
        return StoreStats(
            engine="log",
            keys=len(self.keydir),
            bytes=self.live_bytes,
            flushes=c["flushes"],
            fsyncs=c["fsyncs"],
            segments=len(self.segments),
            disk_bytes=sum(seg.size for seg in segments),
            dead_bytes=sum(seg.dead for seg in segments),
            deleted_keys=len(self.deleted),
            corrupt_records=c["corrupt_records"],
            compactions=c["compactions"],
            compacting=self._compactor.running,
            cache_bytes=self._cache.bytes,
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            values_read=c["values_read"],
            recovery_s=round(self._recovery_s, 4),
            recovery_index_entries=c["recovery_index_entries"],
            recovery_scanned_records=c["recovery_scanned_records"],
            recovery_torn_bytes=c["recovery_torn_bytes"],
        )
