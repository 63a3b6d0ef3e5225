"""Hinted handoff, stored: per target node, a durable queue of key states to deliver when it returns.

A node that accepts a write for a preference-list node that is down (a sloppy quorum's fallback) keeps a
*hint*: the key, the state to hand over, and the node it is meant for. :class:`HintStore` keeps one
append-only file per target under ``data_dir/hints/``, framed like the segments (``zkv.storage.records``):
a ``HINT`` record per hint (its sequence number is the hint id) and a ``HINT_DONE`` record listing the ids
:meth:`HintStore.remove` took off. Durability follows the store's fsync policy through :meth:`flush`, the
same group commit: the runtime flushes hints and store before acknowledging.

Delivery is at least once: a crash can forget a ``HINT_DONE``, and the hint is delivered again, which is
harmless since replicas merge states idempotently. When every hint of a target is delivered its file is
emptied; when delivered hints fill more than half of it (and at least ``REWRITE_MIN_BYTES``), the live ones
are copied to a fresh file that replaces it atomically.

**Bounds**: at most ``max_hints`` hints and ``max_bytes`` bytes in all. Adding past a bound drops the
oldest hints of the target holding the most bytes (counted in ``statistics().dropped``): hints are an
optimisation, and anti-entropy repairs what a dropped hint would have (Cassandra bounds its hints the
same way). A single hint larger than ``max_bytes`` is refused with ``ValueError``.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import msgpack

from zkv.core.versions import KeyState, pack_state, unpack_state
from zkv.storage.base import FSYNC_POLICIES
from zkv.storage.records import HINT, HINT_DONE, DirLock, Record, decode, encode, fsync_dir, scan, write_all
from zkv.storage.segment import Segment

log = logging.getLogger(__name__)

DEFAULT_MAX_HINTS = 100_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
REWRITE_MIN_BYTES = 1024 * 1024
HINTS_SUFFIX = ".hints"


@dataclass(frozen=True, slots=True)
class HintStats:
    hints: int
    bytes: int
    targets: int
    added: int = 0
    removed: int = 0
    dropped: int = 0  # oldest hints dropped to stay within the bounds
    corrupt_records: int = 0
    fsyncs: int = 0


class _Queue:
    """One target's hint file and where each of its live hints sits in it."""

    def __init__(self, path: Path, target: str) -> None:
        self.target = target
        self.file = Segment(path)
        self.live: dict[int, tuple[int, int]] = {}  # hint id -> (offset, size), oldest first
        self.live_bytes = 0

    def add(self, hint_id: int, record: bytes) -> None:
        self.live[hint_id] = (self.file.append(record), len(record))
        self.live_bytes += len(record)

    def take(self, hint_id: int) -> bool:
        where = self.live.pop(hint_id, None)
        if where is None:
            return False
        self.live_bytes -= where[1]
        return True

    @property
    def dead_bytes(self) -> int:
        return self.file.size - self.live_bytes


class HintStore:
    """Durable hint queues in ``directory`` (see the module doc)."""

    def __init__(
        self,
        directory: Path | str,
        fsync: str = "always",
        fsync_interval_ms: int = 100,
        max_hints: int = DEFAULT_MAX_HINTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync = {fsync!r}: expected one of {', '.join(FSYNC_POLICIES)}")
        self.directory = Path(directory)
        self.fsync = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self.max_hints = max_hints
        self.max_bytes = max_bytes
        self._clock = clock
        self._last_sync = clock()
        self._queues: dict[str, _Queue] = {}
        self._next_id = 1
        self._count = 0
        self._bytes = 0
        self._stats = dict.fromkeys(("added", "removed", "dropped", "corrupt_records", "fsyncs"), 0)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = DirLock(self.directory)
        try:
            for path in sorted(self.directory.glob(f"*{HINTS_SUFFIX}")):
                self._load(path)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------ queue

    def add(self, target: str, key: bytes, state: KeyState) -> int:
        """Keep ``state`` of ``key`` for ``target``; returns the hint id. May drop old hints (module doc)."""
        record = encode(HINT, self._next_id, key, pack_state(state))
        if len(record) > self.max_bytes:
            raise ValueError(f"a hint of {len(record)} bytes exceeds the hint store's {self.max_bytes} bytes")
        while self._count >= self.max_hints or self._bytes + len(record) > self.max_bytes:
            self._drop_oldest()
        hint_id = self._next_id
        self._next_id += 1
        self._queue(target).add(hint_id, record)
        self._count += 1
        self._bytes += len(record)
        self._stats["added"] += 1
        return hint_id

    def pending(self, target: str) -> Iterator[tuple[int, bytes, KeyState]]:
        """``(hint_id, key, state)`` of every hint for ``target``, oldest first.

        Lazy: take a batch (``itertools.islice``) before calling :meth:`add` or :meth:`remove` again.
        """
        queue = self._queues.get(target)
        if queue is None:
            return
        damaged = []
        try:
            for hint_id, (offset, size) in queue.live.items():
                rec = decode(queue.file.read(offset, size))
                state = None
                if rec is not None and rec.kind == HINT and rec.seq == hint_id:
                    with contextlib.suppress(Exception):
                        state = unpack_state(rec.value)
                if state is None or rec is None:
                    damaged.append(hint_id)
                    continue
                yield hint_id, rec.key, state
        finally:
            if damaged:
                self._stats["corrupt_records"] += len(damaged)
                log.warning("%d hints for %s are damaged; dropped", len(damaged), target)
                self.remove(target, damaged)

    def remove(self, target: str, hint_ids: list[int] | tuple[int, ...]) -> None:
        """Forget delivered hints (unknown ids are ignored)."""
        queue = self._queues.get(target)
        if queue is None:
            return
        gone = [i for i in hint_ids if queue.take(i)]
        if not gone:
            return
        self._count -= len(gone)
        self._bytes = sum(q.live_bytes for q in self._queues.values())
        self._stats["removed"] += len(gone)
        if not queue.live:
            # every hint delivered: empty the file (if that is lost in a crash, they are delivered again)
            queue.file.buf.clear()
            queue.file.truncate(0)
            queue.file.unsynced = True
            return
        queue.file.append(encode(HINT_DONE, 0, b"", msgpack.packb(gone)))
        if queue.dead_bytes > max(REWRITE_MIN_BYTES, queue.live_bytes) and not queue.file.sync_failed:
            try:
                self._rewrite(queue)
            except OSError as exc:  # disk full: the old file stays, with its HINT_DONE records
                log.warning("hints for %s not rewritten: %s", queue.target, exc)

    def counts(self) -> dict[str, int]:
        return {target: len(q.live) for target, q in self._queues.items() if q.live}

    def oldest(self, target: str) -> int | None:
        """The id of ``target``'s oldest pending hint (ids grow: the handoff dates hints by them)."""
        queue = self._queues.get(target)
        return next(iter(queue.live), None) if queue is not None else None

    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def _queue(self, target: str) -> _Queue:
        queue = self._queues.get(target)
        if queue is None:
            path = self.directory / (quote(target, safe="") + HINTS_SUFFIX)
            queue = self._queues[target] = _Queue(path, target)
            fsync_dir(self.directory)
        return queue

    def _drop_oldest(self) -> None:
        queue = max(self._queues.values(), key=lambda q: (q.live_bytes, q.target))
        oldest = next(iter(queue.live))
        self._stats["dropped"] += 1
        self._stats["removed"] -= 1
        log.warning("hint store full: dropping hint %d for %s", oldest, queue.target)
        self.remove(queue.target, [oldest])

    def _rewrite(self, queue: _Queue) -> None:
        """Replace the file with one holding only the live hints (tmp, fsync, rename, fsync dir)."""
        path = queue.file.path
        tmp = path.with_name(path.name + ".tmp")
        fresh: dict[int, tuple[int, int]] = {}
        data = bytearray()
        for hint_id, (offset, size) in queue.live.items():
            fresh[hint_id] = (len(data), size)
            data += queue.file.read(offset, size)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            fsync_dir(self.directory)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        queue.file.close()
        queue.file = Segment(path)
        queue.live = fresh

    # ------------------------------------------------------------------------------------------ durability

    def needs_flush(self) -> bool:
        return any(
            q.file.buf or q.file.sync_failed or (self.fsync == "interval" and q.file.unsynced)
            for q in self._queues.values()
        )

    def flush(self) -> None:
        """Group commit for hints, under the same policy as the store.

        Raises ``OSError`` when the disk refuses; nothing is lost from memory, and a later flush tries
        again. A hint file whose fsync failed is never fsynced again: its live hints are written to a
        fresh file that replaces it (:meth:`_rewrite`, from memory and the page cache, CRC-checked when
        loaded; a hint lost that way is repaired by anti-entropy, and was never acknowledged).
        """
        now = self._clock()
        due = self.fsync == "always" or (
            self.fsync == "interval" and now - self._last_sync >= self.fsync_interval
        )
        for queue in self._queues.values():
            if queue.file.sync_failed:
                self._rewrite(queue)
                continue
            queue.file.write_out()
            if due and queue.file.unsynced:
                try:
                    queue.file.sync()
                except OSError:
                    queue.file.sync_failed = True
                    raise
                self._stats["fsyncs"] += 1
                self._last_sync = now

    def close(self) -> None:
        for queue in self._queues.values():
            with contextlib.suppress(OSError):
                queue.file.write_out()
                if queue.file.unsynced:
                    queue.file.sync()
            queue.file.close()
        self._queues.clear()
        self._lock.release()

    def statistics(self) -> HintStats:
        return HintStats(hints=self._count, bytes=self._bytes, targets=len(self.counts()), **self._stats)

    # ------------------------------------------------------------------------------------------ recovery

    def _load(self, path: Path) -> None:
        target = unquote(path.name[: -len(HINTS_SUFFIX)])
        queue = self._queues[target] = _Queue(path, target)
        size = queue.file.written
        torn = None
        if size:
            with mmap.mmap(queue.file.fd, size, access=mmap.ACCESS_READ) as data:
                for item in scan(data, 0, size):
                    if isinstance(item, Record):
                        if item.kind == HINT:
                            queue.live[item.seq] = (item.offset, item.size)
                            queue.live_bytes += item.size
                            self._next_id = max(self._next_id, item.seq + 1)
                        elif item.kind == HINT_DONE:
                            for hint_id in msgpack.unpackb(item.value):
                                queue.take(hint_id)
                    elif item.torn:
                        torn = item
                    else:
                        self._stats["corrupt_records"] += 1
        if torn is not None:
            log.warning("hints for %s: torn tail of %d bytes cut", target, torn.size)
            queue.file.truncate(torn.offset)
        self._count += len(queue.live)
        self._bytes += queue.live_bytes


class MemoryHintStore:
    """The same queues in memory, for the memory engine."""

    def __init__(self, max_hints: int = DEFAULT_MAX_HINTS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_hints = max_hints
        self.max_bytes = max_bytes
        self._queues: dict[str, dict[int, tuple[bytes, KeyState, int]]] = {}
        self._next_id = 1
        self._bytes = 0
        self._stats = dict.fromkeys(("added", "removed", "dropped"), 0)

    def add(self, target: str, key: bytes, state: KeyState) -> int:
        size = len(key) + len(pack_state(state))
        if size > self.max_bytes:
            raise ValueError(f"a hint of {size} bytes exceeds the hint store's {self.max_bytes} bytes")
        while len(self) >= self.max_hints or self._bytes + size > self.max_bytes:
            queue = max(self._queues, key=lambda t: (sum(h[2] for h in self._queues[t].values()), t))
            self.remove(queue, [next(iter(self._queues[queue]))])
            self._stats["dropped"] += 1
            self._stats["removed"] -= 1
        hint_id = self._next_id
        self._next_id += 1
        self._queues.setdefault(target, {})[hint_id] = (key, state, size)
        self._bytes += size
        self._stats["added"] += 1
        return hint_id

    def pending(self, target: str) -> Iterator[tuple[int, bytes, KeyState]]:
        queue = self._queues.get(target, {})
        for hint_id, (key, state, _) in list(queue.items()):
            if hint_id in queue:
                yield hint_id, key, state

    def remove(self, target: str, hint_ids: list[int] | tuple[int, ...]) -> None:
        queue = self._queues.get(target, {})
        for hint_id in hint_ids:
            hint = queue.pop(hint_id, None)
            if hint is not None:
                self._bytes -= hint[2]
                self._stats["removed"] += 1
        if not queue:
            self._queues.pop(target, None)

    def counts(self) -> dict[str, int]:
        return {target: len(q) for target, q in self._queues.items() if q}

    def oldest(self, target: str) -> int | None:
        return next(iter(self._queues.get(target, {})), None)

    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def needs_flush(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._queues.clear()

    def statistics(self) -> HintStats:
        return HintStats(hints=len(self), bytes=self._bytes, targets=len(self.counts()), **self._stats)


def open_hints(
    engine: str,
    data_dir: Path | str | None = None,
    fsync: str = "always",
    fsync_interval_ms: int = 100,
    max_hints: int = DEFAULT_MAX_HINTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    store: Any = None,
) -> HintStore | MemoryHintStore:
    """The hint store that goes with a storage engine: ``data_dir/hints/`` for the log engine, the
    ``store``'s Redis for the redis engine."""
    if engine == "log":
        if data_dir is None:
            raise ValueError("the log engine needs a data_dir")
        return HintStore(
            Path(data_dir) / "hints",
            fsync=fsync,
            fsync_interval_ms=fsync_interval_ms,
            max_hints=max_hints,
            max_bytes=max_bytes,
        )
    if engine == "redis":
        from zkv.storage.redis import RedisStore
        from zkv.storage.redis_hints import RedisHintStore

        if not isinstance(store, RedisStore):
            raise ValueError("the redis engine's hints need its RedisStore")
        return RedisHintStore(store, max_hints=max_hints, max_bytes=max_bytes)
    return MemoryHintStore(max_hints=max_hints, max_bytes=max_bytes)
