"""What a coordinator accepts of a client's causal context before it writes under it.

A context is the client's word for what it has seen of a key. It is trusted only as far as that is
harmless: entries of actors no node of this cluster has (forged, or long gone) are dropped, and entries
that claim absurdly more than this replica has seen are cut back. Claiming less than the client saw is
always safe: at worst a superseded sibling stays (a false conflict), never a lost write.
"""

from __future__ import annotations

from collections.abc import Mapping

from zkv.core.membership import Membership
from zkv.errors import Unavailable

MAX_UNSEEN_WRITES = 2**32  # a real context is never this far ahead of a replica of the key


def known_actors(membership: Membership, context: dict[str, int], clock: Mapping[str, int]) -> dict[str, int]:
    """Drop context entries of actors that are no node of this cluster (forged, or a node long gone).

    An actor already in this replica's ``clock`` of the key is kept even when this node does not know
    its node (yet): a node restarted from its config learns of members that joined since only through
    gossip, and dropping their entries kept the very siblings the client's write superseded (found by
    the simulator). Such an entry adds nothing to the clock's size, so it cannot be used to bloat it.
    Claiming less than the client saw is safe: at worst a superseded sibling stays (a false conflict).
    """
    if not context:
        return context  # a first write, or a blind one
    known = membership.member
    if all(known(actor.partition("~")[0]) or actor in clock for actor in context):
        return context
    if membership.peers() and not membership.heard_any():
        # just started from its config and not yet told who joined since: the unknown actors may be
        # real members, and dropping their entries would keep what the client's write superseded
        # (found by the simulator, after a crash and restart). Refuse until the first heartbeat.
        raise Unavailable(
            "this node just started and does not know every member the context names yet; retry shortly",
            required=1,
            alive=0,
        )
    return {a: c for a, c in context.items() if known(a.partition("~")[0]) or a in clock}


def plausible(context: dict[str, int], clock: Mapping[str, int]) -> dict[str, int]:
    """Cap entries of a client's context that claim absurdly more than this replica has seen.

    A real context can be ahead of the coordinator only by the writes still on their way to it. A forged
    one claiming an actor's counter near the ceiling would make the key unwritable through that actor
    (its next dot would overflow); such an entry is cut back to what this replica saw. Claiming less is
    safe: at worst a sibling stays.
    """
    if not context or all(c - clock.get(a, 0) <= MAX_UNSEEN_WRITES for a, c in context.items()):
        return context
    seen = {a: clock.get(a, 0) for a in context}
    capped = {a: c if c - seen[a] <= MAX_UNSEEN_WRITES else seen[a] for a, c in context.items()}
    return {a: c for a, c in capped.items() if c > 0}
