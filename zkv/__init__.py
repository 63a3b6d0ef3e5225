"""zkv: a leaderless, replicated key-value store in the Dynamo family, on ZeroMQ."""

from zkv.client import Client, GetResult, NodeInfo, ReplicaState, StoredVersion
from zkv.errors import (
    InvalidRequest,
    NoNodeAvailable,
    ProtocolError,
    Timeout,
    TooLarge,
    Unavailable,
    ZkvError,
)

__all__ = [
    "Client",
    "GetResult",
    "InvalidRequest",
    "NoNodeAvailable",
    "NodeInfo",
    "ProtocolError",
    "ReplicaState",
    "StoredVersion",
    "Timeout",
    "TooLarge",
    "Unavailable",
    "ZkvError",
]
__version__ = "0.1.0"
