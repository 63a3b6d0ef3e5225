"""Who is in the cluster and who is up, from heartbeats.

Theory of operation
-------------------
Every node publishes a heartbeat each ``heartbeat_interval`` (name, generation, counter, a few load
figures). :class:`Membership` records when each peer's heartbeat last *arrived* (local ``now``, never the
sender's clock) and calls a peer down once nothing arrived for ``failure_timeout``, or at once when the
runtime reports that the request connection to it dropped (``on_connection``). A heartbeat with a
higher generation means the peer restarted. At start every peer gets one ``failure_timeout`` of grace
(counted as heard at start) so the first requests are not refused before the first heartbeats land.

A later issue replaces the fixed timeout with phi-accrual and adds gossip of whole views; the surface
(``on_heartbeat``, ``is_up``, ``peers``) stays.

Pure: time arrives as ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UP = "up"
DOWN = "down"


@dataclass(slots=True)
class PeerState:
    """What this node knows of one member."""

    name: str
    address: str
    gossip: str
    generation: int = 0
    heartbeat: int = 0
    last_heard: float = 0.0
    keys: int = -1  # as the peer last reported; -1 unknown
    connected: bool | None = None  # the runtime's word on the request connection; None: not told


@dataclass(frozen=True, slots=True)
class PeerView:
    """A member as this node sees it at one moment (what ``nodes`` returns)."""

    name: str
    address: str
    gossip: str
    status: str
    generation: int
    heartbeat_age: float | None
    keys: int


class Membership:
    """Liveness of the members listed at start, driven by heartbeats."""

    def __init__(
        self,
        me: str,
        members: dict[str, tuple[str, str]],
        generation: int,
        heartbeat_interval: float,
        failure_timeout: float,
        now: float,
    ) -> None:
        self.me = me
        self.generation = generation
        self.heartbeat_interval = heartbeat_interval
        self.failure_timeout = failure_timeout
        self._peers = {
            name: PeerState(name, address, gossip, last_heard=now)
            for name, (address, gossip) in members.items()
        }
        self._peers[me].generation = generation
        self._counter = 0
        self._next_heartbeat = now

    def is_up(self, name: str, now: float) -> bool:
        if name == self.me:
            return True
        peer = self._peers.get(name)
        return (
            peer is not None and peer.connected is not False and now - peer.last_heard <= self.failure_timeout
        )

    def on_connection(self, name: str, connected: bool) -> None:
        """The runtime saw the request connection to ``name`` come up or drop.

        A dropped connection makes the peer down at once (a crashed process closes its sockets), which
        lets a request fail fast with ``unavailable`` instead of waiting for heartbeats to stop.
        """
        peer = self._peers.get(name)
        if peer is not None and name != self.me:
            peer.connected = connected

    def on_heartbeat(self, msg: dict[str, Any], now: float) -> bool:
        """Record a heartbeat; returns True when the peer restarted (higher generation)."""
        peer = self._peers.get(msg.get("node"))  # type: ignore[arg-type]
        gen, counter = msg.get("gen"), msg.get("hb")
        if peer is None or peer.name == self.me or type(gen) is not int or type(counter) is not int:
            return False
        if gen < peer.generation or (gen == peer.generation and counter <= peer.heartbeat):
            return False  # stale or duplicate
        restarted = gen > peer.generation and peer.generation != 0
        peer.generation, peer.heartbeat, peer.last_heard = gen, counter, now
        keys = msg.get("keys")
        if type(keys) is int:
            peer.keys = keys
        return restarted

    def heartbeat_due(self, now: float) -> bool:
        return now >= self._next_heartbeat

    def make_heartbeat(self, now: float, keys: int) -> dict[str, Any]:
        """The next heartbeat to publish; schedules the one after."""
        self._counter += 1
        self._next_heartbeat = now + self.heartbeat_interval
        return {"op": "hb", "node": self.me, "gen": self.generation, "hb": self._counter, "keys": keys}

    def next_wakeup(self) -> float:
        return self._next_heartbeat

    def peers(self) -> list[str]:
        return [name for name in self._peers if name != self.me]

    def view(self, now: float, my_keys: int) -> list[PeerView]:
        out = []
        for name, p in sorted(self._peers.items()):
            me = name == self.me
            out.append(
                PeerView(
                    name=name,
                    address=p.address,
                    gossip=p.gossip,
                    status=UP if self.is_up(name, now) else DOWN,
                    generation=self.generation if me else p.generation,
                    heartbeat_age=0.0 if me else (now - p.last_heard if p.heartbeat else None),
                    keys=my_keys if me else p.keys,
                )
            )
        return out
