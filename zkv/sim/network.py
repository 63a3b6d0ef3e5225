"""Simulated time and a simulated network: one event heap, seeded delays, drops, duplicates, partitions.

Theory of operation
-------------------
:class:`Scheduler` is the simulation's only clock: a heap of ``(time, sequence, callback)`` events run in
order; the sequence number breaks ties in the order events were scheduled, so a run is a pure function
of its seed. Every delivered payload is folded into a SHA-256 **trace** (time, endpoints, the msgpack
bytes), which the determinism test compares across runs and processes.

:class:`Network` carries msgpack frames between endpoints. By default a link behaves like the TCP
connection ZeroMQ gives the real nodes: a small random latency with a rare long tail, FIFO per direction,
nothing lost or duplicated. Faults change that per directed link: ``blocked`` (a partition, as the
nodes' fault filter does it: silently dropped), a drop probability (a lossy link), a duplicate
probability, extra delay, and ``reorder`` (FIFO no longer enforced, so later frames overtake earlier
ones). Every fault that touched a frame is counted in :attr:`Network.counts`.

No wall clock, no threads, no sockets: the caller's ``random.Random`` is the only source of chance.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BASE_DELAY_S = (0.0002, 0.002)  # latency of one frame on an idle loopback-like link
TAIL_CHANCE = 0.01  # share of frames that take the long tail (a loaded machine, a retransmission)
TAIL_DELAY_S = (0.01, 0.15)


class Scheduler:
    """Simulated time: callbacks run in (time, scheduling order); ``now`` only moves forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._trace = hashlib.sha256()
        self.events = 0

    def at(self, when: float, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` at simulated time ``when`` (never earlier than now)."""
        heapq.heappush(self._heap, (max(when, self.now), next(self._seq), callback, args))

    def after(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        self.at(self.now + delay, callback, *args)

    def run_until(self, end: float) -> None:
        """Run every event due up to ``end``, then stand at ``end``."""
        heap = self._heap
        while heap and heap[0][0] <= end:
            when, _, callback, args = heapq.heappop(heap)
            self.now = when
            self.events += 1
            callback(*args)
        self.now = max(self.now, end)

    def record(self, *parts: Any) -> None:
        """Fold one observable step into the trace (what the determinism test compares)."""
        update = self._trace.update
        update(b"%d" % round(self.now * 1e9))
        for part in parts:
            update(part if isinstance(part, bytes) else str(part).encode())
            update(b"|")

    def trace_digest(self) -> str:
        return self._trace.hexdigest()


@dataclass(slots=True)
class LinkFault:
    """What is wrong with one directed link right now."""

    drop: float = 0.0
    duplicate: float = 0.0
    extra_delay: float = 0.0
    reorder: bool = False


class Network:
    """Frames between named endpoints (nodes and clients) with per-link faults."""

    def __init__(self, scheduler: Scheduler, rng: random.Random) -> None:
        self.scheduler = scheduler
        self.rng = rng
        self.blocked: set[tuple[str, str]] = set()  # (src, dst) pairs partitioned apart
        self.faults: dict[tuple[str, str], LinkFault] = {}
        self._last: dict[tuple[str, str], float] = {}  # FIFO: when the last frame on a link arrives
        self.counts: Counter[str] = Counter()

    def delay(self) -> float:
        rng = self.rng
        if rng.random() < TAIL_CHANCE:
            return rng.uniform(*TAIL_DELAY_S)
        return rng.uniform(*BASE_DELAY_S)

    def transmit(
        self,
        src: str,
        dst: str,
        payload: bytes,
        deliver: Callable[[bytes], None],
        filtered: bool = True,
    ) -> None:
        """Carry ``payload`` from ``src`` to ``dst`` and call ``deliver(payload)`` on arrival (maybe never).

        ``filtered``: node-to-node traffic, subject to partitions and link faults (clients' links are not,
        as the nodes' fault filter only knows peers).
        """
        link = (src, dst)
        fault = None
        if filtered:
            if link in self.blocked:
                self.counts["partitioned"] += 1
                return
            fault = self.faults.get(link)
            if fault is not None and fault.drop and self.rng.random() < fault.drop:
                self.counts["dropped"] += 1
                return
        when = self.scheduler.now + self.delay()
        if fault is not None and fault.extra_delay:
            when += self.rng.uniform(0.0, fault.extra_delay)
            self.counts["delayed"] += 1
        last = self._last.get(link, 0.0)
        if fault is not None and fault.reorder:
            if when < last:
                self.counts["reordered"] += 1
        else:
            when = max(when, last)
        self._last[link] = max(when, last)
        self.scheduler.at(when, deliver, payload)
        if fault is not None and fault.duplicate and self.rng.random() < fault.duplicate:
            self.counts["duplicated"] += 1
            self.scheduler.at(when + self.delay(), deliver, payload)

    def heal(self) -> None:
        """Remove every partition and link fault."""
        self.blocked.clear()
        self.faults.clear()
