"""The Python client: ``from zkv import Client``.

The client learns the ring from any node it can reach and sends each keyed request straight to a node of
the key's preference list (its natural coordinator), so requests are not forwarded inside the cluster.
When a node cannot be reached (no connection) the next node of the list is tried at once. When a node
stays silent for ``timeout`` seconds, a read is sent to the next one; a write is not (it raises
:class:`~zkv.errors.Timeout`: it may or may not have landed), because sent again it could be stored twice,
as two siblings with the same value. ``Client(..., retry_writes=True)`` trades that for availability.

With CURVE (``[security] curve = true``) every connection is encrypted and the client proves itself with
its key pair: ``Client.from_config("cluster.toml", key_file="keys/alice.key_secret")`` takes the node
addresses and their public keys from the file.

Many requests can be in flight on one client (:meth:`Client.put_many`, :meth:`Client.get_many`): every
request carries an id and the reply echoes it. A client is not thread-safe; use one per thread.

``Client(..., pinned=True)`` sends every request to its seed addresses in order instead: the node it
reaches coordinates (forwarding to a replica when it holds none), which is what ``switch`` in the shell and
tests of forwarding want.

The package's modules, one job each: :mod:`~zkv.client.api` (the operations), :mod:`~zkv.client.transport`
(sockets, routing, pipelining, retries), :mod:`~zkv.client.results` (what calls return) and
:mod:`~zkv.client.arguments` (checking what callers pass).
"""

from zkv.client.api import Client
from zkv.client.arguments import (
    EMPTY_CONTEXT,
    check_consistency,
    check_level,
    context_bytes,
    curve_options,
    normalize_address,
)
from zkv.client.results import (
    Data,
    GetResult,
    NodeInfo,
    ReplicaState,
    RingInfo,
    StoredVersion,
    Trace,
    WriteResult,
)
from zkv.client.transport import (
    CONNECT_PATIENCE_S,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_MESSAGE_BYTES,
    RING_TTL_S,
    STOPPING_BACKOFF_S,
    UNREACHABLE_BACKOFF_S,
)
from zkv.client.txn import Transaction, TxnResult
from zkv.core.scan import ScanEntry, ScanPage

__all__ = [
    "CONNECT_PATIENCE_S",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EMPTY_CONTEXT",
    "RING_TTL_S",
    "STOPPING_BACKOFF_S",
    "UNREACHABLE_BACKOFF_S",
    "Client",
    "Data",
    "GetResult",
    "NodeInfo",
    "ReplicaState",
    "RingInfo",
    "ScanEntry",
    "ScanPage",
    "StoredVersion",
    "Trace",
    "Transaction",
    "TxnResult",
    "WriteResult",
    "check_consistency",
    "check_level",
    "context_bytes",
    "curve_options",
    "normalize_address",
]
