"""Hypothesis strategies for *reachable* replica states of one key (shared by the versions and quorum tests).

A :class:`World` is one simulated history: three replicas ``a``, ``b``, ``c``, each also the actor that
coordinates writes on it (as in zkv, where a coordinator mints dots under its own name on its own store).
Each step either applies a put or delete at one replica with a context taken from *any* state seen so far
(what a client read earlier, from any replica, passed through the opaque bytes a client really holds), or
merges one replica's current state into another (replication, read repair, anti-entropy). Every state in
``history`` is therefore one a real cluster can hold, and all of them share one dot namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from zkv.core.versions import EMPTY, Clock, KeyState, Sibling, decode_context, merge, update

ACTORS = ("a", "b", "c")
VALUES = (b"x", b"y", b"z", None)  # None writes a tombstone


@dataclass
class World:
    replicas: dict[str, KeyState]
    history: list[KeyState] = field(default_factory=list)  # every state any replica held, EMPTY first
    minted: list[Sibling] = field(default_factory=list)  # every write, in order
    contexts: list[Clock] = field(default_factory=list)  # the context each write carried

    def pool(self) -> list[KeyState]:
        return [*self.history, *self.replicas.values()]


@st.composite
def worlds(draw: st.DrawFn, max_steps: int = 14) -> World:
    world = World(replicas=dict.fromkeys(ACTORS, EMPTY), history=[EMPTY])
    steps = draw(st.integers(0, max_steps))
    for _ in range(steps):
        if draw(st.integers(0, 2)) < 2:  # two writes for every merge
            actor = draw(st.sampled_from(ACTORS))
            seen = draw(st.sampled_from(world.history))
            context = decode_context(seen.context())
            value = draw(st.sampled_from(VALUES))
            # timestamps collide and go backwards on purpose: they order siblings, never causality
            timestamp = float(draw(st.integers(0, 4)))
            state, sibling = update(world.replicas[actor], actor, context, value, timestamp)
            world.minted.append(sibling)
            world.contexts.append(context)
            changed = actor
        else:
            changed = draw(st.sampled_from(ACTORS))
            src = draw(st.sampled_from(ACTORS))
            state = merge(world.replicas[changed], world.replicas[src])
        world.replicas[changed] = state
        world.history.append(state)
    return world


def reachable_states(count: int, max_steps: int = 14) -> st.SearchStrategy[tuple[KeyState, ...]]:
    """``count`` states (not necessarily distinct) drawn from one world's history."""

    @st.composite
    def pick(draw: st.DrawFn) -> tuple[KeyState, ...]:
        pool = draw(worlds(max_steps)).pool()
        return tuple(draw(st.sampled_from(pool)) for _ in range(count))

    return pick()
