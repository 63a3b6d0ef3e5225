"""``begin [TOKEN]`` ... ``commit`` (or ``abort``): a multi-key transaction typed line by line.

Between ``begin`` and ``commit``, ``check KEY EXPECTED`` (or ``check KEY --absent``), ``put KEY VALUE``
(``--if-value V`` / ``--if-absent``) and ``delete KEY`` are queued, not sent; every other command runs as
usual (a ``get`` to look at something, say). ``commit`` sends them as one transaction
(docs/transactions.md section 7) and prints one outcome line:

* ``applied: ...`` — every write took effect at one commit point;
* ``rejected: ...`` — a check or condition did not hold (the line shows what the key holds) or another
  transaction holds a key; nothing was written;
* ``unknown: ...`` — the commit point was proposed but not seen decided. The block stays open: ``commit``
  again sends the same token, which applies at most once and tells what happened.

A rejection by conflict, and an unavailable cluster, also keep the block open for another ``commit``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from zkv.client.txn import Transaction
from zkv.errors import (
    ConditionFailed,
    NoNodeAvailable,
    OutcomeUnknown,
    Timeout,
    TxnConflict,
    Unavailable,
)

from .commands import UsageError
from .results import Failure, Message, Result

if TYPE_CHECKING:
    from .session import Session

QUEUED = ("check", "put", "delete")  # what a line inside a block adds to it instead of running


class TxnBlock:
    """The transaction a ``begin`` opened: its token and the operations typed since."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lines: list[str] = []  # what each queued operation was, for the outcome line
        self.sent = False  # a commit was sent (its outcome may be unknown)
        self.ops: list[tuple[str, bytes, bytes | None, bytes | None, bool]] = []

    def add(self, op: str, key: bytes, value: bytes | None, if_value: bytes | None, if_absent: bool) -> None:
        self.ops.append((op, key, value, if_value, if_absent))
        shown = key.decode(errors="replace")
        if op == "check":
            self.lines.append(f"check {shown} {'absent' if if_absent else repr(_text(if_value))}")
        else:
            self.lines.append(f"{op} {shown}")

    def transaction(self, session: Session) -> Transaction:
        tx = session.client.transaction(token=self.token)
        for op, key, value, if_value, if_absent in self.ops:
            if op == "check":
                tx.check(key, if_value=if_value, if_absent=if_absent)
            elif op == "put":
                assert value is not None
                tx.put(key, value, if_value=if_value, if_absent=if_absent)
            else:
                tx.delete(key, if_value=if_value)
        return tx


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode(errors="replace")


def begin(session: Session, args: list[str]) -> Result:
    if session.block is not None:
        raise UsageError(
            "in_transaction",
            f"transaction {session.block.token} is open ({len(session.block.ops)} operations)",
            "commit or abort it first",
        )
    session.block = TxnBlock(args[0] if args else f"shell-{uuid.uuid4().hex[:12]}")
    return Message(
        "begin",
        f"transaction {session.block.token} begun: check, put and delete are queued until commit (or abort)",
        {"token": session.block.token},
    )


def queue(session: Session, name: str, args: list[str], options: dict[str, str | bool]) -> Result:
    """A check, put or delete typed inside a block: added to it, not sent."""
    block = _open(session, name)
    key = session.remember(args[0])
    if_value = options.get("--if-value")
    if_absent = bool(options.get("--if-absent") or options.get("--absent"))
    if name == "check":
        if len(args) > 1:
            if_value = args[1]
        if if_absent == isinstance(if_value, str):
            raise UsageError(
                "usage", "check takes EXPECTED or --absent", "check KEY EXPECTED | check KEY --absent"
            )
    elif len(args) > (2 if name == "put" else 1):
        raise UsageError(
            "usage", f"{name} in a transaction takes no consistency (it is serial)", f"{name} KEY"
        )
    if if_absent and isinstance(if_value, str):
        raise UsageError(
            "usage", "--if-absent and --if-value exclude each other", "put KEY VALUE --if-absent"
        )
    if any(op[1] == key and op[0] != "check" for op in block.ops) and name != "check":
        raise UsageError("usage", f"{args[0]} is written twice in this transaction", "one write per key")
    value = args[1].encode() if name == "put" else None
    block.add(name, key, value, if_value.encode() if isinstance(if_value, str) else None, if_absent)
    return Message(
        name,
        f"queued {block.lines[-1]} ({len(block.ops)} in transaction {block.token}; commit or abort)",
        {"token": block.token, "queued": len(block.ops)},
    )


def commit(session: Session, args: list[str]) -> Result:
    block = _open(session, "commit")
    if not block.ops:
        raise UsageError(
            "usage", "the transaction is empty", "check, put or delete something first, or abort"
        )
    done = ", ".join(block.lines)
    block.sent = True
    try:
        result = block.transaction(session).commit()
    except ConditionFailed as exc:
        session.block = None
        key = exc.details.get("key")
        shown = key.decode(errors="replace") if isinstance(key, bytes) else "a key"
        current = ", ".join(repr(_text(v)) for v in exc.values) or "no value"
        return Failure(
            "commit",
            "condition_failed",
            f"rejected: transaction {block.token}: the condition on {shown} does not hold, it holds "
            f"{current}; nothing was written",
            "begin again with the current values",
        )
    except TxnConflict:
        return Failure(
            "commit",
            "txn_conflict",
            f"rejected: transaction {block.token}: another transaction holds one of its keys; nothing was "
            "written",
            "commit again to retry (same token), or abort",
        )
    except (OutcomeUnknown, Timeout) as exc:
        return Failure(
            "commit",
            "outcome_unknown",
            f"unknown: transaction {block.token} may or may not have been applied ({exc.message})",
            "commit again: the same token applies at most once and tells (or abort, and read at serial)",
        )
    except (Unavailable, NoNodeAvailable) as exc:
        return Failure(
            "commit",
            exc.code,
            f"rejected: transaction {block.token}: {exc.message}; nothing was written",
            "commit again when the cluster is back, or abort",
        )
    except Exception:
        session.block = None  # a limit or a bad operation: the block cannot succeed as it is
        raise
    session.block = None
    again = " (an earlier commit with this token had applied it)" if result.retry else ""
    return Message(
        "commit",
        f"applied: transaction {block.token}: {done}{again}",
        {"token": block.token, "applied": True, "retry": result.retry},
    )


def abort(session: Session, args: list[str]) -> Result:
    block = _open(session, "abort")
    session.block = None
    if block.sent:
        return Message(
            "abort",
            f"closed transaction {block.token}: its last commit may or may not have been applied (read its "
            "keys at serial, or begin again with the same token and commit: it applies at most once)",
        )
    return Message(
        "abort", f"aborted transaction {block.token}: nothing was sent ({len(block.ops)} operations dropped)"
    )


def _open(session: Session, name: str) -> TxnBlock:
    if session.block is None:
        raise UsageError("no_transaction", f"{name}: no transaction is open", "begin [TOKEN] starts one")
    return session.block
