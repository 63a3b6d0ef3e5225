"""The entries of a coordinator's pending table: one per request in flight, with where its answer goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from zkv.core.quorum import ReadQuorum, WriteQuorum


class Origin(NamedTuple):
    """Where a request's answer goes: a client, or (``fwd_id`` set) the peer that forwarded it."""

    route: bytes
    rid: int
    fwd_id: int | None = None


@dataclass(slots=True)
class PendingWrite:
    origin: Origin
    op: str
    consistency: str
    started: float
    quorum: WriteQuorum
    flushes: int  # the runtime's flushes before the local write: any later one made it durable
    strict: bool = False  # only preference-list replicas count toward W
    fallbacks: frozenset[str] = frozenset()  # fallbacks whose hinted acks count (a sloppy quorum)
    receipt: dict[str, Any] | None = None  # kept only when the request asked for a trace
    ctx: bytes = b""  # the stored version's causal context: the reply hands it back (put, then put again)


@dataclass(slots=True)
class PendingRead:
    origin: Origin
    consistency: str
    key: bytes
    started: float
    quorum: ReadQuorum
    spares: list[str]  # live replicas not asked (yet): asked when an asked one fails or is slow
    replied: bool = False
    receipt: dict[str, Any] | None = None  # kept only when the request asked for a trace


@dataclass(slots=True)
class PendingForward:
    origin: Origin
    request: dict[str, Any]
    op: str
    consistency: str | None
    candidates: list[str]
    started: float
    deadline: float


Pending = PendingWrite | PendingRead | PendingForward
