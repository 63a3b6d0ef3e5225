"""The fault tests' client workloads as pure step machines, shared by the chaos test and the simulator.

A workload is a generator that yields the next :class:`Call` (a get, put or delete) and is sent back its
result: the read result (anything with ``.values``), ``None`` for a write, or the :class:`ZkvError` the
call failed with. It records one :class:`zkv.testing.history.Op` per operation into the list it was given. The
driver owns the I/O: :func:`zkv.testing.chaos.client_worker` performs calls with the real :class:`zkv.Client`
against real processes, :mod:`zkv.sim.clients` as messages through the simulated network. Both therefore
run the same operations, draw the same random numbers and record the same history, judged by the same
checker (:func:`check_final`).

Pure: the clock and the "keep going?" test are passed in; nothing here reads time or touches a socket.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zkv.errors import InvalidRequest, ZkvError
from zkv.testing.history import (
    FAIL,
    OK,
    UNKNOWN,
    Op,
    Report,
    check_blind,
    check_registers,
    check_sets,
    check_ttl,
)

SET_KEYS = 8
REGISTER_KEYS = 4  # per client
BLIND_KEYS = 3  # shared by every client: blind writes race with context writes on them
TTL_KEYS = 2  # per client: only puts with a TTL, read before each
TTL_S = (0.3, 2.0)  # the TTLs drawn (seconds)


@dataclass(frozen=True, slots=True)
class Call:
    """One request a workload wants made. ``context`` is the earlier get's result, handed back as-is."""

    op: str  # get | put | delete | txn
    key: str
    consistency: str
    value: str | None = None
    context: Any = None
    trace: bool = (
        False  # ask for the coordinator's receipt (the blind workload needs what a write superseded)
    )
    if_absent: bool = False  # serial writes: only if the key has no value
    if_value: str | None = None  # serial writes: only if the key's one value is this (compare-and-set)
    ttl: float | None = None  # a put that expires this many seconds after its coordinator stamps it
    token: str | None = None  # a txn: its token (op "txn"; ``key`` is the key that routes it)
    ops: tuple[dict[str, Any], ...] = ()  # a txn: its checks and writes (strings, as the wire's fields)


def outcome_of(exc: ZkvError) -> str:
    """How an error leaves an operation: only a request refused for what it is certainly wrote nothing.

    An ``unavailable`` can come after the coordinator's own write, a timeout after any number of replicas
    took it: both are unknown.
    """
    return FAIL if isinstance(exc, InvalidRequest) else UNKNOWN


def client_steps(
    name: str,
    rng: random.Random,
    clock: Callable[[], float],
    running: Callable[[], bool],
    ops: list[Op],
) -> Generator[Call, Any, None]:
    """One client: alternate set adds and register writes/deletes while ``running()``; ops go to ``ops``."""
    seq = 0
    while running():
        seq += 1
        consistency = "quorum" if rng.random() < 0.7 else "one"
        started = clock()
        pick = rng.random()
        if pick < 0.2:
            yield from _blind_step(name, seq, rng, clock, consistency, started, ops)
        elif pick < 0.3:
            key, written = f"ttl-{name}-{rng.randrange(TTL_KEYS)}", f"{name}-{seq}"
            ttl = round(rng.uniform(*TTL_S), 2)
            read = yield Call("get", key, consistency)
            if isinstance(read, ZkvError):
                continue
            result = yield Call("put", key, consistency, written, context=read, ttl=ttl)
            outcome = outcome_of(result) if isinstance(result, ZkvError) else OK
            saw = tuple(v.decode() for v in read.values)
            ops.append(
                Op(name, seq, "tput", key, written, outcome, started, clock(), saw, consistency, ttl=ttl)
            )
        elif pick < 0.6:
            key, element = f"set{rng.randrange(SET_KEYS)}", f"{name}-{seq}"
            read = yield Call("get", key, consistency)
            if isinstance(read, ZkvError):
                continue
            current = set().union(*(json.loads(v) for v in read.values)) if read.values else set()
            value: str | None = json.dumps(sorted(current | {element}))
            result = yield Call("put", key, consistency, value, context=read)
            outcome = outcome_of(result) if isinstance(result, ZkvError) else OK
            saw = tuple(v.decode() for v in read.values)
            ops.append(Op(name, seq, "add", key, element, outcome, started, clock(), saw, consistency))
        else:
            key = f"reg-{name}-{rng.randrange(REGISTER_KEYS)}"
            read = yield Call("get", key, consistency)
            if isinstance(read, ZkvError):
                continue
            saw = tuple(v.decode() for v in read.values)
            delete = rng.random() < 0.15
            value = None if delete else f"{name}-{seq}"
            result = yield Call("delete" if delete else "put", key, consistency, value, context=read)
            outcome = outcome_of(result) if isinstance(result, ZkvError) else OK
            kind = "delete" if delete else "write"
            ops.append(Op(name, seq, kind, key, value, outcome, started, clock(), saw, consistency))


def _blind_step(
    name: str,
    seq: int,
    rng: random.Random,
    clock: Callable[[], float],
    consistency: str,
    started: float,
    ops: list[Op],
) -> Generator[Call, Any, None]:
    """One operation on a shared key: a blind put or delete, or a get-then-put with the get's context."""
    key, value = f"blind{rng.randrange(BLIND_KEYS)}", f"{name}-{seq}"
    pick = rng.random()
    if pick < 0.5:
        kind = "bdelete" if pick < 0.15 else "bput"
        result = yield Call(
            "delete" if kind == "bdelete" else "put",
            key,
            consistency,
            None if kind == "bdelete" else value,
            trace=True,
        )
        saw: tuple[str, ...] = ()
    else:
        kind = "cput"
        read = yield Call("get", key, consistency)
        if isinstance(read, ZkvError):
            return
        saw = tuple(v.decode() for v in read.values)
        result = yield Call("put", key, consistency, value, context=read, trace=True)
    outcome = outcome_of(result) if isinstance(result, ZkvError) else OK
    receipt = _receipt(result) if outcome == OK else {}
    dot = receipt.get("dot")
    superseded = receipt.get("superseded") if kind != "cput" else None
    ops.append(
        Op(
            name,
            seq,
            kind,
            key,
            None if kind == "bdelete" else value,
            outcome,
            started,
            clock(),
            saw,
            consistency,
            (str(dot[0]), int(dot[1])) if dot else None,
            tuple((str(a), int(c)) for a, c in superseded) if superseded is not None else None,
        )
    )


def _receipt(result: Any) -> dict[str, Any]:
    """The receipt of a write's result: the real client's (``WriteResult.trace``), or the reply's dict in
    the simulator."""
    trace = getattr(result, "trace", None)  # a WriteResult of the real client carries its Trace
    receipt = getattr(trace if trace is not None else result, "receipt", result)
    return receipt if isinstance(receipt, dict) else {}


def drive(steps: Generator[Call, Any, None], perform: Callable[[Call], Any]) -> None:
    """Run a workload to its end with a blocking ``perform`` (errors it raises are sent back in)."""
    try:
        call = next(steps)
        while True:
            try:
                result = perform(call)
            except ZkvError as exc:
                result = exc
            call = steps.send(result)
    except StopIteration:
        return


def workload_keys(clients: Iterable[str]) -> list[str]:
    """Every key the workloads of ``clients`` may touch (what the final read covers)."""
    clients = list(clients)  # walked twice: a generator would leave the registers out of the final read
    keys = [f"set{i}" for i in range(SET_KEYS)] + [f"blind{i}" for i in range(BLIND_KEYS)]
    keys += [f"ttl-{c}-{i}" for c in clients for i in range(TTL_KEYS)]
    return keys + [f"reg-{c}-{i}" for c in clients for i in range(REGISTER_KEYS)]


def check_final(ops: Iterable[Op], final: Mapping[str, list[bytes]], final_at: float | None = None) -> Report:
    """Judge a history against the final values of every key (sets, registers, blind and TTL keys).

    ``final_at``: when the final read began, by the ops' clock (what had expired by then must be gone).
    """
    ops = list(ops)
    sets: dict[str, set[str]] = {}
    siblings: dict[str, set[str]] = {}
    registers: dict[str, set[str]] = {}
    blind: dict[str, set[str]] = {}
    expiring: dict[str, set[str]] = {}
    for key, values in final.items():
        if key.startswith("ttl-"):
            expiring[key] = {v.decode() for v in values}
        elif key.startswith("blind"):
            blind[key] = {v.decode() for v in values}
        elif key.startswith("set"):
            sets[key] = set().union(*(json.loads(v) for v in values)) if values else set()
            siblings[key] = {v.decode() for v in values}
        else:
            registers[key] = {v.decode() for v in values}
    report = check_sets(ops, sets, siblings)
    report.merge(check_registers(ops, registers))
    report.merge(check_blind(ops, blind))
    report.merge(check_ttl(ops, expiring, final_at))
    return report


def stale_reads(ops: Iterable[Op], consistency: str = "quorum") -> tuple[int, list[str]]:
    """Reads at ``consistency`` that missed an element acknowledged at ``consistency`` before the read began.

    Every set add reads first (its ``saw``, read at the op's consistency, from ``invoked`` on); a read must
    see every element whose add at the same consistency was acknowledged (``completed``) before that. With
    R + W > N counted only over preference-list replicas (strict quorums) there are none; a sloppy quorum
    may count a fallback's hint toward W, and a later read of the primaries can miss it. Returns (reads
    checked, descriptions of the stale ones).
    """
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind == "add" and op.consistency == consistency and op.value is not None:
            by_key.setdefault(op.key, []).append(op)
    checked, stale = 0, []
    for key, adds in by_key.items():
        acked = sorted((op.completed, op.value) for op in adds if op.outcome == OK)
        known: set[str] = set()
        i = 0
        for read in sorted(adds, key=lambda o: o.invoked):
            while i < len(acked) and acked[i][0] < read.invoked:
                known.add(acked[i][1])  # type: ignore[arg-type]
                i += 1
            seen = set().union(*(json.loads(v) for v in read.saw)) if read.saw else set()
            checked += 1
            missing = known - seen
            if missing:
                example = sorted(missing)[:3]
                stale.append(f"{key}: a read by {read.client} at {read.invoked:.3f} missed {example}")
    return checked, stale
