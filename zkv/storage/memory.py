"""The in-memory engine: for tests and ephemeral clusters; a restart forgets everything."""

from __future__ import annotations

from collections.abc import Iterator

from zkv.core.versions import KeyState
from zkv.storage.base import StoreStats


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[bytes, KeyState] = {}
        self._bytes = 0

    def get(self, key: bytes) -> KeyState | None:
        return self._data.get(key)

    def put(self, key: bytes, state: KeyState) -> None:
        old = self._data.get(key)
        if old is not None:
            self._bytes -= _size(key, old)
        self._data[key] = state
        self._bytes += _size(key, state)

    def keys(self) -> Iterator[bytes]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._data.clear()

    def statistics(self) -> StoreStats:
        return StoreStats(engine="memory", keys=len(self._data), bytes=self._bytes, flushes=0)


def _size(key: bytes, state: KeyState) -> int:
    return len(key) + sum(len(s.value or b"") + 24 for s in state.siblings)
