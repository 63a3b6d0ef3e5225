"""The order in which one turn's effects leave a node: the durability promise, written once.

Theory of operation
-------------------
A turn of a node is: hand the core what arrived, run its timers, then carry out the effects it queued.
Carrying out has one rule that every acknowledgement depends on: **a reply leaves only after the flush
(group commit) that makes what it acknowledges durable**. :func:`plan_turn` turns a turn's effects into
three groups around that one flush:

1. ``before`` — requests to peers, one batch per peer. A request promises nothing, so it leaves while
   the local copy is being synced. A dot it carries that this disk then loses in a crash is never minted
   again: a node that did not stop cleanly takes a new actor id (:mod:`zkv.core.incarnation`).
2. ``early`` — replies marked :attr:`~zkv.core.effects.Reply.before_flush`: a write decided by its
   replicas' acknowledgements, whose local copy an earlier flush synced, promises nothing this flush adds.
3. the flush — always one, after ``before`` and ``early`` and before ``after``.
4. ``after`` — every other reply and acknowledgement, one batch per route.

**Replies ride with requests.** When the turn wrote nothing (``wrote`` false: nothing waits for the
flush), a reply to a peer that also gets requests this turn goes in the same batch as the requests, over
this node's request connection to it: one message per peer instead of two. The peer takes requests and
replies alike from a node. A reply riding along is lost if that connection is down, as one on the reply
socket would be.

Publishes (heartbeats), connects and the stop are carried out when the plan is (their order against the
sends does not matter: they promise nothing). The runtime (:mod:`zkv.node.runtime`), the simulator
(:mod:`zkv.sim.cluster`) and the unit tests' fake network all execute this one plan, so the simulator's
sweep covers every path the runtime takes. A failed send may make the core queue more effects (an error
reply); drivers plan and carry those out too, up to :data:`CARRY_OUT_PASSES` times per turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zkv.core.effects import Connect, Effect, Publish, Reply, Send, Stop

CARRY_OUT_PASSES = 4  # send failures may queue replies (unavailable); they get this many passes in all


@dataclass(slots=True)
class TurnPlan:
    """What leaves before the flush, and what after it (see the module's theory of operation)."""

    before: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # peer -> requests (+ replies)
    early: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)  # route -> before_flush replies
    after: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)  # route -> replies after the flush
    publishes: list[dict[str, Any]] = field(default_factory=list)
    connects: list[Connect] = field(default_factory=list)
    stop: bool = False


def plan_turn(effects: Iterable[Effect], wrote: bool, peer_of: Mapping[bytes, str]) -> TurnPlan:
    """Group a turn's ``effects`` around its one flush.

    ``wrote``: the turn left something for the flush to make durable (the store or the hints need a
    flush); ``peer_of``: the routes that are peers' names, mapped to the peer (a reply to such a route may
    ride with the requests to that peer).
    """
    plan = TurnPlan()
    before, early, after = plan.before, plan.early, plan.after
    for effect in effects:
        if isinstance(effect, Send):
            batch = before.get(effect.node)
            if batch is None:
                before[effect.node] = [effect.msg]
            else:
                batch.append(effect.msg)
        elif isinstance(effect, Reply):
            replies = early if effect.before_flush else after
            batch = replies.get(effect.route)
            if batch is None:
                replies[effect.route] = [effect.msg]
            else:
                batch.append(effect.msg)
        elif isinstance(effect, Publish):
            plan.publishes.append(effect.msg)
        elif isinstance(effect, Connect):
            plan.connects.append(effect)
        elif isinstance(effect, Stop):
            plan.stop = True
    if before and after and not wrote:
        for route in [r for r in after if peer_of.get(r) in before]:
            before[peer_of[route]] += after.pop(route)
    return plan
