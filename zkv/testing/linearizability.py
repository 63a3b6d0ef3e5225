"""A linearizability checker for single-key register histories (reads, writes, compare-and-set).

Theory of operation
-------------------
A history is linearizable when every operation can be given one instant between its invocation and its
response such that, taken in the order of those instants, the operations are a legal run of a sequential
register (Herlihy & Wing). The search is Wing & Gong's, with Lowe's memoisation (what Knossos and
Porcupine do): build the order one operation at a time; an operation may go next only if no other
operation still unplaced *returned* before it was *invoked*; apply it to the register; on a dead end
backtrack. A configuration — which operations are placed, and the register's value — that was explored
once is never explored again (a set of ``(placed bitmask, value)``), which turns the worst case from
factorial into at most ``2^n * values`` and in practice into a few thousand steps for the histories the
simulator makes.

Outcomes, as a client sees them:

* ``ok`` — it took effect (a read returned the value it names; a CAS applied);
* ``fail`` — it definitely did not change the register. A failed CAS (``ConditionFailed``) still
  *observed* the register (the value it carries, ``value`` here, must be the register's value at its
  instant, and that value must differ from ``expected``); a refusal with nothing observed (``unavailable``
  before anything was sent) is simply left out of the history by the caller;
* ``unknown`` — the client lost contact before it knew (``OutcomeUnknown``, a timeout). The operation may
  have taken effect at any instant after its invocation, or never: its response time is infinite and the
  search may leave it unplaced. A read of unknown outcome observed nothing and is dropped, and so is an
  unknown write whose value nobody observed.

Histories of different keys are independent (linearizability is local): :func:`check_keys` checks each
key alone, which keeps every search small.

Pure: times are whatever the recorder passes; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

OK = "ok"
FAIL = "fail"
UNKNOWN = "unknown"
READ, WRITE, CAS = "read", "write", "cas"

MAX_STEPS = 2_000_000  # configurations explored before the search gives up (reported, never "passes")


@dataclass(frozen=True, slots=True)
class RegisterOp:
    """One operation on a register. ``value``: what a read (or a failed CAS) saw, what a write or CAS
    writes; ``expected``: a CAS's condition (``None``: the key must be absent, ``if_absent``)."""

    client: str
    kind: str  # read | write | cas
    invoked: float
    completed: float  # ignored (infinite) when the outcome is unknown
    outcome: str = OK
    value: bytes | None = None
    expected: bytes | None = None
    key: str = ""
    observed: bytes | None = None  # a failed CAS: the current value its ConditionFailed carried

    def describe(self) -> str:
        what = {
            READ: f"read -> {self.value!r}",
            WRITE: f"write {self.value!r}",
            CAS: f"cas {self.expected!r} -> {self.value!r}",
        }[self.kind]
        if self.kind == CAS and self.outcome == FAIL:
            what += f" refused (saw {self.observed!r})"
        return f"{self.client} {what} [{self.outcome}] @{self.invoked:.4f}..{self.completed:.4f}"


@dataclass(slots=True)
class Verdict:
    """The checker's answer for one key: ``ok``, or where the search got stuck."""

    key: str
    ok: bool
    ops: int
    steps: int = 0
    exhausted: bool = False  # the search hit MAX_STEPS: neither proved nor refuted (counts as a failure)
    stuck: list[str] = field(default_factory=list)  # the deepest dead end: ops placed, then ops that failed

    def __str__(self) -> str:
        if self.ok:
            return f"{self.key}: linearizable ({self.ops} ops, {self.steps} steps)"
        why = "search budget exhausted" if self.exhausted else "not linearizable"
        return f"{self.key}: {why} ({self.ops} ops); " + "; ".join(self.stuck[-8:])


def _step(op: RegisterOp, value: bytes | None) -> tuple[bool, bytes | None]:
    """Apply ``op`` to a register holding ``value``: (legal?, the register's value after it)."""
    if op.kind == READ:
        return op.value == value, value
    if op.kind == WRITE:
        return True, op.value
    if op.outcome == FAIL:  # a refused CAS observed the value and left it
        return value != op.expected and op.observed == value, value
    return value == op.expected, (op.value if value == op.expected else value)


def check_register(ops: Iterable[RegisterOp], initial: bytes | None = None, key: str = "") -> Verdict:
    """Is this single-register history linearizable from ``initial`` (None: the key is absent)?"""
    ops = list(ops)
    # Every value someone observed: what reads returned, refused CAS saw, applied CAS expected. An
    # operation of unknown outcome that wrote a value nobody observed may be left out (if it took
    # effect, nothing depended on it: it was overwritten before anyone looked), which keeps the search
    # from trying every subset of the timeouts a partition leaves (Knossos prunes the same way).
    observed = {op.value for op in ops if op.kind == READ and op.outcome != UNKNOWN}
    observed |= {op.observed for op in ops if op.kind == CAS and op.outcome == FAIL}
    observed |= {op.expected for op in ops if op.kind == CAS and op.outcome == OK}
    history = [op for op in ops if op.outcome != UNKNOWN or (op.kind != READ and op.value in observed)]
    n = len(history)
    ends = [math.inf if op.outcome == UNKNOWN else op.completed for op in history]
    required = 0  # the ops that must be placed: all but the unknown ones
    for i, op in enumerate(history):
        if op.outcome != UNKNOWN:
            required |= 1 << i
    order = sorted(range(n), key=lambda i: history[i].invoked)
    seen: set[tuple[int, bytes | None]] = set()
    best: tuple[int, bytes | None] = (0, initial)
    steps = 0
    # depth-first search over (placed, value); an explicit stack, so a long history cannot overflow
    stack: list[tuple[int, bytes | None]] = [(0, initial)]
    while stack:
        placed, value = stack.pop()
        if placed & required == required:
            return Verdict(key, True, n, steps)
        if (placed, value) in seen:
            continue
        seen.add((placed, value))
        steps += 1
        if steps > MAX_STEPS:
            return Verdict(key, False, n, steps, exhausted=True)
        if bin(placed).count("1") > bin(best[0]).count("1"):
            best = (placed, value)
        # the earliest response among unplaced ops bounds which may go next
        horizon = min((ends[i] for i in range(n) if not placed >> i & 1), default=math.inf)
        for i in reversed(order):  # pushed in reverse: explored in invocation order
            if placed >> i & 1 or history[i].invoked > horizon:
                continue
            legal, after = _step(history[i], value)
            if legal:
                stack.append((placed | 1 << i, after))
    placed, value = best
    stuck = [f"placed {bin(placed).count('1')} of {n}, register then {value!r}"]
    horizon = min((ends[i] for i in range(n) if not placed >> i & 1), default=math.inf)
    stuck += [
        "cannot go next: " + history[i].describe()
        for i in order
        if not placed >> i & 1 and history[i].invoked <= horizon
    ]
    return Verdict(key, False, n, steps, stuck=stuck)


def check_keys(ops: Iterable[RegisterOp], initial: bytes | None = None) -> list[Verdict]:
    """Check every key's history on its own (linearizability is compositional); one verdict per key."""
    by_key: dict[str, list[RegisterOp]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    return [check_register(by_key[k], initial, k) for k in sorted(by_key)]
