"""A node's files: its store and hint log opened from the config, its incarnation metadata, and the
flush, probe and close that report every disk error to the core instead of raising it.

The runtime's loop calls these; what an error means (read-only, refusals, probes) is the core's to
decide (:meth:`zkv.core.nodecore.NodeCore.on_store_fault`), so nothing here decides, it only reports.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from zkv.config import ClusterConfig
from zkv.core.incarnation import incarnation
from zkv.core.nodecore import NodeCore
from zkv.errors import StorageUnavailable
from zkv.storage import open_store
from zkv.storage.hints import open_hints

log = logging.getLogger(__name__)

STORE_FAULTS = (OSError, StorageUnavailable)  # a disk's errors, and the redis engine's server failing


def fault_code(exc: OSError | StorageUnavailable) -> int | str | None:
    """What :meth:`NodeCore.on_store_fault` is told: the errno, or the engine's error code."""
    return exc.code if isinstance(exc, StorageUnavailable) else exc.errno


class NodeDisk:
    """The store, the hints and the metadata of node ``name``; every failure goes to the core."""

    def __init__(self, config: ClusterConfig, name: str) -> None:
        spec = config.node(name)
        self.name = name
        self.data_dir = spec.data_dir
        self.durable = config.engine != "memory"
        self.store = open_store(
            config.engine,
            spec.data_dir,
            config.fsync,
            config.fsync_interval_ms,
            cache_bytes=config.cache_bytes,
            segment_bytes=config.segment_bytes,
            compaction_threshold=config.compaction_threshold,
            redis_url=spec.redis,
            namespace=name,
        )
        self.hints = open_hints(
            config.engine,
            spec.data_dir,
            config.fsync,
            config.fsync_interval_ms,
            max_hints=config.max_hints,
            max_bytes=config.max_hint_bytes,
            store=self.store,
        )
        self.unsaved_meta: dict[str, Any] | None = None  # metadata a full disk refused at start
        self.meta_error: tuple[int | str | None, str] = (None, "")

    def incarnation(self) -> tuple[int, str, int]:
        """This start's generation, actor id and the counter its dots go above, by the core's rule
        (:mod:`zkv.core.incarnation`, which the simulator uses too); the metadata is saved before the
        node serves."""
        wall_ms = int(time.time() * 1000)
        generation, actor, meta = incarnation(self.name, self.store.load_meta(), wall_ms, self.durable)
        try:
            self.store.save_meta(meta)
        except STORE_FAULTS as exc:
            # a full disk: the old file is intact (zkv.storage.records.write_atomic); the node starts
            # read-only and takes writes only once this is saved (no dot is minted before that)
            log.error("%s: metadata not saved (%s); starting read-only", self.name, exc)
            self.unsaved_meta, self.meta_error = meta, (fault_code(exc), str(exc))
        return generation, actor, meta["minted"]

    def needs_flush(self) -> bool:
        return self.store.needs_flush() or self.hints.needs_flush()

    def save_generation(self, core: NodeCore, generation: int, now: float) -> None:
        """Gossip raised this node's generation: the next start must go above it too."""
        if self.unsaved_meta is not None:
            self.unsaved_meta["generation"] = generation  # saved with the rest by the next probe
            return
        try:
            self.store.save_meta({**self.store.load_meta(), "generation": generation})
        except OSError as exc:
            self.unsaved_meta = {**self.store.load_meta(), "generation": generation}
            core.on_store_fault(exc.errno, f"metadata: {exc}", now)

    def flush(self, core: NodeCore, now: float) -> bool:
        """The group commit: the turn's writes to disk, then tell the core (replies may then leave early).

        A disk error is the core's to judge (:meth:`NodeCore.on_store_fault`); while the disk refuses
        writes nothing new is written, and only the core's probes (:meth:`probe`) flush again.
        """
        if not core.storage_health.writable:
            return False
        store = self.store
        try:
            started = time.monotonic() if store.needs_flush() else None
            store.flush()
            if started is not None:
                core.stats.flushes.observe(time.monotonic() - started)
            self.hints.flush()
        except STORE_FAULTS as exc:
            core.on_store_fault(fault_code(exc), str(exc), now)
            return False
        core.on_flushed()
        return True

    def probe(self, core: NodeCore, now: float) -> None:
        """The core asks whether the disk takes writes again: save what is pending, measure the room."""
        try:
            if self.unsaved_meta is not None:
                self.store.save_meta(self.unsaved_meta)
                self.unsaved_meta = None
            self.store.flush()
            self.hints.flush()
            free = os.statvfs(self.data_dir)
        except STORE_FAULTS as exc:
            core.on_store_fault(fault_code(exc), str(exc), now)
            return
        core.on_flushed()
        core.on_storage_probe(free.f_bavail * free.f_frsize, now)

    def compact(self, core: NodeCore, slice_s: float, now: float) -> bool:
        """One slice of compaction; True while there is more to do."""
        try:
            return self.store.compact_step(slice_s)
        except STORE_FAULTS as exc:
            core.on_store_fault(fault_code(exc), f"compaction: {exc}", now)
            return False

    def close(self, clean: bool, minted: int = 0) -> None:
        """Flush and close both; ``clean`` (the core exists and the metadata was saved) marks a clean
        stop, so the next start keeps its actor id, and its dots go above ``minted``."""
        store, hints = self.store, self.hints
        if clean and self.unsaved_meta is None:
            try:
                store.flush()
                hints.flush()
                # everything minted is on disk; after a refused flush it is not, and the next start
                # must take a fresh actor id, so clean_stop stays False then
                store.save_meta({**store.load_meta(), "clean_stop": True, "minted": minted})
            except STORE_FAULTS as exc:
                log.error("stopping with writes not on disk (%s); they were never acknowledged", exc)
        for each in (store, hints):
            try:
                each.flush()
            except STORE_FAULTS as exc:
                log.error("final flush: %s", exc)
            each.close()
