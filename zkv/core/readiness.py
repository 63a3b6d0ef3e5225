"""Is this node ready to serve? The answer ``/ready`` gives and ``zkv-node`` logs once ("ready").

Ready means: the node is a normal member (not joining, leaving or removed) and, for every token range
it holds a replica of, it has heard from enough of that range's replicas (itself included) to reach
``quorum``. "Heard from" is stricter than "up": a peer is presumed up when a node starts (so the first
requests are not refused), but only a heartbeat heard and a request connection made prove it is there.
Readiness follows the cluster afterwards: a node that loses quorum for a range is not ready until it
has it back. Pure: the caller passes what it knows and ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zkv.core.quorum import required


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    ranges: int = 0  # distinct preference lists this node is in
    short: int = 0  # of those, how many lack a quorum of replicas heard from
    waiting_for: tuple[str, ...] = field(default=())  # peers not heard from that would make it ready

    def to_wire(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "reason": self.reason,
            "ranges": self.ranges,
            "short": self.short,
            "waiting_for": list(self.waiting_for),
        }


def readiness(
    me: str, status: str, preference_lists: Iterable[tuple[str, ...]], heard_from: Callable[[str], bool]
) -> Readiness:
    """Whether ``me`` can serve ``quorum`` for every range it holds, given who it has heard from."""
    if status != "normal":
        return Readiness(False, f"member status is {status}")
    mine = [p for p in preference_lists if me in p]
    if not mine:
        return Readiness(False, "holds no range of the ring yet")
    short = 0
    waiting: set[str] = set()
    heard: dict[str, bool] = {}
    for replicas in mine:
        silent = []
        for node in replicas:
            if node not in heard:
                heard[node] = heard_from(node)
            if not heard[node]:
                silent.append(node)
        if len(replicas) - len(silent) < required("quorum", len(replicas)):
            short += 1
            waiting.update(silent)
    if short:
        names = ", ".join(sorted(waiting))
        return Readiness(
            False,
            f"{short} of {len(mine)} ranges it holds lack a quorum of replicas heard from (waiting: {names})",
            len(mine),
            short,
            tuple(sorted(waiting)),
        )
    return Readiness(True, f"heard from a quorum of replicas for all {len(mine)} ranges it holds", len(mine))
