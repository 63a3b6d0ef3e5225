"""The simulator's nemesis: seeded faults, one window at a time (partitions, one-way links, crashes, torn
crashes, restarts, pauses, lossy, duplicating, reordering and slow links, a wiped disk)."""

from __future__ import annotations

import random
from collections import Counter

from zkv.sim.cluster import SimCluster
from zkv.sim.network import LinkFault, Network, Scheduler

FAULT_KINDS = {  # kind -> weight in the nemesis' choice
    "split": 3,
    "isolate": 3,
    "one_way": 2,
    "crash": 3,
    "torn_crash": 3,
    "restart": 2,
    "pause": 2,
    "lossy": 2,
    "duplicate": 2,
    "reorder": 2,
    "slow": 2,
    "wipe": 5,
}


class Nemesis:
    """Seeded faults, one window at a time: inject, hold, heal, rest (as
    :class:`zkv.testing.chaos.FaultPlayer`)."""

    def __init__(
        self,
        scheduler: Scheduler,
        cluster: SimCluster,
        network: Network,
        rng: random.Random,
        kinds: dict[str, int] | None = None,
    ) -> None:
        self.kinds = FAULT_KINDS if kinds is None else kinds  # kind -> weight
        self.scheduler = scheduler
        self.cluster = cluster
        self.network = network
        self.rng = rng
        self.counts: Counter[str] = Counter()
        self.active = True
        self.until = 0.0
        self._down: list[str] = []
        self._to_wipe: list[str] = []
        self._wiped = False
        self.wiped_at: float | None = None

    def start(self, first: float, until: float) -> None:
        self.until = until
        self.scheduler.at(first, self._inject)

    def _inject(self) -> None:
        if not self.active or self.scheduler.now >= self.until:
            return
        rng = self.rng
        for _ in range(1 if rng.random() < 0.75 else 2):
            kinds = [k for k in self.kinds if k != "wipe" or not self._wiped]
            kind = rng.choices(kinds, weights=[self.kinds[k] for k in kinds])[0]
            self._apply(kind, rng.uniform(0.5, 2.0))
        self.scheduler.after(rng.uniform(0.5, 2.0), self._heal_then_rest)

    def _apply(self, kind: str, hold: float) -> None:
        rng, names = self.rng, list(self.cluster.nodes)
        node = rng.choice(names)
        others = [n for n in names if n != node]
        blocked = self.network.blocked
        if kind == "split":
            shuffled = rng.sample(names, len(names))
            cut = rng.randrange(1, len(names))
            left, right = shuffled[:cut], shuffled[cut:]
            blocked.update((a, b) for a in left for b in right)
            blocked.update((b, a) for a in left for b in right)
        elif kind == "isolate":
            blocked.update((node, o) for o in others)
            blocked.update((o, node) for o in others)
        elif kind == "one_way":
            blocked.update((o, node) for o in others)  # it hears nobody; everyone hears it
        elif kind == "wipe":
            # cut off, then its disk dies: whatever only it held is gone when it comes back empty
            if not self.cluster.nodes[node].alive:
                return
            self._wiped = True
            blocked.update((node, o) for o in others)
            blocked.update((o, node) for o in others)
            self._to_wipe.append(node)
        elif kind in ("crash", "torn_crash", "restart"):
            if not self.cluster.nodes[node].alive:
                return
            if kind == "restart":
                self.cluster.stop(node)
            else:
                self.cluster.crash(node, torn=kind == "torn_crash")
            self._down.append(node)
        elif kind == "pause":
            self.cluster.pause(node, hold)
        elif kind == "lossy":
            peer = rng.choice(others)
            for link in ((node, peer), (peer, node)):
                self.network.faults.setdefault(link, LinkFault()).drop = 0.3
        elif kind == "duplicate":
            for o in others:
                for link in ((node, o), (o, node)):
                    self.network.faults.setdefault(link, LinkFault()).duplicate = 0.3
        elif kind == "reorder":
            for o in others:
                for link in ((node, o), (o, node)):
                    fault = self.network.faults.setdefault(link, LinkFault())
                    fault.reorder, fault.extra_delay = True, max(fault.extra_delay, 0.05)
        elif kind == "slow":
            for o in others:
                fault = self.network.faults.setdefault((o, node), LinkFault())
                fault.extra_delay = max(fault.extra_delay, rng.uniform(0.2, 1.5))
        self.counts[kind] += 1
        self.scheduler.record("fault", kind, node)

    def _heal_then_rest(self) -> None:
        self.heal()
        if self.active:
            self.scheduler.after(self.rng.uniform(0.2, 0.8), self._inject)

    def heal(self) -> None:
        """Undo every fault: links back to normal, every stopped, crashed or wiped node started again."""
        for name in self._to_wipe:
            self.cluster.wipe(name)
            self._down.append(name)
            self.wiped_at = self.scheduler.now
        self._to_wipe.clear()
        self.network.heal()
        for name in self._down:
            if not self.cluster.nodes[name].alive:
                self.cluster.start(name)
        self._down.clear()
        self.scheduler.record("heal")
