"""One seeded simulation: a cluster, clients running the workloads, a fault schedule, a verdict.

:func:`run_seed` builds everything from one ``random.Random(seed)`` (each component gets its own
generator, drawn from it in a fixed order), runs the workload for ``seconds`` of simulated time while a
nemesis injects faults, heals everything, lets anti-entropy and handoff run until every replica of every
key holds the same versions (or a bound passes), reads every key at ``all`` and judges the history with
the fault test's checker (:func:`zkv.testing.workload.check_final`). Same seed, same run: byte for byte,
as the trace digest shows.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import multiprocessing
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

from zkv.core.membership import NORMAL
from zkv.core.ring import Ring
from zkv.core.versions import is_dead
from zkv.sim.clients import ReadResult, SimClient, scripted
from zkv.sim.cluster import SimCluster
from zkv.sim.network import Scheduler
from zkv.sim.variants import variant as broken_variant
from zkv.sim.world import build_world
from zkv.testing.history import OK, UNKNOWN, Op, Report
from zkv.testing.workload import Call, check_final, client_steps, workload_keys

CHECK_EVERY_S = 0.5
EVENT_BUDGET = 250_000  # a seed normally takes 5k-50k events; far more is a message storm (a bug too)
CI_SEEDS = 500  # the sweep CI runs (tests/sim); the teeth tests must bite within it


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The shape of one simulation (the CI defaults keep a seed around a tenth of a second)."""

    nodes: int = 5
    clients: int = 3
    seconds: float = 6.0  # of simulated workload
    replication_factor: int = 3
    vnodes: int = 16
    request_timeout: float = 1.0
    client_timeout: float = 2.5
    heartbeat_interval: float = 0.5
    failure_timeout: float = 3.0
    anti_entropy_interval: float = 1.0
    handoff_interval: float = 0.3
    faults: bool = True
    settle_bound: float = 30.0  # simulated seconds allowed for replicas to converge after healing
    join_chance: float = 0.3  # share of seeds where a sixth node joins during the workload
    leave_chance: float = 0.2  # share of seeds where a node leaves during the workload
    tombstone_grace: float = 2.0  # short, so tombstones are purged under the faults (zkv.core.purge)


@dataclass(slots=True)
class SimResult:
    """What one seed did and whether it passed."""

    seed: int
    report: Report
    faults: Counter = field(default_factory=Counter)
    network: Counter = field(default_factory=Counter)
    converge_s: float = 0.0
    diverged: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)
    final_errors: list[str] = field(default_factory=list)
    trace: str = ""
    history: str = ""
    events: int = 0
    sim_time: float = 0.0
    busy_wakeups: int = 0
    lost_unflushed: int = 0
    purged: int = 0  # tombstones the live nodes purged (zkv.core.purge)

    @property
    def storm(self) -> bool:
        return self.events > EVENT_BUDGET

    @property
    def ok(self) -> bool:
        return self.report.ok and not (self.diverged or self.bugs or self.final_errors or self.storm)

    def problems(self) -> list[str]:
        r = self.report
        out = [f"lost: {x}" for x in r.lost] + [f"phantom: {x}" for x in r.phantom]
        out += [f"resurrected: {x}" for x in r.resurrected] + [f"bug: {x}" for x in self.bugs]
        out += [f"diverged: {x}" for x in self.diverged] + [f"final read: {x}" for x in self.final_errors]
        if self.storm:
            out.append(f"storm: {self.events} events, more than the budget of {EVENT_BUDGET}")
        return out

    def describe(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        return (
            f"seed={self.seed} ok={self.ok} ops={self.report.ops} acknowledged={self.report.acknowledged} "
            f"faults[{faults}] converge={self.converge_s:.2f}s events={self.events} trace={self.trace[:16]}"
        )


def run_seed(seed: int, config: SimConfig | None = None, variant: str | None = None) -> SimResult:
    """Run one simulation from ``seed``; ``variant`` names a deliberately broken core (teeth tests)."""
    with broken_variant(variant), quiet_core():
        return _run(seed, config or SimConfig())


@contextlib.contextmanager
def quiet_core() -> Iterator[None]:
    """Silence the cores' logging for a run: thousands of seeds would print every leave and restart.

    Nothing is lost: what matters (exceptions in handlers) is recorded as a bug by the cluster.
    """
    logger = logging.getLogger("zkv")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(seed: int, cfg: SimConfig) -> SimResult:
    world = build_world(seed, cfg, tombstone_grace_s=cfg.tombstone_grace)
    scheduler, cluster, nemesis, network, root = (
        world.scheduler,
        world.cluster,
        world.nemesis,
        world.network,
        world.root,
    )
    clients, ring, end = world.clients, world.ring, world.end
    ops: list[Op] = []
    client_names = [f"c{i}" for i in range(cfg.clients)]
    for name in client_names:
        workload_rng = random.Random(world.client_rng.getrandbits(64))
        world.add_client(name, client_steps(name, workload_rng, world.clock, world.running, ops))
    if cfg.faults:
        world.start_faults(cfg.join_chance, cfg.leave_chance, (0.5, cfg.seconds - 1.0))
    scheduler.run_until(end)
    nemesis.active = False
    nemesis.heal()
    scheduler.run_until(end + cfg.client_timeout + 0.1)  # operations in flight finish
    keys = workload_keys(client_names)
    result = SimResult(seed, Report())
    converged_at = None
    while scheduler.now < end + cfg.settle_bound:
        if not _diverged(cluster, keys, scheduler.now) and not _unsettled(cluster):
            converged_at = scheduler.now
            break
        scheduler.run_until(scheduler.now + CHECK_EVERY_S)
    result.converge_s = (converged_at if converged_at is not None else scheduler.now) - end
    # the tombstones of the last deletes outlive their grace, so the purge runs (and is judged) too
    linger = min(cfg.tombstone_grace, cfg.settle_bound) + 4 * cfg.anti_entropy_interval
    scheduler.run_until(max(scheduler.now, end + linger))
    result.diverged = _diverged(cluster, keys, scheduler.now) + _unsettled(cluster)
    final_at = scheduler.now
    final = _read_all(scheduler, cluster, clients, ring, keys, random.Random(root.getrandbits(64)), cfg)
    for key, value in final.items():
        if not isinstance(value, ReadResult):
            result.final_errors.append(f"{key}: {value!r}")
    values = {k: v.values for k, v in final.items() if isinstance(v, ReadResult)}
    result.report = check_final(_after_disk_loss(ops, nemesis.wiped_at), values, final_at)
    result.faults = nemesis.counts + Counter(network.counts)
    result.network = Counter(network.counts)
    result.bugs = [f"{b.node} at {b.at:.3f}s in {b.handler}: {b.error}" for b in cluster.bugs]
    result.busy_wakeups = cluster.counts["busy_wakeups"]
    result.purged = sum(n.core.replica.purge.purged for n in cluster.live() if n.core is not None)
    result.lost_unflushed = sum(n.disk.lost_writes for n in cluster.nodes.values())
    result.trace = scheduler.trace_digest()
    result.history = hashlib.sha256(repr(sorted(ops, key=lambda o: (o.client, o.seq))).encode()).hexdigest()
    result.events = scheduler.events
    result.sim_time = scheduler.now
    return result


def _after_disk_loss(ops: list[Op], wiped_at: float | None) -> list[Op]:
    """The history as a lost disk leaves it: an operation acknowledged at ``one`` before the loss was
    promised on one replica only, which may be the one lost, so its outcome becomes unknown.

    ``quorum`` operations are still judged as acknowledged: with W = 2 of N = 3 one lost disk leaves a copy.
    """
    if wiped_at is None:
        return ops
    return [
        replace(op, outcome=UNKNOWN)
        if op.outcome == OK and op.consistency == "one" and op.invoked < wiped_at
        else op
        for op in ops
    ]


def run_many(
    seeds: Iterable[int],
    config: SimConfig | None = None,
    variant: str | None = None,
    workers: int | None = None,
) -> Iterator[SimResult]:
    """Run many seeds, in ``workers`` processes (default: one per CPU); results come in seed order.

    Each seed is a pure function of its number, so how they are spread over processes changes nothing.
    """
    seeds = list(seeds)
    workers = min(workers or os.cpu_count() or 1, len(seeds))
    if workers <= 1:
        for seed in seeds:
            yield run_seed(seed, config, variant)
        return
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(partial(run_seed, config=config, variant=variant), seeds, chunksize=8)


@dataclass(slots=True)
class Summary:
    """Totals over many seeds (what the soak prints)."""

    seeds: int = 0
    ops: int = 0
    acknowledged: int = 0
    events: int = 0
    faults: Counter = field(default_factory=Counter)
    failed: list[int] = field(default_factory=list)
    converge_max_s: float = 0.0
    purged: int = 0

    def add(self, result: SimResult) -> None:
        self.seeds += 1
        self.purged += result.purged
        self.ops += result.report.ops
        self.acknowledged += result.report.acknowledged
        self.events += result.events
        self.faults.update(result.faults)
        self.converge_max_s = max(self.converge_max_s, result.converge_s)
        if not result.ok:
            self.failed.append(result.seed)

    def line(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        return (
            f"seeds={self.seeds} ops={self.ops} acknowledged={self.acknowledged} events={self.events} "
            f"converge_max={self.converge_max_s:.1f}s purged={self.purged} faults[{faults}] "
            f"failed={self.failed}"
        )


def _promised_once(op: Op, wiped_at: float) -> bool:
    return op.outcome == OK and op.consistency == "one" and op.invoked < wiped_at


def _unsettled(cluster: SimCluster) -> list[str]:
    """Live nodes still joining or leaving (each must finish once the faults are healed)."""
    out = []
    for node in cluster.live():
        status = node.core.membership.status_of(node.name) if node.core else None
        if status != NORMAL:
            out.append(f"{node.name} is still {status}")
    return out


def _diverged(cluster: SimCluster, keys: list[str], now: float) -> list[str]:
    """Keys whose replicas (by a live node's ring) do not all hold the same versions.

    A dead state (tombstones, expired values) counts as nothing held: the purge drops it from each
    replica in its own time. That nothing older comes back is the checker's to judge.
    """
    live = cluster.live()
    if not live or live[0].core is None:
        return list(keys)
    ring = live[0].core.ring
    out = []
    for key in keys:
        k = key.encode()
        dots: list[frozenset | None] = []
        for name in ring.preference_list(k):
            node = cluster.nodes[name]
            if node.core is None:
                dots.append(None)
                continue
            state = node.core.store.get(k)
            if state is None or is_dead(state, node.core.state.wall(now)):
                dots.append(frozenset())
            else:
                dots.append(state.dots())
        if any(d != dots[0] for d in dots):
            out.append(key)
    return out


def _read_all(
    scheduler: Scheduler,
    cluster: SimCluster,
    clients: dict[str, SimClient],
    ring: Ring,
    keys: list[str],
    rng: random.Random,
    cfg: SimConfig,
) -> dict[str, object]:
    """Every key read at ``all`` through the cluster, as the chaos test's final read."""
    results: list[object] = []
    steps = scripted([Call("get", key, "all") for key in keys], results)
    reader = SimClient(
        "reader", steps, scheduler, cluster, ring, rng, cfg.client_timeout, random_coordinator=0.5
    )
    clients["reader"] = reader
    reader.start()
    deadline = scheduler.now + len(keys) * cfg.client_timeout * cfg.nodes + 1.0
    while not reader.done and scheduler.now < deadline:
        scheduler.run_until(scheduler.now + 1.0)
    return dict(zip(keys, results, strict=False))
