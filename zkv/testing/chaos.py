"""Jepsen-style fault schedules against a real cluster: workloads, seeded faults, quiescence, a verdict.

One schedule: start a 5-node cluster (log engine, fsync always), run client processes with the set and
register workloads (:mod:`zkv.testing.workload`, shared with the simulator), play a seeded random schedule of
faults — partitions of several shapes, kills with restart, pauses, lossy links — heal everything, wait
until every replica of every key holds the same versions (convergence, timed), read every key, and check
the history (:mod:`zkv.testing.history`). The same seed gives the same fault schedule (the interleaving
with real processes still varies; :mod:`zkv.sim` replays whole runs exactly).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zkv.client import Client, ReplicaState
from zkv.errors import ZkvError
from zkv.testing.history import Op, Report
from zkv.testing.localcluster import LocalCluster
from zkv.testing.workload import Call, check_final, client_steps, drive, workload_keys


@dataclass(slots=True)
class ScheduleResult:
    seed: int
    report: Report
    faults: Counter = field(default_factory=Counter)
    diverged: int = 0
    converge_s: float = 0.0


def performer(client: Client) -> Callable[[Call], Any]:
    """Carry out the workload's calls with a real client, the receipt included when a call asks for it
    (the blind-write checker needs what each blind write superseded): every real harness uses this one."""

    def perform(call: Call) -> Any:
        if call.op == "get":
            return client.get(call.key, consistency=call.consistency)
        if call.op == "delete":
            return client.delete(
                call.key, consistency=call.consistency, context=call.context, trace=call.trace
            )
        assert call.value is not None
        return client.put(
            call.key,
            call.value,
            consistency=call.consistency,
            context=call.context,
            trace=call.trace,
            ttl=call.ttl,
        )

    return perform


def client_worker(task: tuple[str, list[str], float, int]) -> list[Op]:
    """One client process: the shared workload (:mod:`zkv.testing.workload`) with a real client, until time
    is up."""
    name, addresses, seconds, seed = task
    ops: list[Op] = []
    with Client(addresses, timeout=2.5) as client:
        end = time.monotonic() + seconds
        steps = client_steps(name, random.Random(seed), time.monotonic, lambda: time.monotonic() < end, ops)
        drive(steps, performer(client))
    return ops


class FaultPlayer:
    """Applies and undoes seeded random faults on a LocalCluster."""

    def __init__(self, cluster: LocalCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.counts: Counter = Counter()
        self._undo: list[tuple[str, str]] = []

    def _cut(self, senders: list[str], receivers: list[str], probability: float = 1.0) -> None:
        with self.cluster.client(timeout=1.0) as c:
            for receiver in receivers:
                rules = {s: probability for s in senders if s != receiver}
                current = c.faults(receiver).get("drop_in", {})
                c.faults(receiver, drop_in={**current, **rules}, drop_out={})

    def inject(self) -> None:
        names = self.cluster.names
        kind = self.rng.choice(["split", "isolate", "kill", "pause", "lossy"])
        if kind == "split":
            shuffled = self.rng.sample(names, len(names))
            cut = self.rng.randrange(1, len(names))
            left, right = shuffled[:cut], shuffled[cut:]
            self._cut(left, right)
            self._cut(right, left)
            self._undo.append(("heal", ""))
        elif kind == "isolate":
            node = self.rng.choice(names)
            rest = [n for n in names if n != node]
            self._cut([node], rest)
            self._cut(rest, [node])
            self._undo.append(("heal", ""))
        elif kind == "kill":
            node = self.rng.choice(names)
            self.cluster.kill(node)
            self._undo.append(("start", node))
        elif kind == "pause":
            node = self.rng.choice(names)
            self.cluster.pause(node)
            self._undo.append(("resume", node))
        else:
            a, b = self.rng.sample(names, 2)
            self._cut([a], [b], 0.3)
            self._cut([b], [a], 0.3)
            self._undo.append(("heal", ""))
        self.counts[kind] += 1

    def undo_all(self) -> None:
        for action, node in reversed(self._undo):
            if action == "resume":
                self.cluster.resume(node)
        for action, node in self._undo:
            if action == "start" and self.cluster.procs[node].poll() is not None:
                self.cluster.start(node, wait=False)
        self._undo.clear()
        with self.cluster.client(timeout=1.0) as c:
            for name in self.cluster.names:
                for _ in range(20):
                    try:
                        c.faults(name, drop_in={}, drop_out={})
                        break
                    except ZkvError:
                        time.sleep(0.1)  # a node that is just restarting: ask again
        self.cluster.wait_ready()


def _same(states: list[ReplicaState | ZkvError]) -> bool:
    first = states[0]
    if isinstance(first, ZkvError):
        return False
    for other in states[1:]:
        if isinstance(other, ZkvError):
            return False
        if sorted((v.actor, v.counter) for v in other.versions) != sorted(
            (v.actor, v.counter) for v in first.versions
        ):
            return False
    return True


def run_schedule(
    workdir: Path, seed: int, seconds: float, clients: int = 4, nodes: int = 5
) -> ScheduleResult:
    """One fault schedule from ``seed``; returns the checked history."""
    rng = random.Random(seed)
    cluster = LocalCluster(
        workdir,
        nodes,
        engine="log",
        anti_entropy_interval_ms=1000,
        handoff_interval_ms=300,
        request_timeout_ms=1000,
    )
    result = ScheduleResult(seed, Report())
    try:
        cluster.start()
        addresses = list(cluster.addresses.values())
        tasks = [(f"c{i}", addresses, seconds, seed * 1000 + i) for i in range(clients)]
        with multiprocessing.get_context("spawn").Pool(clients) as pool:
            pending = pool.map_async(client_worker, tasks)
            player = FaultPlayer(cluster, rng)
            end = time.monotonic() + seconds
            while time.monotonic() < end - 1.0:
                player.inject()
                time.sleep(rng.uniform(0.8, 2.0))
                player.undo_all()
                time.sleep(rng.uniform(0.2, 0.8))
            histories = pending.get(timeout=seconds + 120)
        ops = [op for history in histories for op in history]
        result.faults = player.counts
        keys = workload_keys(f"c{i}" for i in range(clients))
        result.converge_s, result.diverged = _converge(cluster, keys)
        with cluster.client(timeout=3.0) as c:
            final = {key: c.get(key, consistency="all").values for key in keys}
        result.report.merge(check_final(ops, final))
    finally:
        cluster.close()
    return result


def _converge(cluster: LocalCluster, keys: list[str], bound_s: float = 60.0) -> tuple[float, int]:
    """Seconds until every replica of every key holds the same versions; and how many still differ."""
    started = time.monotonic()
    with cluster.client(timeout=2.0) as c:
        while True:
            diverged = sum(1 for key in keys if not _same(list(c.replicas(key).values())))
            if not diverged or time.monotonic() - started > bound_s:
                return time.monotonic() - started, diverged
            time.sleep(0.2)


def summary(results: list[ScheduleResult]) -> str:
    report = Report()
    for r in results:
        report.merge(r.report)
    times = sorted(r.converge_s for r in results) or [0.0]
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return (
        f"schedules={len(results)} ops={report.ops} acknowledged={report.acknowledged} "
        f"lost={len(report.lost)} phantom={len(report.phantom)} resurrected={len(report.resurrected)} "
        f"diverged={sum(r.diverged for r in results)} converge_p99={p99:.2f}s"
    )


def describe_failure(result: ScheduleResult) -> dict[str, Any]:
    r = result.report
    return {
        "seed": result.seed,
        "lost": r.lost[:10],
        "phantom": r.phantom[:10],
        "resurrected": r.resurrected[:10],
        "diverged": result.diverged,
        "faults": dict(result.faults),
    }
