"""The storage engine interface the core writes through.

The core reads and writes key states synchronously (a replica must merge into what it holds), while
durability is the runtime's business: it calls :meth:`Store.flush` once per loop turn, after the core has
handled every message of the turn and before any acknowledgement leaves the node. That one call is the
group commit: all writes that arrived together share one fsync.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zkv.core.versions import KeyState

FSYNC_POLICIES = ("always", "interval", "never")
ENGINES = ("memory", "log", "redis")


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store holds and has done; the log engine fills every field, the memory engine the first four."""

    engine: str
    keys: int
    bytes: int  # encoded size of the live key states
    flushes: int  # flushes that wrote something
    fsyncs: int = 0
    segments: int = 0
    disk_bytes: int = 0  # segment bytes on disk (live + dead)
    dead_bytes: int = 0  # superseded or damaged bytes that compaction will reclaim
    deleted_keys: int = 0  # keys removed with delete(), whose delete records are still kept
    corrupt_records: int = 0  # damaged records found (skipped, never returned; anti-entropy repairs)
    compactions: int = 0
    compacting: bool = False
    cache_bytes: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    values_read: int = 0  # values read from segment files (cache misses that went to disk)
    recovery_s: float = 0.0  # time the last open took to rebuild the key directory
    recovery_index_entries: int = 0  # records the last open learnt from index files
    recovery_scanned_records: int = 0  # records the last open had to read from segment data
    recovery_torn_bytes: int = 0  # bytes of a torn tail cut by the last open
    available: bool = True  # the engine takes writes now (False: its server is down or full)
    failures: int = 0  # calls to the engine's server that failed (the redis engine)


class Store(Protocol):
    """A replica's key → :class:`KeyState` map."""

    def get(self, key: bytes) -> KeyState | None: ...

    def put(self, key: bytes, state: KeyState) -> None: ...

    def keys(self) -> Iterator[bytes]: ...

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[bytes]:
        """The first ``limit`` keys after ``after`` (None: from the start) that start with ``prefix``, in
        byte order, holding at most ``limit`` keys while it looks (``zkv.core.scan.first_keys``)."""

    def __len__(self) -> int: ...

    def delete(self, key: bytes) -> None:
        """Remove ``key`` for good (no node calls it yet: tombstones are kept; a future purge would)."""

    def flush(self) -> None:
        """Make every put so far durable under the engine's fsync policy (a no-op in memory)."""

    def needs_flush(self) -> bool:
        """Must the runtime keep calling :meth:`flush` (buffered or not-yet-fsynced writes remain)?"""

    def compact_step(self, budget_s: float = 0.005) -> bool:
        """Do a slice of background work (compaction); True while more remains."""

    def paxos_get(self, key: bytes) -> bytes | None:
        """The Paxos acceptor state of ``key`` last put (opaque bytes the core encodes), None if none."""

    def paxos_put(self, key: bytes, blob: bytes) -> None:
        """Replace ``key``'s acceptor state; durable at the next :meth:`flush`, like a key state."""

    def paxos_keys(self) -> list[bytes]:
        """Every key with acceptor state (a range moving to another node takes it along)."""

    def load_meta(self) -> dict:
        """The node metadata saved last (``{}`` if none)."""

    def save_meta(self, meta: dict) -> None:
        """Replace the node metadata, atomically and durably."""

    def close(self) -> None: ...

    def statistics(self) -> StoreStats: ...


def open_store(
    engine: str,
    data_dir: Path | str | None = None,
    fsync: str = "always",
    fsync_interval_ms: int = 100,
    cache_bytes: int | None = None,
    segment_bytes: int | None = None,
    compaction_threshold: float | None = None,
    redis_url: str | None = None,
    namespace: str = "zkv",
) -> Store:
    """The engine named in cluster.toml; ``None`` settings take the engine's defaults.

    ``redis_url``: the redis engine's server (None: the node runs its own under ``data_dir``);
    ``namespace``: the prefix of its Redis keys (the node name).
    """
    if engine == "memory":
        from zkv.storage.memory import MemoryStore

        return MemoryStore()
    if engine == "log":
        from zkv.storage.log import LogStore

        if data_dir is None:
            raise ValueError("the log engine needs a data_dir")
        options: dict[str, Any] = {
            "cache_bytes": cache_bytes,
            "segment_bytes": segment_bytes,
            "compaction_threshold": compaction_threshold,
        }
        return LogStore(
            data_dir,
            fsync=fsync,
            fsync_interval_ms=fsync_interval_ms,
            **{k: v for k, v in options.items() if v is not None},
        )
    if engine == "redis":
        from zkv.storage.redis import DEFAULT_CACHE_BYTES, RedisStore

        cache = DEFAULT_CACHE_BYTES if cache_bytes is None else cache_bytes
        return RedisStore(data_dir, fsync=fsync, url=redis_url, namespace=namespace, cache_bytes=cache)
    raise ValueError(f"storage engine {engine!r} is not available (engines: {', '.join(ENGINES)})")
