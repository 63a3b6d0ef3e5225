"""Join and leave as one node drives them: announce, stream, change status, stop.

Theory of operation
-------------------
A node's own status moves along one path, and :data:`TRANSITIONS` is that path, written once:

    joining ──(ranges streamed in)──▶ normal ──(``leave``)──▶ leaving ──(keys handed over)──▶ removed

* **Joining.** A joining node announces itself to its seeds (``join``) until one takes it in (``join_ok``
  with the view); it then waits a few heartbeats, so every node has heard it joins and sends it the
  writes of the ranges it will own, streams those ranges from their current owners, and turns normal.
* **Leaving.** A leaving node hands every key it holds to the key's future owners (pushes, acknowledged),
  including the writes that arrive while it does, turns removed, and stops a few heartbeats later, once
  the others have heard it.

The batches themselves are :mod:`zkv.core.transfer`; this module decides when they run and what the
node's status becomes. Each status change is gossiped at once. A member removed for good by an
operator (``removenode``) has its ranges pulled by the nodes that gained them: :mod:`zkv.core.removal`,
driven from here; a node that hears it was removed itself stops (it must join again).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from zkv.core.cleanup import Cleanup, answer_check
from zkv.core.effects import Reply, Send, Stop
from zkv.core.membership import JOINING, LEAVING, NORMAL, REMOVED
from zkv.core.paxos import absorb
from zkv.core.removal import Removals, check_removable
from zkv.core.replica import BACKGROUND_TICK_S, Replica, moving_keys
from zkv.core.state import NodeState
from zkv.core.transfer import JoinStream, LeaveStream, paxos_items

log = logging.getLogger("zkv.core.rebalance")

TRANSITIONS = frozenset({(JOINING, NORMAL), (NORMAL, LEAVING), (LEAVING, REMOVED)})  # (from, to)
SETTLE_HEARTBEATS = 5  # heartbeats to wait before streaming (joining) and before stopping (removed)
ANNOUNCE_INTERVAL_S = 1.0  # a joining node tells its seeds again this often until one takes it in


class Rebalance:
    """The joining and leaving side of a node."""

    def __init__(self, state: NodeState, replica: Replica, membership_changed: Callable[[], None]) -> None:
        self.state = state
        self.replica = replica
        self.membership = state.membership
        self._membership_changed = membership_changed
        self._out = state.effects
        self.join_stream: JoinStream | None = None
        self.leave_stream: LeaveStream | None = None
        self._join_after: float | None = None
        self._stop_at: float | None = None
        self._ticked = -math.inf  # when on_tick last ran
        self.next_announce = 0.0  # when a joining node announces itself to its seeds next
        self.removals = Removals(state.name, self.membership, state.settings.request_timeout_s)
        self.refused = False  # peers said this node was removed: it stopped (zkv.core.membership)
        self.cleanup: Cleanup | None = None  # the last ``cleanup`` pass (zkv.core.cleanup)

    @property
    def status(self) -> str | None:
        return self.membership.status_of(self.state.name)

    def _become(self, status: str) -> None:
        """The node's own status changes: only along :data:`TRANSITIONS`, gossiped at once."""
        assert (self.status, status) in TRANSITIONS, f"{self.status} -> {status}"
        self.membership.set_status(status)
        self.membership.heartbeat_now()
        self._membership_changed()

    # ------------------------------------------------------------------------------------------ joining

    def on_join(self, route: bytes, msg: dict[str, Any], now: float) -> None:
        """A node announces that it joins: take it into the view (joining) and answer with the view."""
        entry = msg.get("member")
        learned = self.membership.merge_view([entry], relay=True) if isinstance(entry, list) else []
        name = entry[0] if isinstance(entry, list) and entry else None
        known = isinstance(name, str) and self.membership.member(name) is not None
        if not learned and not known:
            self._out.append(Reply(route, {"op": "join_ok", "id": msg.get("id"), "ok": False}))
            return
        self._membership_changed()
        view = [m.to_wire() for m in self.membership.members()]
        self._out.append(Reply(route, {"op": "join_ok", "id": msg.get("id"), "ok": True, "view": view}))

    def on_join_ok(self, msg: dict[str, Any], now: float) -> None:
        """A seed took us in: learn the cluster, and stream once every node had time to hear we join."""
        view = msg.get("view")
        if not msg.get("ok") or not isinstance(view, list):
            return
        self.membership.merge_view(view)
        self._membership_changed()
        if self.status == JOINING and self._join_after is None:
            self._join_after = now + SETTLE_HEARTBEATS * self.state.settings.heartbeat_interval_s

    def announcement(self) -> dict[str, Any]:
        """What a joining node sends its seeds."""
        me = self.membership.member(self.state.name)
        assert me is not None
        return {"op": "join", "id": 0, "member": me.to_wire()}

    def announcement_due(self, now: float) -> dict[str, Any] | None:
        """The announcement to send every seed now, or None (taken in already, or sent less than
        :data:`ANNOUNCE_INTERVAL_S` ago)."""
        if self.joined or now < self.next_announce:
            return None
        self.next_announce = now + ANNOUNCE_INTERVAL_S
        return self.announcement()

    @property
    def joined(self) -> bool:
        """A seed took this node in (or it never joined): it stops announcing itself."""
        return self._join_after is not None or self.status != JOINING

    def on_stream_ok(self, peer: str, msg: dict[str, Any], now: float) -> None:
        if self.join_stream is not None and self.join_stream.owns(msg.get("id")):
            items = self.join_stream.on_stream_ok(peer, msg)
        else:
            removal = self.removals.on_stream_ok(peer, msg)  # a removed member's ranges (removenode)
            if removal is None:
                return
            items = removal
        for key, state in items:
            self.replica.merge_local(key, state)
        try:
            found = [] if msg.get("wait") else paxos_items(msg)
        except ValueError:
            found = []  # a corrupt batch: asked again (JoinStream.on_stream_ok)
        for key, blob in found:
            absorb(self.state.store, key, blob)

    # ------------------------------------------------------------------------------------------ removing

    def remove_node(self, name: Any, now: float) -> dict[str, Any]:
        """An operator's ``removenode``: checked, then decided by the membership and gossiped."""
        removing = check_removable(self.membership, self.state.ring, name, now)
        if removing:
            log.warning("removing %s from the cluster (removenode): its ranges go to the others", name)
            self.membership.remove(name)
            self._membership_changed()
        return {"removed": name, "already": not removing}

    # ------------------------------------------------------------------------------------------ cleanup

    def start_cleanup(self, now: float) -> dict[str, Any]:
        """An operator's ``cleanup``: walk the keys for ones this node no longer replicates (one pass at
        a time: asked while one runs, the answer is its progress)."""
        if self.cleanup is None or self.cleanup.done:
            store = self.state.store
            self.cleanup = Cleanup(
                self.state.settings.request_timeout_s, iter(sorted(store.keys())), len(store)
            )
        return self.cleanup.statistics()

    def on_ccheck(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """A cleaning node asks whether this owner holds what it holds of some keys."""
        self._out.append(
            Reply(peer.encode(), answer_check(msg.get("id"), msg.get("keys"), self.state.store.get))
        )

    def on_ccheck_ok(self, peer: str, msg: dict[str, Any], now: float) -> None:
        if self.cleanup is not None and self.cleanup.on_answer(msg.get("id"), msg.get("clocks")):
            self._settle_cleanup()

    def _settle_cleanup(self) -> None:
        assert self.cleanup is not None
        if not self.replica.health.writable:
            return  # a delete is a write: judged once the disk takes writes again (at the deadline)
        store, purge = self.state.store, self.replica.purge

        def drop(key: bytes) -> None:
            store.delete(key)
            purge.forget(key)

        self.cleanup.settle(store.get, drop)

    def members_changed(self) -> None:
        """The view changed: start pulling the ranges of members removed since (``removenode``)."""
        self.removals.on_members_changed(self.state.ring, self.status == NORMAL)

    # ------------------------------------------------------------------------------------------ leaving

    def start_leaving(self) -> None:
        """An operator's ``leave``: hand every key over, then stop (a node not normal ignores it)."""
        if self.status != NORMAL:
            return
        self._become(LEAVING)
        store = self.state.store
        timeout = self.state.settings.request_timeout_s
        self.leave_stream = LeaveStream(
            sorted(moving_keys(store)), timeout, batch_bytes=self.replica.source.batch_bytes
        )
        self.replica.on_write = self.leave_stream.touch
        log.warning("leaving the cluster: handing %d keys to their new owners", len(self.leave_stream.keys))

    def on_stream_push_ok(self, peer: str, msg: dict[str, Any], now: float) -> None:
        if self.leave_stream and self.leave_stream.owns(msg.get("id")):
            self.leave_stream.on_push_ok(msg["id"])

    # ------------------------------------------------------------------------------------------ driving

    def on_send_failed(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """A ``stream`` or ``stream_push`` of this node's could not be sent: it is asked again later."""
        if msg.get("op") == "ccheck" and self.cleanup is not None:
            self.cleanup.on_failed(msg.get("id"))
        elif msg.get("op") == "stream" and "removed" in msg:
            self.removals.on_failed(msg.get("id"))
        elif msg.get("op") == "stream" and self.join_stream is not None:
            self.join_stream.on_failed(msg.get("id"))
        elif msg.get("op") == "stream_push" and self.leave_stream is not None:
            self.leave_stream.on_failed(msg.get("id"))

    def next_wakeup(self) -> float:
        """A tick every :data:`BACKGROUND_TICK_S` while a join, leave, removal or cleanup is under way (their
        requests retry on their own deadlines, looked at per tick), the stop of a removed node; else inf."""
        wake = self._stop_at if self._stop_at is not None else math.inf
        status = self.status
        if (
            (status == JOINING and self._join_after is not None)
            or (status == LEAVING and self.leave_stream is not None)
            or self.removals.streams
            or (self.cleanup is not None and not self.cleanup.done)
            or (self.membership.removed_by_peers and not self.refused)
        ):
            wake = min(wake, self._ticked + BACKGROUND_TICK_S)
        return wake

    def on_tick(self, now: float) -> None:
        self._ticked = now
        status = self.status
        membership = self.membership
        ring = self.state.ring
        is_up = lambda n: membership.is_up(n, now)  # noqa: E731
        if status == JOINING and self._join_after is not None and now >= self._join_after:
            if self.join_stream is None:
                sources = [n for n in ring.members if n != self.state.name]
                self.join_stream = JoinStream(sources, self.state.settings.request_timeout_s)
                log.info("joining: streaming the ranges this node will own from %s", ", ".join(sources))
            self.join_stream.drop_departed(ring.members)
            for source, msg in self.join_stream.requests(now, is_up, self.state.ids):
                self._out.append(Send(source, msg))
            if self.join_stream.complete:
                log.info("joined: %d keys streamed; now serving", self.join_stream.keys_received)
                self._become(NORMAL)
        if status == LEAVING and self.leave_stream is not None:
            store = self.state.store
            pushes = self.leave_stream.pushes(
                now, self.state.ring, self.state.future_ring, store.get, self.state.ids, store.paxos_get
            )
            for target, msg in pushes:
                self._out.append(Send(target, msg))
            if self.leave_stream.complete:
                log.warning("left: %d keys handed over; stopping", self.leave_stream.keys_sent)
                self._become(REMOVED)
                self._stop_at = now + SETTLE_HEARTBEATS * self.state.settings.heartbeat_interval_s
        if self.removals.streams:
            for source, msg in self.removals.requests(now, ring, is_up, self.state.ids):
                self._out.append(Send(source, msg))
        cleanup = self.cleanup
        if cleanup is not None and not cleanup.done:
            if cleanup.timed_out(now):
                self._settle_cleanup()
            state = self.state
            for owner, msg in cleanup.next_batch(now, state.name, ring, state.future_ring, state.ids):
                self._out.append(Send(owner, msg))
        if self.membership.removed_by_peers and not self.refused:
            self.refused = True
            log.error(
                "%s was removed from the cluster (removenode) while it was gone: stopping. To bring it "
                "back, start it as a new member: an empty data dir and --join",
                self.state.name,
            )
            self._out.append(Stop())
        if self._stop_at is not None and now >= self._stop_at:
            self._out.append(Stop())
            self._stop_at = None
