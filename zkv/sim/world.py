"""What every seeded simulation builds first, in one fixed order of random draws: the scheduler, the
network, the cluster of sim nodes, the nemesis, the clients and the ring changes.

Each workload (:mod:`zkv.sim.run`, :mod:`zkv.sim.serial`, :mod:`zkv.sim.bank`) starts from
:func:`build_world` and adds its clients with :meth:`World.add_client`; the generators are drawn from the
seed's root generator in the same order for all of them, so a seed means the same cluster and faults.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from zkv.core.ring import Ring, node_tokens
from zkv.sim.clients import SimClient, client_router
from zkv.sim.cluster import SimCluster
from zkv.sim.nemesis import Nemesis
from zkv.sim.network import Network, Scheduler
from zkv.testing.workload import Call

WARMUP_S = 1.0  # simulated seconds the nodes get to find each other before the clients start


@dataclass(slots=True)
class World:
    """One seed's cluster, network, nemesis and clients (``end``: when the workload stops)."""

    root: random.Random
    scheduler: Scheduler
    network: Network
    names: list[str]
    cluster: SimCluster
    nemesis: Nemesis
    client_rng: random.Random
    topology_rng: random.Random
    ring: Ring
    client_timeout: float
    end: float
    clients: dict[str, SimClient] = field(default_factory=dict)

    def running(self) -> bool:
        return self.scheduler.now < self.end

    def clock(self) -> float:
        return self.scheduler.now

    def add_client(self, name: str, steps: Generator[Call, Any, None]) -> SimClient:
        """A workload client, started just after the warm-up (its generator draws come before)."""
        client = SimClient(
            name,
            steps,
            self.scheduler,
            self.cluster,
            self.ring,
            random.Random(self.client_rng.getrandbits(64)),
            self.client_timeout,
        )
        self.clients[name] = client
        client.start(WARMUP_S + self.client_rng.uniform(0.0, 0.1))
        return client

    def start_faults(self, join_chance: float, leave_chance: float, window: tuple[float, float]) -> None:
        """The nemesis from shortly after the warm-up to half a second before the end; a join of one more
        node and a leave, each in a share of seeds, starting ``window`` seconds into the workload."""
        nemesis, rng, names = self.nemesis, self.topology_rng, self.names
        nemesis.start(WARMUP_S + nemesis.rng.uniform(0.0, 0.5), self.end - 0.5)
        if rng.random() < join_chance:
            seeds = rng.sample(names, 2)
            when = WARMUP_S + rng.uniform(*window)
            self.scheduler.at(when, self.cluster.join, f"n{len(names) + 1}", seeds)
            nemesis.counts["join"] += 1
        if rng.random() < leave_chance:
            when = WARMUP_S + rng.uniform(*window)
            self.scheduler.at(when, self.cluster.leave, rng.choice(names))
            nemesis.counts["leave"] += 1


def build_world(seed: int, cfg: Any, fault_kinds: dict[str, int] | None = None, **settings: Any) -> World:
    """The world of ``seed`` for a :class:`zkv.sim.run.SimConfig` (``settings``: more node settings)."""
    root = random.Random(seed)
    scheduler = Scheduler()
    network = Network(scheduler, random.Random(root.getrandbits(64)))
    names = [f"n{i}" for i in range(1, cfg.nodes + 1)]
    clients: dict[str, SimClient] = {}
    cluster = SimCluster(
        scheduler,
        network,
        random.Random(root.getrandbits(64)),
        names,
        on_client_reply=client_router(clients),
        replication_factor=cfg.replication_factor,
        vnodes=cfg.vnodes,
        request_timeout_s=cfg.request_timeout,
        heartbeat_interval_s=cfg.heartbeat_interval,
        failure_timeout_s=cfg.failure_timeout,
        anti_entropy_interval_s=cfg.anti_entropy_interval,
        handoff_interval_s=cfg.handoff_interval,
        **settings,
    )
    nemesis = Nemesis(scheduler, cluster, network, random.Random(root.getrandbits(64)), fault_kinds)
    client_rng = random.Random(root.getrandbits(64))
    topology_rng = random.Random(root.getrandbits(64))
    ring = Ring({n: node_tokens(n, cfg.vnodes) for n in names}, cfg.replication_factor)
    for name in names:
        scheduler.after(cluster.rng.uniform(0.0, 0.05), cluster.start, name)
    world = World(
        root,
        scheduler,
        network,
        names,
        cluster,
        nemesis,
        client_rng,
        topology_rng,
        ring,
        cfg.client_timeout,
        WARMUP_S + cfg.seconds,
        clients,
    )
    return world
