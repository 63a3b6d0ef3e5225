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
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from zkv.config import ClusterConfig, load_config
from zkv.core.ring import Ring
from zkv.core.status import NodeStatus
from zkv.core.versions import state_from_wire
from zkv.errors import (
    BadAddress,
    BadArgument,
    BadType,
    ClientClosed,
    ConfigError,
    MessageTooLarge,
    NodeStopping,
    NoNodeAvailable,
    Timeout,
    UnknownNode,
    ZkvError,
    from_reply,
)
from zkv.protocol import LEVELS, pack, unpack_frame
from zkv.security import KeyPair, load_key, make_curve_client

Data = str | bytes

RING_TTL_S = 5.0  # how long a learned ring is trusted before it is asked for again (joins, leaves)
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 1000
CONNECT_PATIENCE_S = 1.0  # how long a connection that is not up yet may take before the next node is tried
UNREACHABLE_BACKOFF_S = 2.0  # how long a node that refused a connection goes to the back of the line
STOPPING_BACKOFF_S = 10.0  # ... and one that said it is stopping (its drain, its stop and restart)


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


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How an acknowledged put or delete was counted.

    ``quorum``: ``strict`` (only the key's own replicas counted toward W) or ``sloppy`` (hinted writes on
    fallback nodes could count); ``hinted``: how many acknowledgements that counted came from fallbacks.
    A sloppy write with ``hinted > 0`` may be missed by a quorum read until its hints are delivered."""

    quorum: str = ""
    hinted: int = 0
    trace: Trace | None = None  # with trace=True: the latency and the coordinator's receipt


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
        return self.ring.preference_list(_bytes(key))


def _bytes(data: Data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise BadType(f"keys and values are str or bytes, not {type(data).__name__}")


_SCHEMES = ("tcp://", "ipc://", "inproc://")


def normalize_address(address: object) -> str:
    """A node address as ZeroMQ wants it: ``HOST:PORT`` gets ``tcp://``; anything unusable is
    :class:`~zkv.errors.BadAddress` (a ZMQError from deep inside a connect helps no one)."""
    if not isinstance(address, str) or not address.strip():
        raise BadAddress(f"a node address is a string like 127.0.0.1:7101, not {address!r}")
    address = address.strip()
    if "://" not in address:
        address = "tcp://" + address
    if not address.startswith(_SCHEMES):
        raise BadAddress(f"{address!r}: addresses look like 127.0.0.1:7101 or tcp://127.0.0.1:7101")
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://") :].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadAddress(f"{address!r}: a tcp address needs HOST:PORT with a port of 1-65535")
    return address


def check_level(level: object) -> str | None:
    """A consistency level the cluster knows, or None (the cluster's default)."""
    if level is None or level in LEVELS:
        return level
    raise BadArgument(f"unknown consistency level {level!r}; use one, quorum or all", level=str(level))


def context_bytes(context: Any) -> bytes | None:
    """A context as the wire carries it: bytes, a :class:`GetResult`'s, or the base64 text that
    ``zkv-shell -o json`` prints (so a script can hand it back)."""
    if context is None or isinstance(context, bytes):
        return context
    if isinstance(context, GetResult):
        return context.context
    if isinstance(context, str):
        try:  # standard base64 (zkv-shell -o json), or the URL-safe unpadded token of the HTTP API
            text = context.strip().encode("ascii")
            altchars = b"-_" if b"-" in text or b"_" in text else None
            return base64.b64decode(text + b"=" * (-len(text) % 4), altchars=altchars, validate=True)
        except (ValueError, UnicodeEncodeError):
            raise BadArgument("the context is not base64 text from zkv-shell -o json or a get") from None
    raise BadType(f"a context is bytes, base64 text or a GetResult, not {type(context).__name__}")


@dataclass(slots=True)
class _Job:
    msg: dict[str, Any]
    candidates: list[str]  # addresses still to try, in order
    result: Any = None
    done: bool = False
    deadline: float = 0.0
    last_error: ZkvError | None = None
    resend_on_timeout: bool = True  # False for writes: a re-sent put may land twice, as two versions
    slot: int = -1  # its place in the batch being run


class Client:
    """A connection to a zkv cluster through any of its nodes."""

    def __init__(
        self,
        addresses: Sequence[str] | str,
        consistency: str | None = None,
        timeout: float | None = None,
        pinned: bool = False,
        retry_writes: bool = False,
        curve_key: KeyPair | None = None,
        server_keys: dict[str, bytes] | None = None,
    ) -> None:
        if isinstance(addresses, str):
            addresses = [addresses]
        if not addresses:
            raise BadAddress("give at least one node address, like 127.0.0.1:7101")
        consistency = check_level(consistency)
        if curve_key is not None and curve_key.secret is None:
            raise BadArgument("the client's CURVE key must include its secret key (the .key_secret file)")
        self.seeds = [normalize_address(a) for a in addresses]
        self.curve_key = curve_key  # None: plaintext
        self.server_keys = dict(server_keys or {})  # node address -> its CURVE public key
        self.pinned = pinned  # send every request to the seeds, in order, instead of routing by the ring
        self.consistency = consistency
        # A write that timed out may still have landed; sending it again to another node would store it
        # a second time under a new dot (a duplicate sibling). Like Cassandra's drivers with
        # non-idempotent statements, writes are only re-sent after a timeout when asked to.
        self.retry_writes = retry_writes
        self._timeout = timeout
        self._ctx = zmq.Context()
        self._sockets: dict[str, zmq.Socket] = {}
        self._address_of: dict[zmq.Socket, str] = {}
        self._poller = zmq.Poller()
        self._ids = itertools.count(1)
        self._ring: RingInfo | None = None
        self._ring_at = 0.0
        self._unreachable_until: dict[str, float] = {}
        # the cluster's limits, learned with the ring (these defaults are the nodes' defaults)
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self.max_in_flight = DEFAULT_MAX_IN_FLIGHT
        self.closed = False

    @classmethod
    def from_config(
        cls, path: str | Path = "cluster.toml", key_file: str | Path | None = None, **kwargs: Any
    ) -> Client:
        """A client for the cluster a cluster.toml describes (every node's address is a seed).

        With ``[security] curve = true`` it needs ``key_file``, this client's secret key file (made by
        ``zkv-node keygen``; its public half must be in the cluster's ``client_keys`` or ``admin_keys``).
        """
        config = load_config(path)
        return cls([n.address for n in config.nodes], **curve_options(config, key_file), **kwargs)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        self._ctx.destroy(linger=0)

    @property
    def timeout(self) -> float:
        """Seconds to wait for one node before trying the next."""
        if self._timeout is not None:
            return self._timeout
        return (self._ring.request_timeout if self._ring else 2.0) + 0.5

    # ------------------------------------------------------------------------------------------ data

    def put(
        self,
        key: Data,
        value: Data,
        consistency: str | None = None,
        context: Any = None,
        concurrent: bool = False,
        ttl: float | None = None,
        sloppy: bool | None = None,
        trace: bool = False,
    ) -> WriteResult:
        """Store ``value``; with ``ttl`` (seconds, > 0, at most 10 years) it expires that long from now.

        An expired key reads as not found at every consistency level; a put without ``ttl`` on an
        expiring key makes it permanent again (docs/operations.md, "TTL").

        With the ``context`` of an earlier get (the :class:`GetResult`, its ``.context`` bytes, or the
        base64 text ``zkv-shell -o json`` prints) it supersedes exactly what that get saw. Without one it
        is a *blind* write: it supersedes every version the coordinating replica holds (what a user of
        any other store expects of a put). ``concurrent=True`` supersedes nothing: the value becomes a
        sibling of whatever the key holds (Dynamo's raw semantics).

        ``sloppy``: may hinted writes on fallback nodes count toward W (a sloppy quorum)? ``False`` counts
        only the key's own replicas (a strict quorum: a strict quorum read after it sees it); ``None``
        takes the cluster's ``sloppy_quorum``. The result says which one was used.
        ``trace=True`` also fills the result's ``.trace``: the latency and the coordinator's receipt.
        """
        msg = self._write_msg("put", key, value, consistency, _write_context(context, concurrent), sloppy)
        if ttl is not None:
            msg["ttl"] = ttl
        return self._traced(msg, trace)

    def delete(
        self,
        key: Data,
        consistency: str | None = None,
        context: Any = None,
        sloppy: bool | None = None,
        trace: bool = False,
    ) -> WriteResult:
        """Delete (write a tombstone); with a context, only what the context saw is deleted, without one
        every version the coordinating replica holds. ``sloppy`` and ``trace`` as for :meth:`put`."""
        return self._traced(self._write_msg("delete", key, None, consistency, context, sloppy), trace)

    def get(self, key: Data, consistency: str | None = None, trace: bool = False) -> GetResult:
        """Read every sibling; ``trace=True`` fills ``.trace`` with the latency and the receipt."""
        msg = self._read_msg(key, consistency)
        if not trace:
            return _get_result(msg["key"], self._call_keyed(msg))
        started = time.perf_counter()
        reply = self._call_keyed({**msg, "trace": True})
        done = Trace(round((time.perf_counter() - started) * 1000, 3), dict(reply.get("receipt") or {}))
        return _get_result(msg["key"], reply, done)

    def _traced(self, msg: dict[str, Any], trace: bool) -> WriteResult:
        if not trace:
            return _write_result(self._call_keyed(msg))
        started = time.perf_counter()
        reply = self._call_keyed({**msg, "trace": True})
        done = Trace(round((time.perf_counter() - started) * 1000, 3), dict(reply.get("receipt") or {}))
        return _write_result(reply, done)

    def put_many(
        self, items: Iterable[tuple[Data, Data] | tuple[Data, Data, Any]], consistency: str | None = None
    ) -> list[ZkvError | None]:
        """Pipelined puts (all in flight at once); one entry per item: None, or the error it met.

        An item is ``(key, value)`` or ``(key, value, context)`` (a context as :meth:`put` takes it)."""
        msgs = []
        for item in items:
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise BadArgument("put_many takes (key, value) or (key, value, context) tuples")
            context = item[2] if len(item) == 3 else None
            msgs.append(self._write_msg("put", item[0], item[1], consistency, context))
        return [r if isinstance(r, ZkvError) else None for r in self._run(msgs)]

    def delete_many(
        self, items: Iterable[Data | tuple[Data, Any]], consistency: str | None = None
    ) -> list[ZkvError | None]:
        """Pipelined deletes; an item is a key or ``(key, context)``; per item: None or its error."""
        msgs = []
        for item in items:
            key, context = item if isinstance(item, tuple) else (item, None)
            msgs.append(self._write_msg("delete", key, None, consistency, context))
        return [r if isinstance(r, ZkvError) else None for r in self._run(msgs)]

    def get_many(self, keys: Iterable[Data], consistency: str | None = None) -> list[GetResult | ZkvError]:
        """Pipelined gets; one entry per key: its result, or the error it met."""
        msgs = [self._read_msg(k, consistency) for k in keys]
        return [
            r if isinstance(r, ZkvError) else _get_result(m["key"], r)
            for m, r in zip(msgs, self._run(msgs), strict=True)
        ]

    # ------------------------------------------------------------------------------------------ admin

    def ping(self, address: str | None = None) -> dict[str, Any]:
        return self._call({"op": "ping"}, [normalize_address(address)] if address else None)

    def nodes(self, address: str | None = None) -> list[NodeInfo]:
        """Every node as the node at ``address`` (default: any reachable) sees the cluster."""
        reply = self._call({"op": "nodes"}, [normalize_address(address)] if address else None)
        fields = NodeInfo.__dataclass_fields__
        return [NodeInfo(**{k: v for k, v in row.items() if k in fields}) for row in reply["nodes"]]

    def views(self) -> dict[str, dict[str, NodeInfo] | ZkvError]:
        """Every node's view of the cluster, side by side: asked of each node directly, in parallel."""
        members = self.nodes()
        jobs = [_Job({"op": "nodes"}, [m.address]) for m in members]
        fields = NodeInfo.__dataclass_fields__
        out: dict[str, dict[str, NodeInfo] | ZkvError] = {}
        for member, reply in zip(members, self._run_jobs(jobs), strict=True):
            if isinstance(reply, ZkvError):
                out[member.name] = reply
            else:
                rows = [NodeInfo(**{k: v for k, v in row.items() if k in fields}) for row in reply["nodes"]]
                out[member.name] = {row.name: row for row in rows}
        return out

    def statuses(
        self, addresses: Sequence[str], timeout: float | None = None
    ) -> list[dict[str, Any] | ZkvError]:
        """The statistics of the nodes at ``addresses``, asked of each directly and in parallel (one entry
        per address: its status, or the error it met); ``timeout`` bounds the wait for each, so one slow
        node costs the dashboard's once-a-second poll a tick, not seconds."""
        saved = self._timeout
        if timeout is not None:
            self._timeout = timeout
        try:
            return self._run_jobs([_Job({"op": "status"}, [address]) for address in addresses])
        finally:
            self._timeout = saved

    def status(self, node: str | None = None) -> NodeStatus:
        """A node's statistics (``node`` is a name or an address; default: any reachable node); its
        ``to_wire()`` is the same as plain JSON-ready data."""
        return NodeStatus.from_wire(self._call({"op": "status"}, [self._resolve(node)] if node else None))

    def ring(self, refresh: bool = False) -> RingInfo:
        if self._ring is None or refresh:
            reply = self._call({"op": "ring"}, None)
            self._ring_at = time.monotonic()
            members = reply["members"]
            self._ring = RingInfo(
                replication_factor=reply["replication_factor"],
                vnodes=reply["vnodes"],
                addresses={m["name"]: m["address"] for m in members},
                ring=Ring({m["name"]: m["tokens"] for m in members}, reply["replication_factor"]),
                read_consistency=reply["read_consistency"],
                write_consistency=reply["write_consistency"],
                request_timeout=reply["request_timeout"],
            )
            limits = reply.get("limits")
            if isinstance(limits, dict):
                self.max_message_bytes = int(limits.get("max_message_bytes", self.max_message_bytes))
                self.max_in_flight = max(1, int(limits.get("max_in_flight_per_client", self.max_in_flight)))
        return self._ring

    def replicas(self, key: Data) -> dict[str, ReplicaState | ZkvError]:
        """Each replica's stored versions of ``key``, read straight from it with no repair."""
        key = _bytes(key)
        info = self.ring()
        names = list(info.preference_list(key))
        jobs = [_Job({"op": "local_get", "key": key}, [info.addresses[n]]) for n in names]
        results = self._run_jobs(jobs)
        out: dict[str, ReplicaState | ZkvError] = {}
        for name, reply in zip(names, results, strict=True):
            if isinstance(reply, ZkvError):
                out[name] = reply
            else:
                state = state_from_wire(reply["state"])
                versions = [StoredVersion(s.value, s.actor, s.counter, s.timestamp) for s in state.siblings]
                out[name] = ReplicaState(versions, dict(state.clock))
        return out

    def leave(self, node: str) -> dict[str, Any]:
        """Ask ``node`` (a name or address) to hand its data to the remaining nodes and leave the cluster."""
        return self._call({"op": "leave"}, [self._resolve(node)])

    def faults(self, node: str, **rules: Any) -> dict[str, Any]:
        """Show or set (``drop_in=[...]``, ``drop_out=[...]``) a node's fault filter."""
        return self._call({"op": "faults", **rules}, [self._resolve(node)])

    def restart(self, node: str) -> dict[str, Any]:
        """Ask ``node`` to drain and stop for a restart (its supervisor starts it again: rolling-restart)."""
        return self._call({"op": "restart"}, [self._resolve(node)])

    def repair_now(self, node: str) -> dict[str, Any]:
        """Ask ``node`` for a full anti-entropy pass with every peer now (progress: its status)."""
        return self._call({"op": "repair_now"}, [self._resolve(node)])

    def merge_states(self, node: str, items: list[list[Any]]) -> dict[str, Any]:
        """Have ``node`` merge ``[key, wire state]`` items into their replicas (a live restore)."""
        return self._call({"op": "merge_states", "items": items}, [self._resolve(node)])

    def snapshot(self, node: str, folder: str) -> dict[str, Any]:
        """Ask ``node`` to snapshot its store into ``folder`` (absolute, on its machine): the manifest."""
        return self._call({"op": "snapshot", "dir": folder}, [self._resolve(node)])

    # ------------------------------------------------------------------------------------------ plumbing

    def _resolve(self, node: str) -> str:
        if not isinstance(node, str):
            raise BadType(f"a node is a name or an address, not {type(node).__name__}")
        if "://" in node:
            return normalize_address(node)
        addresses = self.ring().addresses
        if node not in addresses:
            if ":" in node:  # HOST:PORT
                return normalize_address(node)
            raise UnknownNode(f"no node named {node!r} (nodes: {', '.join(sorted(addresses))})", node=node)
        return addresses[node]

    def _write_msg(
        self,
        op: str,
        key: Data,
        value: Data | None,
        level: str | None,
        context: Any,
        sloppy: bool | None = None,
    ) -> dict:
        context = context_bytes(context)
        msg: dict[str, Any] = {"op": op, "key": _bytes(key), "cl": check_level(level) or self.consistency}
        if value is not None:
            msg["value"] = _bytes(value)
        if context is not None:
            msg["ctx"] = context
        if sloppy is not None:
            msg["sloppy"] = bool(sloppy)
        return msg

    def _read_msg(self, key: Data, level: str | None) -> dict:
        return {"op": "get", "key": _bytes(key), "cl": check_level(level) or self.consistency}

    def _candidates(self, key: bytes | None) -> list[str]:
        """Where to send: the key's preference list first, then every other known node."""
        known = list(dict.fromkeys(self.seeds))
        if self.pinned:
            return known
        if key is not None and (self._ring is None or time.monotonic() - self._ring_at > RING_TTL_S):
            with contextlib.suppress(ZkvError):
                self.ring(refresh=True)
        if self._ring is None:
            return known
        addresses = self._ring.addresses
        preferred = [addresses[n] for n in self._ring.preference_list(key)] if key is not None else []
        rest = [a for a in list(addresses.values()) + known if a not in preferred]
        return list(dict.fromkeys(preferred + rest))

    def _call_keyed(self, msg: dict) -> dict:
        return self._call(msg, self._candidates(msg["key"]))

    def _call(self, msg: dict, candidates: list[str] | None) -> dict:
        result = self._run_jobs([self._job(msg, candidates or self._candidates(None))])[0]
        if isinstance(result, ZkvError):
            raise result
        return result

    def _run(self, msgs: list[dict]) -> list[Any]:
        return self._run_jobs([self._job(m, self._candidates(m.get("key"))) for m in msgs])

    def _job(self, msg: dict, candidates: list[str]) -> _Job:
        write = msg.get("op") in ("put", "delete")
        return _Job(msg, candidates, resend_on_timeout=self.retry_writes or not write)

    def _socket(self, address: str) -> zmq.Socket | None:
        """The connection to ``address``; None under CURVE when the node's public key is unknown."""
        sock = self._sockets.get(address)
        if sock is None:
            server_key = self.server_keys.get(address)
            if self.curve_key is not None and server_key is None:
                return None
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if self.curve_key is not None and server_key is not None:
                make_curve_client(sock, self.curve_key, server_key)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, 100000)
            sock.setsockopt(zmq.RCVHWM, 100000)
            try:
                sock.connect(address)
            except zmq.ZMQError as exc:  # a host name that does not resolve, and the like
                sock.close(linger=0)
                raise BadAddress(f"cannot connect to {address}: {exc}", address=address) from None
            self._sockets[address] = sock
            self._address_of[sock] = address
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def _dispatch(self, job: _Job, by_id: dict[int, _Job], now: float) -> None:
        """Send ``job`` to its next candidate; mark it failed when none is left."""
        if self._unreachable_until:
            # nodes that recently refused a connection go last, so a dead node costs nothing per request
            now = time.monotonic()
            job.candidates.sort(key=lambda a: self._unreachable_until.get(a, 0.0) > now)
        while job.candidates:
            address = job.candidates.pop(0)
            sock = self._socket(address)
            if sock is None:
                continue  # a node this client has no CURVE key for (joined after the file was written)
            rid = next(self._ids)
            payload = pack({**job.msg, "id": rid})
            if len(payload) > self.max_message_bytes:
                # the node would drop the connection without a word (ZMQ_MAXMSGSIZE): refuse here
                job.done = True
                job.result = MessageTooLarge(
                    f"request is {len(payload)} bytes, the cluster's limit is {self.max_message_bytes}",
                    limit=self.max_message_bytes,
                )
                return
            try:
                sock.send(payload, zmq.NOBLOCK)
            except zmq.Again:
                # not connected: a fresh socket may just need a moment, a node that is down never accepts
                if not self._wait_connected(address, sock):
                    self._unreachable_until[address] = time.monotonic() + UNREACHABLE_BACKOFF_S
                    continue
                sock.send(payload, zmq.NOBLOCK)
            self._unreachable_until.pop(address, None)
            by_id[rid] = job
            job.deadline = time.monotonic() + self.timeout
            return
        job.done = True
        job.result = job.last_error or NoNodeAvailable("no zkv node answered; is the cluster running?")

    def _wait_connected(self, address: str, sock: zmq.Socket) -> bool:
        """Give a connection that is not up yet a short while (less for a node that just failed us)."""
        patience = CONNECT_PATIENCE_S if address not in self._unreachable_until else 0.05
        deadline = time.monotonic() + min(patience, self.timeout)
        while True:
            if sock.poll(10, zmq.POLLOUT):
                return True
            if time.monotonic() >= deadline:
                return False

    def _run_jobs(self, jobs: list[_Job]) -> list[Any]:
        """Run ``jobs`` pipelined, at most ``max_in_flight`` unanswered at a time (the node's limit)."""
        if self.closed:
            raise ClientClosed("this client was closed; open a new one")
        by_id: dict[int, _Job] = {}
        deadlines: list[tuple[float, int]] = []
        waiting = iter(range(len(jobs)))
        active = 0
        while True:
            while active < self.max_in_flight:
                i = next(waiting, None)
                if i is None:
                    break
                jobs[i].slot = i
                self._dispatch(jobs[i], by_id, time.monotonic())
                if not jobs[i].done:
                    active += 1
                    heapq.heappush(deadlines, (jobs[i].deadline, i))
            if not deadlines:
                break
            deadline, i = deadlines[0]
            job = jobs[i]
            if job.done or job.deadline != deadline:
                heapq.heappop(deadlines)  # answered, or re-sent with a later deadline
                continue
            ready = self._poller.poll(int(max(0.0, (deadline - time.monotonic()) * 1000)))  # as pyzmq would
            for sock, _ in ready:
                active -= self._drain(sock, by_id, deadlines)
            now = time.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, i = heapq.heappop(deadlines)
                job = jobs[i]
                if job.done or job.deadline > now:
                    continue
                job.last_error = Timeout(f"no answer from a node within {self.timeout:.1f}s")
                if job.resend_on_timeout:
                    self._dispatch(job, by_id, now)
                else:
                    job.done, job.result = (
                        True,
                        Timeout(
                            f"no answer from a node within {self.timeout:.1f}s; the write may or may not "
                            "have been applied (read before writing again)"
                        ),
                    )
                if job.done:
                    active -= 1
                else:
                    heapq.heappush(deadlines, (job.deadline, i))
        return [j.result for j in jobs]

    def _drain(self, sock: zmq.Socket, by_id: dict[int, _Job], deadlines: list[tuple[float, int]]) -> int:
        """Take every reply waiting on ``sock``; how many jobs that finished.

        A node that is stopping answers ``stopping`` without doing anything: the request, a write too,
        goes to the next candidate at once (its new deadline joins ``deadlines``), and that node goes
        to the back of the line for a while.
        """
        finished = 0
        while True:
            try:
                payload = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return finished
            try:
                replies = unpack_frame(payload)
            except ZkvError:
                continue
            for reply in replies:
                job = by_id.pop(reply.get("id"), None)  # type: ignore[arg-type]
                if job is None or job.done:
                    continue
                if reply.get("error") == NodeStopping.code and job.candidates:
                    self._unreachable_until[self._address_of[sock]] = time.monotonic() + STOPPING_BACKOFF_S
                    job.last_error = from_reply(reply)
                    self._dispatch(job, by_id, time.monotonic())
                    if not job.done:
                        heapq.heappush(deadlines, (job.deadline, job.slot))
                        continue
                    finished += 1
                    continue
                job.done = True
                job.result = reply if reply.get("ok") else from_reply(reply)
                finished += 1


def curve_options(config: ClusterConfig, key_file: str | Path | None) -> dict[str, Any]:
    """The ``Client`` arguments a cluster's ``[security]`` asks for: ``{}`` without CURVE, else this
    client's key pair (from ``key_file``) and every node's public key by address."""
    if not config.security.curve:
        return {}
    where = config.path.name if config.path is not None else "cluster.toml"
    if key_file is None:
        raise ConfigError(
            f"{where} turns CURVE on: give your secret key file (--key FILE, or key_file=), made by "
            "zkv-node keygen --out keys NAME; its .key must be in the cluster's client_keys or admin_keys"
        )
    try:
        key = load_key(key_file)
        servers = {n.address: load_key(n.public_key).public for n in config.nodes if n.public_key}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if key.secret is None:
        raise ConfigError(f"{key_file} holds no secret key: pass the .key_secret file")
    return {"curve_key": key, "server_keys": servers}


#: the context of a get that saw nothing: a write with it supersedes nothing (``put(..., concurrent=True)``)
EMPTY_CONTEXT = b"\x90"  # msgpack of an empty list: the encoding of the empty clock


def _write_context(context: Any, concurrent: bool) -> Any:
    if concurrent:
        if context is not None:
            raise BadArgument(
                "a put with a context supersedes what it saw; concurrent=True supersedes nothing"
            )
        return EMPTY_CONTEXT
    return context


def _get_result(key: bytes, reply: dict[str, Any], trace: Trace | None = None) -> GetResult:
    return GetResult(
        key, list(reply.get("values", [])), reply.get("ctx"), list(reply.get("timestamps", [])), trace
    )


def _write_result(reply: dict[str, Any], trace: Trace | None = None) -> WriteResult:
    hinted = reply.get("hinted", 0)
    return WriteResult(str(reply.get("quorum", "")), hinted if type(hinted) is int else 0, trace)
