"""``with db.transaction(token="order-991") as tx:`` — a multi-key transaction built up in the client and
sent as one ``txn`` request when the block ends (docs/transactions.md).

Nothing is sent before the block ends; an exception inside it sends nothing. The commit ends as one of:
applied (``tx.result``), :class:`~zkv.errors.ConditionFailed` (a check or condition did not hold: nothing
was written; ``key``, ``values`` and ``context`` name the key and what it holds),
:class:`~zkv.errors.OutcomeUnknown` (the commit point was proposed but not seen decided: a serial read of
a key tells) — or a limit's own error (:class:`~zkv.errors.TxnTooManyKeys`,
:class:`~zkv.errors.TxnTooLarge`). A conflict with another transaction (``txn_conflict``: nothing was
written) is retried with the same token, with random back-off, until the client's patience runs out:
the token makes every retry safe (applied at most once within the 10-minute retention window).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from zkv.client.results import Data, as_bytes
from zkv.errors import OutcomeUnknown, Timeout, TxnConflict

if TYPE_CHECKING:
    from zkv.client.api import Client

BACKOFF_BASE_S = 0.005
BACKOFF_MAX_S = 0.2


@dataclass(frozen=True, slots=True)
class TxnResult:
    """An applied transaction. ``retry``: an earlier request with this token had applied it already."""

    token: str
    retry: bool = False
    attempts: int = 1  # requests sent (conflicts retried)


class Transaction:
    """The checks and writes of one transaction, sent as one request by :meth:`commit`."""

    def __init__(self, client: Client, token: str | None = None, patience: float | None = None) -> None:
        self._client = client
        self.token = token if token is not None else f"auto-{uuid.uuid4().hex}"
        self.ops: list[dict[str, Any]] = []
        self.result: TxnResult | None = None
        self.patience = patience if patience is not None else max(5.0, client.timeout)

    def check(self, key: Data, if_value: Data | None = None, if_absent: bool = False) -> Transaction:
        """The transaction commits only if ``key`` holds exactly ``if_value`` (or, ``if_absent``, nothing)."""
        op: dict[str, Any] = {"op": "check", "key": as_bytes(key)}
        _condition(op, if_absent, if_value)
        self.ops.append(op)
        return self

    def put(
        self, key: Data, value: Data, if_value: Data | None = None, if_absent: bool = False
    ) -> Transaction:
        op: dict[str, Any] = {"op": "put", "key": as_bytes(key), "value": as_bytes(value)}
        _condition(op, if_absent, if_value)
        self.ops.append(op)
        return self

    def delete(self, key: Data, if_value: Data | None = None) -> Transaction:
        op: dict[str, Any] = {"op": "delete", "key": as_bytes(key)}
        _condition(op, False, if_value)
        self.ops.append(op)
        return self

    def commit(self) -> TxnResult:
        """Send the transaction; retried with the same token while it meets conflicts."""
        msg = {"op": "txn", "token": self.token, "ops": self.ops}
        candidates = self._client.transport.candidates(self.ops[0]["key"] if self.ops else None)
        deadline = time.monotonic() + self.patience
        attempts = 0
        while True:
            attempts += 1
            try:
                reply = self._client.transport.call(dict(msg), list(candidates))
            except TxnConflict:
                delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempts))
                if time.monotonic() + delay >= deadline:
                    raise
                time.sleep(delay)
                continue
            except Timeout as exc:
                raise OutcomeUnknown(
                    f"no answer to transaction {self.token!r} ({exc.message}); retry with the same token "
                    "(it applies at most once) or read its keys at serial"
                ) from exc
            self.result = TxnResult(self.token, bool(reply.get("retry")), attempts)
            return self.result

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()


def _condition(op: dict[str, Any], if_absent: bool, if_value: Data | None) -> None:
    if if_absent:
        op["if_absent"] = True
    if if_value is not None:
        op["if_value"] = as_bytes(if_value)
