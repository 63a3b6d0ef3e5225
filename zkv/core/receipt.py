"""Consistency receipts: what the coordinator did for one request, returned when the request asks (``trace``).

Only the coordinator knows which replicas answered and when, whether a fallback stood in for a down
primary (a *sloppy* quorum) or only primaries counted (*strict*), how many hints it left, which replicas a
read found behind (read repair), and, for a write, what the new version superseded. So the core builds the
receipt as the request runs and puts it in the reply (``"receipt"``); the client and the shell only show
it. A request that does not ask pays nothing: no receipt is kept.

Times are milliseconds since the coordinator took the request, from the ``now`` the runtime passes in.
Pure: plain dicts of msgpack-able values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zkv.core.versions import KeyState, Sibling


def write_receipt(
    coordinator: str,
    op: str,
    level: str,
    blind: bool,
    superseded: Mapping[str, int],
    before: KeyState,
    after: KeyState,
    new: Sibling,
    fallbacks: Mapping[str, str],
    hints_kept: int,
) -> dict[str, Any]:
    """The receipt of a put or delete, as the coordinator applied it locally (answers are added later)."""
    return {
        "coordinator": coordinator,
        "op": op,
        "level": level,
        "quorum": "sloppy" if fallbacks else "strict",
        "replicas": {coordinator: 0.0},  # node -> ms to its answer; the coordinator's own copy is at once
        "failed": {},
        "fallbacks": dict(fallbacks),  # fallback node -> the down primary it holds a hint for
        "hints": len(fallbacks) + hints_kept,
        # the write: its new version's dot, whether it was blind, the clock it superseded, and how many of
        # the versions the coordinator held it replaced (the rest stay as its siblings)
        "dot": [new.actor, new.counter],
        "blind": blind,
        "superseded": sorted([a, c] for a, c in superseded.items()),
        "replaced": len(before.siblings) - (len(after.siblings) - 1),
        "siblings": len(after.siblings),
    }


def read_receipt(coordinator: str, level: str) -> dict[str, Any]:
    """The receipt of a get, before any replica answered."""
    return {
        "coordinator": coordinator,
        "op": "get",
        "level": level,
        "quorum": "strict",  # reads count only primaries
        "replicas": {},
        "failed": {},
        "hints": 0,
    }


def on_answer(receipt: dict[str, Any] | None, node: str, elapsed: float) -> None:
    """Record a replica's answer ``elapsed`` seconds after the request arrived (its first answer counts)."""
    if receipt is not None:
        receipt["replicas"].setdefault(node, round(elapsed * 1000, 3))


def on_failure(receipt: dict[str, Any] | None, node: str, code: str) -> None:
    if receipt is not None and node not in receipt["replicas"]:
        receipt["failed"][node] = code


def finish_read(receipt: dict[str, Any], states: Mapping[str, KeyState], merged: KeyState) -> dict[str, Any]:
    """Complete a read's receipt at reply time: the versions the replicas returned, what the merge kept,
    and the replicas found behind it (each gets the merged state: read repair)."""
    seen = {(s.actor, s.counter) for state in states.values() for s in state.siblings}
    kept = {(s.actor, s.counter) for s in merged.siblings}
    receipt["versions_seen"] = len(seen)
    receipt["siblings_merged"] = len(seen - kept)  # versions superseded by another replica's newer state
    receipt["siblings"] = len([s for s in merged.siblings if s.value is not None])
    receipt["read_repairs"] = sorted(node for node, state in states.items() if state != merged)
    return receipt


def stamp(receipt: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """The receipt as it leaves with the reply: with the coordinator's total time."""
    receipt["coordinator_ms"] = round(elapsed * 1000, 3)
    return receipt
