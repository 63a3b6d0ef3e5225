"""The dashboard's key inspector: every replica of a key side by side, and why siblings are concurrent.

Like the shell's ``replicas``, each replica is read directly (no repair) and every version any of them
holds is lined up against each replica: ``held``, ``superseded`` (its clock has seen the dot, a later write
replaced it) or ``missing`` (never seen). The siblings are what a read would return: the merge of the
replicas' states (:func:`zkv.core.versions.merge_all`).

Why two siblings are concurrent: a write removes exactly the siblings its context had seen, so two
siblings that both survive were each written by a client whose context had not seen the other's dot. zkv
keeps one clock per key, not one per sibling (as Riak's DVVSet does), so what each sibling descends from
is known only as a bound: some of the dots the key's clock has seen that no sibling carries (the writes
that were superseded). The page draws exactly that: one lane per actor, the superseded dots, each
sibling's dot, and the "had not seen" relation between every pair.

Pure: it takes the replica states the client read and returns JSON-able data.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from zkv.client import ReplicaState
from zkv.core.ring import RING_SIZE, Ring, hash64
from zkv.core.versions import KeyState, Sibling, covers, merge_all
from zkv.errors import NoNodeAvailable, ZkvError

PAIRS_UP_TO = 4  # more siblings than this are all pairwise concurrent in the same way: one sentence, not n²


def json_bytes(data: bytes | None) -> Any:
    """Text stays text; bytes that are not UTF-8 become ``{"base64": ...}``; None (a tombstone) is null."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def placements(ring: Ring, key: bytes, up: set[str]) -> list[dict[str, Any]]:
    """The key's preference list (primaries, each up or down) then the fallbacks a write would use now."""
    out = [{"node": n, "role": "primary", "up": n in up} for n in ring.preference_list(key)]
    out += [
        {"node": p.node, "role": "fallback", "up": True}
        for p in ring.placements(key, lambda n: n in up)
        if p.role == "fallback"
    ]
    return out


def position(key: bytes) -> float:
    """Where the key hashes on the ring, as a fraction of the ring (0 at the top, clockwise)."""
    return hash64(key) / RING_SIZE


def _dot(actor: str, counter: int) -> str:
    return f"{actor}:{counter}"


def concurrency(siblings: Sequence[Sibling], clock: Mapping[str, int]) -> dict[str, Any]:
    """For each pair of siblings (a few), the dot each write had not seen; the superseded dots as lanes."""
    dots = {(s.actor, s.counter) for s in siblings}
    lanes = []
    for actor in sorted(clock):
        lanes.append(
            {
                "actor": actor,
                "seen": clock[actor],
                "siblings": sorted(c for a, c in dots if a == actor),
                "superseded": [c for c in range(1, clock[actor] + 1) if (actor, c) not in dots],
            }
        )
    pairs = []
    for i, a in enumerate(siblings if len(siblings) <= PAIRS_UP_TO else ()):
        for b in siblings[i + 1 :]:
            pairs.append(
                {
                    "a": _dot(a.actor, a.counter),
                    "b": _dot(b.actor, b.counter),
                    "why": f"the write of {_dot(a.actor, a.counter)} had not seen {_dot(b.actor, b.counter)}"
                    f", and the write of {_dot(b.actor, b.counter)} had not seen {_dot(a.actor, a.counter)}:"
                    " neither replaced the other",
                }
            )
    return {"lanes": lanes, "pairs": pairs}


def inspect(
    key: bytes, ring: Ring, up: set[str], states: Mapping[str, ReplicaState | ZkvError]
) -> dict[str, Any]:
    """Everything the inspector and the ring's highlight show for ``key``."""
    found: dict[tuple[str, int], Sibling] = {}
    keystates: list[KeyState] = []
    for state in states.values():
        if isinstance(state, ReplicaState):
            sibs = tuple(Sibling(v.actor, v.counter, v.timestamp, v.value) for v in state.versions)
            keystates.append(KeyState(sibs, dict(state.clock)))
            for s in sibs:
                found.setdefault(s.dot, s)
    versions = sorted(found.values(), key=lambda s: (-s.timestamp, s.actor, s.counter))
    replicas: dict[str, Any] = {}
    seen = []
    for node, state in states.items():
        if isinstance(state, ZkvError):
            replicas[node] = {
                "error": "not answering"
                if isinstance(state, NoNodeAvailable)
                else f"{state.code}: {state.message}"
            }
            continue
        held = {(v.actor, v.counter) for v in state.versions}
        cells = [
            "held" if s.dot in held else "superseded" if covers(state.clock, s.dot) else "missing"
            for s in versions
        ]
        replicas[node] = {"clock": dict(sorted(state.clock.items())), "cells": cells}
        seen.append((tuple(cells), tuple(sorted(state.clock.items()))))
    merged = merge_all(keystates) if keystates else KeyState((), {})
    live = [s for s in merged.siblings]
    return {
        "key": json_bytes(key),
        "position": position(key),
        "placements": placements(ring, key, up),
        "versions": [
            {
                "dot": _dot(s.actor, s.counter),
                "value": json_bytes(s.value),
                "tombstone": s.value is None,
                "timestamp": s.timestamp,
            }
            for s in versions
        ],
        "replicas": replicas,
        "diverged": len(set(seen)) > 1,
        "siblings": [_dot(s.actor, s.counter) for s in live],
        "clock": dict(sorted(merged.clock.items())),
        "concurrency": concurrency(live, merged.clock) if len(live) > 1 else None,
    }
