"""Operation histories of fault tests and the checker that judges them (shared with the simulator).

Every client operation is recorded as invoked, then ``ok`` (acknowledged), ``fail`` (a definite error:
nothing was written) or ``unknown`` (a timeout or lost connection: it may or may not have landed). After
the faults are healed and the cluster is quiet, the final state of every key is read and checked:

* **sets** — clients add unique elements to shared keys by get-then-put, merging siblings by union, so a
  later write always contains what it read. Every acknowledged element must be in the final set (no
  lost write); every element in it must have been added by someone (no phantom); and the final
  siblings must form an antichain: none may be a version an acknowledged write saw and replaced.
* **blind** — clients share a few keys and mix *blind* puts and deletes (no context) with get-then-put
  writes that carry a context. A blind write may supersede only what its coordinator held, and its
  receipt names that as a clock. So: an acknowledged write's value must survive unless a write that may
  have landed saw it (a context write's get returned it, or a blind write's clock covers its dot, or a
  blind write of unknown outcome was still running when it was made); what an acknowledged write saw or
  covered must be gone; and a blind write's clock may not cover a version made after it was answered
  (it would be claiming to supersede what it could not have seen: how a blind write that swallows
  concurrent writes is caught).
* **registers** — each client owns its keys and writes or deletes them by get-then-put, one operation
  at a time. The final values must be exactly what the last acknowledged operation left (its value, or
  nothing after a delete), give or take operations whose outcome is unknown that came after it; a value
  written before an acknowledged delete must not come back (no resurrection), and no value may appear
  that nobody wrote (no phantom).

Pure: no clocks, sockets or disk; times are whatever the recorder passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OK = "ok"
FAIL = "fail"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation: ``kind`` is ``add`` (sets), ``write`` or ``delete`` (registers)."""

    client: str
    seq: int
    kind: str
    key: str
    value: str | None
    outcome: str
    invoked: float
    completed: float
    saw: tuple[str, ...] = ()  # the values the get before it returned: what its context superseded
    consistency: str = ""  # the consistency it was written at (how many disk losses it must survive)
    dot: tuple[str, int] | None = None  # the version it made, from its receipt (acknowledged writes)
    # a blind write's receipt: the clock of everything its coordinator held, which it superseded
    superseded: tuple[tuple[str, int], ...] | None = None
    ttl: float | None = None  # an expiring put (kind ``tput``): seconds from its coordinator's clock


@dataclass(slots=True)
class Report:
    ops: int = 0
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.phantom or self.resurrected)

    def merge(self, other: Report) -> None:
        self.ops += other.ops
        self.acknowledged += other.acknowledged
        self.lost += other.lost
        self.phantom += other.phantom
        self.resurrected += other.resurrected


def check_sets(
    ops: Iterable[Op], final: Mapping[str, set[str]], siblings: Mapping[str, set[str]] | None = None
) -> Report:
    """Judge a set workload: ``final`` maps each key to the union of its siblings' elements.

    With ``siblings`` (each key's final sibling values, as written), also check that they form an
    antichain: no sibling may be one that an acknowledged write saw and replaced (counted as resurrected).
    """
    report = Report()
    attempted: dict[str, set[str]] = {}
    superseded: dict[str, set[str]] = {}
    for op in ops:
        if op.kind != "add" or op.value is None:
            continue
        report.ops += 1
        attempted.setdefault(op.key, set()).add(op.value)
        if op.outcome == OK:
            superseded.setdefault(op.key, set()).update(op.saw)
        if op.outcome == OK:
            report.acknowledged += 1
            if op.value not in final.get(op.key, set()):
                report.lost.append(f"{op.key}: acknowledged element {op.value} is gone")
    for key, elements in final.items():
        for element in sorted(elements - attempted.get(key, set())):
            report.phantom.append(f"{key}: element {element} was never added")
    for key, values in (siblings or {}).items():
        for value in sorted(values & superseded.get(key, set())):
            report.resurrected.append(f"{key}: sibling {value} was replaced by an acknowledged write")
    return report


def check_registers(ops: Iterable[Op], final: Mapping[str, set[str]]) -> Report:
    """Judge a register workload: ``final`` maps each key to its set of live values (siblings).

    A write or delete supersedes exactly the values its preceding get returned (``saw``), so: a value an
    acknowledged operation saw must be gone (else it was resurrected); an acknowledged write's value must
    still be there unless a later operation that may have landed saw it (else it was lost); and every
    value must have been written by someone (else it is a phantom). Values nobody saw may survive as
    siblings: a sloppy quorum can hide a write from a later read, and that is concurrency, not loss.
    """
    report = Report()
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind in ("write", "delete"):
            by_key.setdefault(op.key, []).append(op)
    for key in set(by_key) | set(final):
        history = sorted(by_key.get(key, []), key=lambda o: o.seq)
        values = final.get(key, set())
        report.ops += len(history)
        written = {o.value for o in history if o.kind == "write" and o.outcome != FAIL}
        for value in sorted(values - written):
            report.phantom.append(f"{key}: value {value} was never written")
        superseded = {v for o in history if o.outcome == OK for v in o.saw}
        for value in sorted(values & superseded):
            report.resurrected.append(f"{key}: {value} came back after an acknowledged operation replaced it")
        for i, op in enumerate(history):
            if op.outcome != OK:
                continue
            report.acknowledged += 1
            if op.kind != "write" or op.value in values:
                continue
            replaced = any(op.value in later.saw for later in history[i + 1 :] if later.outcome != FAIL)
            if not replaced:
                report.lost.append(f"{key}: acknowledged write {op.value} is gone (final {sorted(values)})")
    return report


def check_ttl(
    ops: Iterable[Op], final: Mapping[str, set[str]], final_at: float | None, margin: float = 0.25
) -> Report:
    """Judge the TTL workload (kind ``tput``: a put with a TTL; its keys get no other writes).

    What expiry may remove, and nothing else: a value reads as gone once its TTL has passed, and never
    comes back. So a get that began after a value's expiry must not return it (its expiry is at the latest
    the write's completion plus the TTL, by the coordinator's clock: ``margin`` for clocks that differ);
    the final read (at ``final_at``, the same clock as the ops) finds no value whose TTL had passed; and
    every value read was written. Before its expiry an acknowledged value may still be superseded, or
    hidden by a sloppy quorum, as any value: expiry adds no promise that it is there.
    """
    report = Report()
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind == "tput":
            by_key.setdefault(op.key, []).append(op)
    for key in set(by_key) | set(final):
        history = by_key.get(key, [])
        report.ops += len(history)
        report.acknowledged += sum(1 for o in history if o.outcome == OK)
        written = {o.value: o for o in history if o.outcome != FAIL and o.value is not None}
        values = final.get(key, set())
        for value in sorted(values - set(written)):
            report.phantom.append(f"{key}: value {value} was never written")
        for op in history:
            for value in op.saw:
                w = written.get(value)
                expired = w is not None and w.ttl is not None and op.invoked > w.completed + w.ttl + margin
                if w is not None and w.outcome == OK and expired:
                    report.resurrected.append(
                        f"{key}: {value} (ttl {w.ttl}s, written by {w.completed:.3f}) read at "
                        f"{op.invoked:.3f}, after it expired"
                    )
        if final_at is None:
            continue
        for value in sorted(values & set(written)):
            w = written[value]
            # an unknown outcome may have reached its coordinator late: its expiry is later, up to the
            # network's delays; only a value expired long before the final read is judged then
            late = margin if w.outcome == OK else 5.0
            if w.ttl is not None and final_at > w.completed + w.ttl + late:
                report.resurrected.append(f"{key}: {value} (ttl {w.ttl}s) still read at the end, expired")
    return report


def _covers(clock: tuple[tuple[str, int], ...] | None, dot: tuple[str, int] | None) -> bool:
    return clock is not None and dot is not None and any(a == dot[0] and c >= dot[1] for a, c in clock)


def check_blind(ops: Iterable[Op], final: Mapping[str, set[str]]) -> Report:
    """Judge the blind-write workload (kinds ``bput``, ``bdelete``: blind; ``cput``: with a context)."""
    report = Report()
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind in ("bput", "bdelete", "cput"):
            by_key.setdefault(op.key, []).append(op)
    for key in set(by_key) | set(final):
        history = by_key.get(key, [])
        values = final.get(key, set())
        report.ops += len(history)
        written = {o.value for o in history if o.kind != "bdelete" and o.outcome != FAIL}
        for value in sorted(values - written):
            report.phantom.append(f"{key}: value {value} was never written")
        blind_ok = [o for o in history if o.kind != "cput" and o.outcome == OK]
        for b in blind_ok:
            for o in history:
                if (
                    o is not b
                    and o.outcome == OK
                    and o.invoked > b.completed
                    and _covers(b.superseded, o.dot)
                ):
                    report.lost.append(
                        f"{key}: blind {b.kind} {b.client}-{b.seq} claims to supersede {o.kind} {o.value} "
                        f"{o.dot}, written after it was answered"
                    )
        for o in history:
            if o.outcome != OK or o.kind == "bdelete":
                continue
            report.acknowledged += 1
            seen_by = [x for x in history if x.kind == "cput" and x.outcome == OK and o.value in x.saw]
            covered_by = [b for b in blind_ok if b is not o and _covers(b.superseded, o.dot)]
            if o.value in values and (seen_by or covered_by):
                who = (seen_by + covered_by)[0]
                report.resurrected.append(
                    f"{key}: {o.value} came back after {who.kind} {who.client}-{who.seq} replaced it"
                )
            if o.value in values or covered_by:
                continue
            replaced = any(
                x is not o
                and x.outcome != FAIL
                and (
                    (x.kind == "cput" and o.value in x.saw)
                    or (x.kind != "cput" and x.outcome == UNKNOWN and x.completed >= o.invoked)
                )
                for x in history
            )
            if not replaced:
                report.lost.append(
                    f"{key}: acknowledged {o.kind} {o.value} {o.dot} is gone and no write that saw it "
                    f"replaced it (final {sorted(values)})"
                )
    return report
