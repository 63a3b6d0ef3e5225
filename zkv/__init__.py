"""zkv: a leaderless, replicated key-value store in the Dynamo family, on ZeroMQ.

The client and error names are loaded on first use, so ``import zkv.core`` stays free of pyzmq (the core
is sans-I/O) while ``from zkv import Client`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import Any

from zkv import compiled

compiled.select()  # before any hot-path module loads: compiled extensions only when they match the sources

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "zkv.client",
    "GetResult": "zkv.client",
    "Trace": "zkv.client",
    "NodeInfo": "zkv.client",
    "NodeStatus": "zkv.core.status",
    "ReplicaState": "zkv.client",
    "StoredVersion": "zkv.client",
    "ZkvError": "zkv.errors",
    "Unavailable": "zkv.errors",
    "Timeout": "zkv.errors",
    "InvalidRequest": "zkv.errors",
    "TooLarge": "zkv.errors",
    "ProtocolError": "zkv.errors",
    "Overloaded": "zkv.errors",
    "StorageUnavailable": "zkv.errors",
    "Unauthorized": "zkv.errors",
    "NoNodeAvailable": "zkv.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zkv' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
