"""The log engine's Paxos acceptor journal: each serial key's promise, accepted proposal and last commit.

Acceptor state is small, per key, and overwritten whole on every change, so it lives apart from the key
states' segments, in one append-only file ``paxos.acceptors`` of framed records (the segments' format,
:mod:`zkv.storage.records`, kind ``PAXOS``): the newest record of a key wins. It is flushed, and fsynced
under the engine's policy, in the same :meth:`zkv.storage.log.LogStore.flush` as the key states, before
any promise or acceptance leaves the node (a promise forgotten by a crash is how Paxos loses safety).
Opening reads the file once; a torn tail (the write under way when the process died) is cut, a damaged
record in the middle is skipped. When dead records pass :data:`REWRITE_RATIO` of the file it is rewritten
with the live ones only (tmp file, fsync, rename).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from zkv.storage.records import PAXOS, Damage, encode, scan, write_all, write_atomic

log = logging.getLogger(__name__)

JOURNAL_FILE = "paxos.acceptors"
REWRITE_RATIO = 4  # rewrite once the file is this many times the live records' size
REWRITE_MIN_BYTES = 1 << 20


class PaxosJournal:
    """Key -> opaque acceptor state (bytes the core encodes), durable at :meth:`flush`."""

    def __init__(self, directory: Path, fsync: str) -> None:
        self.path = directory / JOURNAL_FILE
        self.fsync = fsync
        self._state: dict[bytes, bytes] = {}
        self._buf = bytearray()
        self._seq = 0
        self.corrupt_records = 0
        size = self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = size

    def _load(self) -> int:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        end = len(data)
        for item in scan(data, 0, end):
            if isinstance(item, Damage):
                if item.torn:
                    end = item.offset
                    log.warning("%s: cut a torn tail of %d bytes", self.path, item.size)
                else:
                    self.corrupt_records += 1
                    log.error("%s: skipped %d damaged bytes at %d", self.path, item.size, item.offset)
                continue
            if item.kind == PAXOS:
                self._state[item.key] = item.value
                self._seq = max(self._seq, item.seq)
        if end < len(data):
            os.truncate(self.path, end)
        return end

    def get(self, key: bytes) -> bytes | None:
        return self._state.get(key)

    def put(self, key: bytes, blob: bytes) -> None:
        self._state[key] = blob
        self._seq += 1
        self._buf += encode(PAXOS, self._seq, key, blob)

    def __len__(self) -> int:
        return len(self._state)

    def keys(self) -> list[bytes]:
        return list(self._state)

    def needs_flush(self) -> bool:
        return bool(self._buf)

    def flush(self) -> None:
        """Append what was put since the last flush (and fsync it unless the policy is ``never``).

        On ``OSError`` (disk full, EIO) the file is cut back to where it was and the records stay
        buffered: a later flush writes them again, and nothing that depends on them has left."""
        if not self._buf:
            return
        try:
            write_all(self._fd, self._buf)
            if self.fsync != "never":
                os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(self._buf)
        self._buf.clear()
        live = sum(len(k) + len(v) + 34 for k, v in self._state.items())
        if self._size > REWRITE_MIN_BYTES and self._size > REWRITE_RATIO * live:
            self._rewrite()

    def _rewrite(self) -> None:
        body = b"".join(encode(PAXOS, i + 1, k, v) for i, (k, v) in enumerate(self._state.items()))
        write_atomic(self.path, body)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(body)
        self._seq = len(self._state)

    def release(self) -> None:
        """Close the file (what was not flushed is dropped: it was never acknowledged)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
