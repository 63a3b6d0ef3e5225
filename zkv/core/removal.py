"""Removing a dead node for good (``removenode``) and re-replicating what it held.

Theory of operation
-------------------
A node that is gone for good (its disk lost, the machine retired) never leaves by itself, so the
ring keeps it and every key it replicated stays one copy short. An operator's ``removenode NAME``,
sent to any live node, is checked here (:func:`check_removable`: the name is a member, not this node,
not seen up by this node, not the last member of the ring) and then decided by
:meth:`zkv.core.membership.Membership.remove`: the entry turns ``removed``, which gossip spreads and
which is final for that name (only a fresh join brings the name back).

Every node takes it in the same way, whether it was asked or heard it through gossip: the ring drops
the member, so each range it replicated gains one replica (the next node on the ring). Each node then
pulls, from every other ring member, the keys **it** gained: a ``stream`` request like a join's, with
``removed`` naming the member, which the source answers with the keys whose preference list without
that member holds the requester and whose list with it did not (:func:`gained_by`; the source builds
both rings itself, so it need not have heard of the removal yet). Merging what every source sends
gives the new replica the merge of every surviving copy; when every source said it is done, each key
the removed node held is back at N copies (or at as many as the ring has members).

A node that restarts hears of the removal through gossip and pulls again: merging makes repeats
harmless. Progress is in ``status`` → ``transfer.removal`` and in the removed member's row of ``nodes``.

Pure: rings, stores and time are arguments; this module returns messages.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from zkv.core.membership import JOINING, LEAVING, REMOVED, Membership
from zkv.core.ring import Ring, ring_of
from zkv.core.transfer import JoinStream
from zkv.errors import InvalidRequest

log = logging.getLogger("zkv.core.removal")


def check_removable(membership: Membership, ring: Ring, name: Any, now: float) -> bool:
    """Raise :class:`InvalidRequest` when ``name`` may not be removed; False when it already was."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest("removenode needs 'name': the member to remove")
    member = membership.member(name)
    if member is None:
        raise InvalidRequest(f"no member named {name!r} in this cluster")
    if member.status == REMOVED:
        return False
    if name == membership.me:
        raise InvalidRequest(f"{name} is the node asked: a live node leaves with 'leave', not removenode")
    if membership.is_up(name, now):
        raise InvalidRequest(
            f"{name} is up (seen by {membership.me}): removenode is for a node gone for good; "
            "stop it first, or make it leave"
        )
    if not [m for m in ring.members if m != name]:
        raise InvalidRequest(f"{name} is the last node of the ring: removing it would leave no replica")
    return True


def ring_without(ring: Ring, membership: Membership, removed: str, with_it: bool) -> Ring:
    """The ring of ``ring``'s members with ``removed`` taken out, or (``with_it``) put in."""
    members = {n: (m.vnodes if (m := membership.member(n)) else 0) or membership.vnodes for n in ring.members}
    members.pop(removed, None)
    if with_it:
        gone = membership.member(removed)
        members[removed] = (gone.vnodes if gone else 0) or membership.vnodes
    return ring_of(tuple(sorted(members.items())), ring.replication_factor)


def gained_by(requester: str, before: Ring, after: Ring) -> Callable[[bytes], bool]:
    """Does ``requester`` replicate the key once the member is gone, and did not before?"""
    return lambda key: (
        requester in after.preference_list(key) and requester not in before.preference_list(key)
    )


class Removals:
    """This node's pulls of the ranges it gained from removed members, one stream per member."""

    def __init__(self, name: str, membership: Membership, timeout: float) -> None:
        self.name = name
        self.membership = membership
        self.timeout = timeout
        self.streams: dict[str, JoinStream] = {}
        self.finished: dict[str, int] = {}  # member -> keys received, for status
        self.keys_left: dict[tuple[str, str], int] = {}  # (member, source) -> keys the source has left
        self._statuses = {m.name: m.status for m in membership.members()}

    def on_members_changed(self, ring: Ring, settled: bool) -> None:
        """Start a pull for each ring member that turned removed without leaving (a ``removenode``)."""
        for member in self.membership.members():
            before = self._statuses.get(member.name)
            self._statuses[member.name] = member.status
            if member.status != REMOVED or before in (None, REMOVED, LEAVING, JOINING):
                continue  # a leave hands its keys over itself; a joining node owned nothing yet
            if not settled or member.name in self.streams:
                continue
            sources = [n for n in ring.members if n not in (self.name, member.name)]
            self.streams[member.name] = JoinStream(sources, self.timeout)
            self.finished.pop(member.name, None)
            log.warning(
                "%s was removed: pulling the ranges this node gained from %s", member.name, ", ".join(sources)
            )

    def requests(
        self, now: float, ring: Ring, is_up: Callable[[str], bool], ids: itertools.count
    ) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for removed, stream in list(self.streams.items()):
            stream.drop_departed(ring.members)
            for source, msg in stream.requests(now, is_up, ids):
                msg["removed"] = removed
                out.append((source, msg))
            if stream.complete:
                del self.streams[removed]
                self.finished[removed] = stream.keys_received
                log.warning("%s's ranges re-replicated here: %d keys pulled", removed, stream.keys_received)
        return out

    def owner(self, rid: Any) -> JoinStream | None:
        return next((s for s in self.streams.values() if s.owns(rid)), None)

    def on_stream_ok(self, source: str, msg: dict[str, Any]) -> list[Any] | None:
        """The batch's items to merge, or None when the answer is not one of these streams'."""
        for removed, stream in self.streams.items():
            if stream.owns(msg.get("id")):
                left = msg.get("left")
                if type(left) is int:
                    self.keys_left[(removed, source)] = left
                return stream.on_stream_ok(source, msg)
        return None

    def on_failed(self, rid: Any) -> None:
        stream = self.owner(rid)
        if stream is not None:
            stream.on_failed(rid)

    def statistics(self) -> dict[str, dict[str, Any]]:
        """Per removed member: ``done``, ``sources_left``, ``keys_received``, ``keys_left`` (to scan)."""
        out: dict[str, dict[str, Any]] = {}
        for removed, keys in self.finished.items():
            out[removed] = {"done": True, "sources_left": 0, "keys_received": keys, "keys_left": 0}
        for removed, stream in self.streams.items():
            left = [s for s in stream.sources if s not in stream.done]
            unscanned = sum(self.keys_left.get((removed, s), 0) for s in left)
            out[removed] = {
                "done": False,
                "sources_left": len(left),
                "keys_received": stream.keys_received,
                "keys_left": unscanned,
            }
        return out
