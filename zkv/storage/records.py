"""On-disk formats of the log engine: framed records, index files, and the small file helpers they need.

Record (every write, in segment and hint files), big-endian::

    magic  2s  b"\\xb7K"
    kind   B   PUT=1, DELETE=2, HINT=3, HINT_DONE=4, PAXOS=5 (acceptor state, in paxos.acceptors only)
    flags  B   0 (reserved)
    klen   H   key length
    vlen   I   value length (the packed KeyState; 0 for a delete)
    seq    Q   store-wide sequence number: the newest record of a key wins, wherever it sits
    digest Q   a put's version summary (``zkv.core.merkle.state_digest``; flags = DIGEST_VERSION), else 0
    bcrc   I   CRC32 of key + value
    hcrc   I   CRC32 of the 30 header bytes before it
    key, value

The header has its own CRC so that a damaged length is caught before it is believed; a scanner that meets
a bad record looks for the next offset where the magic, the header CRC and the body CRC all hold (a random
match is ~2^-80 per byte offset). Records carry no offset, so compaction copies them byte for byte.

Index file (one per closed segment, ``NNNNNNNN.idx``): what recovery needs without reading a value::

    magic 8s  covered_size Q  count Q  { entry 29s (little-endian int)  klen H  key } * count  crc I

``covered_size`` is how many bytes of the segment the index describes; recovery scans only beyond it.
An *entry* is one int packing a key's location and version summary (see :func:`entry`), which is also what
the in-memory key directory holds per key: one int object is the cheapest per-key record Python has.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

MAGIC = b"\xb7K"
HEADER = struct.Struct(">2sBBHIQQII")
HEADER_BYTES = HEADER.size  # 34
_HCRC_SPAN = HEADER_BYTES - 4
DIGEST_VERSION = 1  # in a put's flags: its digest is state_digest as of this version
MAX_KEY_BYTES = 0xFFFF

PUT, DELETE, HINT, HINT_DONE, PAXOS = 1, 2, 3, 4, 5
KINDS = frozenset((PUT, DELETE, HINT, HINT_DONE, PAXOS))

# The packed directory entry, one int per key (the bit layout, stated once; recovery's hot loop binds
# these names instead of calling the accessors below):
#   size | offset << OFFSET_SHIFT | segment << SEGMENT_SHIFT | digest << DIGEST_SHIFT | seq << SEQ_SHIFT
#   | deleted << DELETED_SHIFT
OFFSET_SHIFT, SEGMENT_SHIFT, DIGEST_SHIFT, SEQ_SHIFT, DELETED_SHIFT = 32, 72, 96, 160, 224
SIZE_MASK, OFFSET_MASK, SEGMENT_MASK, DIGEST_MASK, SEQ_MASK = (
    (1 << 32) - 1,
    (1 << 40) - 1,
    (1 << 24) - 1,
    (1 << 64) - 1,
    (1 << 64) - 1,
)
LOCATION_MASK = (1 << DIGEST_SHIFT) - 1  # size, offset and segment: where a record is
ENTRY_BYTES = 29
MAX_SEGMENT_ID = SEGMENT_MASK
MAX_OFFSET = OFFSET_MASK

INDEX_MAGIC = b"ZKIDX\x01\n\x00"
_INDEX_HEAD = struct.Struct("<QQ")
_KLEN = struct.Struct("<H")


def entry(size: int, offset: int, segment: int, digest: int, seq: int, deleted: bool = False) -> int:
    return (
        size
        | offset << OFFSET_SHIFT
        | segment << SEGMENT_SHIFT
        | digest << DIGEST_SHIFT
        | seq << SEQ_SHIFT
        | int(deleted) << DELETED_SHIFT
    )


def entry_size(e: int) -> int:
    return e & SIZE_MASK


def entry_offset(e: int) -> int:
    return (e >> OFFSET_SHIFT) & OFFSET_MASK


def entry_segment(e: int) -> int:
    return (e >> SEGMENT_SHIFT) & SEGMENT_MASK


def entry_digest(e: int) -> int:
    return (e >> DIGEST_SHIFT) & DIGEST_MASK


def entry_seq(e: int) -> int:
    return (e >> SEQ_SHIFT) & SEQ_MASK


def entry_deleted(e: int) -> bool:
    return bool(e >> DELETED_SHIFT)


def relocate(e: int, segment: int, offset: int) -> int:
    """The same record, copied to ``offset`` of ``segment``."""
    where = (OFFSET_MASK << OFFSET_SHIFT) | (SEGMENT_MASK << SEGMENT_SHIFT)
    return (e & ~where) | offset << OFFSET_SHIFT | segment << SEGMENT_SHIFT


# ---------------------------------------------------------------------------------------------- records


def encode(kind: int, seq: int, key: bytes, value: bytes = b"", digest: int = 0, flags: int = 0) -> bytes:
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"key is {len(key)} bytes; the log engine stores keys up to {MAX_KEY_BYTES}")
    body = key + value
    head = struct.pack(">2sBBHIQQI", MAGIC, kind, flags, len(key), len(value), seq, digest, zlib.crc32(body))
    return head + struct.pack(">I", zlib.crc32(head)) + body


class Record(NamedTuple):
    offset: int
    size: int
    kind: int
    seq: int
    key: bytes
    value: bytes
    flags: int = 0
    digest: int = 0


def record_size_at(buf: bytes | bytearray | memoryview | mmap.mmap, pos: int, end: int) -> int:
    """The size of the valid record at ``pos`` (header and body CRCs hold, fits before ``end``), else 0."""
    if end - pos < HEADER_BYTES:
        return 0
    magic, kind, _flags, klen, vlen, _seq, _digest, bcrc, hcrc = HEADER.unpack_from(buf, pos)
    if magic != MAGIC or kind not in KINDS or zlib.crc32(buf[pos : pos + _HCRC_SPAN]) != hcrc:
        return 0
    size = HEADER_BYTES + klen + vlen
    if pos + size > end or zlib.crc32(buf[pos + HEADER_BYTES : pos + size]) != bcrc:
        return 0
    return size


def decode(data: bytes | memoryview, offset: int = 0) -> Record | None:
    """The record that exactly fills ``data`` (as read back from its known location), or None if damaged."""
    size = record_size_at(data, 0, len(data))
    if size != len(data):
        return None
    _m, kind, flags, klen, vlen, seq, dig, _b, _h = HEADER.unpack_from(data, 0)
    key = bytes(data[HEADER_BYTES : HEADER_BYTES + klen])
    return Record(offset, size, kind, seq, key, bytes(data[HEADER_BYTES + klen : size]), flags, dig)


class Damage(NamedTuple):
    """Bytes ``[offset, offset + size)`` hold no valid record; ``torn`` when nothing valid follows them."""

    offset: int
    size: int
    torn: bool


def scan(buf: bytes | bytearray | mmap.mmap, start: int, end: int) -> Iterator[Record | Damage]:
    """Every valid record of ``buf[start:end]`` in order, and a :class:`Damage` for each stretch between.

    A damaged stretch followed by a valid record is corruption in the middle (skip it, count it); one that
    runs to ``end`` is a torn tail (the write that was under way when the process died): cut it.
    (The checks of :func:`record_size_at`, inlined: recovery time is spent here.)
    """
    finder, unpack, crc32 = buf.find, HEADER.unpack_from, zlib.crc32
    pos = start
    while pos < end:
        if end - pos >= HEADER_BYTES:
            magic, kind, flags, klen, vlen, seq, dig, bcrc, hcrc = unpack(buf, pos)
            body = pos + HEADER_BYTES
            stop = body + klen + vlen
            if (
                magic == MAGIC
                and kind in KINDS
                and stop <= end
                and crc32(buf[pos : pos + _HCRC_SPAN]) == hcrc
                and crc32(buf[body:stop]) == bcrc
            ):
                key, value = bytes(buf[body : body + klen]), bytes(buf[body + klen : stop])
                yield Record(pos, stop - pos, kind, seq, key, value, flags, dig)
                pos = stop
                continue
        bad = pos
        pos = finder(MAGIC, pos + 1, end)
        while pos != -1 and not record_size_at(buf, pos, end):
            pos = finder(MAGIC, pos + 1, end)
        if pos == -1:
            yield Damage(bad, end - bad, True)
            return
        yield Damage(bad, pos - bad, False)


# ---------------------------------------------------------------------------------------------- index files


def encode_index(covered_size: int, count: int, entries: bytes | bytearray) -> bytes:
    """An index file's bytes; ``entries`` is the concatenation of :func:`index_item` for ``count`` records."""
    body = INDEX_MAGIC + _INDEX_HEAD.pack(covered_size, count) + bytes(entries)
    return body + struct.pack("<I", zlib.crc32(body))


def index_item(e: int, key: bytes) -> bytes:
    return e.to_bytes(ENTRY_BYTES, "little") + _KLEN.pack(len(key)) + key


def decode_index(data: bytes) -> tuple[int, int, memoryview] | None:
    """``(covered_size, count, entries)`` of a valid index file, None when it is damaged or not one."""
    head = len(INDEX_MAGIC) + _INDEX_HEAD.size
    if len(data) < head + 4 or not data.startswith(INDEX_MAGIC):
        return None
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        return None
    covered, count = _INDEX_HEAD.unpack_from(data, len(INDEX_MAGIC))
    return covered, count, memoryview(data)[head:-4]


def iter_index(entries: bytes | bytearray | memoryview) -> Iterator[tuple[int, bytes]]:
    """``(entry, key)`` pairs of an index's entries."""
    pos, end = 0, len(entries)
    from_bytes = int.from_bytes
    while pos < end:
        e = from_bytes(entries[pos : pos + ENTRY_BYTES], "little")
        (klen,) = _KLEN.unpack_from(entries, pos + ENTRY_BYTES)
        pos += ENTRY_BYTES + 2
        yield e, bytes(entries[pos : pos + klen])
        pos += klen


# ---------------------------------------------------------------------------------------------- files


def fsync_dir(path: Path) -> None:
    """Make created, renamed and removed names in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``data``, all or nothing across a crash: tmp file, fsync, rename, fsync dir.

    ``durable=False`` skips both fsyncs, for files that are only a shortcut and carry their own CRC (index
    files): after a power cut such a file may be missing or fail its CRC, never hold wrong data.
    A failure (disk full) removes the tmp file and leaves ``path`` as it was.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        # two statements: mypyc (2.4) evaluates a call inside a slice twice, writing everything twice
        done = os.write(fd, view)
        view = view[done:]


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


class DirLock:
    """An exclusive ``flock`` on ``directory/LOCK``: two processes never share one data directory."""

    def __init__(self, directory: Path) -> None:
        path = directory / "LOCK"
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise OSError(
                f"data directory {directory} is in use by another process (pid {holder}); "
                "two nodes must never share a data_dir: give each node its own"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1
