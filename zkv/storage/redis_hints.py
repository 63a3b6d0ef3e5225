"""Hinted handoff's queues for the Redis engine, kept in the store's Redis ``hints`` hash.

Its own module so that :mod:`zkv.storage.redis` holds only the key states; the hints ride the store's
flush, so a turn's writes and hints reach Redis in one MULTI/EXEC.
"""

from __future__ import annotations

import msgpack

from zkv.core.versions import KeyState, pack_state
from zkv.storage.hints import DEFAULT_MAX_BYTES, DEFAULT_MAX_HINTS, MemoryHintStore
from zkv.storage.redis import RedisStore


class RedisHintStore(MemoryHintStore):
    """Hinted handoff's queues kept in memory and in the store's Redis ``hints`` hash.

    Hints are bounded (``max_hints``, ``max_bytes``), so all of them are kept in memory; each add and
    remove is written through in the store's next flush, the same MULTI/EXEC as the turn's writes.
    """

    def __init__(
        self, store: RedisStore, max_hints: int = DEFAULT_MAX_HINTS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        super().__init__(max_hints=max_hints, max_bytes=max_bytes)
        self._store = store
        for hint_id, target, key, state in store.load_hints():
            size = len(key) + len(pack_state(state))
            self._queues.setdefault(target, {})[hint_id] = (key, state, size)
            self._bytes += size
            self._next_id = hint_id + 1

    def add(self, target: str, key: bytes, state: KeyState) -> int:
        hint_id = super().add(target, key, state)
        packed = msgpack.packb([target.encode(), key, pack_state(state)], use_bin_type=True)
        self._store.hint_ops.append(("hset", b"%d" % hint_id, packed))
        return hint_id

    def remove(self, target: str, hint_ids: list[int] | tuple[int, ...]) -> None:
        queue = self._queues.get(target, {})
        gone = [hint_id for hint_id in hint_ids if hint_id in queue]
        super().remove(target, hint_ids)
        self._store.hint_ops += [("hdel", b"%d" % hint_id, b"") for hint_id in gone]

    def needs_flush(self) -> bool:
        return self._store.needs_flush()

    def flush(self) -> None:
        self._store.flush()
