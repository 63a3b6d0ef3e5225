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
from typing import Protocol

from zkv.core.versions import KeyState


@dataclass(frozen=True, slots=True)
class StoreStats:
    engine: str
    keys: int
    bytes: int
    flushes: int


class Store(Protocol):
    """A replica's key → :class:`KeyState` map."""

    def get(self, key: bytes) -> KeyState | None: ...

    def put(self, key: bytes, state: KeyState) -> None: ...

    def keys(self) -> Iterator[bytes]: ...

    def __len__(self) -> int: ...

    def flush(self) -> None:
        """Make every put so far durable under the engine's fsync policy (a no-op in memory)."""

    def close(self) -> None: ...

    def statistics(self) -> StoreStats: ...


def open_store(engine: str, data_dir: Path | None = None, fsync: str = "always") -> Store:
    """The engine named in cluster.toml."""
    if engine == "memory":
        from zkv.storage.memory import MemoryStore

        return MemoryStore()
    raise ValueError(f"storage engine {engine!r} is not available (engines: memory)")
