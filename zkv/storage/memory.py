"""The in-memory engine: for tests and ephemeral clusters; a restart forgets everything."""

from __future__ import annotations

import copy
from collections.abc import Iterator

from zkv.core.merkle import state_digest
from zkv.core.scan import first_keys
from zkv.core.versions import KeyState
from zkv.storage.base import StoreStats


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[bytes, KeyState] = {}
        self._bytes = 0
        self._meta: dict = {}
        self._paxos: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> KeyState | None:
        return self._data.get(key)

    def put(self, key: bytes, state: KeyState) -> None:
        old = self._data.get(key)
        if old is not None:
            self._bytes -= _size(key, old)
        self._data[key] = state
        self._bytes += _size(key, state)

    def delete(self, key: bytes) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._bytes -= _size(key, old)

    def digest(self, key: bytes) -> int | None:
        """``zkv.core.merkle.state_digest`` of the state, as the log engine keeps it (computed on demand)."""
        state = self._data.get(key)
        return None if state is None else state_digest(key, state)

    def keys(self) -> Iterator[bytes]:
        return iter(list(self._data))

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[bytes]:
        """The first ``limit`` keys after ``after`` starting with ``prefix``, in order (a key scan's page)."""
        return first_keys(self._data, prefix, after, limit)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def paxos_get(self, key: bytes) -> bytes | None:
        return self._paxos.get(key)

    def paxos_put(self, key: bytes, blob: bytes) -> None:
        self._paxos[key] = blob

    def paxos_keys(self) -> list[bytes]:
        return list(self._paxos)

    def flush(self) -> None:
        return None

    def needs_flush(self) -> bool:
        return False

    def compact_step(self, budget_s: float = 0.005) -> bool:
        return False

    def load_meta(self) -> dict:
        return copy.deepcopy(self._meta)

    def save_meta(self, meta: dict) -> None:
        self._meta = copy.deepcopy(meta)

    def close(self) -> None:
        self._data.clear()

    def statistics(self) -> StoreStats:
        return StoreStats(engine="memory", keys=len(self._data), bytes=self._bytes, flushes=0)


def _size(key: bytes, state: KeyState) -> int:
    return len(key) + sum(len(s.value or b"") + 24 for s in state.siblings)
