"""One append-only segment file of the log engine, with the bytes appended but not yet written.

A segment is written only at its end. Appends go to ``buf`` first (the group-commit buffer); ``write_out``
hands them to the OS and ``sync`` makes them durable. Reads see both: an offset past what the file holds
is served from ``buf``, so a value put in this loop turn reads back before the flush.

The segment being written may run ahead of its records with zeros (``preallocate``): an ``fdatasync``
that does not change the file's size flushes only data, with no journal commit: on ext4 here that is
about half the CPU and usually less waiting (docs/storage.md, "Preallocation"). ``written`` is where
the records end; the zeros after it are not records, and recovery reads them as the end of the segment.

A failed fsync is never retried (PostgreSQL's lesson: after a failed fsync the kernel may have dropped
the dirty pages and a second fsync "succeeds" over lost data). The log engine keeps the bytes written
since the last good fsync (``tail``, when ``keep_tail``) so that it can write them again into a fresh
segment and seal this one at ``synced``, the end of what an fsync did cover.

Test seam: when the environment names a trigger file in ``ZKV_TEST_FSYNC_FAULT``, the first fsync after
that file appears fails with EIO and removes it (how tests reach a real node's fsync error).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from zkv.storage.records import pread_exact, pwrite_all

SEGMENT_SUFFIX = ".log"
INDEX_SUFFIX = ".idx"
FSYNC_FAULT_TRIGGER = os.environ.get("ZKV_TEST_FSYNC_FAULT")  # tests only (module doc); read once


def _fsync_fault_injected() -> bool:
    """Take the test trigger file if it exists (one failed fsync per file)."""
    try:
        os.unlink(FSYNC_FAULT_TRIGGER)  # type: ignore[arg-type]
    except OSError:
        return False
    return True


def segment_name(seg_id: int) -> str:
    return f"{seg_id:08d}{SEGMENT_SUFFIX}"


class Segment:
    """An append-only file (``NNNNNNNN.log`` in a store's directory), open for reading and appending."""

    def __init__(self, path: Path, seg_id: int = 0) -> None:
        self.id = seg_id
        self.path = path
        self.index_path = self.path.with_suffix(INDEX_SUFFIX)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self.written = os.fstat(self.fd).st_size  # where the records end (recovery cuts zeros after them)
        self.allocated = self.written  # the file's size: ``written`` and the zeros after it
        self.preallocate = 0  # bytes of zeros to add beyond the records whenever a write grows the file
        self.buf = bytearray()  # bytes appended after ``written``, not yet handed to the OS
        self.unsynced = False  # written to the OS since the last fsync
        self.dead = 0  # bytes of superseded or damaged records
        self.min_seq = 1 << 64  # the oldest record here
        self.min_put_seq = 1 << 64  # the oldest put here (decides when a delete record may be dropped)
        self.tomb_bytes = 0  # bytes of delete records that are their key's newest record
        self.max_delete_seq = 0  # the newest delete record here, live or dead
        self.index = bytearray()  # index items of every record, while the segment is being written
        self.count = 0  # records in ``index``
        self.indexed = False  # an index file on disk covers the whole segment
        self.synced = self.written  # the end of what the last good fsync covered
        self.keep_tail = False  # keep the bytes written since that fsync (the log engine's active segment)
        self.tail = bytearray()  # those bytes, from ``synced`` to ``written``
        self.sync_failed = False  # an fsync failed: never fsync this segment again (module doc)

    @property
    def size(self) -> int:
        return self.written + len(self.buf)

    def append(self, data: bytes) -> int:
        """Queue ``data`` at the end; returns its offset."""
        offset = self.written + len(self.buf)
        self.buf += data
        return offset

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.written:
            start = offset - self.written
            return bytes(self.buf[start : start + size])
        return pread_exact(self.fd, size, offset)

    def write_out(self) -> None:
        """Hand the buffered bytes to the OS; on failure (disk full) the file is cut back to what it was.

        A write that grows the file also writes ``preallocate`` bytes of zeros after it, so that the
        next flushes land inside the file and their fsyncs need no journal commit.
        """
        if not self.buf:
            return
        end = self.written + len(self.buf)
        try:
            pwrite_all(self.fd, self.buf, self.written)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.written)  # the zeros go too: a later write adds them again
                self.allocated = self.written
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self.written = end
        if self.keep_tail:
            if self.tail:
                self.tail += self.buf
            else:
                self.tail, self.buf = self.buf, self.tail  # no copy on the hot path (one write per fsync)
        self.buf.clear()
        self.unsynced = True
        if end > self.allocated:
            self.allocated = end
            if self.preallocate:
                try:
                    pwrite_all(self.fd, bytes(self.preallocate), end)
                    self.allocated = end + self.preallocate
                except OSError:  # no room for zeros: go on without them (the next write will say if full)
                    with contextlib.suppress(OSError):
                        os.ftruncate(self.fd, end)

    def trim(self) -> None:
        """Drop the zeros after the records (a segment that is closed never grows again)."""
        if self.allocated > self.written:
            os.ftruncate(self.fd, self.written)
            self.allocated = self.written

    def sync(self) -> None:
        """fdatasync; on failure the caller must not call it again on this segment (module doc)."""
        if FSYNC_FAULT_TRIGGER is not None and _fsync_fault_injected():
            raise OSError(errno.EIO, f"fsync failed (injected by ZKV_TEST_FSYNC_FAULT): {self.path}")
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise OSError(exc.errno, f"fsync: {exc.strerror}", str(self.path)) from None
        self.unsynced = False
        self.synced = self.written
        self.tail.clear()

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self.written = self.allocated = size
        self.synced = min(self.synced, size)
        self.tail.clear()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def remove(self) -> None:
        self.close()
        for path in (self.path, self.index_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
