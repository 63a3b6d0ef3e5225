"""Local storage engines behind one interface (:class:`zkv.storage.base.Store`)."""

from zkv.storage.base import Store, StoreStats, open_store

__all__ = ["Store", "StoreStats", "open_store"]
