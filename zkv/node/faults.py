"""The fault filter: drops traffic to and from named peers, per direction, for fault-injection tests.

Both paths go through it: requests and replies between nodes (ROUTER/DEALER) and heartbeats (SUB side,
since a PUB cannot drop per subscriber). ``drop_out`` drops what this node sends to a peer; ``drop_in``
drops what it receives from one. tools/partition.py sets both sides of a cut through the ``faults``
admin request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class FaultFilter:
    drop_in: dict[str, float] = field(default_factory=dict)  # peer -> probability of dropping
    drop_out: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def drops_in(self, peer: str) -> bool:
        p = self.drop_in.get(peer)
        return p is not None and (p >= 1.0 or self.rng.random() < p)

    def drops_out(self, peer: str) -> bool:
        p = self.drop_out.get(peer)
        return p is not None and (p >= 1.0 or self.rng.random() < p)

    @property
    def active(self) -> bool:
        return bool(self.drop_in or self.drop_out)

    def configure(self, args: dict[str, Any], members: set[str]) -> None:
        """Replace the rules from a ``faults`` request; raises ValueError naming a bad field."""
        new_in = _rules(args.get("drop_in", {}), members, "drop_in")
        new_out = _rules(args.get("drop_out", {}), members, "drop_out")
        self.drop_in, self.drop_out = new_in, new_out

    def describe(self) -> dict[str, Any]:
        return {"drop_in": dict(self.drop_in), "drop_out": dict(self.drop_out)}


def _rules(value: Any, members: set[str], name: str) -> dict[str, float]:
    if isinstance(value, list):
        value = dict.fromkeys(value, 1.0)
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a list of node names or a map of node name to drop probability")
    out = {}
    for peer, p in value.items():
        if peer not in members:
            raise ValueError(f"{name}: no node named {peer!r}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{name}: probability for {peer} must be between 0 and 1")
        out[peer] = float(p)
    return out
