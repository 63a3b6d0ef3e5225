"""Admin requests the core decides: a full anti-entropy pass now, and merging states a restore streams.

``repair_now``: this node compares its Merkle trees with every peer, one after another, each until no
shared key differs (:meth:`AntiEntropy.request_pass`); progress is in ``status`` (``anti_entropy.pass``).

``merge_states``: ``items = [[key, state], ...]`` from a snapshot (``zkv-node restore --live``). Each
state goes to every replica of its key as an ordinary ``repair`` (a merge: versions the cluster holds
that are newer win by their clocks, nothing newer is overwritten); a replica that is down gets it later
from anti-entropy. Kept out of :mod:`zkv.core.nodecore` so that module only routes the op here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from zkv.core.effects import Send
from zkv.core.transfer import parse_items
from zkv.core.versions import state_to_wire
from zkv.errors import InvalidRequest

if TYPE_CHECKING:
    from zkv.core.nodecore import NodeCore

MAX_MERGE_ITEMS = 4096


def repair_now(core: NodeCore, now: float) -> dict[str, Any]:
    """Start a full pass with every other member of the ring; the pass's progress so far."""
    core.aae.request_pass([m for m in core.ring.members if m != core.name], now)
    return asdict(core.aae.statistics().full_pass)


def merge_states(core: NodeCore, args: dict[str, Any]) -> dict[str, Any]:
    """Send each state to its key's replicas as a repair (merged locally when this node is one)."""
    raw = args.get("items")
    if not isinstance(raw, list) or len(raw) > MAX_MERGE_ITEMS:
        raise InvalidRequest(f"merge_states needs 'items': a list of at most {MAX_MERGE_ITEMS} [key, state]")
    try:
        items = parse_items(raw)
    except ValueError as exc:
        raise InvalidRequest(f"merge_states: {exc}") from None
    local = 0
    for key, state in items:
        for node in core.ring.preference_list(key):
            if node == core.name:
                core.replica.merge_local(key, state)
                local += 1
            else:
                core.state.effects.append(
                    Send(node, {"op": "repair", "key": key, "state": state_to_wire(state)})
                )
    return {"merged": len(items), "local": local}
