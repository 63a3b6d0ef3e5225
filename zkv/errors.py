"""One exception hierarchy for everything zkv raises, each class tied to a wire error code.

Behaviour is data (after aiokafka): every error carries its wire ``code`` and whether retrying the same
request may succeed (``retriable``). A reply with ``ok: false`` names a code; :func:`for_code` turns it
back into the matching class on the client, so callers catch ``zkv.errors.Unavailable`` and not strings.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ZkvError(Exception):
    """Base of every zkv error. ``code`` is the wire code; ``details`` holds the reply's extra fields."""

    code: ClassVar[str] = "internal"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        """The error as the fields of a failed reply."""
        return {"ok": False, "error": self.code, "message": self.message, **self.details}


class Unavailable(ZkvError):
    """Fewer replicas are reachable than the consistency level needs; nothing was attempted."""

    code = "unavailable"
    retriable = True

    def __init__(self, message: str = "", required: int = 0, alive: int = 0, **details: Any) -> None:
        if not message:
            message = f"needs {required} replicas, {alive} alive"
        super().__init__(message, required=required, alive=alive, **details)
        self.required = required
        self.alive = alive


class Timeout(ZkvError):
    """Not enough replicas answered before the deadline; a write may still have landed on some."""

    code = "timeout"
    retriable = True

    def __init__(self, message: str = "", required: int = 0, acknowledged: int = 0, **details: Any) -> None:
        if not message:
            message = f"needs {required} replicas, {acknowledged} answered in time"
        super().__init__(message, required=required, acknowledged=acknowledged, **details)
        self.required = required
        self.acknowledged = acknowledged


class InvalidRequest(ZkvError):
    """The request is well-formed msgpack but asks for something invalid (bad level, bad key type...)."""

    code = "invalid_request"


class TooLarge(InvalidRequest):
    """A key, value, context or message is over its configured limit."""

    code = "too_large"


class KeyTooLarge(TooLarge):
    """The key is longer than ``max_key_bytes`` (default 1 KiB, as DynamoDB's partition key)."""

    code = "key_too_large"


class ValueTooLarge(TooLarge):
    """The value is longer than ``max_value_bytes`` (default 1 MiB; Riak warns at 5 MB)."""

    code = "value_too_large"


class ContextTooLarge(TooLarge):
    """The causal context is over ``max_context_bytes``: nothing a get returned is that big."""

    code = "context_too_large"


class MessageTooLarge(TooLarge):
    """The whole message is over ``max_message_bytes`` (the node's ZMQ_MAXMSGSIZE; client side check)."""

    code = "message_too_large"


class TooManySiblings(TooLarge):
    """The key already holds ``max_siblings`` concurrent values: read it, resolve, write with the context."""

    code = "too_many_siblings"


class BadArgument(InvalidRequest, ValueError):
    """A client call was given an argument it cannot use (unknown level, malformed context); raised in the
    caller's process before anything is sent. Also a ``ValueError``, so ``except ValueError`` still works."""

    code = "bad_argument"


class BadType(BadArgument, TypeError):
    """A key or value that is neither ``str`` nor ``bytes`` (``put("a", 5)``); also a ``TypeError``."""

    code = "bad_type"


class BadAddress(BadArgument):
    """A node address the client cannot connect to (``HOST:PORT`` and ``tcp://HOST:PORT`` are accepted)."""

    code = "bad_address"


class UnknownNode(BadArgument):
    """A node name the cluster does not know (``status("n9")``)."""

    code = "unknown_node"


class BadLimit(BadArgument):
    """A scan's ``limit`` that is not a whole number from 1 to the maximum page (10,000)."""

    code = "bad_limit"


class BadCursor(BadArgument):
    """A scan's ``cursor`` that no earlier page of the same scan (same prefix) returned."""

    code = "bad_cursor"


class ClientClosed(ZkvError):
    """The client was closed (``close()`` or the end of its ``with`` block); open a new one."""

    code = "client_closed"


class ProtocolError(ZkvError):
    """The bytes are not a zkv message at all (not msgpack, not a map, unknown op)."""

    code = "protocol_error"


class Overloaded(ZkvError):
    """The node refused the request to protect itself; back off and retry."""

    code = "overloaded"
    retriable = True


class TooManyRequests(Overloaded):
    """This client has ``max_in_flight_per_client`` requests unanswered on the node; wait for some."""

    code = "too_many_requests"


class StorageUnavailable(ZkvError):
    """The node's storage engine cannot take or give data now (its Redis is down, full or not answering).

    Nothing the reply concerns was acknowledged; the node keeps serving what it can and recovers when the
    storage is back. A write reported this way may still land later (it was never promised either way).
    """

    code = "storage_unavailable"
    retriable = True


class Unauthorized(ZkvError):
    """The caller's key may not do this (node-only messages, admin requests from a client key)."""

    code = "unauthorized"


class NoNodeAvailable(ZkvError):
    """The client could reach none of the nodes it knows (client-side; never on the wire)."""

    code = "no_node_available"
    retriable = True


class ConfigError(ZkvError):
    """A cluster.toml problem; the message names the key and what is wrong with it."""

    code = "config_error"


class StorageFull(ZkvError):
    """The node's disk is full (ENOSPC, EDQUOT): it refuses writes, serves reads, and resumes by itself once
    space is back. Retry: through other replicas now, or on this node after space was freed."""

    code = "storage_full"
    retriable = True


class StorageError(ZkvError):
    """The node's disk failed a write or an fsync (EIO...): it refuses writes until a probe write succeeds;
    its operator should look at the disk (the node's log names the file and the error)."""

    code = "storage_error"
    retriable = True


class NodeStopping(ZkvError):
    """The contacted node is stopping (a rolling restart) and did nothing with the request: the client
    sends it, writes included, to another node."""

    code = "stopping"
    retriable = True


class ConditionFailed(ZkvError):
    """A serial write's condition (``if_absent``, ``if_value``) did not hold: nothing was written.

    ``values`` are the key's current values and ``context`` its context, as a serial read would return
    them, so the caller can decide again without another read."""

    code = "condition_failed"

    def __init__(
        self, message: str = "", values: list[bytes] | None = None, ctx: bytes | None = None, **details: Any
    ) -> None:
        super().__init__(message, values=list(values or []), ctx=ctx, **details)
        self.values: list[bytes] = list(values or [])
        self.context = ctx


class OutcomeUnknown(ZkvError):
    """A serial write was proposed but its coordinator lost contact before it knew whether it was chosen:
    it may have been applied, or may be applied later. A serial read tells (CASSANDRA-6013); retrying the
    write blindly could apply it twice."""

    code = "outcome_unknown"


class TxnTooManyKeys(TooLarge):
    """A transaction names more than 100 keys (DynamoDB's limit for TransactWriteItems)."""

    code = "txn_too_many_keys"


class TxnTooLarge(TooLarge):
    """A transaction's keys and values are more than 4 MiB together (DynamoDB's limit)."""

    code = "txn_too_large"


class TxnConflict(ZkvError):
    """Another transaction holds one of the keys (its intent is there and not stale): this attempt was
    aborted and wrote nothing. Retrying with the same token is safe (it applies at most once)."""

    code = "txn_conflict"
    retriable = True


class InternalError(ZkvError):
    """A bug in zkv: the node caught it, logged it, and kept serving."""

    code = "internal"


_BY_CODE: dict[str, type[ZkvError]] = {
    cls.code: cls
    for cls in (
        Unavailable,
        Timeout,
        InvalidRequest,
        TooLarge,
        KeyTooLarge,
        ValueTooLarge,
        ContextTooLarge,
        MessageTooLarge,
        TooManySiblings,
        BadArgument,
        BadType,
        BadAddress,
        UnknownNode,
        BadLimit,
        BadCursor,
        ClientClosed,
        ProtocolError,
        Overloaded,
        TooManyRequests,
        StorageUnavailable,
        Unauthorized,
        NoNodeAvailable,
        ConfigError,
        StorageFull,
        StorageError,
        NodeStopping,
        ConditionFailed,
        OutcomeUnknown,
        TxnTooManyKeys,
        TxnTooLarge,
        TxnConflict,
        InternalError,
    )
}


def for_code(code: str) -> type[ZkvError]:
    """The exception class for a wire code; unknown codes map to the base class."""
    return _BY_CODE.get(code, ZkvError)


def from_reply(reply: dict[str, Any]) -> ZkvError:
    """Rebuild the exception a failed reply describes."""
    code = str(reply.get("error", "internal"))
    message = str(reply.get("message", code))
    details = {k: v for k, v in reply.items() if k not in ("ok", "error", "message", "id", "op")}
    cls = for_code(code)
    try:
        return cls(message, **details)
    except TypeError:
        return cls(message)
