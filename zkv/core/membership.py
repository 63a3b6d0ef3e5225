"""Who is in the cluster, in what state, and who is up: gossip views and phi-accrual failure detection.

Theory of operation
-------------------
Every node publishes a heartbeat each ``heartbeat_interval``: its own entry (name, generation, a counter)
plus its whole membership **view**, one entry per member: ``[name, address, gossip, generation, version,
status, vnodes]``. Views merge entry by entry: the entry with the higher ``(generation, version)`` wins,
so news travels node to node even where a direct link is cut, a node learns of members it was never
configured with, and a restarted node (its generation is its start time) supersedes what was said of it
before. The wall clock is only a starting point: a node that hears its own name gossiped under a
generation at or above its own (its previous life, started under a clock that was ahead, or a clock set
back since) takes the next one above it at once, so a corrected clock never keeps a node out.
``status`` is what the member says of itself: ``joining``, ``normal``, ``leaving`` or ``removed``;
the ring is built from the ``normal`` and ``leaving`` members.

Liveness is local and never gossiped: each node runs a **phi-accrual** detector (Hayashibara et al.,
as in Cassandra and Akka) on the arrival times of every peer's own heartbeats. ``phi`` is how unlikely
the current silence is given the intervals seen so far, on a log10 scale; a peer is down when phi passes
``phi_threshold``, when nothing arrived for ``failure_timeout`` (a hard bound), or at once when the runtime
reports that the request connection to it dropped (``on_connection``; a crashed process closes its
sockets). At start every configured peer counts as heard at start, so the first requests are not refused
before the first heartbeats land (phi only judges a peer once it was heard: until then the hard bound
alone applies, counted from this node's start); a request connection that has not come up *yet* is not
one that dropped (``awaiting_connection``: messages to such a peer are held for ``first_connect_wait``,
not failed), which is what kept a just-started node answering ``unavailable`` for ~150 ms for ``all``.

Pure: time arrives as ``now``; nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

UP = "up"
DOWN = "down"
JOINING = "joining"
NORMAL = "normal"
LEAVING = "leaving"
REMOVED = "removed"
STATUSES = (JOINING, NORMAL, LEAVING, REMOVED)
RING_STATUSES = (NORMAL, LEAVING)

ARRIVAL_WINDOW = 100  # heartbeat intervals remembered per peer
PAUSE_INTERVALS = 3  # heartbeats a peer may miss before phi starts to climb (GC, a loaded machine)


@dataclass(slots=True)
class Member:
    """One member as gossip describes it (what every node agrees on, eventually)."""

    name: str
    address: str
    gossip: str
    generation: int = 0
    version: int = 0
    status: str = NORMAL
    vnodes: int = 0

    def to_wire(self) -> list[Any]:
        return [self.name, self.address, self.gossip, self.generation, self.version, self.status, self.vnodes]


@dataclass(slots=True)
class Detector:
    """Phi-accrual failure detector state for one peer (local to this node)."""

    last_heard: float
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=ARRIVAL_WINDOW))
    connected: bool | None = None  # the runtime's word on the request connection; None: not told
    heard_directly: bool = False
    keys: int = -1
    last_seen: tuple[int, int] = (0, 0)  # (generation, counter) of the last heartbeat heard directly

    def arrival(self, now: float) -> None:
        if self.heard_directly:
            self.intervals.append(max(0.0, now - self.last_heard))
        self.last_heard = now
        self.heard_directly = True

    def phi(self, now: float, expected_interval: float) -> float:
        """-log10 of the probability that a heartbeat is still on its way after this long a silence."""
        if self.intervals:
            mean = sum(self.intervals) / len(self.intervals)
            var = sum((x - mean) ** 2 for x in self.intervals) / len(self.intervals)
        else:
            mean, var = expected_interval, 0.0
        std = max(math.sqrt(var), expected_interval / 2)
        mean += PAUSE_INTERVALS * expected_interval
        y = (now - self.last_heard - mean) / std
        # logistic approximation of the normal CDF (as Akka's detector uses); clamp to stay finite
        e = math.exp(-y * (1.5976 + 0.070566 * y * y)) if y > -30 else math.inf
        p_later = e / (1.0 + e) if y > 0 else 1.0 - 1.0 / (1.0 + e)
        return -math.log10(max(p_later, 1e-300))


@dataclass(frozen=True, slots=True)
class PeerView:
    """A member as this node sees it at one moment (what ``nodes`` returns)."""

    name: str
    address: str
    gossip: str
    status: str  # up / down, or joining / leaving / removed when the member says so
    generation: int
    heartbeat_age: float | None
    keys: int
    phi: float


class Membership:
    """The gossip view and the failure detectors of one node."""

    def __init__(
        self,
        me: str,
        members: dict[str, tuple[str, str]],
        generation: int,
        heartbeat_interval: float,
        failure_timeout: float,
        now: float,
        phi_threshold: float = 8.0,
        vnodes: int = 64,
        status: str = NORMAL,
    ) -> None:
        self.me = me
        self.generation = generation
        self.heartbeat_interval = heartbeat_interval
        self.failure_timeout = failure_timeout
        self.phi_threshold = phi_threshold
        self.vnodes = vnodes
        self._members = {
            name: Member(name, address, gossip, vnodes=vnodes) for name, (address, gossip) in members.items()
        }
        self._members[me].generation = generation
        self._members[me].status = status
        self._detectors = {name: Detector(last_heard=now) for name in members if name != me}
        self._counter = 0
        self._next_heartbeat = now
        self._changed = True  # ring members may differ from what the caller last saw
        self._learned: list[str] = []  # members heard of through gossip, not yet connected to
        self.generation_raised = False  # gossip raised this node's generation (the caller saves it)

    # ------------------------------------------------------------------------------------------ liveness

    def is_up(self, name: str, now: float) -> bool:
        if name == self.me:
            return True
        detector = self._detectors.get(name)
        if detector is None or detector.connected is False:
            return False
        if self._members[name].status == REMOVED:
            return False
        silence = now - detector.last_heard
        if silence > self.failure_timeout:
            return False
        if silence <= self.heartbeat_interval or not detector.heard_directly:
            # never heard yet (it may start a moment after this node): no arrivals for phi to judge by,
            # so only the hard bound applies, counted from this node's start
            return True
        return detector.phi(now, self.heartbeat_interval) < self.phi_threshold

    def heard_any(self) -> bool:
        """Has a heartbeat (which carries the whole view) arrived from any peer since this node started?"""
        return any(detector.heard_directly for detector in self._detectors.values())

    def silence(self, name: str, now: float) -> float:
        """Seconds since ``name`` was last heard (0 for this node; infinite for one never heard of)."""
        if name == self.me:
            return 0.0
        detector = self._detectors.get(name)
        return math.inf if detector is None else max(0.0, now - detector.last_heard)

    def phi(self, name: str, now: float) -> float:
        detector = self._detectors.get(name)
        return 0.0 if detector is None else detector.phi(now, self.heartbeat_interval)

    def on_connection(self, name: str, connected: bool) -> None:
        """The runtime saw the request connection to ``name`` come up or drop.

        "Not connected" before the connection was ever up changes nothing: the peer may have started a
        moment after this node, and a connection being made is not one that was lost."""
        detector = self._detectors.get(name)
        if detector is not None and (connected or detector.connected is not None):
            detector.connected = connected

    def awaiting_connection(self, name: str, now: float) -> bool:
        """Is the request connection to ``name`` still to come up for the first time, with nothing saying
        the peer is down? Then a message that cannot be handed to it yet is held (for at most
        :attr:`first_connect_wait`) rather than counted as a failed replica."""
        detector = self._detectors.get(name)
        return detector is not None and detector.connected is None and self.is_up(name, now)

    @property
    def first_connect_wait(self) -> float:
        """How long a message may wait for a peer's first connection (a handshake, a reconnect tick)."""
        return min(1.0, self.failure_timeout)

    def heard_from(self, name: str, now: float) -> bool:
        """Has ``name`` proved itself: its heartbeat heard, its request connection up, and not down since?
        (Unlike :meth:`is_up`, a peer merely presumed up at start does not count: readiness uses this.)"""
        if name == self.me:
            return True
        detector = self._detectors.get(name)
        return (
            detector is not None
            and detector.heard_directly
            and detector.connected is True
            and self.is_up(name, now)
        )

    # ------------------------------------------------------------------------------------------ gossip

    def on_heartbeat(self, msg: dict[str, Any], now: float) -> bool:
        """Take a heartbeat (and the view it carries); True when its sender restarted."""
        sender, gen, counter = msg.get("node"), msg.get("gen"), msg.get("hb")
        if not isinstance(sender, str) or sender == self.me:
            return False
        if type(gen) is not int or type(counter) is not int:
            return False
        detector = self._detectors.get(sender)
        if detector is not None and (gen, counter) <= detector.last_seen:
            return False  # stale or duplicate
        view = msg.get("view")
        if isinstance(view, list):
            self.merge_view(view)
        member = self._members.get(sender)
        if member is None:
            return False  # a heartbeat without a view entry for its sender: ignore
        detector = self._detectors[sender]
        restarted = detector.last_seen[0] != 0 and gen > detector.last_seen[0]
        if restarted:  # a new process: its old arrival history says nothing about this one
            detector = self._detectors[sender] = Detector(last_heard=now, connected=detector.connected)
        detector.last_seen = (gen, counter)
        if (gen, counter) > (member.generation, member.version):
            member.generation, member.version = gen, counter
        detector.arrival(now)
        keys = msg.get("keys")
        if type(keys) is int:
            detector.keys = keys
        return restarted

    def merge_view(self, entries: Iterable[Any]) -> list[str]:
        """Merge gossiped entries; returns the names of members this node had never heard of."""
        learned = []
        get = self._members.get
        for entry in entries:
            # the common case first, cheaply: an entry no newer than what this node knows changes nothing
            # (at a hundred members, a view per heartbeat per peer makes this loop the hottest of gossip)
            # (skipping is safe for a malformed entry too: validation below would drop it anyway)
            try:
                known = get(entry[0])
                if known is not None:
                    gen = entry[3]
                    if gen < known.generation or (gen == known.generation and entry[4] <= known.version):
                        continue
            except (TypeError, IndexError, KeyError):
                pass
            member = _member_from_wire(entry)
            if member is None:
                continue
            if member.name == self.me:
                if member.generation >= self.generation:
                    self._outlive(member.generation)
                continue
            known = self._members.get(member.name)
            if known is None:
                self._members[member.name] = member
                self._detectors[member.name] = Detector(last_heard=-math.inf)
                learned.append(member.name)
                self._learned.append(member.name)
                self._changed = True
            elif (member.generation, member.version) > (known.generation, known.version):
                if member.status != known.status or member.vnodes != known.vnodes:
                    self._changed = True
                self._members[member.name] = member
        return learned

    def _outlive(self, generation: int) -> None:
        """A peer remembers this node under ``generation``: go above it, or every heartbeat is stale."""
        self.generation = generation + 1
        me = self._members[self.me]
        me.generation, me.version = self.generation, self._counter
        self._next_heartbeat = -math.inf  # tell everyone now
        self.generation_raised = True

    def heartbeat_due(self, now: float) -> bool:
        return now >= self._next_heartbeat

    def make_heartbeat(self, now: float, keys: int) -> dict[str, Any]:
        """The next heartbeat to publish, carrying this node's view; schedules the one after."""
        self._counter += 1
        me = self._members[self.me]
        me.version = self._counter
        self._next_heartbeat = now + self.heartbeat_interval
        return {
            "op": "hb",
            "node": self.me,
            "gen": self.generation,
            "hb": self._counter,
            "keys": keys,
            "view": [m.to_wire() for m in self._members.values()],
        }

    def next_wakeup(self) -> float:
        return self._next_heartbeat

    # ------------------------------------------------------------------------------------------ state

    def set_status(self, status: str) -> None:
        """Change what this node says of itself (joining, normal, leaving, removed); gossip spreads it."""
        if status not in STATUSES:
            raise ValueError(f"unknown member status {status!r}")
        if self._members[self.me].status != status:
            self._members[self.me].status = status
            self._changed = True

    def status_of(self, name: str) -> str | None:
        member = self._members.get(name)
        return member.status if member else None

    def member(self, name: str) -> Member | None:
        return self._members.get(name)

    def members(self) -> list[Member]:
        return list(self._members.values())

    def peers(self) -> list[str]:
        return [name for name, m in self._members.items() if name != self.me and m.status != REMOVED]

    def ring_members(self) -> dict[str, int]:
        """Name -> vnodes of the members that own tokens (normal and leaving ones)."""
        return {n: m.vnodes or self.vnodes for n, m in self._members.items() if m.status in RING_STATUSES}

    def take_learned(self) -> list[Member]:
        """Members learned through gossip since the last call (the runtime must connect to them)."""
        learned, self._learned = self._learned, []
        return [self._members[name] for name in learned]

    def future_ring_members(self) -> dict[str, int]:
        """The ring once joins and leaves in progress complete: normal and joining members."""
        return {n: m.vnodes or self.vnodes for n, m in self._members.items() if m.status in (NORMAL, JOINING)}

    def heartbeat_now(self) -> None:
        """Publish at the next tick (a status change should not wait a whole interval)."""
        self._next_heartbeat = -math.inf

    def take_changed(self) -> bool:
        """Did the ring members or statuses change since the last call?"""
        changed, self._changed = self._changed, False
        return changed

    def view(self, now: float, my_keys: int) -> list[PeerView]:
        out = []
        for name, m in sorted(self._members.items()):
            me = name == self.me
            detector = self._detectors.get(name)
            heard = detector is not None and detector.heard_directly
            liveness = UP if self.is_up(name, now) else DOWN
            status = liveness if m.status == NORMAL else m.status
            out.append(
                PeerView(
                    name=name,
                    address=m.address,
                    gossip=m.gossip,
                    status=status,
                    generation=m.generation,
                    heartbeat_age=0.0 if me else (now - detector.last_heard if heard and detector else None),
                    keys=my_keys if me else (detector.keys if detector else -1),
                    phi=0.0 if me or not heard else round(self.phi(name, now), 2),
                )
            )
        return out


def _member_from_wire(entry: Any) -> Member | None:
    """A gossiped entry, or None when it is malformed (gossip from a buggy or hostile peer is dropped)."""
    if not isinstance(entry, list) or len(entry) != 7:
        return None
    name, address, gossip, generation, version, status, vnodes = entry
    if not (isinstance(name, str) and isinstance(address, str) and isinstance(gossip, str)):
        return None
    if type(generation) is not int or type(version) is not int or type(vnodes) is not int:
        return None
    if status not in STATUSES or not 0 <= vnodes <= 4096 or generation < 0 or version < 0:
        return None
    return Member(name, address, gossip, generation, version, status, vnodes)
