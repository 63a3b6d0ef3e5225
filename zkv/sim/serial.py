"""Simulated serial register workloads, judged by the linearizability checker.

:func:`run_serial_seed` builds a cluster as :func:`zkv.sim.run.run_seed` does, and clients that share
a few keys and run serial reads, unconditional serial writes, compare-and-set (``if_value`` the value
they last read, or ``if_absent``) and plain ``quorum`` writes to the registers (mixing: recorded as unknown
outcomes, :func:`_plain_write`) under the nemesis's partitions, crashes (torn ones too), pauses, lossy,
duplicating, reordering and slow links, and, in some seeds, a join or a leave. Every value written is
unique, so a read names the write it saw. After healing, one more serial read per key ends each history,
and :func:`zkv.testing.linearizability.check_keys` judges every key's.

Not among the faults: a **wiped disk**. Paxos, like every consensus protocol, survives crashes, not
amnesia: an acceptor that forgets its promises can let two values be chosen (docs/transactions.md,
"What is not guaranteed").
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import random
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from zkv.errors import ConditionFailed, ZkvError
from zkv.sim.clients import ReadResult, SimClient
from zkv.sim.nemesis import FAULT_KINDS
from zkv.sim.run import SimConfig, quiet_core
from zkv.sim.variants import variant as broken_variant
from zkv.sim.world import build_world
from zkv.testing.linearizability import CAS, FAIL, OK, READ, UNKNOWN, WRITE, RegisterOp, Verdict, check_keys
from zkv.testing.workload import Call

#: registers with unique values (a read names the write it saw), and a counter whose increments collide
#: (concurrent CAS 5 -> 6 of several clients write equal values: each must still be told apart)
KEYS = ("sreg0", "sreg1", "scount")
#: three nodes, each a replica of every key: partitions split majorities often, histories stay short.
#: Joins and leaves in some seeds, early enough (and heartbeats fast enough: a joining node waits five
#: before it streams) that the new ring serves the workload for its last second or so: a fourth node makes
#: keys move to it (new preference lists), a leave shrinks them to two.
SERIAL_CONFIG = SimConfig(nodes=3, seconds=2.5, heartbeat_interval=0.25, join_chance=0.4, leave_chance=0.3)
RING_CHANGE_WINDOW = (0.1, 0.6)  # seconds into the workload a join or a leave starts
SERIAL_FAULTS = {kind: weight for kind, weight in FAULT_KINDS.items() if kind != "wipe"}
SIBLINGS = b"<siblings>"  # what a read of more than one value records: no register ever holds it


@dataclass(slots=True)
class SerialResult:
    seed: int
    verdicts: list[Verdict] = field(default_factory=list)
    ops: int = 0
    applied: int = 0
    unknown: int = 0
    bugs: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    events: int = 0

    @property
    def ok(self) -> bool:
        return not self.bugs and all(v.ok for v in self.verdicts)

    def problems(self) -> list[str]:
        return [f"bug: {b}" for b in self.bugs] + [str(v) for v in self.verdicts if not v.ok]


def _value(values: list[bytes]) -> bytes | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else SIBLINGS


def serial_steps(
    name: str,
    rng: random.Random,
    clock: Callable[[], float],
    running: Callable[[], bool],
    ops: list[RegisterOp],
) -> Generator[Call, Any, None]:
    """One client's serial register operations on the shared keys, recorded into ``ops``."""
    seq = 0
    last: dict[str, bytes | None] = {}  # what this client last saw of each key
    while running():
        seq += 1
        key = rng.choice(KEYS)
        started = clock()
        pick = rng.random()
        if pick < 0.4 or (key == "scount" and key not in last):
            result = yield Call("get", key, "serial")
            if isinstance(result, ReadResult):
                last[key] = _value(result.values)
                ops.append(RegisterOp(name, READ, started, clock(), OK, last[key], key=key))
            continue
        seen = last.get(key)
        if key == "scount":  # an increment: every client computes the same next value
            value = str(int(seen) + 1) if seen is not None and seen.isdigit() else "1"
        else:
            value = f"{name}-{seq}"
        if key != "scount" and pick < 0.6:
            call, kind, expected = Call("put", key, "serial", value), WRITE, None
        elif key != "scount" and key in last and pick < 0.7:
            yield from _plain_write(name, key, value, started, clock, ops)
            continue
        elif seen is None:
            call, kind, expected = Call("put", key, "serial", value, if_absent=True), CAS, None
        else:
            call = Call("put", key, "serial", value, if_value=seen.decode(errors="replace"))
            kind, expected = CAS, seen
        result = yield call
        done = clock()
        if isinstance(result, ConditionFailed):
            observed = _value([bytes(v) for v in result.values])
            last[key] = observed
            ops.append(RegisterOp(name, CAS, started, done, FAIL, value.encode(), expected, key, observed))
        elif isinstance(result, ZkvError):
            # unavailable, timeout, outcome_unknown...: it may have been applied (or be applied later)
            ops.append(RegisterOp(name, kind, started, done, UNKNOWN, value.encode(), expected, key))
        else:
            last[key] = value.encode()
            ops.append(RegisterOp(name, kind, started, done, OK, value.encode(), expected, key))


def _plain_write(
    name: str, key: str, value: str, started: float, clock: Callable[[], float], ops: list[RegisterOp]
) -> Generator[Call, Any, None]:
    """A plain ``quorum`` write mixed into a serially used key (docs/transactions.md, section 2).

    Issued only on a key this client saw a serial answer for, so the key has a committed serial state.
    Recorded as an unknown outcome whatever the answer: a coordinator with Paxos state for the key orders
    it (it takes effect between its call and its answer, which unknown allows), one without writes it
    plainly, and serial requests never see it (it never takes effect). What the checker still demands is
    everything else: a read never shows a plain version and then the value before it again."""
    yield Call("put", key, "quorum", value)
    ops.append(RegisterOp(name, WRITE, started, clock(), UNKNOWN, value.encode(), None, key))


def run_serial_seed(seed: int, config: SimConfig | None = None, variant: str | None = None) -> SerialResult:
    """One seeded serial run; ``variant`` names a deliberately broken core (:mod:`zkv.sim.variants`)."""
    with broken_variant(variant), quiet_core():
        return _run(seed, config or SERIAL_CONFIG)


def _run(seed: int, cfg: SimConfig) -> SerialResult:
    world = build_world(seed, cfg, SERIAL_FAULTS)
    scheduler, cluster, nemesis, root = world.scheduler, world.cluster, world.nemesis, world.root
    clients, ring, end = world.clients, world.ring, world.end
    ops: list[RegisterOp] = []
    for i in range(cfg.clients):
        name = f"c{i}"
        rng = random.Random(world.client_rng.getrandbits(64))
        world.add_client(name, serial_steps(name, rng, world.clock, world.running, ops))
    if cfg.faults:
        world.start_faults(cfg.join_chance, cfg.leave_chance, RING_CHANGE_WINDOW)
    scheduler.run_until(end)
    nemesis.active = False
    nemesis.heal()
    scheduler.run_until(end + cfg.client_timeout + cfg.failure_timeout + 0.5)  # in flight finish; views heal
    # the last word on every key: one more serial read each, after the faults
    final: list[Any] = []

    def reads() -> Generator[Call, Any, None]:
        for key in KEYS:
            for _ in range(5):  # a read may meet a node still catching up: try again
                started = scheduler.now
                got = yield Call("get", key, "serial")
                if isinstance(got, ReadResult):
                    final.append(
                        RegisterOp("final", READ, started, scheduler.now, OK, _value(got.values), key=key)
                    )
                    break

    reader = SimClient(
        "reader", reads(), scheduler, cluster, ring, random.Random(root.getrandbits(64)), cfg.client_timeout
    )
    clients["reader"] = reader
    reader.start()
    deadline = scheduler.now + 60.0
    while not reader.done and scheduler.now < deadline:
        scheduler.run_until(scheduler.now + 1.0)
    history = ops + final
    result = SerialResult(seed, check_keys(history))
    result.ops = len(history)
    result.applied = sum(1 for o in ops if o.outcome == OK and o.kind != READ)
    result.unknown = sum(1 for o in ops if o.outcome == UNKNOWN)
    result.bugs = [f"{b.node} at {b.at:.3f}s in {b.handler}: {b.error}" for b in cluster.bugs]
    if len(final) < len(KEYS):
        result.bugs.append(f"final serial reads: {len(final)} of {len(KEYS)} answered after healing")
    result.faults = dict(nemesis.counts)
    result.events = scheduler.events
    return result


def run_many_serial(
    seeds: list[int], variant: str | None = None, workers: int | None = None
) -> Iterator[SerialResult]:
    """Many serial seeds in ``workers`` processes (default: one per CPU), results in seed order."""
    workers = min(workers or os.cpu_count() or 1, len(seeds))
    if workers <= 1:
        for seed in seeds:
            yield run_serial_seed(seed, variant=variant)
        return
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(partial(run_serial_seed, variant=variant), seeds, chunksize=8)
