"""The log engine's cache of hot key states: least recently used first out, bounded in bytes."""

from __future__ import annotations

from collections import OrderedDict

from zkv.core.versions import KeyState

CACHE_ENTRY_OVERHEAD_BYTES = 200  # what a cached state costs beyond its encoded size, roughly


class ValueCache:
    """Least-recently-used key states, bounded by an estimate of their bytes."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, tuple[KeyState, int]] = OrderedDict()

    def get(self, key: bytes) -> KeyState | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: bytes, state: KeyState, size: int) -> None:
        self.discard(key)
        if size > self.capacity:
            return
        self._items[key] = (state, size)
        self.bytes += size
        while self.bytes > self.capacity:
            _, (_, old) = self._items.popitem(last=False)
            self.bytes -= old

    def discard(self, key: bytes) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= item[1]

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
