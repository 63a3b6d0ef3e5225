"""The log engine's files: segments in one data directory, and the key directory pointing into them.

The layer that the engine's front (``zkv.storage.log``), its recovery (``zkv.storage.logrecovery``) and
its compaction (``zkv.storage.compaction``) share. It knows where every key's newest record is, how much
of each segment is dead, how segments are created, closed (fsynced and indexed) and read back; it decides
nothing about when any of that happens.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Iterator
from pathlib import Path

from zkv.core.merkle import state_digest
from zkv.core.versions import unpack_state
from zkv.storage import records
from zkv.storage.keydir import KeyDirectory
from zkv.storage.records import (
    DELETE,
    DIGEST_VERSION,
    MAX_SEGMENT_ID,
    PUT,
    Record,
    decode_index,
    encode_index,
    entry,
    entry_offset,
    entry_segment,
    entry_size,
    fsync_dir,
    index_item,
    scan,
    write_atomic,
)
from zkv.storage.segment import Segment, segment_name

log = logging.getLogger(__name__)

PREALLOCATE_BYTES = 1024 * 1024  # zeros kept ahead of the active segment's records (see segment.py)
COUNTERS = (
    "flushes",
    "fsyncs",
    "corrupt_records",
    "compactions",
    "values_read",
    "recovery_index_entries",
    "recovery_scanned_records",
    "recovery_torn_bytes",
)


class LogFiles(KeyDirectory):
    """Segments of ``directory`` and the key directory (key -> packed entry, ``zkv.storage.records``)."""

    entry_digest = staticmethod(records.entry_digest)

    def __init__(self, directory: Path, fsync: str, segment_bytes: int) -> None:
        self.directory = directory
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.keydir: dict[bytes, int] = {}  # key -> entry of its newest record (a put)
        self.deleted: dict[bytes, int] = {}  # key -> entry of its newest record, when that is a delete
        self.segments: dict[int, Segment] = {}
        self.next_segment_id = 1  # never reused while open: a removed segment may still be unlinking
        self.seq = 0  # the newest sequence number written or recovered
        self.live_bytes = 0
        self.outputs: set[int] = set()  # segments a running compaction is writing
        self.active: Segment  # the segment appended to; set by recovery
        self.counters = dict.fromkeys(COUNTERS, 0)

    # ------------------------------------------------------------------------------------------ bookkeeping

    def supersede(self, key: bytes) -> None:
        """``key``'s current record (put or delete) is dead now: a newer one is about to be written."""
        old = self.keydir.pop(key, None)
        if old is not None:
            self.live_bytes -= entry_size(old)
            self.segments[entry_segment(old)].dead += entry_size(old)
            return
        old = self.deleted.pop(key, None)
        if old is not None:
            seg = self.segments[entry_segment(old)]
            seg.dead += entry_size(old)
            seg.tomb_bytes -= entry_size(old)

    def damaged(self, key: bytes, e: int) -> None:
        """A record failed its check on reading: count it, forget it (anti-entropy repairs the key)."""
        self.counters["corrupt_records"] += 1
        log.warning(
            "damaged record of key %r in segment %d at %d; dropped", key, entry_segment(e), entry_offset(e)
        )
        if self.keydir.get(key) == e:
            del self.keydir[key]
            self.live_bytes -= entry_size(e)
            self.segments[entry_segment(e)].dead += entry_size(e)

    def closed_segments(self) -> Iterator[Segment]:
        """Segments that never change again: not the active one, not a compaction's output, not empty."""
        for seg in self.segments.values():
            if seg is not self.active and seg.id not in self.outputs and seg.written:
                yield seg

    # ------------------------------------------------------------------------------------------ lifecycle

    def new_segment(self, durable: bool = True) -> Segment:
        """A new empty segment; ``durable``: its name is fsynced into the directory now."""
        seg_id = self.next_segment_id = max(self.next_segment_id, max(self.segments, default=0) + 1)
        self.next_segment_id += 1
        if seg_id > MAX_SEGMENT_ID:
            raise OSError(f"{self.directory}: out of segment ids")
        seg = Segment(self.directory / segment_name(seg_id), seg_id)
        self.segments[seg_id] = seg
        if durable:
            fsync_dir(self.directory)
        return seg

    def writable(self, seg: Segment) -> Segment:
        """``seg`` as the active segment: it keeps zeros ahead of its records, for cheaper fsyncs, and
        the bytes not yet fsynced, to write them again elsewhere if an fsync fails."""
        seg.preallocate = min(PREALLOCATE_BYTES, self.segment_bytes // 4)
        seg.keep_tail = self.fsync != "never"
        return seg

    def close_segment(self, seg: Segment, sync: bool = True) -> None:
        """Make ``seg`` durable (unless ``sync`` is off) and write its index file: it is read-only now."""
        seg.write_out()
        if seg.unsynced and sync:
            seg.sync()
            self.counters["fsyncs"] += 1
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

    # ------------------------------------------------------------------------------------------ reading back

    def index_items(self, seg: Segment) -> bytes | bytearray | memoryview:
        """The index items of a closed segment, from its index file (or, if that is damaged, by scanning)."""
        try:
            parsed = decode_index(seg.index_path.read_bytes())
        except FileNotFoundError:
            parsed = None
        if parsed is not None and parsed[0] == seg.written:
            return parsed[2]
        log.warning("index of segment %d is missing or damaged; scanning it", seg.id)
        items = bytearray()
        for e, key in self.entries(seg, 0):
            items += index_item(e, key)
        return items

    def entries(self, seg: Segment, start: int) -> Iterator[tuple[int, bytes]]:
        """``(entry, key)`` of each valid record of ``seg`` from ``start``, read from the segment itself."""
        for rec in self.scan_segment(seg, start):
            if rec.kind == PUT:
                summary = rec.digest if rec.flags == DIGEST_VERSION else self._summary_of(rec)
                if summary:
                    yield entry(rec.size, rec.offset, seg.id, summary, rec.seq), rec.key
                else:
                    seg.dead += rec.size
            elif rec.kind == DELETE:
                yield entry(rec.size, rec.offset, seg.id, 0, rec.seq, deleted=True), rec.key
            else:  # a hint record has no business here: skip it like damage
                seg.dead += rec.size

    def _summary_of(self, rec: Record) -> int:
        """The digest of a put written under another digest version (0, counted, if it is no state)."""
        try:
            return state_digest(rec.key, unpack_state(rec.value))
        except Exception:  # noqa: BLE001 - CRC-valid bytes that are still no state: damaged
            self.counters["corrupt_records"] += 1
            return 0

    def scan_segment(self, seg: Segment, start: int) -> Iterator[Record]:
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
                    self.counters["corrupt_records"] += 1
                    seg.dead += item.size
                    log.warning("segment %d: %d damaged bytes at %d skipped", seg.id, item.size, item.offset)
        if torn is not None:
            offset, damaged = torn
            if damaged:  # only zeros: the preallocated end (segment.py), not a torn write
                log.warning("segment %d: torn tail of %d bytes at %d cut", seg.id, damaged, offset)
                self.counters["recovery_torn_bytes"] += damaged
            seg.truncate(offset)

    def close_all(self) -> None:
        """Close every segment's descriptor (the files stay)."""
        for seg in self.segments.values():
            seg.close()
