"""The coordinator of multi-key transactions, and the recovery of intents a dead coordinator left.

Theory of operation
-------------------
Any node coordinates a ``txn`` request (a Paxos proposer need not be a replica). Each step is an internal
serial request of :class:`zkv.core.serial.SerialCoordinator` whose decision is a pure function of
:mod:`zkv.core.txn`:

1. read the token's record (a retry of a decided transaction answers what it answered: applied at most
   once);
2. place an intent on every key at once; a key's condition failing aborts the attempt (``refused``,
   recorded for retries) with ``condition_failed`` naming the key; a key held by another attempt is
   looked at through that attempt's record: decided, its intent is resolved and the key tried again;
   undecided and stale (past its deadline plus :data:`STALE_MARGIN_S`), it is aborted and resolved; else
   this attempt aborts with ``txn_conflict`` (no waiting: no deadlocks), as it does when the holder's
   record cannot be settled or its own intent's round is overtaken by another proposer's
   (``outcome_unknown`` there says only that the attempt, which never commits, lost the race);
3. the commit point: the record, absent -> ``committed(attempt)``; the client is answered *applied* when
   it is chosen (every read from then on goes through the record);
4. resolve every intent, then let the record expire after the retention window.

An attempt that never proposed its commit can never commit (only its coordinator proposes it), so an
abort answers at once and resolves the intents in the background. A commit whose outcome is not known
answers ``outcome_unknown``, and the coordinator settles the attempt (reads the record; aborts it if it
is still absent) in the background.

**Readers and writers meet intents** (:meth:`TxnCoordinator.met_intent`, the serial layer's hook): a
client's serial request whose key holds an intent is parked; the attempt's record decides: committed or
dead, the intent is resolved and the request runs again; undecided, a read answers the old value (the
transaction has not taken effect) and a write backs off and tries again, and once the intent is stale
the attempt is aborted. A plain read that meets an intent is run as a serial read (read-atomic).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from zkv.core.pending import Origin
from zkv.core.serial import SerialCoordinator
from zkv.core.serialop import Finish, SerialOp
from zkv.core.state import NodeState
from zkv.core.txn import (
    Intent,
    Record,
    TxnRequest,
    abort_record,
    commit_record,
    current_record,
    fate,
    find_intent,
    place_intent,
    record_key,
    resolve_intent,
    retain_record,
    visible_values,
)
from zkv.core.versions import KeyState, state_from_wire
from zkv.errors import OutcomeUnknown, TxnConflict, Unavailable
from zkv.protocol import ok

STALE_MARGIN_S = 1.0  # past an intent's deadline by this much (clock skew), a reader may abort it
INTERNAL = Origin(b"", 0)
Then = Callable[[str, float], None]  # called with the attempt's fate once the key is resolved


@dataclass(slots=True)
class Txn:
    origin: Origin
    request: TxnRequest
    token: bytes
    attempt: str
    started: float
    deadline: float  # monotonic
    deadline_wall: float
    waiting: set[bytes] = field(default_factory=set)
    refusal: dict[str, Any] | None = None
    conflict: bool = False
    met_others: bool = False  # a key was held by another attempt: time went into settling it
    failure: dict[str, Any] | None = None
    answered: bool = False


class TxnCoordinator:
    """Every transaction this node coordinates, and every intent recovery it runs."""

    def __init__(self, state: NodeState, serial: SerialCoordinator, finish: Finish) -> None:
        self.state = state
        self.serial = serial
        self._finish = finish
        self._attempts = itertools.count(1)
        serial.on_intent = self.met_intent
        self._resolving: dict[tuple[bytes, str, bytes], list[Then]] = {}  # one resolution per intent key

    # ------------------------------------------------------------------------------------------ steps

    def _step(
        self,
        key: bytes,
        compute: Any,
        done: Callable[[dict[str, Any], float], None],
        now: float,
        op: str = "put",
        deadline: float | None = None,
    ) -> None:
        self.serial.start(INTERNAL, op, key, now, compute=compute, on_done=done, deadline=deadline)

    def _read(self, key: bytes, done: Callable[[dict[str, Any], float], None], now: float) -> None:
        """A serial read of a key's raw state (intents and records included)."""
        self._step(key, _raw_state, done, now, op="get")

    # ------------------------------------------------------------------------------------------ start

    def start(self, origin: Origin, request: TxnRequest, now: float) -> None:
        wall = self.state.wall(now)
        attempt = f"{self.state.name}:{int(wall * 1e6)}:{next(self._attempts)}"
        token = request.token if request.token is not None else f"anon:{attempt}".encode()
        timeout = self.state.settings.request_timeout_s
        txn = Txn(origin, request, token, attempt, now, now + timeout, wall + timeout)
        self._read(record_key(token), partial(self._record_read, txn), now)

    def _answer(self, txn: Txn, msg: dict[str, Any], now: float) -> None:
        if not txn.answered:
            txn.answered = True
            self._finish(txn.origin, "txn", "serial", txn.started, now, dict(msg))

    def _record_read(self, txn: Txn, msg: dict[str, Any], now: float) -> None:
        if not msg.get("ok"):
            self._answer(txn, msg, now)  # nothing was written
            return
        record = current_record(_state(msg), self.state.wall(now))
        if record is not None and record.status == "committed":
            self._answer(txn, ok(0, applied=True, token=txn.token, retry=True), now)
            return
        if record is not None and record.status == "refused" and record.error is not None:
            self._answer(txn, record.error, now)
            return
        keys = tuple(item.key for item in txn.request.items)
        intent = Intent(txn.token, txn.attempt, txn.deadline_wall, keys, None, None, None, None)
        txn.waiting = set(keys)
        for item in txn.request.items:
            self._place(txn, item, intent, now)

    def _place(self, txn: Txn, item: Any, intent: Intent, now: float) -> None:
        compute = partial(place_intent, item, intent)
        self._step(item.key, compute, partial(self._placed, txn, item, intent), now, deadline=txn.deadline)

    def _placed(self, txn: Txn, item: Any, intent: Intent, msg: dict[str, Any], now: float) -> None:
        if msg.get("ok"):
            txn.waiting.discard(item.key)
        elif msg.get("error") == "txn_blocked":
            txn.met_others = True
            other = Intent.from_value(msg["intent"])
            assert other is not None

            def then(outcome: str, now: float) -> None:
                if outcome in ("pending", "failed"):  # undecided, or its fate not settled: give way
                    # a recovery that could not be done (its steps met the holder's own rounds) leaves
                    # the key held all the same: a conflict, retried by the client with back-off
                    txn.conflict = True
                    txn.waiting.discard(item.key)
                    self._placed_all(txn, now)
                else:
                    self._place(txn, item, intent, now)  # resolved: try the key again

            self.recover(item.key, other, then, now, abort_stale=True)
            return
        else:
            if msg.get("error") == "condition_failed":
                txn.refusal = txn.refusal or msg
            elif msg.get("error") == OutcomeUnknown.code or (
                txn.met_others and msg.get("error") == "timeout"
            ):
                # the intent's round was overtaken by another proposer's (a contending transaction or a
                # recovery), or the attempt's time went into settling another's intents: this attempt is
                # never committed and its intents are resolved below, so nothing is written, and the
                # client may retry the token
                txn.conflict = True
            else:
                txn.failure = txn.failure or msg
            txn.waiting.discard(item.key)
        self._placed_all(txn, now)

    def _placed_all(self, txn: Txn, now: float) -> None:
        if txn.waiting:
            return
        if txn.refusal is None and not txn.conflict and txn.failure is None:
            compute = partial(commit_record, txn.attempt, txn.deadline_wall)
            self._step(
                record_key(txn.token), compute, partial(self._committed, txn), now, deadline=txn.deadline
            )
            return
        # nothing was committed and nothing can be (only this coordinator proposes the commit)
        keys = tuple(i.key for i in txn.request.items)
        if txn.refusal is not None:
            # the refusal is the token's answer only once recorded: another attempt of the token (an
            # earlier request's, whose effect may be what failed the condition) may have committed
            compute = partial(abort_record, txn.attempt, "refused", _reply_fields(txn.refusal))
            self._step(record_key(txn.token), compute, partial(self._refused, txn), now)
            self.resolve_all(txn.token, txn.attempt, keys, False, now)
            return
        if txn.conflict:
            reply = TxnConflict("another transaction holds one of the keys; nothing was written").to_wire()
        else:
            assert txn.failure is not None
            reply = Unavailable(
                f"the transaction was aborted, nothing was written: a key could not be locked "
                f"({txn.failure.get('error')}: {txn.failure.get('message')})",
            ).to_wire()
        self._answer(txn, reply, now)
        self.resolve_all(txn.token, txn.attempt, keys, False, now)

    def _refused(self, txn: Txn, msg: dict[str, Any], now: float) -> None:
        """The refusal's record step is done: answer what the record says of the token."""
        assert txn.refusal is not None
        if not msg.get("ok"):
            unknown = OutcomeUnknown(
                f"transaction {txn.token!r}: a condition failed, but the refusal could not be recorded "
                f"({msg.get('error')}), and another request with the token may still apply it; retry "
                "with the same token"
            )
            self._answer(txn, unknown.to_wire(), now)
            return
        record = None if msg.get("applied") else Record.from_value(msg.get("record"))
        if record is not None and record.status == "committed":
            self._answer(txn, ok(0, applied=True, token=txn.token, retry=True), now)
        elif record is not None and record.status == "refused" and record.error is not None:
            self._answer(txn, record.error, now)
        else:
            self._answer(txn, txn.refusal, now)

    def _committed(self, txn: Txn, msg: dict[str, Any], now: float) -> None:
        keys = tuple(item.key for item in txn.request.items)
        if msg.get("ok") and msg.get("applied"):
            self._answer(txn, ok(0, applied=True, token=txn.token), now)
            self.resolve_all(txn.token, txn.attempt, keys, True, now)
            return
        if msg.get("ok"):
            if msg.get("late"):
                reply = TxnConflict("the transaction ran past its deadline; nothing was written").to_wire()
                self._answer(txn, reply, now)
                self.resolve_all(txn.token, txn.attempt, keys, False, now)
                return
            record = Record.from_value(msg.get("record"))
            outcome = fate(record, txn.attempt)
            if outcome == "committed":
                self._answer(txn, ok(0, applied=True, token=txn.token), now)
            elif record is not None and record.status == "committed":  # another attempt of this token
                self._answer(txn, ok(0, applied=True, token=txn.token, retry=True), now)
            elif record is not None and record.status == "refused" and record.error is not None:
                self._answer(txn, record.error, now)
            else:
                stale = TxnConflict("a reader aborted the transaction (it looked stale); nothing was written")
                self._answer(txn, stale.to_wire(), now)
            self.resolve_all(txn.token, txn.attempt, keys, outcome == "committed", now)
            return
        # the commit point's outcome is not known: say so, and settle the attempt in the background
        unknown = OutcomeUnknown(
            f"the commit of transaction {txn.token!r} was proposed but not seen chosen "
            f"({msg.get('error')}); a serial read of its keys tells"
        )
        self._answer(txn, unknown.to_wire(), now)
        first = Intent(txn.token, txn.attempt, txn.deadline_wall, keys, None, None, None, None)
        self.recover(keys[0], first, _ignore_fate, now, abort_stale=True, force=True)

    # ------------------------------------------------------------------------------------------ resolution

    def resolve_all(
        self, token: bytes, attempt: str, keys: tuple[bytes, ...], commit: bool, now: float
    ) -> None:
        """Resolve the attempt's intent on every key; once all are, a committed record may expire."""
        left = set(keys)

        def one(key: bytes, outcome: str, now: float) -> None:
            left.discard(key)
            if not left and commit:
                self._step(record_key(token), partial(retain_record, attempt), _ignore, now)

        for key in keys:
            self._resolve(key, token, attempt, commit, partial(one, key), now)

    def _resolve(self, key: bytes, token: bytes, attempt: str, commit: bool, then: Then, now: float) -> None:
        """One resolution per intent in flight; everyone who waits for it is told when it is done."""
        slot = (token, attempt, key)
        waiters = self._resolving.get(slot)
        if waiters is not None:
            waiters.append(then)
            return
        self._resolving[slot] = [then]
        outcome = "committed" if commit else "aborted"

        def done(msg: dict[str, Any], now: float) -> None:
            for waiter in self._resolving.pop(slot, []):
                waiter(outcome if msg.get("ok") else "failed", now)

        self._step(key, partial(resolve_intent, token, attempt, commit), done, now)

    def recover(
        self,
        key: bytes,
        intent: Intent,
        then: Then,
        now: float,
        abort_stale: bool,
        force: bool = False,
    ) -> None:
        """Decide what ``intent`` (found on ``key``) is through its record, and resolve it when decided
        (all of its keys: whoever finds a dead coordinator's intents finishes its work). ``then`` gets
        ``committed`` / ``aborted`` once ``key`` is resolved, ``pending`` when the attempt is undecided
        and not stale, ``failed`` when a step could not be done."""

        def record_read(msg: dict[str, Any], now: float) -> None:
            if not msg.get("ok"):
                then("failed", now)
                return
            outcome = fate(current_record(_state(msg), self.state.wall(now)), intent.attempt)
            if outcome != "pending":
                self._finish_intent(key, intent, outcome == "committed", then, now)
            elif abort_stale and (force or self.state.wall(now) > intent.deadline + STALE_MARGIN_S):
                compute = partial(abort_record, intent.attempt, "aborted", None)
                self._step(record_key(intent.token), compute, aborted, now)
            else:
                then("pending", now)

        def aborted(msg: dict[str, Any], now: float) -> None:
            if not msg.get("ok"):
                then("failed", now)
                return
            if msg.get("applied"):
                self._finish_intent(key, intent, False, then, now)
                return
            outcome = fate(Record.from_value(msg.get("record")), intent.attempt)
            self._finish_intent(key, intent, outcome == "committed", then, now)

        self._read(record_key(intent.token), record_read, now)

    def _finish_intent(self, key: bytes, intent: Intent, commit: bool, then: Then, now: float) -> None:
        outcome = "committed" if commit else "aborted"
        self._resolve(
            key,
            intent.token,
            intent.attempt,
            commit,
            lambda o, now: then(outcome if o != "failed" else o, now),
            now,
        )
        others = tuple(k for k in intent.keys if k != key)
        if others:
            self.resolve_all(intent.token, intent.attempt, others, commit, now)

    # ------------------------------------------------------------------------------------------ the hook

    def met_intent(self, sop: SerialOp, current: KeyState, now: float) -> bool:
        """A client's serial request found ``current`` on its key: if it holds an intent, the attempt's
        record decides before the request goes on."""
        wall = self.state.wall(now)
        intent = find_intent(current, wall)
        if intent is None:
            return False
        self.serial.park(sop)

        def then(outcome: str, now: float) -> None:
            if not self.serial.is_live(sop):
                return
            if outcome in ("committed", "aborted"):
                self.serial.resume(sop, now)
            elif outcome == "pending" and sop.op == "get":  # undecided: it has not taken effect yet
                values = visible_values(current, self.state.wall(now))
                stamps = [s.timestamp for s in current.siblings][: len(values)]
                self.serial.answer(sop, ok(0, values=values, timestamps=stamps, ctx=current.context()), now)
            else:  # a write waits for the transaction to finish; a failed record read says nothing
                self.serial.retry_later(sop, now)  # (the transaction may have committed): try again

        self.recover(sop.key, intent, then, now, abort_stale=True)
        return True


def _raw_state(current: KeyState, wall: float) -> dict[str, Any]:
    from zkv.core.versions import state_to_wire

    return {"ok": True, "state": state_to_wire(current)}


def _state(msg: dict[str, Any]) -> KeyState:
    return state_from_wire(msg["state"])


def _reply_fields(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k != "id"}


def _ignore(msg: dict[str, Any], now: float) -> None:
    return None


def _ignore_fate(outcome: str, now: float) -> None:
    return None
