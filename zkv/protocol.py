"""The wire protocol: msgpack frames, message validation and the typed requests the core acts on.

A ZeroMQ message carries one msgpack *frame*: either one message (a map) or a batch (an array of maps);
nodes batch everything bound for one peer in one loop turn. Every message has an ``op``; requests carry an
integer ``id`` that the reply echoes. Replies are ``{"id", "ok": true, ...}`` or
``{"id", "ok": false, "error": CODE, "message": TEXT, ...details}`` (codes in :mod:`zkv.errors`).

Client requests are validated here into frozen dataclasses before the core sees them; a request that fails
validation gets an ``invalid_request`` / ``too_large`` / ``protocol_error`` reply and changes nothing.
docs/protocol.md describes every message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from zkv.core.scan import check_limit
from zkv.core.txn import RESERVED_PREFIX, TxnRequest, parse_txn
from zkv.core.versions import Clock, decode_context
from zkv.errors import ContextTooLarge, InvalidRequest, KeyTooLarge, ProtocolError, ValueTooLarge

LEVELS = ("one", "quorum", "all", "serial")  # serial: per-key Paxos (zkv.core.serial)
MAX_BATCH = 1024  # messages in one frame
BATCH_BYTES = 4 * 1024 * 1024  # soft cap on the key states one node-to-node message carries (ZMQ_MAXMSGSIZE)
MAX_ID = 2**63 - 1
MAX_TTL_S = 315_360_000  # 10 years: a longer TTL is a typo more often than a plan

#: requests on a node's request socket from a client or an admin (``faults`` and ``leave`` change a node's
#: state: with CURVE they need an admin key, see :data:`zkv.core.admission.ADMIN_OPS`)
CLIENT_OPS = frozenset(
    {
        "put",
        "get",
        "delete",
        "txn",
        "ping",
        "nodes",
        "status",
        "ring",
        "local_get",
        "local_scan",
        "faults",
        "leave",
        "snapshot",
        "restart",
        "repair_now",
        "merge_states",
        "removenode",
        "cleanup",
    }
)
#: requests only a peer node may send (they arrive on the ROUTER from a known node identity)
PEER_OPS = frozenset(
    {
        "rput",
        "rget",
        "repair",
        "fwd",
        "handoff",
        "aae_tree",
        "aae_keys",
        "aae_push",
        "stream",
        "stream_push",
        "ccheck",
        "vpull",
        "px_prepare",
        "px_propose",
        "px_commit",
    }
)
#: replies a peer sends back to a node's DEALER
PEER_REPLY_OPS = frozenset(
    {
        "rput_ok",
        "rget_ok",
        "rerr",
        "fwd_reply",
        "handoff_ok",
        "aae_tree_ok",
        "aae_keys_ok",
        "stream_ok",
        "stream_push_ok",
        "ccheck_ok",
        "join_ok",
        "vview",
        "px_promise",
        "px_accepted",
        "px_committed",
        "px_nack",
    }
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes past which a request is refused, each with its own error code (docs/security.md)."""

    max_key_bytes: int = 1024
    max_value_bytes: int = 1024 * 1024
    max_siblings: int = 100
    max_context_bytes: int = 8 * 1024
    max_in_flight_per_client: int = 1000
    max_message_bytes: int = 128 * 1024 * 1024  # enforced by ZeroMQ; here so clients learn it


class PutRequest(NamedTuple):
    id: int
    key: bytes
    value: bytes | None  # None: a delete (tombstone)
    consistency: str | None
    context: Clock | None  # None: a blind write (no ctx sent): it supersedes what its coordinator holds
    ttl: float | None = None  # seconds the value lives (the coordinator turns it into an absolute expiry)
    sloppy: bool | None = None  # may hinted writes on fallbacks count toward W? None: the cluster default
    if_absent: bool = False  # serial only: write only if the key has no live value
    if_value: bytes | None = None  # serial only: write only if the key's one live value is this

    @property
    def op(self) -> str:
        return "put" if self.value is not None else "delete"


class GetRequest(NamedTuple):
    id: int
    key: bytes
    consistency: str | None
    op: str = "get"


@dataclass(frozen=True, slots=True)
class InfoRequest:
    """Requests answered by the contacted node alone: ping, nodes, status, ring, local_get, local_scan,
    faults."""

    id: int
    op: str
    args: dict[str, Any]


Request = PutRequest | GetRequest | InfoRequest | TxnRequest


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack_frame(payload: bytes) -> list[dict[str, Any]]:
    """Decode one ZeroMQ frame into its messages; raises :class:`ProtocolError` on anything else."""
    try:
        obj = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:
        raise ProtocolError(f"frame is not msgpack ({exc.__class__.__name__})") from None
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, list):
        if len(obj) > MAX_BATCH:
            raise ProtocolError(f"batch of {len(obj)} messages, more than {MAX_BATCH}")
        if not all(isinstance(m, dict) for m in obj):
            raise ProtocolError("a batch must hold only maps")
        return obj
    raise ProtocolError("a frame must be a map or an array of maps")


def request_id(msg: dict[str, Any]) -> int | None:
    """The id to echo in an error reply, when the message has a usable one."""
    rid = msg.get("id")
    return rid if type(rid) is int and 0 <= rid <= MAX_ID else None


def _key(msg: dict[str, Any], limits: Limits) -> bytes:
    key = msg.get("key")
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise InvalidRequest("key must be bytes or a string")
    if not key:
        raise InvalidRequest("key must not be empty")
    if len(key) > limits.max_key_bytes:
        raise KeyTooLarge(
            f"key is {len(key)} bytes, the limit is {limits.max_key_bytes}", limit=limits.max_key_bytes
        )
    return key


def _scan_args(msg: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """A ``local_scan``'s prefix (bytes, may be empty), ``after`` (a key or None), limit and values flag."""
    prefix, after = msg.get("prefix", b""), msg.get("after")
    if not isinstance(prefix, bytes) or len(prefix) > limits.max_key_bytes:
        raise InvalidRequest(f"prefix must be bytes of at most {limits.max_key_bytes}")
    if after is not None and (not isinstance(after, bytes) or len(after) > limits.max_key_bytes):
        raise InvalidRequest(f"after must be a key (bytes of at most {limits.max_key_bytes}) or absent")
    values = msg.get("values", False)
    if not isinstance(values, bool):
        raise InvalidRequest("values must be true or false")
    return {"prefix": prefix, "after": after, "limit": check_limit(msg.get("limit")), "values": values}


def _consistency(msg: dict[str, Any]) -> str | None:
    consistency = msg.get("cl")  # the wire's short name for it
    if consistency is None:
        return None
    if consistency not in LEVELS:
        raise InvalidRequest(f"unknown consistency level {consistency!r}; use one, quorum, all or serial")
    return consistency


def _context(msg: dict[str, Any], limits: Limits) -> Clock | None:
    ctx = msg.get("ctx")
    if ctx is None:
        return None  # blind: not "saw nothing" (that is the empty context, b"\x90")
    if not isinstance(ctx, bytes):
        raise InvalidRequest("ctx must be bytes (the context a get returned)")
    if len(ctx) > limits.max_context_bytes:
        raise ContextTooLarge(
            f"context is {len(ctx)} bytes, the limit is {limits.max_context_bytes}; "
            "pass the context a get returned",
            limit=limits.max_context_bytes,
        )
    try:
        return decode_context(ctx)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def parse_request(msg: dict[str, Any], limits: Limits) -> Request:
    """Validate a client request; raises a :class:`zkv.errors.ZkvError` naming what is wrong."""
    op = msg.get("op")
    if not isinstance(op, str):
        raise ProtocolError("message has no op")
    rid = msg.get("id")
    if type(rid) is not int or not 0 <= rid <= MAX_ID:
        raise ProtocolError("request id must be a non-negative integer")
    if op == "put" or op == "delete":
        value = None
        if op == "put":
            value = msg.get("value")
            if isinstance(value, str):
                value = value.encode()
            if not isinstance(value, bytes):
                raise InvalidRequest("value must be bytes or a string")
            if len(value) > limits.max_value_bytes:
                raise ValueTooLarge(
                    f"value is {len(value)} bytes, the limit is {limits.max_value_bytes}",
                    limit=limits.max_value_bytes,
                )
            if value[:5] == RESERVED_PREFIX:
                raise InvalidRequest("values starting with \\x00zkv: are reserved (transaction intents)")
        ttl = _ttl(msg) if "ttl" in msg else None
        if ttl is not None and value is None:
            raise InvalidRequest("a delete takes no ttl")
        sloppy = msg.get("sloppy")
        if sloppy is not None and not isinstance(sloppy, bool):
            raise InvalidRequest("sloppy must be true or false (or absent: the cluster's sloppy_quorum)")
        consistency = _consistency(msg)
        if_absent, if_value = _condition(msg, consistency, limits)
        if sloppy and consistency == "serial":
            raise InvalidRequest("sloppy quorums never count for serial: hints on fallbacks take no part")
        key = _key(msg, limits)
        if key[:5] == RESERVED_PREFIX:
            raise InvalidRequest("keys starting with \\x00zkv: are reserved (transaction records)")
        return PutRequest(
            rid,
            key,
            value,
            consistency,
            _context(msg, limits),
            ttl,
            sloppy,
            if_absent,
            if_value,
        )
    if op == "get":
        return GetRequest(rid, _key(msg, limits), _consistency(msg))
    if op == "txn":
        return parse_txn(msg, rid, limits.max_key_bytes, limits.max_value_bytes)
    if op in CLIENT_OPS:
        args = {k: v for k, v in msg.items() if k not in ("op", "id")}
        if op == "local_get":
            args["key"] = _key(msg, limits)
        elif op == "local_scan":
            args.update(_scan_args(msg, limits))
        return InfoRequest(rid, op, args)
    if op in PEER_OPS or op in PEER_REPLY_OPS:
        raise ProtocolError(f"op {op!r} is for nodes only")
    raise ProtocolError(f"unknown op {op!r}")


def _condition(msg: dict[str, Any], consistency: str | None, limits: Limits) -> tuple[bool, bytes | None]:
    """A put's or delete's condition: ``if_absent`` (true) or ``if_value`` (bytes), serial only."""
    if_absent, if_value = msg.get("if_absent"), msg.get("if_value")
    if if_absent is None and if_value is None:
        return False, None
    if consistency != "serial":
        raise InvalidRequest("if_absent and if_value need consistency serial (a condition needs consensus)")
    if if_absent is not None and not isinstance(if_absent, bool):
        raise InvalidRequest("if_absent must be true or false")
    if isinstance(if_value, str):
        if_value = if_value.encode()
    if if_value is not None and not isinstance(if_value, bytes):
        raise InvalidRequest("if_value must be bytes or a string")
    if if_absent and if_value is not None:
        raise InvalidRequest("give if_absent or if_value, not both")
    if if_value is not None and len(if_value) > limits.max_value_bytes:
        raise ValueTooLarge(f"if_value is {len(if_value)} bytes", limit=limits.max_value_bytes)
    return bool(if_absent), if_value


def _ttl(msg: dict[str, Any]) -> float | None:
    """A put's ``ttl``: seconds, more than 0 and at most :data:`MAX_TTL_S`; None (absent) means none."""
    ttl = msg.get("ttl")
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise InvalidRequest(f"ttl must be a number of seconds, not {ttl!r}")
    if ttl <= 0:
        raise InvalidRequest(f"ttl must be more than 0 seconds, not {ttl!r} (delete the key instead)")
    if ttl > MAX_TTL_S:
        raise InvalidRequest(f"ttl of {ttl!r} seconds is past the maximum of {MAX_TTL_S} (10 years)")
    return float(ttl)


def ok(rid: int, **fields: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, **fields}


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------------------- node messages
#
# Every message between nodes is checked against its envelope schema here, by the runtime, before the
# core sees it: required fields, their types and ranges. The payloads inside (key states, Merkle leaves,
# gossip views, streamed items) are then parsed by the strict decoders of the core modules that own them
# (``state_from_wire``, ``unpack_leaves``, ``Member.from_wire``...), which raise ``ValueError`` on
# anything malformed; the core counts and drops such a message. Either way nothing is stored.

_ID = "id"  # a request id: int in [0, MAX_ID]
_OPT = "?"  # suffix: the field may be absent or nil


def _is_id(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_ID


_CHECKS: dict[str, Any] = {
    "id": _is_id,
    "int": lambda v: type(v) is int and -MAX_ID <= v <= MAX_ID,
    "str": lambda v: isinstance(v, str) and len(v) <= 4096,
    "bytes": lambda v: isinstance(v, bytes),
    "list": lambda v: isinstance(v, list),
    "map": lambda v: isinstance(v, dict),
    "bool": lambda v: isinstance(v, bool),
    "any": lambda v: True,
}

#: op -> field -> kind (a trailing "?" marks an optional field)
NODE_SCHEMAS: dict[str, dict[str, str]] = {
    "rput": {"id": "id", "key": "bytes", "state": "list", "hint": "str?"},
    "rget": {"id": "id", "key": "bytes"},
    "repair": {"key": "bytes", "state": "list"},
    "fwd": {"id": "id", "req": "map"},
    "handoff": {"id": "id", "items": "list"},
    "aae_tree": {"id": "id", "leaves": "bytes"},
    "aae_tree_ok": {"id": "id", "leaves": "list", "keys": "list", "truncated": "bool"},
    "aae_keys": {"id": "id", "keys": "list"},
    "aae_keys_ok": {"id": "id?", "items": "list"},
    "aae_push": {"items": "list"},
    "stream": {"id": "id", "after": "bytes?", "limit": "int", "removed": "str?"},
    "stream_ok": {
        "id": "id",
        "items": "list",
        "crc": "int",
        "next": "bytes?",
        "paxos": "list?",  # acceptor states riding along (zkv.core.transfer.paxos_items)
        "pcrc": "int?",
        "wait": "bool?",  # the source does not know the requester joins yet: ask again
        "left": "int?",  # keys the source still has to look at (a removal's progress)
    },
    "stream_push": {"id": "id", "items": "list", "crc": "int", "paxos": "list?", "pcrc": "int?"},
    "stream_push_ok": {"id": "id"},
    "ccheck": {"id": "id", "keys": "list"},  # cleanup: which of these keys do you hold, and how far
    "ccheck_ok": {"id": "id", "clocks": "list"},
    "rput_ok": {"id": "id"},
    "rget_ok": {"id": "id", "state": "list"},
    "rerr": {"id": "id", "error": "str", "message": "str?"},
    "fwd_reply": {"id": "id", "reply": "map"},
    "handoff_ok": {"id": "id"},
    "join": {"id": "id", "member": "list"},
    "join_ok": {"id": "id", "ok": "bool", "view": "list?"},
    # a heartbeat: its sender's entry ("me"), the digest of its view, relayed entries ("delta"); a node
    # from before issue #20 sent its whole view instead
    "hb": {
        "node": "str",
        "gen": "int",
        "hb": "int",
        "keys": "int",
        "me": "list?",
        "dig": "int?",
        "delta": "list?",
        "view": "list?",
        "dead": "list?",  # death notices: [name, generation, version] (zkv.core.monitoring)
    },
    "vpull": {},  # send me your whole view (a heartbeat's digest showed it differs)
    "vview": {"view": "list", "dead": "list?"},
    "px_prepare": {"id": "id", "key": "bytes", "ballot": "list"},
    "px_propose": {"id": "id", "key": "bytes", "ballot": "list", "state": "list"},
    "px_commit": {"id": "id", "key": "bytes", "ballot": "list", "state": "list"},
    "px_promise": {
        "id": "id",
        "ballot": "list",
        "accepted": "list",
        "proposal": "list?",
        "committed": "list",
        "state": "list",
    },
    "px_accepted": {"id": "id"},
    "px_committed": {"id": "id"},
    "px_nack": {"id": "id", "promised": "list"},
}


def _compile(schema: dict[str, str]) -> tuple[tuple[str, Any, bool, str], ...]:
    """A schema as (field, check, optional, kind) rows: parsed once, not on every message."""
    return tuple(
        (name, _CHECKS[kind.rstrip(_OPT)], kind.endswith(_OPT), kind.rstrip(_OPT))
        for name, kind in schema.items()
    )


_COMPILED = {op: _compile(schema) for op, schema in NODE_SCHEMAS.items()}


def check_node_message(msg: dict[str, Any], allowed: frozenset[str] | None = None) -> str:
    """Check a node-to-node message against its schema; its op, or :class:`ProtocolError` naming the flaw.

    ``allowed``: the ops acceptable on this path (a reply where a request belongs is a flaw too).
    """
    op = msg.get("op")
    if (
        not isinstance(op, str)
        or (rows := _COMPILED.get(op)) is None
        or (allowed is not None and op not in allowed)
    ):
        raise ProtocolError(f"unexpected node message op {op!r}")
    for name, check, optional, kind in rows:
        value = msg.get(name)
        if value is None:
            if optional:
                continue
            raise ProtocolError(f"{op}: missing {name}")
        if not check(value):
            raise ProtocolError(f"{op}: {name} is not a valid {kind}")
    return op
