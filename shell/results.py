"""What a command produced, as data: the session returns these, :mod:`zkv_shell.render` decides the looks.

Each result knows whether it counts as a failure (for the exit status of scripts) and how to turn itself
into plain JSON-able data for ``-o json``; nothing here prints.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from zkv.core.status import NodeStatus


def json_bytes(data: bytes | None) -> Any:
    """Text stays text in JSON; bytes that are not UTF-8 become ``{"base64": ...}``; None stays null."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _trace_dict(trace: Any) -> dict[str, Any]:
    """``{"trace": {"latency_ms": ..., "receipt": {...}}}`` for a traced command, else nothing."""
    if trace is None:
        return {}
    return {"trace": {"latency_ms": trace.latency_ms, "receipt": trace.receipt}}


@dataclass(frozen=True, slots=True)
class Result:
    """Base of every result: the command that produced it."""

    command: str

    @property
    def ok(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok}


@dataclass(frozen=True, slots=True)
class Failure(Result):
    """A command that did not do what was asked: a code, what happened, and what to do about it."""

    code: str = "internal"
    message: str = ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "ok": False,
            "error": self.code,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True, slots=True)
class Quit(Result):
    """The user asked to leave."""


@dataclass(frozen=True, slots=True)
class Message(Result):
    """A short confirmation or fact (``switch``, ``consistency``)."""

    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": True, "message": self.text, **self.data}


@dataclass(frozen=True, slots=True)
class Help(Result):
    """``help`` (topic None: the list of commands) or ``help CMD``."""

    topic: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from .commands import COMMANDS

        names = [self.topic] if self.topic else list(COMMANDS)
        return {
            "command": "help",
            "ok": True,
            "commands": {n: {"usage": COMMANDS[n].usage, "help": COMMANDS[n].help} for n in names},
        }


@dataclass(frozen=True, slots=True)
class Written(Result):
    """A put or delete the cluster acknowledged; ``resolved`` counts the versions its context replaced."""

    key: bytes = b""
    consistency: str | None = None
    node: str = ""
    with_context: bool = False
    resolved: int = 0
    quorum: str = ""  # strict | sloppy: whether hints on fallbacks could count toward the consistency
    hinted: int = 0  # acknowledgements that counted and came from fallbacks
    trace: Any = None  # a zkv.client.Trace when the session traces (``trace on``)

    def to_dict(self) -> dict[str, Any]:
        return {
            **_trace_dict(self.trace),
            "command": self.command,
            "ok": True,
            "key": json_bytes(self.key),
            "consistency": self.consistency,
            "coordinator": self.node,
            "context": self.with_context,
            "resolved": self.resolved,
            "quorum": self.quorum,
            "hinted": self.hinted,
        }


@dataclass(frozen=True, slots=True)
class Read(Result):
    """A get: every sibling, newest first (empty when the key is missing)."""

    key: bytes = b""
    values: tuple[bytes, ...] = ()
    timestamps: tuple[float, ...] = ()
    consistency: str | None = None
    context: bytes | None = None  # to hand back on the next write (``put --context``, base64 in JSON)
    trace: Any = None  # a zkv.client.Trace when the session traces (``trace on``)

    @property
    def found(self) -> bool:
        return bool(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "ok": True,
            "key": json_bytes(self.key),
            "found": self.found,
            "values": [json_bytes(v) for v in self.values],
            "timestamps": list(self.timestamps),
            "siblings": len(self.values),
            "consistency": self.consistency,
            "context": base64.b64encode(self.context).decode("ascii") if self.context is not None else None,
            **_trace_dict(self.trace),
        }


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    address: str
    status: str
    heartbeat_age: float | None
    vnodes: int
    ownership: float  # share of the key space it holds a replica of (0..1)
    keys: int  # -1: not reported yet
    disk: str = "ok"  # full / failed: the node refuses writes


@dataclass(frozen=True, slots=True)
class Nodes(Result):
    """``nodes``: the cluster as ``seen_by`` sees it."""

    seen_by: str = ""
    rows: tuple[NodeRow, ...] = ()

    @property
    def up(self) -> int:
        return sum(1 for r in self.rows if r.status == "up")

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "nodes",
            "ok": True,
            "seen_by": self.seen_by,
            "up": self.up,
            "down": sum(1 for r in self.rows if r.status == "down"),
            # every status by count: joining, leaving and removed nodes are neither up nor down
            "statuses": dict(sorted(Counter(r.status for r in self.rows).items())),
            "nodes": [
                {
                    "name": r.name,
                    "address": r.address,
                    "status": r.status,
                    "heartbeat_age": r.heartbeat_age,
                    "vnodes": r.vnodes,
                    "ownership": r.ownership,
                    "keys": None if r.keys < 0 else r.keys,
                }
                for r in self.rows
            ],
        }


@dataclass(frozen=True, slots=True)
class Status(Result):
    """``status``: one node's statistics, as the node reported them."""

    node: str = ""
    stats: NodeStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats.to_wire() if self.stats is not None else {}
        return {"command": "status", "ok": True, "node": self.node, "stats": stats}


@dataclass(frozen=True, slots=True)
class Placement:
    node: str
    address: str
    role: str  # primary | fallback
    up: bool


@dataclass(frozen=True, slots=True)
class Where(Result):
    """``where``: the key's preference list and who coordinates a request for it from this shell."""

    key: bytes = b""
    placements: tuple[Placement, ...] = ()
    coordinator: str | None = None
    connected: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "where",
            "ok": True,
            "key": json_bytes(self.key),
            "coordinator": self.coordinator,
            "connected": self.connected,
            "placements": [
                {"node": p.node, "address": p.address, "role": p.role, "up": p.up} for p in self.placements
            ],
        }


@dataclass(frozen=True, slots=True)
class Version:
    """One version some replica holds, identified by the write (dot) that made it."""

    value: bytes | None  # None: a tombstone
    actor: str
    counter: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class Scanned(Result):
    """A page of a key scan: its keys in order (with their values when asked) and the next cursor."""

    prefix: bytes = b""
    keys: tuple[bytes, ...] = ()
    values: tuple[tuple[bytes, ...], ...] | None = None  # per key, with --values
    cursor: str | None = None  # None: the scan is done
    consistency: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "command": self.command,
            "ok": True,
            "prefix": json_bytes(self.prefix),
            "keys": [json_bytes(k) for k in self.keys],
            "cursor": self.cursor,
            "consistency": self.consistency,
        }
        if self.values is not None:
            out["values"] = [[json_bytes(v) for v in vs] for vs in self.values]
        return out


@dataclass(frozen=True, slots=True)
class Replicas(Result):
    """``replicas``: for each version of the key, what each replica knows of it.

    ``cells[node][i]`` is ``held`` (the replica stores version i), ``superseded`` (it saw version i and
    a newer write replaced it) or ``missing`` (it never saw it); ``errors`` names unreachable replicas.
    """

    key: bytes = b""
    nodes: tuple[str, ...] = ()
    versions: tuple[Version, ...] = ()
    cells: dict[str, tuple[str, ...]] = field(default_factory=dict)
    clocks: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """The reachable replicas do not all hold the same versions under the same clock."""
        seen = [(self.cells[n], tuple(sorted(self.clocks[n].items()))) for n in self.nodes if n in self.cells]
        return len(set(seen)) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "replicas",
            "ok": True,
            "key": json_bytes(self.key),
            "diverged": self.diverged,
            "replicas": {
                n: {"error": self.errors[n]}
                if n in self.errors
                else {
                    "clock": self.clocks[n],
                    "versions": [
                        {
                            "value": json_bytes(v.value),
                            "tombstone": v.value is None,
                            "dot": [v.actor, v.counter],
                            "timestamp": v.timestamp,
                            "state": c,
                        }
                        for v, c in zip(self.versions, self.cells[n], strict=True)
                    ],
                }
                for n in self.nodes
            },
        }
