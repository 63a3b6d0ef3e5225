"""Recovery of the log engine: rebuild the key directory from index files and segments at start.

Index files are read where they cover their segment; only what no index covers is scanned (the segment
that was active at a crash, or a segment whose index is damaged). The newest sequence number of a key
wins, so segment order never matters, and a crash mid-compaction (inputs and copies both present) is
harmless. A torn tail fails its CRC and is cut; a damaged record in the middle is skipped and counted
(``LogFiles.scan_segment``). Then every segment but the last is closed (indexed), and the last one is
appended to again unless it is full.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from zkv.storage.logfiles import LogFiles
from zkv.storage.records import (
    DELETED_SHIFT,
    SEGMENT_MASK,
    SEGMENT_SHIFT,
    SEQ_MASK,
    SEQ_SHIFT,
    SIZE_MASK,
    decode_index,
    index_item,
    iter_index,
)
from zkv.storage.segment import SEGMENT_SUFFIX, Segment, segment_name

log = logging.getLogger(__name__)


def recover(files: LogFiles) -> float:
    """Load every segment of ``files.directory`` into ``files``, set its active segment; seconds taken."""
    started = time.perf_counter()
    for tmp in files.directory.glob("*.tmp"):
        tmp.unlink()
    ids = sorted(int(p.stem) for p in files.directory.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
    for seg_id in ids:
        seg = files.segments[seg_id] = Segment(files.directory / segment_name(seg_id), seg_id)
        _load_segment(files, seg, keep_index=seg_id == ids[-1])
    last = files.segments[ids[-1]] if ids else None
    for seg in list(files.segments.values()):
        if seg is last:
            continue
        if not seg.written:
            del files.segments[seg.id]
            seg.remove()
        elif not seg.indexed:
            seg.unsynced = True  # what the last process wrote may not be on disk yet: sync, then index
            files.close_segment(seg)
    if last is not None and last.written < files.segment_bytes:
        files.active = files.writable(last)
        last.indexed = False
    else:
        if last is not None and not last.indexed:
            last.unsynced = True
            files.close_segment(last)
        files.active = files.writable(files.new_segment())
    elapsed = time.perf_counter() - started
    if files.segments:
        log.info(
            "recovered %d keys from %d segments in %.2fs", len(files.keydir), len(files.segments), elapsed
        )
    return elapsed


def _load_segment(files: LogFiles, seg: Segment, keep_index: bool) -> None:
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
        _apply_all(files, seg, iter_index(items))
        seg.index = bytearray(items)
        seg.count = count
        files.counters["recovery_index_entries"] += count
    elif seg.index_path.exists():
        log.warning("index of segment %d is damaged; scanning the segment", seg.id)
    if covered == seg.written:
        seg.indexed = True
        if not keep_index:
            seg.index = bytearray()
        return
    _apply_all(files, seg, _scanned_items(files, seg, covered))


def _scanned_items(files: LogFiles, seg: Segment, start: int) -> Iterator[tuple[int, bytes]]:
    """``LogFiles.entries`` of ``seg`` from ``start``, noted in its in-memory index as they pass."""
    index, scanned = seg.index, 0
    for e, key in files.entries(seg, start):
        index += index_item(e, key)
        scanned += 1
        yield e, key
    seg.count += scanned
    files.counters["recovery_scanned_records"] += scanned


def _apply_all(files: LogFiles, seg: Segment, items: Iterator[tuple[int, bytes]]) -> None:
    """Each record ``(entry, key)`` of ``seg`` wins if it is its key's newest seen so far.

    An equal sequence number is a copy left by an interrupted compaction: the first seen stays.
    (``LogFiles.supersede`` and the entry accessors of ``zkv.storage.records``, inlined over the layout's
    named shifts and masks: with a million keys, recovery time is spent in this loop.)
    """
    live, deleted, segments = files.keydir, files.deleted, files.segments
    size_mask, seq_shift, seq_mask = SIZE_MASK, SEQ_SHIFT, SEQ_MASK
    seg_shift, seg_mask, deleted_shift = SEGMENT_SHIFT, SEGMENT_MASK, DELETED_SHIFT
    min_seq, min_put_seq, max_seq = seg.min_seq, seg.min_put_seq, files.seq
    live_bytes = files.live_bytes
    for e, key in items:
        seq = e >> seq_shift & seq_mask
        if seq < min_seq:
            min_seq = seq
        if seq > max_seq:
            max_seq = seq
        is_delete = e >> deleted_shift
        if not is_delete and seq < min_put_seq:
            min_put_seq = seq
        if is_delete and seq > seg.max_delete_seq:
            seg.max_delete_seq = seq
        current = live.get(key)
        if current is not None:
            if current >> seq_shift & seq_mask >= seq:
                seg.dead += e & size_mask
                continue
            del live[key]
            live_bytes -= current & size_mask
            segments[current >> seg_shift & seg_mask].dead += current & size_mask
        else:
            current = deleted.get(key)
            if current is not None:
                if current >> seq_shift & seq_mask >= seq:
                    seg.dead += e & size_mask
                    continue
                del deleted[key]
                older = segments[current >> seg_shift & seg_mask]
                older.dead += current & size_mask
                older.tomb_bytes -= current & size_mask
        if is_delete:
            deleted[key] = e
            seg.tomb_bytes += e & size_mask
        else:
            live[key] = e
            live_bytes += e & size_mask
    seg.min_seq, seg.min_put_seq, files.seq, files.live_bytes = min_seq, min_put_seq, max_seq, live_bytes
