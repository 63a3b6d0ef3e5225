"""When a node takes in the heartbeats waiting on its SUB: in batches, not a wake-up each (issue #20).

An idle node's CPU is a fixed cost per wake-up of its loop, so heartbeats are taken at most every
``batch_s`` (a tenth of the heartbeat interval: phi's arrival times move by little). Past a full mesh
every node publishes on the wall clock's grid (:mod:`zkv.core.membership`), so its monitored peers'
heartbeats arrive over the few milliseconds after its own: a node that just published waits ``batch_s``
and takes them all in one turn. Meanwhile the SUB is muted in the poller (:meth:`SocketPoller.mute`).
"""

from __future__ import annotations

import math

import zmq

from zkv.node.sockets import SocketPoller


class GossipIntake:
    """The batching of one node's SUB input (the runtime asks it each turn)."""

    def __init__(self, poller: SocketPoller, sub: zmq.Socket, batch_s: float) -> None:
        self._poller, self._sub, self._batch_s = poller, sub, batch_s
        self._held = False  # the SUB is muted until ``_due``
        self._due = 0.0

    def deadline(self) -> float:
        """When the loop must wake to take the held heartbeats in (inf: none held)."""
        return self._due if self._held else math.inf

    def sort(self, ready: list[zmq.Socket], now: float) -> bool:
        """Take the SUB out of ``ready`` while its batch is not due, put it in once it is; False when
        nothing else woke this turn (the turn can be skipped)."""
        sub, poller = self._sub, self._poller
        if self._held:
            if now >= self._due:  # the batch's time: take every heartbeat that came meanwhile
                poller.unmute(sub)
                self._held = False
                ready.append(sub)
        elif sub in ready and now < self._due:  # heartbeats only just taken: wait for more
            ready.remove(sub)
            poller.mute(sub)
            self._held = True
            if not ready:
                return False
        if sub in ready:
            self._due = now + self._batch_s
        return True

    def published(self, now: float) -> None:
        """This node just published its heartbeat: its peers' follow within milliseconds, take them in
        one batch a little later."""
        if not self._held:
            self._poller.mute(self._sub)
            self._held, self._due = True, now + self._batch_s
