"""What the shell's ``replicas`` command shows: each replica's view of every version any replica holds.

Kept apart from the session (which only asks the client) because it is a pure function of the replicas'
answers, tested without a cluster.
"""

from __future__ import annotations

from zkv.client import ReplicaState
from zkv.errors import NoNodeAvailable, ZkvError

from .results import Replicas, Version


def replica_view(key: bytes, states: dict[str, ReplicaState | ZkvError]) -> Replicas:
    """Line up what each replica stores: every version any replica holds, and each replica's view of it."""
    found: dict[tuple[str, int], Version] = {}
    for state in states.values():
        if isinstance(state, ReplicaState):
            for v in state.versions:
                found.setdefault((v.actor, v.counter), Version(v.value, v.actor, v.counter, v.timestamp))
    versions = tuple(sorted(found.values(), key=lambda v: (-v.timestamp, v.actor, v.counter)))
    cells: dict[str, tuple[str, ...]] = {}
    clocks: dict[str, dict[str, int]] = {}
    errors: dict[str, str] = {}
    for node, state in states.items():
        if isinstance(state, NoNodeAvailable):
            errors[node] = "not answering"
            continue
        if isinstance(state, ZkvError):
            errors[node] = f"{state.code}: {state.message}"
            continue
        held = {(v.actor, v.counter) for v in state.versions}
        cells[node] = tuple(
            "held"
            if (v.actor, v.counter) in held
            else "superseded"
            if state.clock.get(v.actor, 0) >= v.counter
            else "missing"
            for v in versions
        )
        clocks[node] = dict(state.clock)
    return Replicas("replicas", key, tuple(states), versions, cells, clocks, errors)
