"""Membership at scale: how long until every node of a large simulated cluster holds the same view.

:func:`run_membership` starts ``initial`` nodes, lets ``joins`` more join through seeds, crashes one
node, then restarts it, then cuts another off (silently: its connections stay up, so only the phi-accrual
detector can tell) and heals the partition, and times each phase until the cluster **converges to one
view**: every live node lists the same members with the same status and generation, and agrees on who is
up (the failed node down everywhere, then up everywhere, under its new generation after a restart).
Data is not involved: this is the gossip, phi-accrual detection and join protocol of
:mod:`zkv.core.membership` and :mod:`zkv.core.rebalance`, run by the real cores.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zkv.core.membership import NORMAL
from zkv.sim.cluster import SimCluster
from zkv.sim.network import Network, Scheduler
from zkv.sim.run import quiet_core
from zkv.sim.simnode import SimNode

CHECK_EVERY_S = 0.1


@dataclass(slots=True)
class MembershipResult:
    """Simulated seconds each phase took to converge (None: not within its bound)."""

    seed: int
    nodes: int
    start_s: float | None = None
    join_s: float | None = None
    failure_s: float | None = None
    restart_s: float | None = None
    silent_s: float | None = None  # a node cut off (no connection drops): phi-accrual must notice
    heal_s: float | None = None
    events: int = 0
    bugs: list[str] = field(default_factory=list)
    trace: str = ""

    @property
    def total_s(self) -> float | None:
        phases = (self.join_s, self.failure_s, self.restart_s, self.silent_s, self.heal_s)
        return None if any(p is None for p in phases) else sum(phases)  # type: ignore[arg-type]


def views(cluster: SimCluster, exclude: tuple[str, ...] = ()) -> list[tuple]:
    """Each live node's view: (name, status, generation, up) of every member it knows, sorted."""
    now = cluster.scheduler.now
    out = []
    for node in cluster.live():
        if node.name in exclude:
            continue
        membership = node.core.membership  # type: ignore[union-attr]
        is_up = membership.is_up
        entries = ((m.name, m.status, m.generation, is_up(m.name, now)) for m in membership.members())
        out.append(tuple(sorted(entries)))
    return out


def one_view(cluster: SimCluster, members: int, down: tuple[str, ...] = ()) -> bool:
    """Do all live nodes (but those ``down``) hold the same view: ``members`` members, all normal, up
    unless in ``down``?"""
    seen = views(cluster, exclude=down)
    if len(set(seen)) != 1 or len(seen[0]) != members:
        return False
    return all(status == NORMAL and up == (name not in down) for name, status, _, up in seen[0])


def _wait(
    scheduler: Scheduler, cluster: SimCluster, members: int, bound: float, down: tuple[str, ...] = ()
) -> float | None:
    """Simulated seconds until one view (checked every CHECK_EVERY_S), or None past ``bound``."""
    started = scheduler.now
    while scheduler.now - started <= bound:
        if one_view(cluster, members, down):
            return scheduler.now - started
        scheduler.run_until(scheduler.now + CHECK_EVERY_S)
    return None


def run_membership(
    seed: int,
    initial: int = 140,
    joins: int = 10,
    vnodes: int = 16,
    heartbeat_interval: float = 0.5,
    bound: float = 60.0,
) -> MembershipResult:
    """The scenario of the module doc; every phase is timed from the moment it starts."""
    with quiet_core():
        return _run(seed, initial, joins, vnodes, heartbeat_interval, bound)


def _run(
    seed: int, initial: int, joins: int, vnodes: int, heartbeat_interval: float, bound: float
) -> MembershipResult:
    root = random.Random(seed)
    scheduler = Scheduler()
    network = Network(scheduler, random.Random(root.getrandbits(64)))
    names = [f"n{i}" for i in range(1, initial + 1)]
    cluster = SimCluster(
        scheduler,
        network,
        random.Random(root.getrandbits(64)),
        names,
        vnodes=vnodes,
        heartbeat_interval_s=heartbeat_interval,
        anti_entropy_interval_s=3600.0,  # no data here: keep the exchanges out of the way
    )
    rng = random.Random(root.getrandbits(64))
    result = MembershipResult(seed, initial + joins)
    for name in names:
        scheduler.at(rng.uniform(0.0, 0.5), cluster.start, name)
    scheduler.run_until(0.5)
    result.start_s = _wait(scheduler, cluster, initial, bound)
    # joins: each new node announces itself to two random seeds, a little apart from the others
    began = scheduler.now
    for i in range(initial + 1, initial + joins + 1):
        scheduler.at(began + rng.uniform(0.0, 1.0), cluster.join, f"n{i}", rng.sample(names, 2))
    scheduler.run_until(began + 1.0)
    waited = _wait(scheduler, cluster, initial + joins, bound)
    result.join_s = None if waited is None else scheduler.now - began
    # a failure: one node crashes; everyone must see it down
    victim = rng.choice(names)
    cluster.crash(victim)
    result.failure_s = _wait(scheduler, cluster, initial + joins, bound, down=(victim,))
    # and its restart: a new generation, up everywhere again
    cluster.start(victim)
    result.restart_s = _wait(scheduler, cluster, initial + joins, bound)
    # a silent failure: a node cut off from everyone, its connections up; then the partition heals
    silent = rng.choice([n for n in names if n != victim])
    others = [n for n in cluster.nodes if n != silent]
    network.blocked.update((silent, o) for o in others)
    network.blocked.update((o, silent) for o in others)
    result.silent_s = _wait(scheduler, cluster, initial + joins, bound, down=(silent,))
    network.heal()
    result.heal_s = _wait(scheduler, cluster, initial + joins, bound)
    result.events = scheduler.events
    result.bugs = [f"{b.node} at {b.at:.3f}s in {b.handler}: {b.error}" for b in cluster.bugs]
    result.trace = scheduler.trace_digest()
    return result


@dataclass(frozen=True, slots=True)
class GossipCost:
    """What membership costs each node of a settled, idle simulated cluster, per simulated second."""

    nodes: int
    converge_s: float | None  # simulated seconds from the last start until one view
    messages_out: float  # per node per second (a published frame counts once per subscriber)
    bytes_out: float
    messages_in: float
    bytes_in: float
    pulls: float  # views pulled per node per second


def gossip_cost(
    nodes: int, seed: int = 1, window: float = 5.0, heartbeat_interval: float = 0.5, vnodes: int = 8
) -> GossipCost:
    """Start ``nodes`` nodes, wait for one view, then count every frame between nodes for ``window``
    simulated seconds (no client load: what is left is heartbeats, gossip and its pulls)."""
    with quiet_core():
        root = random.Random(seed)
        scheduler = Scheduler()
        network = Network(scheduler, random.Random(root.getrandbits(64)))
        names = [f"n{i}" for i in range(1, nodes + 1)]
        cluster = SimCluster(
            scheduler,
            network,
            random.Random(root.getrandbits(64)),
            names,
            vnodes=vnodes,
            heartbeat_interval_s=heartbeat_interval,
            anti_entropy_interval_s=3600.0,
        )
        rng = random.Random(root.getrandbits(64))
        for name in names:
            scheduler.at(rng.uniform(0.0, 0.5), cluster.start, name)
        scheduler.run_until(0.5)
        converge = _wait(scheduler, cluster, nodes, 60.0)
        scheduler.run_until(scheduler.now + 2 * heartbeat_interval)  # pulls under way finish
        settle = scheduler.now + 10.0  # and the start's news has been relayed its last time
        while scheduler.now < settle and any(_relaying(node) for node in cluster.live()):
            scheduler.run_until(scheduler.now + heartbeat_interval)
        before = {n: list(t) for n, t in cluster.traffic.items()}
        pulls_before = _pulls(cluster)
        scheduler.run_until(scheduler.now + window)
        totals = [0, 0, 0, 0]
        for name, counts in cluster.traffic.items():
            for i, value in enumerate(counts):
                totals[i] += value - before.get(name, [0, 0, 0, 0])[i]
        pulls = _pulls(cluster) - pulls_before
        per = nodes * window
        return GossipCost(
            nodes,
            converge,
            totals[0] / per,
            totals[1] / per,
            totals[2] / per,
            totals[3] / per,
            pulls / per,
        )


def _relaying(node: SimNode) -> bool:
    """Has ``node`` news left to relay in its next heartbeats (entries or death notices)?"""
    membership = node.core.membership if node.core is not None else None
    return membership is not None and membership.relaying()


def _pulls(cluster: SimCluster) -> int:
    """Views pulled so far by the live nodes."""
    return sum(node.core.membership.pulls for node in cluster.live() if node.core is not None)
