"""What a node reports about itself (the ``status`` request): one typed :class:`NodeStatus`, trio style.

Every component has a ``statistics()`` that returns a frozen dataclass of named fields (the store's
:class:`~zkv.storage.base.StoreStats`, the disk's :class:`~zkv.core.storagehealth.StorageHealthStats`,
:class:`HandoffStatistics`, :class:`AntiEntropyStatistics`, :class:`TransferStatistics`); the node puts
them together here. :meth:`NodeStatus.to_wire` is the reply on the wire (plain msgpack/JSON types, the
same keys the node always sent), :meth:`NodeStatus.from_wire` what the client makes of it, tolerant of
fields an older node lacks and keeping those a newer one adds (in ``extra``). The shell and the HTTP
gateway render fields, never the dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from zkv.core.clocks import ClockStats
from zkv.core.stats import LatencySummary
from zkv.core.storagehealth import StorageHealthStats
from zkv.storage.base import StoreStats

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HandoffStatistics:
    """Hints this node keeps for down owners (:class:`zkv.core.handoff.Handoff`)."""

    pending: dict[str, int]  # owner -> hints waiting for it
    bytes: int
    delivered: int
    dropped: int
    in_flight: int  # handoff batches on their way
    oldest_age_s: dict[str, float] = field(default_factory=dict)  # owner -> age of its oldest hint


@dataclass(frozen=True, slots=True)
class FullPassStatistics:
    """An on-demand full anti-entropy pass (``zkv-node repair``): ``pass`` on the wire."""

    peers: int = 0
    done: int = 0
    remaining: list[str] = field(default_factory=list)
    passes: int = 0  # full passes finished


@dataclass(frozen=True, slots=True)
class AntiEntropyStatistics:
    """Merkle-tree exchanges with peers (:class:`zkv.core.antientropy.AntiEntropy`)."""

    exchanges: int
    keys_sent: int
    keys_received: int
    last_differences: dict[str, int]  # peer -> keys that differed in the last exchange with it
    tracked_keys: int
    leaves_differing: dict[str, Any] = field(default_factory=dict)  # peer -> Merkle leaves that differed
    full_pass: FullPassStatistics = FullPassStatistics()
    indexing: bool = False  # still digesting the keys found on disk at start (no exchanges until done)
    seconds_since_round: dict[str, float] = field(default_factory=dict)  # peer -> since the last round

    def to_wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["pass"] = out.pop("full_pass")
        out["indexing"] = out.pop("indexing")  # the order a node always sent
        out["seconds_since_round"] = out.pop("seconds_since_round")
        return out

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> AntiEntropyStatistics:
        base = {"exchanges": 0, "keys_sent": 0, "keys_received": 0, "last_differences": {}, "tracked_keys": 0}
        full_pass = wire.get("pass")
        stats = _known(cls, base | {k: v for k, v in wire.items() if k != "full_pass"})
        if isinstance(full_pass, dict):
            stats = replace(stats, full_pass=_known(FullPassStatistics, full_pass))
        return stats


@dataclass(frozen=True, slots=True)
class JoinStatistics:
    sources: list[str]
    done: list[str]
    keys_received: int
    retries: int


@dataclass(frozen=True, slots=True)
class LeaveStatistics:
    keys: int
    position: int
    keys_sent: int
    retries: int


@dataclass(frozen=True, slots=True)
class TransferStatistics:
    """Ranges streamed to joining nodes and from leaving ones; this node's own join or leave, if any."""

    keys_served: int = 0
    keys_pushed_in: int = 0
    join: JoinStatistics | None = None
    leave: LeaveStatistics | None = None
    # removed member -> this node's pull of the ranges it gained (done, sources_left, keys_received,
    # keys_left: what its sources still had to look at when they last answered); zkv.core.removal
    removal: dict[str, dict[str, Any]] = field(default_factory=dict)
    cleanup: dict[str, Any] | None = None  # the last cleanup pass (zkv.core.cleanup), if any

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"keys_served": self.keys_served, "keys_pushed_in": self.keys_pushed_in}
        if self.join is not None:
            out["join"] = asdict(self.join)
        if self.leave is not None:
            out["leave"] = asdict(self.leave)
        if self.removal:
            out["removal"] = self.removal
        if self.cleanup is not None:
            out["cleanup"] = self.cleanup
        return out

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> TransferStatistics:
        join, leave = wire.get("join"), wire.get("leave")
        return cls(
            keys_served=wire.get("keys_served", 0),
            keys_pushed_in=wire.get("keys_pushed_in", 0),
            join=_known(JoinStatistics, join) if isinstance(join, dict) else None,
            leave=_known(LeaveStatistics, leave) if isinstance(leave, dict) else None,
            removal=dict(wire.get("removal") or {}),
            cleanup=wire.get("cleanup") if isinstance(wire.get("cleanup"), dict) else None,
        )


@dataclass(frozen=True, slots=True)
class PurgeStatistics:
    """Tombstone purge (:mod:`zkv.core.purge`) on one node."""

    grace_s: float
    waiting: int  # dead states not yet past their grace
    retired: int  # past the grace, waiting for every replica to agree
    retired_total: int  # retired since start
    purged: int  # dropped from the store since start
    stale_hints_dropped: int  # hinted states older than the grace, for keys the node did not hold


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node's statistics, as its ``status`` request reports them."""

    node: str
    generation: int
    actor: str
    uptime_s: float
    keys: int
    storage: StoreStats
    disk: StorageHealthStats | None
    clock: ClockStats | None  # how far the peers' wall clocks are from this node's
    requests: dict[str, int]  # "put/quorum", "get/one", "nodes", ... -> count
    errors: dict[str, int]  # wire code -> count
    latency: dict[str, LatencySummary]  # op -> recent latency
    forwarded: int
    read_repairs: int
    bad_messages: int
    in_flight: int
    hints: HandoffStatistics | None  # None: this node keeps no hints
    hints_received: int
    anti_entropy: AntiEntropyStatistics
    member_status: str | None  # joining | normal | leaving | removed
    transfer: TransferStatistics
    peers_up: int
    peers: int
    histograms: dict[str, Any] = field(default_factory=dict)  # Prometheus-style buckets (the HTTP /metrics)
    readiness: dict[str, Any] = field(default_factory=dict)  # can it serve quorum for its ranges (/ready)
    purge: PurgeStatistics | None = None  # None: an older node that does not report it
    pid: int | None = None  # what only the runtime knows: its process and addresses
    address: str | None = None
    gossip: str | None = None
    build: str | None = None  # "compiled (mypyc)" or "pure Python (why)": zkv.compiled.describe()
    extra: dict[str, Any] = field(default_factory=dict)  # fields this client does not know (a newer node)

    def to_wire(self) -> dict[str, Any]:
        """Plain types only (msgpack and JSON take it as it is): the keys a node has always sent."""
        out: dict[str, Any] = {
            "node": self.node,
            "generation": self.generation,
            "actor": self.actor,
            "uptime_s": self.uptime_s,
            "keys": self.keys,
            "storage": asdict(self.storage),
            "disk": asdict(self.disk) if self.disk is not None else None,
            "clock": {**asdict(self.clock), "off_peers": list(self.clock.off_peers)} if self.clock else None,
            "requests": dict(self.requests),
            "errors": dict(self.errors),
            "latency": {op: asdict(s) for op, s in self.latency.items()},
            "forwarded": self.forwarded,
            "read_repairs": self.read_repairs,
            "bad_messages": self.bad_messages,
            "in_flight": self.in_flight,
            "hints": asdict(self.hints) if self.hints is not None else None,
            "hints_received": self.hints_received,
            "anti_entropy": self.anti_entropy.to_wire(),
            "member_status": self.member_status,
            "transfer": self.transfer.to_wire(),
            "peers_up": self.peers_up,
            "peers": self.peers,
            "histograms": self.histograms,
            "readiness": self.readiness,
            "purge": asdict(self.purge) if self.purge is not None else None,
        }
        for name in ("pid", "address", "gossip", "build"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return {**out, **self.extra}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> NodeStatus:
        """A node's ``status`` reply (its ``id`` and ``ok`` are not status)."""
        storage = wire.get("storage") or {}
        disk, hints, clock = wire.get("disk"), wire.get("hints"), wire.get("clock")
        known = {f.name for f in fields(cls)} | {"id", "ok"}
        return cls(
            node=wire.get("node", ""),
            generation=wire.get("generation", 0),
            actor=wire.get("actor", ""),
            uptime_s=wire.get("uptime_s", 0.0),
            keys=wire.get("keys", 0),
            storage=_known(StoreStats, {"engine": "?", "keys": 0, "bytes": 0, "flushes": 0, **storage}),
            disk=_known(StorageHealthStats, disk) if isinstance(disk, dict) else None,
            clock=_clock(clock) if isinstance(clock, dict) else None,
            requests=dict(wire.get("requests") or {}),
            errors=dict(wire.get("errors") or {}),
            latency={op: _known(LatencySummary, s) for op, s in (wire.get("latency") or {}).items()},
            forwarded=wire.get("forwarded", 0),
            read_repairs=wire.get("read_repairs", 0),
            bad_messages=wire.get("bad_messages", 0),
            in_flight=wire.get("in_flight", 0),
            hints=_known(HandoffStatistics, hints) if isinstance(hints, dict) else None,
            hints_received=wire.get("hints_received", 0),
            anti_entropy=AntiEntropyStatistics.from_wire(wire.get("anti_entropy") or {}),
            member_status=wire.get("member_status"),
            transfer=TransferStatistics.from_wire(wire.get("transfer") or {}),
            peers_up=wire.get("peers_up", 0),
            peers=wire.get("peers", 0),
            histograms=dict(wire.get("histograms") or {}),
            readiness=dict(wire.get("readiness") or {}),
            purge=_known(PurgeStatistics, wire["purge"]) if isinstance(wire.get("purge"), dict) else None,
            pid=wire.get("pid"),
            address=wire.get("address"),
            gossip=wire.get("gossip"),
            build=wire.get("build"),
            extra={k: v for k, v in wire.items() if k not in known},
        )


def _clock(wire: dict[str, Any]) -> ClockStats:
    base = {"max_skew_s": 0.0, "peer_offsets_s": {}, "off_peers": (), "suspect_self": False}
    stats = _known(ClockStats, base | wire)
    return replace(stats, off_peers=tuple(stats.off_peers))  # a list on the wire


def _known(cls: type[T], wire: dict[str, Any]) -> T:
    """``cls`` from the fields of ``wire`` it has (a newer node may send more)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in wire.items() if k in names})
