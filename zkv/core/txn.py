"""Multi-key transactions: the request, the intents and the transaction record, and the pure decisions
each per-key consensus step takes on them.

Theory of operation
-------------------
A transaction is a set of items, at most one per key: a check (``if_absent`` / ``if_value``), a put or a
delete, or a put or delete with a condition. Its coordinator (:mod:`zkv.core.txncoord`) runs it through
the per-key Paxos of :mod:`zkv.core.serial`, one serial operation per step, each deciding with one of the
functions here (a *compute*: the key's current state in, the value to propose, or an answer, out):

1. **Intents** (:func:`place_intent`), on every key at once: if the key's condition holds and no other
   transaction's intent is there, its value becomes an :class:`Intent` — the transaction's token and
   attempt, every participating key, the new value and the *old* one. A key holding an intent is
   locked: the intent reads as its old value until the transaction is decided.
2. **The commit point** (:func:`commit_record`): one serial write on the transaction's record key
   (:func:`record_key`: ``\\x00zkv:txn:<token>``), absent -> ``committed(attempt)``. A recoverer that
   finds a stale intent writes ``aborted(attempt)`` instead (:func:`abort_record`); the record's Paxos
   lets only one of them win, so an attempt either commits everywhere or nowhere.
3. **Resolution** (:func:`resolve_intent`): each intent is replaced by its new value (committed) or its
   old value (aborted). Idempotent: a key that holds no intent of this attempt is left alone.
4. The committed record gets the retention TTL (:func:`retain_record`, :data:`RETENTION_S`) only after
   every intent is resolved, so a record never expires while an intent of its attempt may remain.

An attempt commits iff its record says ``committed(attempt)``; a record that is absent or says
``aborted`` for *another* attempt leaves it pending; anything else means it is dead (:func:`fate`).
A retry with the same token reads the record first: ``committed`` answers applied (applied once),
``refused`` answers the same ``condition_failed``; absent or ``aborted`` runs the transaction again (an
aborted attempt wrote nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from zkv.core.versions import KeyState, Sibling
from zkv.errors import ConditionFailed, InvalidRequest, TxnTooLarge, TxnTooManyKeys

RESERVED_PREFIX = b"\x00zkv:"  # keys and values starting with it are zkv's own: clients may not write them
INTENT_MAGIC = b"\x00zkv:intent\x00"
RECORD_PREFIX = b"\x00zkv:txn:"
MAX_TXN_KEYS = 100  # as DynamoDB's TransactWriteItems
MAX_TXN_BYTES = 4 * 1024 * 1024  # keys and values together, as DynamoDB's 4 MB
MAX_TOKEN_BYTES = 256
RETENTION_S = 600.0  # a retry with the same token within 10 minutes gets the same outcome (DynamoDB)


class TxnItem(NamedTuple):
    """One key of a transaction: its condition (or None) and its write (or None: a check only)."""

    key: bytes
    write: str | None  # "put" | "delete" | None
    value: bytes | None = None
    condition: tuple[str, bytes | None] | None = None  # ("absent", None) | ("value", expected)


class TxnRequest(NamedTuple):
    id: int
    token: bytes | None  # None: no idempotency (the coordinator makes one up)
    items: tuple[TxnItem, ...]
    op: str = "txn"


class Write(NamedTuple):
    """A compute's decision to propose ``value`` (None: a tombstone) for the key."""

    value: bytes | None
    expires: float | None = None  # absolute wall-clock expiry


def answer(**fields: Any) -> dict[str, Any]:
    """A compute's decision to write nothing and answer ``fields`` to the transaction coordinator."""
    return {"ok": True, **fields}


# ------------------------------------------------------------------------------------------ the request


def parse_txn(msg: dict[str, Any], rid: int, max_key_bytes: int, max_value_bytes: int) -> TxnRequest:
    """``{"op": "txn", "token"?, "ops": [{"key", "op": check|put|delete, "value"?, "if_absent"?,
    "if_value"?}]}`` checked: one item per key (a check and a write of one key combine), the limits."""
    token = msg.get("token")
    if isinstance(token, str):
        token = token.encode()
    if token is not None and (not isinstance(token, bytes) or not 0 < len(token) <= MAX_TOKEN_BYTES):
        raise InvalidRequest(f"token must be a string of 1 to {MAX_TOKEN_BYTES} bytes")
    ops = msg.get("ops")
    if not isinstance(ops, list) or not ops:
        raise InvalidRequest("a transaction needs a non-empty list of ops")
    if len(ops) > 2 * MAX_TXN_KEYS:
        raise TxnTooManyKeys(
            f"{len(ops)} ops; a transaction takes at most {MAX_TXN_KEYS} keys", limit=MAX_TXN_KEYS
        )
    items: dict[bytes, TxnItem] = {}
    size = 0
    for op in ops:
        item = _item(op, max_key_bytes, max_value_bytes)
        size += len(item.key) + len(item.value or b"") + len((item.condition or ("", b""))[1] or b"")
        items[item.key] = _combine(items.get(item.key), item)
    if len(items) > MAX_TXN_KEYS:
        raise TxnTooManyKeys(
            f"{len(items)} keys; a transaction takes at most {MAX_TXN_KEYS}", limit=MAX_TXN_KEYS
        )
    if size > MAX_TXN_BYTES:
        raise TxnTooLarge(
            f"{size} bytes of keys and values; the limit is {MAX_TXN_BYTES}", limit=MAX_TXN_BYTES
        )
    return TxnRequest(rid, token, tuple(items.values()))


def _bytes(v: Any, what: str) -> bytes:
    if isinstance(v, str):
        v = v.encode()
    if not isinstance(v, bytes):
        raise InvalidRequest(f"{what} must be bytes or a string")
    return v


def _item(op: Any, max_key_bytes: int, max_value_bytes: int) -> TxnItem:
    if not isinstance(op, dict):
        raise InvalidRequest("each transaction op must be a map")
    kind = op.get("op")
    if kind not in ("check", "put", "delete"):
        raise InvalidRequest(f"transaction op must be check, put or delete, not {kind!r}")
    key = _bytes(op.get("key"), "key")
    if not key or len(key) > max_key_bytes:
        raise InvalidRequest(f"key must be 1 to {max_key_bytes} bytes")
    if key.startswith(RESERVED_PREFIX):
        raise InvalidRequest("keys starting with \\x00zkv: are reserved")
    value = None
    if kind == "put":
        value = _bytes(op.get("value"), "value")
        if len(value) > max_value_bytes:
            raise InvalidRequest(f"value is {len(value)} bytes, the limit is {max_value_bytes}")
        if value.startswith(RESERVED_PREFIX):
            raise InvalidRequest("values starting with \\x00zkv: are reserved")
    if_absent, if_value = op.get("if_absent"), op.get("if_value")
    if if_absent is not None and not isinstance(if_absent, bool):
        raise InvalidRequest("if_absent must be true or false")
    if if_absent and if_value is not None:
        raise InvalidRequest("give if_absent or if_value, not both")
    condition: tuple[str, bytes | None] | None = None
    if if_absent:
        condition = ("absent", None)
    elif if_value is not None:
        condition = ("value", _bytes(if_value, "if_value"))
    if kind == "check" and condition is None:
        raise InvalidRequest("a check needs if_absent or if_value")
    return TxnItem(key, None if kind == "check" else kind, value, condition)


def _combine(old: TxnItem | None, new: TxnItem) -> TxnItem:
    if old is None:
        return new
    if old.write is None and new.write is not None and new.condition is None:
        return new._replace(condition=old.condition)
    if new.write is None and old.write is not None and old.condition is None:
        return old._replace(condition=new.condition)
    raise InvalidRequest(f"key {new.key!r} appears twice: give at most one check and one write per key")


# ------------------------------------------------------------------------------------------ intents


@dataclass(frozen=True, slots=True)
class Intent:
    """A key locked by a transaction attempt: what it will hold if the attempt commits, and what it held."""

    token: bytes
    attempt: str
    deadline: float  # wall clock: past it (plus a skew margin) any reader may abort the attempt
    keys: tuple[bytes, ...]
    write: str | None  # put | delete | None (a check: the old value stays)
    value: bytes | None
    old: bytes | None
    old_expires: float | None

    def to_value(self) -> bytes:
        body = [
            self.token,
            self.attempt,
            self.deadline,
            list(self.keys),
            self.write,
            self.value,
            self.old,
            self.old_expires,
        ]
        return INTENT_MAGIC + msgpack.packb(body, use_bin_type=True)

    @classmethod
    def from_value(cls, value: bytes | None) -> Intent | None:
        if value is None or not value.startswith(INTENT_MAGIC):
            return None
        token, attempt, deadline, keys, write, new, old, old_expires = msgpack.unpackb(
            value[len(INTENT_MAGIC) :], raw=False
        )
        return cls(token, attempt, deadline, tuple(keys), write, new, old, old_expires)

    def committed_value(self) -> Write:
        if self.write == "put":
            return Write(self.value)
        if self.write == "delete":
            return Write(None)
        return self.old_value()

    def old_value(self) -> Write:
        return Write(self.old, self.old_expires if self.old is not None else None)


def live(state: KeyState, wall: float) -> list[Sibling]:
    return [s for s in state.siblings if s.value is not None and not s.expired(wall)]


def find_intent(state: KeyState, wall: float) -> Intent | None:
    """The intent a key's state holds, if any (an intent never expires: it has no TTL)."""
    for s in state.siblings:
        if s.value is not None and s.value.startswith(INTENT_MAGIC):
            return Intent.from_value(s.value)
    return None


def visible_values(state: KeyState, wall: float) -> list[bytes]:
    """What a serial read answers for a key while its intent is undecided: the old value."""
    intent = find_intent(state, wall)
    if intent is None:
        return [s.value for s in live(state, wall) if s.value is not None]
    old = intent.old_value()
    if old.value is None or (old.expires is not None and old.expires <= wall):
        return []
    return [old.value]


def place_intent(item: TxnItem, intent: Intent, current: KeyState, wall: float) -> Write | dict[str, Any]:
    """Lock ``item.key`` for ``intent``'s attempt if its condition holds and nobody else holds it."""
    other = find_intent(current, wall)
    if other is not None:
        if (other.token, other.attempt) == (intent.token, intent.attempt):
            return answer(held=True)
        return {"ok": False, "error": "txn_blocked", "intent": other.to_value()}
    values = live(current, wall)
    if len(values) > 1 or not _holds(item.condition, values):
        why = "concurrent values (siblings)" if len(values) > 1 else "the condition does not hold"
        return ConditionFailed(
            f"{why} on key {item.key!r}: its current value is in 'values'",
            values=[s.value for s in values if s.value is not None],
            ctx=current.context(),
            key=item.key,
        ).to_wire()
    old = values[0] if values else None
    placed = Intent(
        intent.token,
        intent.attempt,
        intent.deadline,
        intent.keys,
        item.write,
        item.value,
        None if old is None else old.value,
        None if old is None else old.expires,
    )
    return Write(placed.to_value())


def _holds(condition: tuple[str, bytes | None] | None, values: list[Sibling]) -> bool:
    if condition is None:
        return True
    if condition[0] == "absent":
        return not values
    return len(values) == 1 and values[0].value == condition[1]


def resolve_intent(token: bytes, attempt: str, commit: bool, current: KeyState, wall: float) -> Write | dict:
    """Replace this attempt's intent by its new value (``commit``) or its old one; else leave the key."""
    intent = find_intent(current, wall)
    if intent is None or (intent.token, intent.attempt) != (token, attempt):
        return answer(resolved=False)
    return intent.committed_value() if commit else intent.old_value()


# ------------------------------------------------------------------------------------------ the record


def record_key(token: bytes) -> bytes:
    return RECORD_PREFIX + token


@dataclass(frozen=True, slots=True)
class Record:
    """The decision of one token's transaction: ``committed`` | ``aborted`` | ``refused`` (with the
    ``condition_failed`` reply) by ``attempt``."""

    status: str
    attempt: str
    error: dict[str, Any] | None = None

    def to_value(self) -> bytes:
        return RECORD_PREFIX + msgpack.packb([self.status, self.attempt, self.error], use_bin_type=True)

    @classmethod
    def from_value(cls, value: bytes | None) -> Record | None:
        if value is None or not value.startswith(RECORD_PREFIX):
            return None
        status, attempt, error = msgpack.unpackb(value[len(RECORD_PREFIX) :], raw=False)
        return cls(status, attempt, error)


def current_record(state: KeyState, wall: float) -> Record | None:
    values = live(state, wall)
    return Record.from_value(values[0].value) if values else None


def fate(record: Record | None, attempt: str) -> str:
    """``committed`` | ``aborted`` (it can never commit) | ``pending`` (it still may)."""
    if record is None or (record.status == "aborted" and record.attempt != attempt):
        return "pending"
    if record.status == "committed" and record.attempt == attempt:
        return "committed"
    return "aborted"


def commit_record(attempt: str, deadline: float, current: KeyState, wall: float) -> Write | dict:
    """The commit point: ``committed(attempt)`` unless the record is decided already (then it answers the
    record) or the attempt's deadline passed (a recoverer may be aborting it: answer ``late``)."""
    record = current_record(current, wall)
    if fate(record, attempt) != "pending":
        return answer(record=None if record is None else record.to_value())
    if wall > deadline:
        return answer(late=True)
    return Write(Record("committed", attempt).to_value())


def abort_record(
    attempt: str, status: str, error: dict | None, current: KeyState, wall: float
) -> Write | dict:
    """Make ``attempt`` dead (``aborted``, or ``refused`` with its reply), unless it is decided already.
    Kept for the retention window: an attempt that can never commit leaves no intent to resolve late."""
    record = current_record(current, wall)
    if fate(record, attempt) != "pending":
        return answer(record=None if record is None else record.to_value())
    return Write(Record(status, attempt, error).to_value(), wall + RETENTION_S)


def retain_record(attempt: str, current: KeyState, wall: float) -> Write | dict:
    """Every intent of the committed ``attempt`` is resolved: the record may now expire."""
    values = live(current, wall)
    record = current_record(current, wall)
    if record is None or fate(record, attempt) != "committed" or values[0].expires is not None:
        return answer(retained=False)
    return Write(values[0].value, wall + RETENTION_S)
