"""The user-facing operations of :class:`zkv.client.Client`: data (put, get, delete, their batches, scan) and
the cluster (ring, nodes, status, admin requests). Moving requests is :mod:`zkv.client.transport`'s job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from zkv.client.arguments import (
    check_consistency,
    context_bytes,
    curve_options,
    normalize_address,
    write_context,
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
    as_bytes,
    get_result,
    nodes_from_reply,
    write_result,
)
from zkv.client.transport import Job, Transport
from zkv.client.txn import Transaction
from zkv.config import load_config
from zkv.core.scan import (
    DEFAULT_SCAN_LIMIT,
    ScanEntry,
    ScanPage,
    check_limit,
    decode_cursor,
    merge_page,
    page_from_wire,
)
from zkv.core.status import NodeStatus
from zkv.core.versions import state_from_wire
from zkv.errors import (
    BadAddress,
    BadArgument,
    BadType,
    InvalidRequest,
    OutcomeUnknown,
    Timeout,
    UnknownNode,
    ZkvError,
)
from zkv.security import KeyPair

#: rounds of requests (one to every node) a scan page may take to fill up; an empty page takes as many as
#: it needs, so a page is empty only at the end
SCAN_ROUNDS = 8


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
        consistency = check_consistency(consistency)
        if curve_key is not None and curve_key.secret is None:
            raise BadArgument("the client's CURVE key must include its secret key (the .key_secret file)")
        self.consistency = consistency  # None: each request uses the cluster's configured default
        self.transport = Transport(
            [normalize_address(a) for a in addresses],
            timeout=timeout,
            pinned=pinned,
            retry_writes=retry_writes,
            curve_key=curve_key,
            server_keys=server_keys,
        )

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
        self.transport.close()

    # the transport's settings, as attributes of the client (the shell re-pins ``seeds``)

    @property
    def seeds(self) -> list[str]:
        return self.transport.seeds

    @seeds.setter
    def seeds(self, addresses: list[str]) -> None:
        self.transport.seeds = addresses

    @property
    def pinned(self) -> bool:
        return self.transport.pinned

    @property
    def retry_writes(self) -> bool:
        return self.transport.retry_writes

    @property
    def curve_key(self) -> KeyPair | None:
        return self.transport.curve_key

    @property
    def server_keys(self) -> dict[str, bytes]:
        return self.transport.server_keys

    @property
    def closed(self) -> bool:
        return self.transport.closed

    @property
    def max_message_bytes(self) -> int:
        return self.transport.max_message_bytes

    @property
    def max_in_flight(self) -> int:
        return self.transport.max_in_flight

    @property
    def timeout(self) -> float:
        """Seconds to wait for one node before trying the next."""
        return self.transport.timeout

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
        if_absent: bool = False,
        if_value: Data | None = None,
    ) -> WriteResult:
        """Store ``value``; with ``ttl`` (seconds, > 0, at most 10 years) it expires that long from now.

        An expired key reads as not found at every consistency; a put without ``ttl`` on an expiring key
        makes it permanent again (docs/operations.md, "TTL").

        With the ``context`` of an earlier get (the :class:`GetResult`, its ``.context`` bytes, or the
        base64 text ``zkv-shell -o json`` prints) it supersedes exactly what that get saw; with an earlier
        put's :class:`WriteResult` (or its ``.context``), exactly that put's version. Without one it
        is a *blind* write: it supersedes every version the coordinating replica holds (what a user of
        any other store expects of a put). ``concurrent=True`` supersedes nothing: the value becomes a
        sibling of whatever the key holds (Dynamo's raw semantics).

        ``sloppy``: may hinted writes on fallback nodes count toward W (a sloppy quorum)? ``False`` counts
        only the key's own replicas (a strict quorum: a strict quorum read after it sees it); ``None``
        takes the cluster's ``sloppy_quorum``. The result says which one was used.
        ``trace=True`` also fills the result's ``.trace``: the latency and the coordinator's receipt.

        ``consistency="serial"``: decided by consensus among the key's replicas (docs/transactions.md),
        optionally only ``if_absent`` (the key has no value) or ``if_value=b"..."`` (its one value is
        that: compare-and-set). It ends applied, or raises :class:`zkv.errors.ConditionFailed` (carrying
        the current ``values`` and ``context``) or :class:`zkv.errors.OutcomeUnknown` (a serial read
        tells whether it was applied; retrying blindly could apply it twice).
        """
        msg = self._write_msg("put", key, value, consistency, write_context(context, concurrent), sloppy)
        if ttl is not None:
            msg["ttl"] = ttl
        _condition(msg, if_absent, if_value)
        return self._serial_outcome(msg, trace)

    def delete(
        self,
        key: Data,
        consistency: str | None = None,
        context: Any = None,
        sloppy: bool | None = None,
        trace: bool = False,
        if_value: Data | None = None,
    ) -> WriteResult:
        """Delete (write a tombstone); with a context, only what the context saw is deleted, without one
        every version the coordinating replica holds. ``sloppy``, ``trace`` and (serial) ``if_value`` as
        for :meth:`put`."""
        msg = self._write_msg("delete", key, None, consistency, context, sloppy)
        _condition(msg, False, if_value)
        return self._serial_outcome(msg, trace)

    def _serial_outcome(self, msg: dict[str, Any], trace: bool) -> WriteResult:
        """A write; a serial one whose node went silent is :class:`OutcomeUnknown`, not a timeout."""
        try:
            return self._written(msg, trace)
        except Timeout as exc:
            if msg.get("cl") != "serial":
                raise
            raise OutcomeUnknown(
                f"no answer to a serial {msg['op']} ({exc.message}): it may have been applied; "
                "a serial read tells"
            ) from exc

    def transaction(self, token: str | None = None, patience: float | None = None) -> Transaction:
        """A multi-key transaction, committed when its ``with`` block ends (:mod:`zkv.client.txn`):
        ``with db.transaction(token="order-991") as tx: tx.check(k, if_value=v); tx.put(k2, v2)``.
        The ``token`` makes it idempotent (applied at most once within 10 minutes); ``patience``: seconds
        to keep retrying conflicts."""
        return Transaction(self, token, patience)

    def get(self, key: Data, consistency: str | None = None, trace: bool = False) -> GetResult:
        """Read every sibling; ``trace=True`` fills ``.trace`` with the latency and the receipt."""
        msg = self._read_msg(key, consistency)
        reply, done = self._traced(msg, trace)
        return get_result(msg["key"], reply, done)

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
        return [r if isinstance(r, ZkvError) else None for r in self.transport.run(msgs)]

    def delete_many(
        self, items: Iterable[Data | tuple[Data, Any]], consistency: str | None = None
    ) -> list[ZkvError | None]:
        """Pipelined deletes; an item is a key or ``(key, context)``; per item: None or its error."""
        msgs = []
        for item in items:
            key, context = item if isinstance(item, tuple) else (item, None)
            msgs.append(self._write_msg("delete", key, None, consistency, context))
        return [r if isinstance(r, ZkvError) else None for r in self.transport.run(msgs)]

    def get_many(self, keys: Iterable[Data], consistency: str | None = None) -> list[GetResult | ZkvError]:
        """Pipelined gets; one entry per key: its result, or the error it met."""
        msgs = [self._read_msg(k, consistency) for k in keys]
        return [
            r if isinstance(r, ZkvError) else get_result(m["key"], r)
            for m, r in zip(msgs, self.transport.run(msgs), strict=True)
        ]

    def scan(
        self,
        prefix: Data = b"",
        limit: int = DEFAULT_SCAN_LIMIT,
        cursor: str | None = None,
        consistency: str | None = None,
        values: bool = False,
    ) -> ScanPage:
        """One page of the keys that start with ``prefix``, in byte order: at most ``limit`` (1-10000)
        live keys (tombstones and expired values are hidden) and the ``cursor`` of the next page (None at
        the end); ``values=True`` also returns each key's live values (siblings newest first).

        Every node is asked for its first ``limit`` keys after the cursor, and every token range must be
        answered by as many of its replicas as ``consistency`` asks (default: the cluster's read
        consistency), else :class:`~zkv.errors.Unavailable`; see :mod:`zkv.core.scan`. A page short of
        ``limit`` (a stretch of tombstones) is topped up by asking again, up to a few rounds."""
        prefix, limit = as_bytes(prefix), check_limit(limit)
        after = decode_cursor(cursor, prefix)
        cl = check_consistency(consistency) or self.consistency
        entries: list[ScanEntry] = []
        rounds = 0
        while True:
            page = self._scan_round(prefix, limit - len(entries), after, cl, values)
            entries += page.entries
            rounds += 1
            # a page short of limit (tombstones, or a node's page ended early) is topped up; an empty
            # one is never returned with a cursor
            if page.cursor is None or len(entries) >= limit or (entries and rounds >= SCAN_ROUNDS):
                return ScanPage(tuple(entries), page.cursor)
            after = decode_cursor(page.cursor, prefix)

    def _scan_round(
        self, prefix: bytes, limit: int, after: bytes | None, consistency: str | None, values: bool
    ) -> ScanPage:
        """One request to every node and the page their answers make (:func:`zkv.core.scan.merge_page`)."""
        info = self.ring(refresh=True)
        msg: dict[str, Any] = {"op": "local_scan", "prefix": prefix, "limit": limit, "values": values}
        if after is not None:
            msg["after"] = after
        names = list(info.ring.members)
        replies = self.transport.run_jobs([Job(msg, [info.addresses[n]]) for n in names])
        answers = {}
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, InvalidRequest):
                raise reply  # the nodes refused the request itself: the same for every node
            if not isinstance(reply, ZkvError):
                with contextlib.suppress(ValueError):  # a malformed answer counts as no answer
                    answers[name] = page_from_wire(reply)
        return merge_page(
            info.ring, consistency or info.read_consistency, answers, limit, time.time(), values
        )

    def scan_all(
        self,
        prefix: Data = b"",
        page: int = DEFAULT_SCAN_LIMIT,
        consistency: str | None = None,
        values: bool = False,
    ) -> Iterator[ScanEntry]:
        """Every live key that starts with ``prefix``, in byte order, fetched ``page`` keys at a time."""
        cursor: str | None = None
        while True:
            got = self.scan(prefix, page, cursor, consistency, values)
            yield from got.entries
            if got.cursor is None:
                return
            cursor = got.cursor

    # ------------------------------------------------------------------------------------------ cluster

    def ping(self, address: str | None = None) -> dict[str, Any]:
        return self.transport.call({"op": "ping"}, [normalize_address(address)] if address else None)

    def nodes(self, address: str | None = None) -> list[NodeInfo]:
        """Every node as the node at ``address`` (default: any reachable) sees the cluster."""
        return nodes_from_reply(
            self.transport.call({"op": "nodes"}, [normalize_address(address)] if address else None)
        )

    def views(self) -> dict[str, dict[str, NodeInfo] | ZkvError]:
        """Every node's view of the cluster, side by side: asked of each node directly, in parallel."""
        members = self.nodes()
        jobs = [Job({"op": "nodes"}, [m.address]) for m in members]
        out: dict[str, dict[str, NodeInfo] | ZkvError] = {}
        for member, reply in zip(members, self.transport.run_jobs(jobs), strict=True):
            if isinstance(reply, ZkvError):
                out[member.name] = reply
            else:
                out[member.name] = {row.name: row for row in nodes_from_reply(reply)}
        return out

    def statuses(self, addresses: Sequence[str], timeout: float | None = None) -> list[NodeStatus | ZkvError]:
        """The statistics of the nodes at ``addresses``, asked of each directly and in parallel (one entry
        per address: its status, or the error it met); ``timeout`` bounds the wait for each, so one slow
        node costs the dashboard's once-a-second poll a tick, not seconds."""
        with self.transport.timeout_of(timeout):
            replies = self.transport.run_jobs([Job({"op": "status"}, [address]) for address in addresses])
        return [r if isinstance(r, ZkvError) else NodeStatus.from_wire(r) for r in replies]

    def status(self, node: str | None = None) -> NodeStatus:
        """A node's statistics (``node`` is a name or an address; default: any reachable node); its
        ``to_wire()`` is the same as plain JSON-ready data."""
        return NodeStatus.from_wire(
            self.transport.call({"op": "status"}, [self._resolve(node)] if node else None)
        )

    def ring(self, refresh: bool = False) -> RingInfo:
        """The ring (members, their tokens and addresses, the cluster's defaults), as last learned."""
        return self.transport.ring(refresh)

    def replicas(self, key: Data) -> dict[str, ReplicaState | ZkvError]:
        """Each replica's stored versions of ``key``, read straight from it with no repair."""
        key = as_bytes(key)
        info = self.ring()
        names = list(info.preference_list(key))
        jobs = [Job({"op": "local_get", "key": key}, [info.addresses[n]]) for n in names]
        out: dict[str, ReplicaState | ZkvError] = {}
        for name, reply in zip(names, self.transport.run_jobs(jobs), strict=True):
            if isinstance(reply, ZkvError):
                out[name] = reply
            else:
                state = state_from_wire(reply["state"])
                versions = [StoredVersion(s.value, s.actor, s.counter, s.timestamp) for s in state.siblings]
                out[name] = ReplicaState(versions, dict(state.clock))
        return out

    def leave(self, node: str) -> dict[str, Any]:
        """Ask ``node`` (a name or address) to hand its data to the remaining nodes and leave the cluster."""
        return self._admin(node, {"op": "leave"})

    def faults(self, node: str, **rules: Any) -> dict[str, Any]:
        """Show or set (``drop_in=[...]``, ``drop_out=[...]``) a node's fault filter."""
        return self._admin(node, {"op": "faults", **rules})

    def restart(self, node: str) -> dict[str, Any]:
        """Ask ``node`` to drain and stop for a restart (its supervisor starts it again: rolling-restart)."""
        return self._admin(node, {"op": "restart"})

    def repair_now(self, node: str) -> dict[str, Any]:
        """Ask ``node`` for a full anti-entropy pass with every peer now (progress: its status)."""
        return self._admin(node, {"op": "repair_now"})

    def removenode(self, node: str, name: str) -> dict[str, Any]:
        """Ask ``node`` to remove ``name``, a member gone for good: the others re-replicate its ranges."""
        return self._admin(node, {"op": "removenode", "name": name})

    def cleanup(self, node: str) -> dict[str, Any]:
        """Ask ``node`` to drop the keys it no longer replicates once their owners hold them."""
        return self._admin(node, {"op": "cleanup"})

    def merge_states(self, node: str, items: list[list[Any]]) -> dict[str, Any]:
        """Have ``node`` merge ``[key, wire state]`` items into their replicas (a live restore)."""
        return self._admin(node, {"op": "merge_states", "items": items})

    def snapshot(self, node: str, folder: str) -> dict[str, Any]:
        """Ask ``node`` to snapshot its store into ``folder`` (absolute, on its machine): the manifest."""
        return self._admin(node, {"op": "snapshot", "dir": folder})

    # ------------------------------------------------------------------------------------------ helpers

    def _admin(self, node: str, msg: dict[str, Any]) -> dict[str, Any]:
        return self.transport.call(msg, [self._resolve(node)])

    def _resolve(self, node: str) -> str:
        """The address of ``node``: a name the ring knows, or an address."""
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
        consistency: str | None,
        context: Any,
        sloppy: bool | None = None,
    ) -> dict:
        context = context_bytes(context)
        cl = check_consistency(consistency) or self.consistency
        msg: dict[str, Any] = {"op": op, "key": as_bytes(key), "cl": cl}
        if value is not None:
            msg["value"] = as_bytes(value)
        if context is not None:
            msg["ctx"] = context
        if sloppy is not None:
            msg["sloppy"] = bool(sloppy)
        return msg

    def _read_msg(self, key: Data, consistency: str | None) -> dict:
        return {"op": "get", "key": as_bytes(key), "cl": check_consistency(consistency) or self.consistency}

    def _traced(self, msg: dict[str, Any], trace: bool) -> tuple[dict[str, Any], Trace | None]:
        """The reply to a keyed ``msg``; with ``trace``, the coordinator's receipt and the latency too."""
        if not trace:
            return self.transport.call_keyed(msg), None
        started = time.perf_counter()
        reply = self.transport.call_keyed({**msg, "trace": True})
        return reply, Trace(
            round((time.perf_counter() - started) * 1000, 3), dict(reply.get("receipt") or {})
        )

    def _written(self, msg: dict[str, Any], trace: bool) -> WriteResult:
        reply, done = self._traced(msg, trace)
        return write_result(reply, done)


def _condition(msg: dict[str, Any], if_absent: bool, if_value: Data | None) -> None:
    """A serial write's condition, on its message (the node refuses one without ``serial``)."""
    if if_absent:
        msg["if_absent"] = True
    if if_value is not None:
        msg["if_value"] = as_bytes(if_value)
