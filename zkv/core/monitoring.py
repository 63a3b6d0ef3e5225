"""Who watches whom, and how a death one watcher saw reaches everyone (issue #20, SWIM-style).

With every node hearing every node's heartbeat, an idle node took in 2 (N - 1) heartbeats a second, and
40 real nodes took most of a core on one machine (docs/scale.md). Past :data:`FULL_MESH_MEMBERS`
members, a node instead **monitors** a few peers: those at ring offsets 1, 3, 9, 27, ... from it in the
sorted list of members (``ceil(log3 N)`` of them: 4 at 40 nodes, 5 at 150), subscribes to their
heartbeats only and runs phi-accrual on those. Every member is monitored by as many, and news spreads
from any node to any other in at most ~2 log3 N hops of that graph.

The rest of the members a node does not time itself. It takes one of them as up while its request
connection is (a crashed process closes its sockets, so every node sees a SIGKILL at once), and no
**death notice** names it: a monitor that finds a peer silent (phi or the hard bound) with the
connection still up — a hung process, a cut link — notices it ``[name, generation, version]``, and the
notice travels in heartbeats (relayed a few times by each node that learns it, and pulled with views
when digests differ). A notice holds while the member's entry is not newer; the member itself, on
hearing one about its current entry, **refutes** it by bumping its version (SWIM's incarnation), which
supersedes the notice everywhere; a restart (a new generation) does too. A node that hears none of the
peers it monitors accuses nobody: it is more likely the one cut off.

Pure: no clocks, no sockets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from zkv.core.detector import Detector
from zkv.core.members import REMOVED, Member, Relay, entry_hash

FULL_MESH_MEMBERS = 9  # up to this many members, everyone monitors everyone (the 3-node defaults)
MONITOR_BASE = 3  # ring offsets 1, 3, 9, 27, ...
NOTICE_REPEATS = 3  # heartbeats that relay a notice this node took in (one may be lost)


def monitored_peers(names: list[str], me: str) -> frozenset[str]:
    """The peers ``me`` monitors among ``names`` (every member that is not removed, ``me`` included)."""
    ordered = sorted(set(names) | {me})
    if len(ordered) <= FULL_MESH_MEMBERS:
        return frozenset(n for n in ordered if n != me)
    at, size = ordered.index(me), len(ordered)
    out = set()
    offset = 1
    while offset < size:
        out.add(ordered[(at + offset) % size])
        offset *= MONITOR_BASE
    return frozenset(out)


def notice_from_wire(entry: Any) -> tuple[str, int, int] | None:
    """A gossiped death notice ``[name, generation, version]``, or None when malformed."""
    if not isinstance(entry, list) or len(entry) != 3:
        return None
    name, generation, version = entry
    if not isinstance(name, str) or type(generation) is not int or type(version) is not int:
        return None
    if generation < 0 or version < 0:
        return None
    return name, generation, version


def notice_hash(name: str, generation: int, version: int) -> int:
    """A notice's share of the view digest (never equal to an entry's: the name is marked)."""
    return entry_hash("\x01" + name, generation, version)


class Notices:
    """The death notices one node holds (member -> the ``(generation, version)`` said dead), what its next
    heartbeats still relay, and their share of its view digest (:attr:`digest`)."""

    def __init__(self) -> None:
        self._dead: dict[str, tuple[int, int]] = {}
        self._relay = Relay(NOTICE_REPEATS)
        self.digest = 0

    def says_dead(self, name: str, generation: int, version: int) -> bool:
        """Does a notice name this entry of ``name`` (or a later one)?"""
        dead = self._dead.get(name)
        return dead is not None and dead >= (generation, version)

    def add(self, name: str, generation: int, version: int) -> None:
        """Hold (and relay) a notice for ``name``'s entry ``(generation, version)``, unless one as new is."""
        if self.says_dead(name, generation, version):
            return
        self.drop(name)
        self._dead[name] = (generation, version)
        self.digest ^= notice_hash(name, generation, version)
        self._relay.add(name)

    def superseded(self, name: str, generation: int, version: int) -> None:
        """``name``'s entry is now ``(generation, version)``: a notice about an older one no longer holds."""
        dead = self._dead.get(name)
        if dead is not None and (generation, version) > dead:
            self.drop(name)

    def drop(self, name: str) -> None:
        dead = self._dead.pop(name, None)
        if dead is not None:
            self.digest ^= notice_hash(name, *dead)
            self._relay.discard(name)

    def relaying(self) -> bool:
        return bool(self._relay)

    def take_relay(self, limit: int) -> list[list[Any]]:
        """The notices the next heartbeat carries (at most ``limit``; each is relayed a few times)."""
        return [[name, *self._dead[name]] for name in self._relay.take(limit)]

    def wire(self) -> list[list[Any]]:
        """Every notice held, on the wire (sent with a view pulled from this node)."""
        return [[name, gen, ver] for name, (gen, ver) in self._dead.items()]


class Monitor:
    """Whom one node monitors, and the death notices it holds (what :class:`~zkv.core.membership.Membership`
    keeps for monitoring; up to a full mesh the set is every peer and no notice is ever made)."""

    def __init__(self, now: float) -> None:
        self.monitored: frozenset[str] = frozenset()
        self.epoch = 0  # changes with the monitored set (the runtime subscribes to those peers)
        self.stale = True  # members came or went: the set may differ
        self.next_check = now
        self.wake_at = now  # when a look at the monitored peers is worth a wake-up (Membership)
        self.notices = Notices()

    def refresh(
        self, me: str, members: Mapping[str, Member], detectors: dict[str, Detector], now: float
    ) -> None:
        """Recompute the monitored peers; one monitored anew past a full mesh is timed from ``now``."""
        self.stale = False
        full = len(members) <= FULL_MESH_MEMBERS  # a full mesh hears removed members too (they may rejoin)
        monitored = monitored_peers([n for n, m in members.items() if full or m.status != REMOVED], me)
        if monitored == self.monitored:
            return
        for name in monitored - self.monitored:  # its silence so far says nothing: it was not listened to
            old = detectors.get(name)
            if old is not None and self.epoch and not full and old.last_heard > -math.inf:
                detectors[name] = Detector(last_heard=now, connected=old.connected)
        self.monitored = monitored
        self.epoch += 1

    def silent_from(
        self, detectors: Mapping[str, Detector], is_up: Callable[[str, float], bool], quiet: float, now: float
    ) -> float:
        """The earliest time a monitored peer up now could be found down if nothing arrives from it (none
        is before ``quiet`` of silence): a look at the peers is only worth a wake-up then. A silent one
        is looked at every check until it is down; at idle, heartbeats push this past the next one."""
        heard = [detectors[n].last_heard for n in self.monitored if is_up(n, now)]
        return min(heard) + quiet if heard else math.inf

    def check(
        self,
        members: Mapping[str, Member],
        detectors: Mapping[str, Detector],
        is_up: Callable[[str, float], bool],
        now: float,
    ) -> bool:
        """Notice the monitored peers found silent with their request connection up (a dropped one
        everyone sees for themselves); True when a notice is new. A node that hears none of them accuses
        nobody: it is most likely the one cut off."""
        silent = [n for n in self.monitored if not is_up(n, now)]
        if len(silent) == len(self.monitored):
            return False
        news = False
        for name in silent:
            member = members[name]
            if detectors[name].connected is False or member.status == REMOVED:
                continue
            if not self.notices.says_dead(name, member.generation, member.version):
                self.notices.add(name, member.generation, member.version)
                news = True
        for name, detector in detectors.items():  # the others' silence counts from when last known up
            if name not in self.monitored and is_up(name, now):
                detector.last_heard = now
        return news
