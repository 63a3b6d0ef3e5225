"""The decisions of the write path (and the read reply) that need no pending table: which version a put
makes, who stands in for a down primary, whether enough replicas are alive, and what a client is told.

Kept apart from :mod:`zkv.core.coordinator` (which owns the pending table and the messages) so that each
rule reads on its own and the simulator's broken variants can replace one (``blind_context``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from zkv.core import receipt
from zkv.core.contexts import known_actors, plausible
from zkv.core.effects import Send
from zkv.core.membership import Membership
from zkv.core.pending import PendingWrite
from zkv.core.settings import NodeSettings
from zkv.core.state import NodeState
from zkv.core.versions import (
    MAX_CONTEXT_ENTRIES,
    KeyState,
    Sibling,
    state_to_wire,
    update,
)
from zkv.errors import (
    ContextTooLarge,
    InvalidRequest,
    StorageError,
    StorageFull,
    StorageUnavailable,
    TooManySiblings,
    Unavailable,
    ZkvError,
)
from zkv.protocol import PutRequest, ok

STORAGE_CODES: dict[str, type[ZkvError]] = {
    StorageFull.code: StorageFull,
    StorageError.code: StorageError,
    StorageUnavailable.code: StorageUnavailable,
}
_REFUSED = {
    StorageFull.code: "disk full",
    StorageError.code: "disk failing",
    StorageUnavailable.code: "storage unavailable",
}


def blind_context(local: KeyState) -> dict[str, int]:
    """What a blind write (one without a context) supersedes: every version the coordinator holds or has
    seen of the key, as a user of any other store expects of a put or delete.

    Only what the coordinator has is superseded: a concurrent write it has not received yet survives as a
    sibling, so no acknowledged write is dropped unseen (see docs/architecture.md, "Blind writes"). The
    coordinator is always a replica of the key (other nodes forward), so its copy is the freshest it can
    have without asking; asking the other replicas first would cost a round trip on every put.
    """
    return dict(local.clock)


def written_context(context: Mapping[str, int], new: Sibling) -> bytes:
    """The context a write's reply hands back: what the client's write superseded plus the new version.

    A put with it supersedes exactly the version this write stored (and what that one superseded), not a
    concurrent sibling the writer never saw, which the coordinator's whole clock would also cover.
    """
    actor = new.actor
    # versions.encode_context(versions.join(context, {actor: counter})), without building the two dicts
    items = [(a, c) for a, c in context.items() if c > 0 and a != actor]
    items.append((actor, max(new.counter, context.get(actor, 0))))
    items.sort()
    return msgpack.packb(items, use_bin_type=True)


def next_state(
    local: KeyState,
    req: PutRequest,
    settings: NodeSettings,
    membership: Membership,
    wall: float,
    floor: int = 0,
) -> tuple[dict[str, int], KeyState, Sibling]:
    """The write's context, the key's state after it and the new version, within the limits.

    ``floor``: the highest counter this node's actor minted so far (``versions.update``)."""
    if req.context is None:
        context = blind_context(local)
    else:
        context = plausible(known_actors(membership, req.context, local.clock), local.clock)
    try:
        expires = None if req.ttl is None else wall + req.ttl
        state, new = update(local, settings.actor, context, req.value, wall, expires, floor)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if len(state.clock) > MAX_CONTEXT_ENTRIES:
        raise ContextTooLarge(
            f"the key's causal context would have {len(state.clock)} entries (limit {MAX_CONTEXT_ENTRIES})",
            limit=MAX_CONTEXT_ENTRIES,
        )
    max_siblings = settings.limits.max_siblings
    if len(state.siblings) > max_siblings:
        raise TooManySiblings(
            f"key has {len(state.siblings) - 1} siblings (limit {max_siblings}); "
            "get it and put with its context to resolve them",
            limit=max_siblings,
        )
    return context, state, new


def check_alive(
    consistency: str,
    need: int,
    preference: tuple[str, ...],
    live: tuple[str, ...],
    fallbacks: dict[str, str],
    strict: bool,
) -> None:
    """``unavailable`` before anything is written when the write cannot reach its quorum."""
    if strict and consistency != "all" and len(live) < need:  # (all takes no fallbacks anyway: below)
        raise Unavailable(
            f"strict {consistency} needs {need} of the key's {len(preference)} replicas, "
            f"{len(live)} alive (hints on fallbacks do not count; a sloppy quorum would take them)",
            required=need,
            alive=len(live),
        )
    if len(live) + len(fallbacks) < need:
        raise Unavailable(
            f"{consistency} needs {need} of {len(preference)} replicas, {len(live)} alive",
            required=need,
            alive=len(live) + len(fallbacks),
        )


def fallbacks(
    state: NodeState,
    key: bytes,
    preference: tuple[str, ...],
    live: tuple[str, ...],
    consistency: str,
    now: float,
) -> dict[str, str]:
    """Sloppy quorum: an up fallback node for each down primary, as ``{fallback: owner}``.

    Hinted writes count toward ``one`` and ``quorum``; ``all`` promises every primary holds the
    write, so it takes none.
    """
    if state.handoff is None or consistency == "all" or len(live) == len(preference):
        return {}
    down = [node for node in preference if node not in live and state.hints_wanted(node, now)]
    is_up = state.membership.is_up
    placed = [p.node for p in state.ring.placements(key, lambda n: is_up(n, now))]
    spare = [node for node in placed if node not in preference]
    return dict(zip(spare, down, strict=False))


def write_ok(write: PendingWrite, now: float, **fields: Any) -> dict[str, Any]:
    """The success reply of a write, with its receipt when the request asked for one."""
    if write.receipt is None:
        return ok(write.origin.rid, ctx=write.ctx, **fields)
    # the receipt says how the write was counted, as the reply does: strict or sloppy, hinted acks
    write.receipt.update(fields)
    stamped = receipt.stamp(write.receipt, now - write.started)
    return ok(write.origin.rid, ctx=write.ctx, receipt=stamped, **fields)


def send_to_replicas(
    state: NodeState,
    iid: int,
    key: bytes,
    key_state: KeyState,
    preference: tuple[str, ...],
    live: tuple[str, ...],
    fallbacks: Mapping[str, str],
    keep_for: list[str],
    now: float,
) -> None:
    """Send a coordinated write's new state to the other live replicas, the fallbacks (as hints for the
    owners they stand in for) and, while a join or leave moves the key, its future replicas (their acks
    are not counted); keep a hint here for each down owner in ``keep_for``."""
    wire = state_to_wire(key_state)
    out, name = state.effects, state.name
    for node in live:
        if node != name:
            out.append(Send(node, {"op": "rput", "id": iid, "key": key, "state": wire}))
    for node, owner in fallbacks.items():
        out.append(Send(node, {"op": "rput", "id": iid, "key": key, "state": wire, "hint": owner}))
    ring, future_ring = state.ring, state.future_ring
    future = () if future_ring is ring else future_ring.preference_list(key)
    is_up = state.membership.is_up
    for node in future:
        if node not in preference and node not in fallbacks and is_up(node, now):
            out.append(Send(node, {"op": "rput", "id": iid, "key": key, "state": wire}))
    handoff = state.handoff
    if handoff is not None:
        for owner in keep_for:
            handoff.keep(owner, key, key_state, now)


def failed_reply(write: PendingWrite) -> dict[str, object]:
    """What a write that missed its quorum tells its client: a refusing disk is named as such."""
    q = write.quorum
    refused = [code for code in q.failed.values() if code in STORAGE_CODES]
    if refused:
        full = [node for node, code in q.failed.items() if code in STORAGE_CODES]
        return STORAGE_CODES[refused[0]](
            f"{write.consistency} needs {q.required} replicas, {len(q.acked)} acknowledged; "
            f"{', '.join(sorted(full))} refused the write: {_REFUSED[refused[0]]}"
            " (the write may be visible on those that acknowledged)",
            required=q.required,
            acknowledged=len(q.acked),
        ).to_wire()
    why = ", ".join(f"{node}: {code}" for node, code in sorted(q.failed.items()))
    return Unavailable(
        f"{write.consistency} needs {q.required} replicas, {len(q.acked)} acknowledged and "
        f"{len(q.failed)} failed ({why}; the write may be visible on those that acknowledged)",
        required=q.required,
        alive=len(q.targets) - len(q.failed),
        acknowledged=len(q.acked),
    ).to_wire()


def read_reply(state: KeyState, wall: float) -> dict[str, Any]:
    """The reply to a read: live values newest first (an expired one reads as deleted), the context."""
    live = [s for s in state.siblings if not s.expired(wall)]
    return ok(
        0,
        values=[s.value for s in live],
        timestamps=[s.timestamp for s in live],
        # always a context, the empty one for a key never written: a write with it supersedes nothing,
        # which is what a read-modify-write that found nothing means (no context would be a blind write)
        ctx=state.context(),
    )
