"""Stores that survive a simulated crash exactly as far as ``fsync = "always"`` would keep them.

A :class:`Disk` is what outlives a node process: the key states, hints and metadata that were flushed.
:class:`SimStore` and :class:`SimHints` are the engines a node process works on: every write lands in
memory at once (the core reads its own writes) and on the disk only at :meth:`flush`, which the simulated
runtime calls where the real one does: after a turn's peer sends and before its replies (group commit).
A crash drops the process and with it whatever was written since the last flush; a restart opens new
engines on the same disk. That is the log engine's promise under ``fsync = "always"``: what was flushed
before an acknowledgement left survives, later writes may not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from zkv.core.versions import KeyState
from zkv.storage.hints import MemoryHintStore
from zkv.storage.memory import MemoryStore


@dataclass(slots=True)
class Disk:
    """What one node has durably written."""

    data: dict[bytes, KeyState] = field(default_factory=dict)
    hints: dict[str, dict[int, tuple[bytes, KeyState, int]]] = field(default_factory=dict)
    next_hint_id: int = 1
    meta: dict[str, Any] = field(default_factory=dict)
    paxos: dict[bytes, bytes] = field(default_factory=dict)  # acceptor state (zkv.core.paxos)
    flushes: int = 0
    lost_writes: int = 0  # writes a crash dropped before they were flushed

    def wipe(self) -> None:
        """The disk is replaced by an empty one (a failed drive, a re-imaged machine)."""
        self.data.clear()
        self.hints.clear()
        self.next_hint_id = 1
        self.meta.clear()
        self.paxos.clear()


class SimStore(MemoryStore):
    """A memory store whose flushed contents live on a :class:`Disk`."""

    def __init__(self, disk: Disk) -> None:
        super().__init__()
        self.disk = disk
        for key, state in disk.data.items():
            MemoryStore.put(self, key, state)
        self._meta = copy.deepcopy(disk.meta)
        self._paxos = dict(disk.paxos)
        self._dirty: dict[bytes, KeyState | None] = {}
        self._dirty_paxos: dict[bytes, bytes] = {}

    def put(self, key: bytes, state: KeyState) -> None:
        super().put(key, state)
        self._dirty[key] = state

    def delete(self, key: bytes) -> None:
        super().delete(key)
        self._dirty[key] = None

    def paxos_put(self, key: bytes, blob: bytes) -> None:
        super().paxos_put(key, blob)
        self._dirty_paxos[key] = blob

    def flush(self) -> None:
        if self._dirty_paxos:
            self.disk.paxos.update(self._dirty_paxos)
            self._dirty_paxos.clear()
            self.disk.flushes += 1
        if not self._dirty:
            return
        data = self.disk.data
        for key, state in self._dirty.items():
            if state is None:
                data.pop(key, None)
            else:
                data[key] = state
        self._dirty.clear()
        self.disk.flushes += 1

    def needs_flush(self) -> bool:
        return bool(self._dirty or self._dirty_paxos)

    def save_meta(self, meta: dict) -> None:
        """Atomic and durable at once, as the log engine's metadata file."""
        super().save_meta(meta)
        self.disk.meta = copy.deepcopy(meta)

    def crash(self) -> None:
        """The process died: count what was never flushed (the disk keeps the rest)."""
        self.disk.lost_writes += len(self._dirty) + len(self._dirty_paxos)
        self._dirty.clear()
        self._dirty_paxos.clear()


class SimHints(MemoryHintStore):
    """The memory hint store, flushed to a :class:`Disk` like :class:`SimStore`."""

    def __init__(self, disk: Disk) -> None:
        super().__init__()
        self.disk = disk
        self._queues = {target: dict(queue) for target, queue in disk.hints.items()}
        self._bytes = sum(size for queue in self._queues.values() for _, _, size in queue.values())
        self._next_id = disk.next_hint_id
        self._dirty = False

    def add(self, target: str, key: bytes, state: KeyState) -> int:
        self._dirty = True
        return super().add(target, key, state)

    def remove(self, target: str, hint_ids: list[int] | tuple[int, ...]) -> None:
        self._dirty = True
        super().remove(target, hint_ids)

    def flush(self) -> None:
        if self._dirty:
            self.disk.hints = {target: dict(queue) for target, queue in self._queues.items() if queue}
            self.disk.next_hint_id = self._next_id
            self._dirty = False

    def needs_flush(self) -> bool:
        return self._dirty
