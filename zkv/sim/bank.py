"""Simulated bank transfers: multi-key transactions under faults, judged by :mod:`zkv.testing.bank`.

Three clients share four accounts on five nodes (three replicas a key, so a transaction's keys have
different replica groups). Each one opens the accounts (one transaction, token ``open``, the same for
every client: ``if_absent`` on all four, so it applies once and every other client is told it applied),
then reads accounts (plain ``quorum`` and serial reads) and runs transfers between two accounts and from
one to two others (``if_value`` the values it read: a transfer needs what it read to still be there),
and audits (checks of all four accounts, writing nothing: applied, they saw one consistent cut). A
transfer that meets a conflict, a timeout or an unknown outcome is sent again **with the same token**
(safe: a token applies at most once, and the retry tells what happened). All of it under the nemesis's
partitions, one-way links, crashes (torn too), pauses, lossy, duplicating, reordering and slow links,
and joins and leaves; not wiped disks (amnesia: docs/transactions.md section 4). After healing, a serial
read of each account ends the history, and :func:`zkv.testing.bank.check_bank` judges it.
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

from zkv.errors import ConditionFailed, NoNodeAvailable, TxnConflict, Unavailable
from zkv.sim.clients import ReadResult
from zkv.sim.run import SimConfig, quiet_core
from zkv.sim.serial import RING_CHANGE_WINDOW, SERIAL_FAULTS
from zkv.sim.variants import variant as broken_variant
from zkv.sim.world import build_world
from zkv.testing.bank import (
    APPLIED,
    NOT_WRITTEN,
    REFUSED,
    SIBLINGS,
    UNKNOWN,
    Audit,
    BankReport,
    Read,
    Txn,
    balance,
    check_bank,
    outcome,
)
from zkv.testing.workload import Call

ACCOUNTS = ("acct0", "acct1", "acct2", "acct3")
START = 100
OPEN = "open"
BANK_CONFIG = SimConfig(nodes=4, seconds=2.0, heartbeat_interval=0.25, join_chance=0.3, leave_chance=0.2)
SENDS = 4  # requests per token at most (conflicts, timeouts and unknown outcomes sent again)


@dataclass(slots=True)
class BankLog:
    """What the clients did, for the checker."""

    txns: dict[str, Txn] = field(default_factory=dict)
    reads: list[Read] = field(default_factory=list)
    audits: list[Audit] = field(default_factory=list)

    def answered(
        self, token: str, writes: dict[str, str], prev: dict, got: tuple[str, ...], t0: float, t1: float
    ) -> None:
        old = self.txns.get(token)
        answers = (old.outcomes if old else ()) + got
        invoked = old.invoked if old else t0
        self.txns[token] = Txn(token, writes, prev, answers, invoked, max(t1, old.completed if old else t1))


@dataclass(slots=True)
class BankResult:
    seed: int
    report: BankReport
    ops: int = 0
    unknown: int = 0
    bugs: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.bugs and self.report.ok

    def problems(self) -> list[str]:
        return [f"bug: {b}" for b in self.bugs] + self.report.problems


def _value(values: list[bytes]) -> str | None:
    if not values:
        return None
    return values[0].decode(errors="replace") if len(values) == 1 else SIBLINGS


def bank_steps(
    name: str, rng: random.Random, clock: Callable[[], float], running: Callable[[], bool], log: BankLog
) -> Generator[Call, Any, None]:
    """One client's reads, transfers and audits, recorded into ``log``."""
    last: dict[str, str | None] = {}  # what this client believes each account holds
    seq = 0

    def read(key: str) -> Generator[Call, Any, None]:
        serial = rng.random() < 0.5
        started = clock()
        got = yield Call("get", key, "serial" if serial else "quorum")
        if isinstance(got, ReadResult):
            value = _value(got.values)
            log.reads.append(Read(name, key, value, started, clock(), serial))
            last[key] = value if value != SIBLINGS else last.get(key)

    def send(token: str, ops: list[dict[str, Any]]) -> Generator[Call, Any, tuple[str, ...]]:
        """The transaction, sent again with its token until a definite answer (at most ``SENDS``
        requests): what each request answered."""
        answers: list[str] = []
        while len(answers) < SENDS and answers[-1:] not in ([APPLIED], [REFUSED]):
            got = yield Call("txn", ops[0]["key"], "serial", token=token, ops=tuple(ops))
            if isinstance(got, dict):
                answers.append(APPLIED)
            elif isinstance(got, ConditionFailed):
                answers.append(REFUSED)
                key = got.details.get("key")
                if isinstance(key, bytes):
                    last[key.decode()] = _value([bytes(v) for v in got.values])
            elif isinstance(got, (TxnConflict, Unavailable, NoNodeAvailable)):
                answers.append(NOT_WRITTEN)  # by this request
            else:
                answers.append(UNKNOWN)  # a timeout, outcome_unknown...: it may have been applied
        return tuple(answers)

    while running():
        seq += 1
        if any(k in last and last[k] is None for k in ACCOUNTS):  # an account read absent: open them
            ops = [{"op": "put", "key": k, "value": f"{START}:{OPEN}", "if_absent": True} for k in ACCOUNTS]
            started = clock()
            got = yield from send(OPEN, ops)
            writes = {k: f"{START}:{OPEN}" for k in ACCOUNTS}
            log.answered(OPEN, writes, dict.fromkeys(ACCOUNTS), got, started, clock())
            last.clear()
            continue
        pick = rng.random()
        kind = "read" if pick < 0.3 else "transfer" if pick < 0.65 else "split" if pick < 0.85 else "audit"
        width = {"read": 1, "transfer": 2, "split": 3, "audit": len(ACCOUNTS)}[kind]
        keys = rng.sample(ACCOUNTS, width)
        if kind == "read" or any(k not in last for k in keys):
            yield from read(rng.choice([k for k in keys if k not in last] or keys))
            continue
        values = {k: last[k] for k in keys}
        if any(v is None for v in values.values()):
            continue  # an account not open yet: the next turn opens them
        token = f"{name}-{seq}"
        started = clock()
        if kind == "audit":
            ops = [{"op": "check", "key": k, "if_value": v} for k, v in values.items()]
            got = yield from send(token, ops)
            if outcome(got) == APPLIED:
                log.audits.append(Audit({k: str(v) for k, v in values.items()}, started, clock()))
            continue
        amount = rng.randint(1, 10)
        src, dsts = keys[0], keys[1:]
        writes = {src: f"{balance(str(values[src])) - amount * len(dsts)}:{token}"}
        writes.update({d: f"{balance(str(values[d])) + amount}:{token}" for d in dsts})
        ops = [{"op": "put", "key": k, "value": writes[k], "if_value": values[k]} for k in keys]
        got = yield from send(token, ops)
        log.answered(token, writes, dict(values), got, started, clock())
        if outcome(got) == APPLIED:
            last.update(writes)
        elif outcome(got) != REFUSED:
            for k in keys:
                last.pop(k, None)  # read again before using it


def run_bank_seed(seed: int, config: SimConfig | None = None, variant: str | None = None) -> BankResult:
    """One seeded bank run; ``variant`` names a deliberately broken core (:mod:`zkv.sim.variants`)."""
    with broken_variant(variant), quiet_core():
        return _run(seed, config or BANK_CONFIG)


def _run(seed: int, cfg: SimConfig) -> BankResult:
    world = build_world(seed, cfg, SERIAL_FAULTS)
    scheduler, nemesis = world.scheduler, world.nemesis
    log = BankLog()
    for i in range(cfg.clients):
        name = f"c{i}"
        rng = random.Random(world.client_rng.getrandbits(64))
        world.add_client(name, bank_steps(name, rng, world.clock, world.running, log))
    if cfg.faults:
        world.start_faults(cfg.join_chance, cfg.leave_chance, RING_CHANGE_WINDOW)
    scheduler.run_until(world.end)
    nemesis.active = False
    nemesis.heal()
    scheduler.run_until(world.end + cfg.client_timeout + cfg.failure_timeout + 0.5)
    final: dict[str, str | None] = {}

    def reads() -> Generator[Call, Any, None]:
        for key in ACCOUNTS:
            for _ in range(5):  # a read may meet a node still catching up: try again
                got = yield Call("get", key, "serial")
                if isinstance(got, ReadResult):
                    final[key] = _value(got.values)
                    break

    reader = world.add_client("reader", reads())
    deadline = scheduler.now + 60.0
    while not reader.done and scheduler.now < deadline:
        scheduler.run_until(scheduler.now + 1.0)
    txns = list(log.txns.values())
    result = BankResult(seed, check_bank(txns, log.reads, log.audits, final, START * len(ACCOUNTS)))
    result.ops = len(txns) + len(log.reads)
    result.unknown = sum(1 for t in txns if UNKNOWN in t.outcomes)
    result.bugs = [f"{b.node} at {b.at:.3f}s in {b.handler}: {b.error}" for b in world.cluster.bugs]
    if len(final) < len(ACCOUNTS):
        result.bugs.append(f"final serial reads: {len(final)} of {len(ACCOUNTS)} answered after healing")
    result.faults = dict(nemesis.counts)
    return result


def run_many_bank(
    seeds: list[int], variant: str | None = None, workers: int | None = None
) -> Iterator[BankResult]:
    """Many bank seeds in ``workers`` processes (default: one per CPU), results in seed order."""
    workers = min(workers or os.cpu_count() or 1, len(seeds))
    if workers <= 1:
        for seed in seeds:
            yield run_bank_seed(seed, variant=variant)
        return
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(partial(run_bank_seed, variant=variant), seeds, chunksize=8)
