"""Phi-accrual failure detection of one peer (Hayashibara et al., as in Cassandra and Akka).

``phi`` is how unlikely the current silence is given the intervals between the peer's heartbeats seen so
far, on a log10 scale; :mod:`zkv.core.membership` counts a peer down when phi passes its threshold (or a
hard bound, or a dropped connection says so). The detector is local to a node and never gossiped.

Pure: time arrives as ``now``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

ARRIVAL_WINDOW = 100  # heartbeat intervals remembered per peer
PAUSE_INTERVALS = 3  # heartbeats a peer may miss before phi starts to climb (GC, a loaded machine)


@dataclass(slots=True)
class Detector:
    """Phi-accrual failure detector state for one peer (local to this node)."""

    last_heard: float
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=ARRIVAL_WINDOW))
    connected: bool | None = None  # the runtime's word on the request connection; None: not told
    heard_directly: bool = False
    keys: int = -1
    last_seen: tuple[int, int] = (0, 0)  # (generation, counter) of the last heartbeat heard directly

    def arrival(self, now: float) -> None:
        if self.heard_directly:
            self.intervals.append(max(0.0, now - self.last_heard))
        self.last_heard = now
        self.heard_directly = True

    def phi(self, now: float, expected_interval: float) -> float:
        """-log10 of the probability that a heartbeat is still on its way after this long a silence."""
        if self.intervals:
            mean = sum(self.intervals) / len(self.intervals)
            var = sum((x - mean) ** 2 for x in self.intervals) / len(self.intervals)
        else:
            mean, var = expected_interval, 0.0
        std = max(math.sqrt(var), expected_interval / 2)
        mean += PAUSE_INTERVALS * expected_interval
        y = (now - self.last_heard - mean) / std
        # logistic approximation of the normal CDF (as Akka's detector uses); clamp to stay finite
        exponent = -y * (1.5976 + 0.070566 * y * y)
        if exponent > 700:  # far sooner than expected (a peer that was slow before): no suspicion
            return 0.0  # (math.exp overflowed here: y = -20 once intervals were long and steady)
        e = math.exp(exponent)
        p_later = e / (1.0 + e) if y > 0 else 1.0 - 1.0 / (1.0 + e)
        return -math.log10(max(p_later, 1e-300))
