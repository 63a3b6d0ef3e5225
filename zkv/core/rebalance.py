"""Join and leave as one node drives them: announce, stream, change status, stop.

A mixin of :class:`zkv.core.nodecore.NodeCore` (whose membership, rings, store and effects it uses); the
batches themselves are :mod:`zkv.core.transfer`. The theory of operation is there.
"""

from __future__ import annotations

import logging
from typing import Any

from zkv.core.effects import Reply, Send, Stop
from zkv.core.membership import JOINING, LEAVING, NORMAL, REMOVED
from zkv.core.transfer import JoinStream, LeaveStream, decode_items

log = logging.getLogger("zkv.core.nodecore")


class RebalanceMixin:
    """The joining and leaving side of a node (mixed into NodeCore)."""

    join_stream: JoinStream | None
    _join_after: float | None
    leave_stream: LeaveStream | None

    def on_join(self, route: bytes, msg: dict[str, Any], now: float) -> None:
        """A node announces that it joins: take it into the view (joining) and answer with the view."""
        entry = msg.get("member")
        learned = self.membership.merge_view([entry]) if isinstance(entry, list) else []
        name = entry[0] if isinstance(entry, list) and entry else None
        known = isinstance(name, str) and self.membership.member(name) is not None
        if not learned and not known:
            self._effects.append(Reply(route, {"op": "join_ok", "id": msg.get("id"), "ok": False}))
            return
        self._membership_changed()
        view = [m.to_wire() for m in self.membership.members()]
        self._effects.append(Reply(route, {"op": "join_ok", "id": msg.get("id"), "ok": True, "view": view}))

    def on_join_ok(self, msg: dict[str, Any], now: float) -> None:
        """A seed took us in: learn the cluster, and stream once every node had time to hear we join."""
        view = msg.get("view")
        if not msg.get("ok") or not isinstance(view, list):
            return
        self.membership.merge_view(view)
        self._membership_changed()
        if self.membership.status_of(self.name) == JOINING and self._join_after is None:
            self._join_after = now + 5 * self.settings.heartbeat_interval

    def announcement(self) -> dict[str, Any]:
        """What a joining node sends its seeds."""
        return {"op": "join", "id": 0, "member": self.membership.member(self.name).to_wire()}

    @property
    def joined(self) -> bool:
        return self._join_after is not None or self.membership.status_of(self.name) != JOINING

    def _start_leaving(self) -> None:
        if self.membership.status_of(self.name) != NORMAL:
            return
        self.membership.set_status(LEAVING)
        self.membership.heartbeat_now()
        self._membership_changed()
        self.leave_stream = LeaveStream(
            sorted(self.store.keys()), self.settings.request_timeout, batch_bytes=self.source.batch_bytes
        )
        log.warning("leaving the cluster: handing %d keys to their new owners", len(self.leave_stream.keys))

    def _advance_transfers(self, now: float) -> None:
        status = self.membership.status_of(self.name)
        is_up = lambda n: self.membership.is_up(n, now)  # noqa: E731
        if status == JOINING and self._join_after is not None and now >= self._join_after:
            if self.join_stream is None:
                sources = [n for n in self.ring.members if n != self.name]
                self.join_stream = JoinStream(sources, self.settings.request_timeout)
                log.info("joining: streaming the ranges this node will own from %s", ", ".join(sources))
            self.join_stream.drop_departed(self.ring.members)
            for source, msg in self.join_stream.requests(now, is_up, self._ids):
                self._effects.append(Send(source, msg))
            if self.join_stream.complete:
                log.info("joined: %d keys streamed; now serving", self.join_stream.keys_received)
                self.membership.set_status(NORMAL)
                self.membership.heartbeat_now()
                self._membership_changed()
        if status == LEAVING and self.leave_stream is not None:
            pushes = self.leave_stream.pushes(now, self.ring, self.future_ring, self.store.get, self._ids)
            for target, msg in pushes:
                self._effects.append(Send(target, msg))
            if self.leave_stream.complete:
                log.warning("left: %d keys handed over; stopping", self.leave_stream.keys_sent)
                self.membership.set_status(REMOVED)
                self.membership.heartbeat_now()
                self._membership_changed()
                self._stop_at = now + 5 * self.settings.heartbeat_interval
        if self._stop_at is not None and now >= self._stop_at:
            self._effects.append(Stop())
            self._stop_at = None

    def _on_transfer(self, peer: str, op: str, msg: dict[str, Any], now: float) -> None:
        if op == "stream":
            reply = self.source.on_stream(peer, msg, self.store.keys, self.store.get, self.future_ring)
            self._effects.append(Reply(peer.encode(), reply))
        elif op == "stream_ok":
            if self.join_stream is not None and self.join_stream.owns(msg.get("id")):
                for key, state in self.join_stream.on_stream_ok(peer, msg):
                    self._merge_local(key, state)
        elif op == "stream_push":
            for key, state in decode_items(msg):
                self._merge_local(key, state)
            self.stats.keys_streamed_in += len(msg["items"])
            self._ack_write(peer.encode(), {"op": "stream_push_ok", "id": msg.get("id")})
        elif op == "stream_push_ok" and self.leave_stream and self.leave_stream.owns(msg.get("id")):
            self.leave_stream.on_push_ok(msg["id"])
