"""What the client's calls return: frozen records of a read, a write, a node, a replica, the ring.

They are data only (no sockets), so the shell, the HTTP gateway and the tests build and compare them
freely; the few ``*_from_reply`` functions turn a node's wire reply into them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zkv.core.ring import Ring
from zkv.errors import BadType

Data = str | bytes


def as_bytes(data: Data) -> bytes:
    """A key or value as bytes (str is UTF-8); anything else is :class:`~zkv.errors.BadType`."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise BadType(f"keys and values are str or bytes, not {type(data).__name__}")


@dataclass(frozen=True, slots=True)
class Trace:
    """How one request went (``trace=True``): the client's round trip, and the coordinator's receipt.

    ``receipt`` is what the coordinator did (see :mod:`zkv.core.receipt`): ``coordinator``, ``replicas``
    (node -> ms to its answer, the ones that answered before the reply), ``failed``, ``quorum`` (``strict``
    or ``sloppy``: a fallback stood in for a down primary), ``hints`` written, and for a read
    ``read_repairs`` (replicas found behind) and ``siblings_merged``; for a write its new ``dot``,
    ``blind`` and the versions it ``replaced``."""

    latency_ms: float
    receipt: dict[str, Any]

    @property
    def coordinator(self) -> str:
        return str(self.receipt.get("coordinator", "?"))


@dataclass(frozen=True, slots=True)
class GetResult:
    """A read: every concurrent value and the context to hand back on the next write.

    Siblings are concurrent: no causal order exists between them. They are listed newest first by the
    wall clock of the node that coordinated each write, a display order a skewed clock can get wrong
    (``status`` → ``clock`` warns of such clocks); resolve siblings by their content, never by position.
    """

    key: bytes
    values: list[bytes]
    context: bytes | None
    timestamps: list[float] = field(default_factory=list)
    trace: Trace | None = None  # with get(..., trace=True)

    @property
    def value(self) -> bytes | None:
        """The newest value, or None when the key is missing."""
        return self.values[0] if self.values else None

    @property
    def found(self) -> bool:
        return bool(self.values)

    @property
    def has_siblings(self) -> bool:
        return len(self.values) > 1


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as the asked node sees it."""

    name: str
    address: str
    status: str
    generation: int
    heartbeat_age: float | None
    keys: int
    vnodes: int
    ownership: float
    gossip: str = ""
    phi: float = 0.0  # the asked node's suspicion of this one (phi-accrual); down past the threshold
    disk: str = (
        "ok"  # ok | full | failed | unavailable: a node whose storage refuses writes serves reads only
    )
    # a member removed by removenode: the asked node's pull of the ranges it gained (zkv.core.removal)
    rereplication: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How an acknowledged put or delete was counted.

    ``quorum``: ``strict`` (only the key's own replicas counted toward W) or ``sloppy`` (hinted writes on
    fallback nodes could count); ``hinted``: how many acknowledgements that counted came from fallbacks.
    A sloppy write with ``hinted > 0`` may be missed by a quorum read until its hints are delivered.

    ``context``: the context of the version the write stored (what it superseded plus the write itself;
    None from a node too old to send it). Hand it, or this result, to the next put: it supersedes this
    write's version, with no get in between, but not a concurrent write this one never saw."""

    quorum: str = ""
    hinted: int = 0
    trace: Trace | None = None  # with trace=True: the latency and the coordinator's receipt
    context: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version a replica stores: a value (None for a tombstone) and the dot that wrote it."""

    value: bytes | None
    actor: str
    counter: int
    timestamp: float

    @property
    def is_tombstone(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What one replica holds for a key: its versions and its clock."""

    versions: list[StoredVersion]
    clock: dict[str, int]

    @property
    def values(self) -> list[bytes]:
        return [v.value for v in self.versions if v.value is not None]


@dataclass(frozen=True, slots=True)
class RingInfo:
    replication_factor: int
    vnodes: int
    addresses: dict[str, str]  # node name -> ROUTER address
    ring: Ring
    read_consistency: str
    write_consistency: str
    request_timeout: float

    def preference_list(self, key: Data) -> tuple[str, ...]:
        return self.ring.preference_list(as_bytes(key))


def ring_from_reply(reply: dict[str, Any]) -> RingInfo:
    """The ring a node's ``ring`` reply describes."""
    members = reply["members"]
    return RingInfo(
        replication_factor=reply["replication_factor"],
        vnodes=reply["vnodes"],
        addresses={m["name"]: m["address"] for m in members},
        ring=Ring({m["name"]: m["tokens"] for m in members}, reply["replication_factor"]),
        read_consistency=reply["read_consistency"],
        write_consistency=reply["write_consistency"],
        request_timeout=reply["request_timeout"],
    )


def nodes_from_reply(reply: dict[str, Any]) -> list[NodeInfo]:
    """The rows of a ``nodes`` reply (fields a newer node adds are ignored)."""
    fields = NodeInfo.__dataclass_fields__
    return [NodeInfo(**{k: v for k, v in row.items() if k in fields}) for row in reply["nodes"]]


def get_result(key: bytes, reply: dict[str, Any], trace: Trace | None = None) -> GetResult:
    return GetResult(
        key, list(reply.get("values", [])), reply.get("ctx"), list(reply.get("timestamps", [])), trace
    )


def write_result(reply: dict[str, Any], trace: Trace | None = None) -> WriteResult:
    hinted = reply.get("hinted", 0)
    ctx = reply.get("ctx")
    return WriteResult(
        str(reply.get("quorum", "")),
        hinted if type(hinted) is int else 0,
        trace,
        ctx if isinstance(ctx, bytes) else None,
    )
