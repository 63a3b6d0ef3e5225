"""The fault filter: drops traffic to and from named peers, per direction, for fault-injection tests.

Both paths go through it: requests and replies between nodes (ROUTER/DEALER) and heartbeats (SUB side,
since a PUB cannot drop per subscriber). ``drop_out`` drops what this node sends to a peer; ``drop_in``
drops what it receives from one. tools/partition.py sets both sides of a cut through the ``faults``
admin request.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class FaultFilter:
    drop_in: dict[str, float] = field(default_factory=dict)  # peer -> probability of dropping
    drop_out: dict[str, float] = field(default_factory=dict)
    delay_in: dict[str, float] = field(default_factory=dict)  # peer -> seconds added to what arrives from it
    rng: random.Random = field(default_factory=random.Random)

    def drops_in(self, peer: str) -> bool:
        p = self.drop_in.get(peer)
        return p is not None and (p >= 1.0 or self.rng.random() < p)

    def drops_out(self, peer: str) -> bool:
        p = self.drop_out.get(peer)
        return p is not None and (p >= 1.0 or self.rng.random() < p)

    def delay(self, peer: str) -> float:
        return self.delay_in.get(peer, 0.0)

    @property
    def active(self) -> bool:
        return bool(self.drop_in or self.drop_out or self.delay_in)

    def configure(self, args: dict[str, Any], members: set[str]) -> None:
        """Replace the rules from a ``faults`` request; raises ValueError naming a bad field."""
        new_in = _rules(args.get("drop_in", {}), members, "drop_in")
        new_out = _rules(args.get("drop_out", {}), members, "drop_out")
        new_delay = _rules(args.get("delay_in", {}), members, "delay_in", upper=MAX_DELAY_S, what="delay (s)")
        self.drop_in, self.drop_out, self.delay_in = new_in, new_out, new_delay

    def describe(self) -> dict[str, Any]:
        return {
            "drop_in": dict(self.drop_in),
            "drop_out": dict(self.drop_out),
            "delay_in": dict(self.delay_in),
        }


MAX_DELAY_S = 10.0


def _rules(
    value: Any, members: set[str], name: str, upper: float = 1.0, what: str = "probability"
) -> dict[str, float]:
    if isinstance(value, list) and upper == 1.0:
        value = dict.fromkeys(value, 1.0)
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a map of node name to {what}")
    out = {}
    for peer, p in value.items():
        if peer not in members:
            raise ValueError(f"{name}: no node named {peer!r}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= upper:
            raise ValueError(f"{name}: {what} for {peer} must be between 0 and {upper:g}")
        out[peer] = float(p)
    return out


class HeldMessages:
    """What a ``delay_in`` fault holds back: each message with the core handler it is for, released
    once its time has come, in arrival order among equal times."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._heap)

    def hold(self, due: float, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), handler, args))

    def next_due(self) -> float:
        return self._heap[0][0]

    def take_due(self, now: float) -> Iterator[tuple[Callable[..., Any], tuple[Any, ...]]]:
        """Pop every message due by ``now``, with its handler."""
        while self._heap and self._heap[0][0] <= now:
            _, _, handler, args = heapq.heappop(self._heap)
            yield handler, args
