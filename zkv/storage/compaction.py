"""Compaction of the log engine: rewrite the live records of mostly-dead segments, in short slices.

A record is dead once a newer record of its key exists. :meth:`Compactor.step` (a few ms between loop
turns) rewrites the live records of closed segments whose reclaimable share passed the threshold into
new segments, byte for byte (records hold no offsets), moving each key's directory entry as it goes; a
put that lands between slices simply wins, since only records the directory still points at are copied.
The outputs are fsynced and named durably before the inputs are removed. Delete records (a purged
tombstone's) are dropped only when no other segment could hold an older record of their key.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import os
import time
from collections.abc import Iterator
from concurrent import futures

from zkv.storage.background import BackgroundIO, sync_all
from zkv.storage.logfiles import LogFiles
from zkv.storage.records import (
    LOCATION_MASK,
    decode,
    entry_deleted,
    entry_offset,
    entry_seq,
    entry_size,
    fsync_dir,
    index_item,
    iter_index,
    relocate,
)
from zkv.storage.segment import Segment

log = logging.getLogger(__name__)

COMPACTION_SYNC_BYTES = 256 * 1024  # compaction writes and fsyncs its output in steps this big


class Compactor:
    """Compaction of ``files``, run a slice at a time; its fsyncs and unlinks run in a helper thread."""

    def __init__(self, files: LogFiles, threshold: float, min_bytes: int) -> None:
        self.files = files
        self.threshold = threshold
        self.min_bytes = min_bytes
        self._running: Iterator[futures.Future | None] | None = None
        self._background = BackgroundIO()

    @property
    def running(self) -> bool:
        return self._running is not None

    def step(self, budget_s: float = 0.005) -> bool:
        """Do up to ``budget_s`` of compaction; True while more remains (call again when idle).

        The slice copies records and writes to the OS; the fsyncs run in a helper thread, and a slice
        that reaches a point where it must wait for one waits at most until its budget is spent.
        """
        if self._running is None:
            inputs = self.inputs()
            if not inputs:
                return False
            self._running = self._compact(inputs)
        deadline = time.perf_counter() + budget_s
        try:
            for waiting in self._running:
                if waiting is not None:
                    futures.wait([waiting], timeout=max(0.0, deadline - time.perf_counter()))
                    if not waiting.done():
                        return True
                if time.perf_counter() >= deadline:
                    return True
        except BaseException:
            self.abandon(closing=False)
            raise
        self._running = None
        return bool(self.inputs())

    def inputs(self) -> list[Segment]:
        """Closed segments whose reclaimable share passed the threshold, if together they free enough:
        ``min_bytes``, or half of what the store holds on disk (so a small store is compacted too).
        """
        closed = list(self.files.closed_segments())
        chosen = [
            seg for seg in closed if (free := self.reclaimable(seg)) and free >= self.threshold * seg.written
        ]
        if chosen and self.worth():
            return sorted(chosen, key=lambda seg: seg.id)
        # Delete records (of purged keys) can hold each other back across segments: each segment's dead
        # puts are older than another's deletes, and no segment alone passes the threshold. When the
        # store as a whole is mostly dead or deleted, rewrite every segment with dead records once: that
        # removes those puts, and the next pass drops the deletes (it stops there: copies hold no dead).
        segments = self.files.segments.values()
        dead = sum(seg.dead + seg.tomb_bytes for seg in segments)
        if dead < self.threshold * sum(seg.written for seg in segments) or not self.worth(dead):
            return []
        return sorted((seg for seg in closed if seg.dead), key=lambda seg: seg.id)

    def worth(self, reclaimable: int | None = None) -> bool:
        """Is there enough to reclaim (``reclaimable``, or what every segment, the active one too, would
        free now) to compact:
        ``min_bytes``, or half of what the store holds on disk (so that a small store is compacted too)?

        Counted store-wide, not only over the segments chosen: freeing one segment is often what lets
        another's delete records go (see :meth:`_may_drop_delete`), so a pass that frees little alone
        still opens the way for the next.
        """
        segments = self.files.segments.values()
        if reclaimable is None:
            reclaimable = sum(self.reclaimable(seg) for seg in segments if seg.id not in self.files.outputs)
        disk = sum(seg.written for seg in segments)
        return reclaimable > 0 and reclaimable >= min(self.min_bytes, disk / 2)

    def reclaimable(self, seg: Segment) -> int:
        """Bytes compaction would free in ``seg``: dead records, and delete records once nothing older
        than them is left elsewhere."""
        free = seg.dead
        if seg.tomb_bytes and self._may_drop_delete(seg, seg.max_delete_seq):
            free += seg.tomb_bytes
        return free

    def _compact(self, inputs: list[Segment]) -> Iterator[futures.Future | None]:
        """Copy the live records of ``inputs`` to new segments, then remove ``inputs``.

        Yields after each record (None) or a future to wait for (a background fsync). The inputs go only
        once every output is fsynced and named durably in the directory; the outputs' index files need
        no fsync (see ``LogFiles.close_segment``).
        """
        files = self.files
        outputs: list[Segment] = []
        syncing: futures.Future | None = None
        for seg in inputs:
            items = files.index_items(seg)
            yield None
            if not seg.written:
                continue
            with mmap.mmap(seg.fd, seg.written, access=mmap.ACCESS_READ) as data:
                for e, key in iter_index(items):
                    yield None
                    table = files.deleted if entry_deleted(e) else files.keydir
                    current = table.get(key)
                    if current is None or current & LOCATION_MASK != e & LOCATION_MASK:
                        continue  # dead
                    offset, size = entry_offset(e), entry_size(e)
                    raw = data[offset : offset + size]
                    rec = decode(raw)
                    if rec is None or rec.key != key or rec.seq != entry_seq(e):
                        if table is files.keydir:
                            files.damaged(key, e)
                        else:
                            files.counters["corrupt_records"] += 1
                            del table[key]
                        continue
                    if table is files.deleted and self._may_drop_delete(seg, rec.seq):
                        del table[key]
                        continue
                    out = outputs[-1] if outputs else None
                    if out is None or out.size >= files.segment_bytes:
                        if out is not None:
                            files.close_segment(out, sync=False)
                        out = files.new_segment(durable=False)
                        files.outputs.add(out.id)
                        outputs.append(out)
                    moved = relocate(current, out.id, out.append(raw))
                    table[key] = moved
                    out.index += index_item(moved, key)
                    out.count += 1
                    out.min_seq = min(out.min_seq, rec.seq)
                    if table is files.keydir:
                        out.min_put_seq = min(out.min_put_seq, rec.seq)
                    if table is files.deleted:
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
        files.active.write_out()
        if files.fsync != "never":
            fds.append(files.active.fd)
        done = self._background.run(functools.partial(sync_all, fds, files.directory))
        yield done
        try:
            done.result()  # an fsync error ends the compaction here, before any input is removed
        except OSError:
            files.active.sync_failed = True  # it fsynced the active segment too: never trust that again
            raise
        files.counters["fsyncs"] += len(outputs) + 1
        for out in outputs:
            out.unsynced = False
            if not out.indexed:
                files.close_segment(out, sync=False)
                yield None
        for seg in inputs:
            del files.segments[seg.id]
            seg.close()
            # unlinking a big file takes ms: the helper thread does it (the loop never reuses the name)
            self._background.run(seg.remove)
        self._background.run(functools.partial(fsync_dir, files.directory))  # the inputs are gone for good
        files.outputs.clear()
        files.counters["compactions"] += 1
        log.info("compaction: %d segments rewritten into %d", len(inputs), len(outputs))

    def _may_drop_delete(self, seg: Segment, seq: int) -> bool:
        """A delete record may go once no other segment can hold an older put of its key.

        Older records of the key in ``seg`` itself disappear with it, in one unlink; an older delete
        record elsewhere does no harm (the key stays deleted), so segments of delete records alone (what
        compacting purged tombstones leaves) never hold each other's back.
        """
        return all(
            other.min_put_seq > seq
            for other in self.files.segments.values()
            if other is not seg and other.id not in self.files.outputs
        )

    def abandon(self, closing: bool) -> None:
        """Stop a running compaction.

        When the store is closing, its outputs are removed: they only hold copies of records its inputs
        still have. After an error (disk full...) they stay, closed like any segment, since the directory
        already points into them; the inputs stay too, and a later compaction takes them again.
        """
        self._background.wait()  # no fsync may still run on a descriptor closed below
        if self._running is None:
            return
        self._running.close()  # type: ignore[attr-defined]
        self._running = None
        files = self.files
        outputs = [files.segments[seg_id] for seg_id in sorted(files.outputs)]
        files.outputs.clear()
        for seg in outputs:
            if closing:
                del files.segments[seg.id]
                seg.remove()
            elif not seg.indexed:
                with contextlib.suppress(OSError):
                    files.close_segment(seg)
        fsync_dir(files.directory)
