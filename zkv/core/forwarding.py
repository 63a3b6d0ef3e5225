"""Forwarding: a node that holds no replica of a key hands the client's request to one that does.

The request goes to a live replica, or to the next one when it cannot be reached; the answer comes back
as ``fwd_reply`` and is passed on to the client unchanged, so a client that does not route by key (or
routes by an old ring) costs one hop more, never an error. A forwarded request is not forwarded again:
a ring that changed while it travelled gets ``unavailable`` (retry), not a loop. A coordinator whose disk
refuses writes, or whose storage cannot be read, hands its request over the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zkv.core.effects import Effect, Send
from zkv.core.pending import Origin, Pending, PendingForward
from zkv.core.quorum import required
from zkv.core.state import NodeState
from zkv.errors import StorageUnavailable, Unavailable

Track = Callable[[Pending, float], int]  # enter a request in the pending table (with its deadline)


class Forwarder:
    """The forwarding decisions of one coordinator; its requests live in the coordinator's table."""

    def __init__(self, state: NodeState, track: Track) -> None:
        self.state = state
        self.settings = state.settings
        self.name = state.name
        self._track = track
        self._out: list[Effect] = state.effects

    def forwarded(
        self,
        origin: Origin,
        raw: dict[str, Any],
        op: str,
        consistency: str | None,
        preference: tuple[str, ...],
        live: tuple[str, ...],
        need: int,
        now: float,
        may_forward: bool,
    ) -> bool:
        """Hand the request to a replica when this node holds none; True when it did."""
        if self.name in preference:
            return False
        if not may_forward:
            raise Unavailable("ring changed while the request was forwarded; retry", required=need, alive=0)
        self.forward(origin, raw, op, consistency, live, now)
        return True

    def to_writable(
        self,
        origin: Origin,
        raw: dict[str, Any],
        op: str,
        consistency: str | None,
        live: tuple[str, ...],
        now: float,
        may_forward: bool,
    ) -> None:
        """This node's disk refuses writes: a live replica whose disk takes them coordinates instead (a
        coordinator must store the dot it mints, or it could mint it again); the refusal when none can."""
        others = tuple(n for n in live if n != self.name and n not in self.state.peer_disk)
        if not (may_forward and others):
            raise self.state.storage_health.refusal()
        self.forward(origin, raw, op, consistency, others, now)

    def hand_over(
        self, origin: Origin, raw: dict[str, Any], request: Any, live: tuple[str, ...], now: float
    ) -> bool:
        """This coordinator's storage cannot be read (its Redis is gone; nothing was sent yet): another
        live replica whose storage works coordinates instead. False when there is none."""
        others = tuple(n for n in live if n != self.name and n not in self.state.peer_disk)
        if not others:
            return False
        self.state.stats.errors[StorageUnavailable.code] += 1
        self.forward(origin, raw, request.op, request.consistency, others, now)
        return True

    def forward(
        self,
        origin: Origin,
        raw: dict[str, Any],
        op: str,
        consistency: str | None,
        live: tuple[str, ...],
        now: float,
    ) -> None:
        """Hand the request to one of ``live`` (the next one if it cannot be reached)."""
        if not live:
            need = required(
                consistency or self.settings.write_consistency, self.state.ring.replication_factor
            )
            raise Unavailable(required=need, alive=0)
        deadline = now + self.settings.request_timeout_s
        fwd = PendingForward(origin, {**raw, "id": origin.rid}, op, consistency, list(live), now, deadline)
        iid = self._track(fwd, deadline)
        self.send(iid, fwd)

    def send(self, iid: int, fwd: PendingForward) -> None:
        """Send the request to its next candidate."""
        target = fwd.candidates.pop(0)
        self.state.stats.forwarded += 1
        self._out.append(Send(target, {"op": "fwd", "id": iid, "req": fwd.request}))
