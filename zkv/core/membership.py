"""Who is in the cluster, in what state, and who is up: gossip views and phi-accrual failure detection.

Theory of operation
-------------------
Every member is described by an entry (:mod:`zkv.core.members`); views merge entry by entry: the entry
with the higher ``(generation, version)`` wins, so news travels node to node even where a direct link is
cut, a node learns of members it was never configured with, and a restarted node (its generation is its
start time) supersedes what was said of it before. The wall clock is only a starting point: a node that
hears its own name gossiped under a generation at or above its own (its previous life, started under a
clock that was ahead, or a clock set back since) takes the next one above it at once, so a corrected
clock never keeps a node out. An operator's ``removenode`` of a dead member (:meth:`Membership.remove`)
is the one entry a node changes for another; ``removed`` that way is final for a name: only a
``joining`` entry (a fresh join) supersedes it, so a removed node that comes back as it was (a later
generation, ``normal``) is not taken back; it hears it was removed and stops
(:attr:`Membership.removed_by_peers`).

What travels is O(1) per heartbeat (issue #20: with the whole view in every heartbeat a node merged N
views of N entries per interval, and 40 nodes took a whole core): each node publishes, every
``heartbeat_interval``, its name, generation, a counter, **its own entry** and a **digest** of its view
(the XOR of a hash of every entry's name, generation and version: equal views, equal digests).
News of a third member rides along as a **delta** for a few heartbeats when this node is the one that
learned it first-hand (a seed taking a joining node in). Whatever else differs shows as a digest that
is not this node's: the node then **pulls** the sender's whole view over the request path (``vpull`` /
``vview``), at most once every ``PULL_INTERVALS`` heartbeat intervals, so a node that missed news, a
restarted node and the two sides of a healed partition catch up, and a settled cluster pulls nothing.
The numbers that chose this over the old design are in docs/scale.md.

Liveness is local and never gossiped: each node runs a **phi-accrual** detector (:mod:`zkv.core.detector`)
on the arrival times of every peer's own heartbeats; a peer is down when phi passes ``phi_threshold``,
when nothing arrived for ``failure_timeout`` (a hard bound), or at once when the runtime
reports that the request connection to it dropped (``on_connection``; a crashed process closes its
sockets). At start every configured peer counts as heard at start, so the first requests are not refused
before the first heartbeats land (phi only judges a peer once it was heard: until then the hard bound
alone applies, counted from this node's start); a request connection that has not come up *yet* is not
one that dropped (``awaiting_connection``: messages to such a peer are held for ``first_connect_wait``,
not failed), which is what kept a just-started node answering ``unavailable`` for ~150 ms for ``all``.

Past nine members a node times only the few peers it monitors, and learns of the others' deaths from
notices gossip carries (:mod:`zkv.core.monitoring`, SWIM-style): what an idle node does stays O(log N).

Pure: time arrives as ``now``; nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from zkv.core.detector import PAUSE_INTERVALS, Detector
from zkv.core.members import (
    JOINING,
    NORMAL,
    REMOVED,
    REMOVED_BY_OPERATOR,
    RING_STATUSES,
    STATUSES,
    Member,
    PeerView,
    Relay,
    entry_hash,
    member_from_wire,
    peer_view,
)
from zkv.core.members import LEAVING as LEAVING  # re-exported (the core imports statuses from here)
from zkv.core.monitoring import FULL_MESH_MEMBERS, Monitor, notice_from_wire

PULL_INTERVALS = 2  # heartbeat intervals between two view pulls of a node (what catching up may cost)
DELTA_REPEATS = 3  # heartbeats that relay news this node learned first-hand (one may be lost)
MAX_DELTA = 16  # entries one heartbeat relays at most in a full mesh (first-hand news only)
MAX_RELAY = 64  # past it, all news is relayed (150 simulated nodes started in 1.9 s with 16, 0.2 s with 64)
CHECK_INTERVALS = 0.2  # heartbeat intervals between two looks at the monitored peers (death notices)
HURRY_INTERVALS = 0.1  # news goes out this soon after the last heartbeat (not a whole interval later)
# past a full mesh, heartbeats go out on a grid of the wall clock (multiples of the interval), so a node's
# monitored peers' heartbeats arrive together, just after its own: its loop takes them in one wake-up
# instead of one each (issue #20). A turn this close before the grid's instant sends the heartbeat then,
# not a wake-up later. (A full mesh keeps its schedule: the simulator's seeds were found under it.)
EARLY_INTERVALS = 0.02


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
        self._digest = 0
        for member in self._members.values():
            self._digest ^= entry_hash(member.name, member.generation, member.version)
        self._relay = Relay(DELTA_REPEATS)  # entries the next heartbeats relay
        self._next_pull = now
        self._pull: str | None = None  # the peer whose view to pull next (take_pull)
        self.pulls = 0  # views pulled and answered: what catching up costs (status, the simulator)
        self.pulls_answered = 0
        self._detectors = {name: Detector(last_heard=now) for name in members if name != me}
        self._counter = 0
        self._next_heartbeat = now
        self._last_heartbeat = -math.inf
        self._started = now
        self._monitor = Monitor(now)  # whom this node times, the death notices it holds
        self._notices = self._monitor.notices
        self._monitor.refresh(me, self._members, self._detectors, now)
        self._changed = True  # ring members may differ from what the caller last saw
        self._learned: list[str] = []  # members heard of through gossip, not yet connected to
        self.generation_raised = False  # gossip raised this node's generation (the caller saves it)
        self._joined = status == JOINING  # this life began with a join: older "removed" news is stale
        self.removed_by_peers = False  # peers say this node was removed (and it did not join since)

    # ------------------------------------------------------------------------------------------ liveness

    def is_up(self, name: str, now: float) -> bool:
        if name == self.me:
            return True
        detector = self._detectors.get(name)
        if detector is None or detector.connected is False:
            return False
        member = self._members[name]
        if member.status == REMOVED:
            return False
        if name not in self._monitor.monitored and not self.full_mesh:
            # not timed here: its request connection tells, and its monitors' death notices
            if self._notices.says_dead(name, member.generation, member.version):
                return False
            return detector.connected is True or now - self._started <= self.failure_timeout
        silence = now - detector.last_heard
        if silence > self.failure_timeout:
            return False
        if silence <= self.heartbeat_interval or not detector.heard_directly:
            # never heard yet (it may start a moment after this node): no arrivals for phi to judge by,
            # so only the hard bound applies, counted from this node's start
            return True
        return detector.phi(now, self.heartbeat_interval) < self.phi_threshold

    def heard_any(self) -> bool:
        """Has a heartbeat arrived from any peer since this node started?"""
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
            and (detector.heard_directly or (name not in self._monitor.monitored and not self.full_mesh))
            and detector.connected is True
            and self.is_up(name, now)
        )

    # ------------------------------------------------------------------------------------------ gossip

    def on_heartbeat(self, msg: dict[str, Any], now: float) -> bool:
        """Take a heartbeat (its sender's entry, relayed news, the digest); True when its sender restarted.

        A digest unlike this node's view (once the heartbeat's own news is merged) makes the sender the
        next node to pull a view from (:meth:`take_pull`), if no pull happened in the last
        ``PULL_INTERVALS`` intervals."""
        sender, gen, counter = msg.get("node"), msg.get("gen"), msg.get("hb")
        if not isinstance(sender, str) or sender == self.me:
            return False
        if type(gen) is not int or type(counter) is not int:
            return False
        detector = self._detectors.get(sender)
        if detector is not None and (gen, counter) <= detector.last_seen:
            return False  # stale or duplicate
        entry = msg.get("me")
        if isinstance(entry, list) and entry and entry[0] == sender:  # a heartbeat speaks for its sender
            self.merge_view((entry,))
        for key in ("delta", "view"):  # "view": a whole view, as nodes before issue #20 sent it
            entries = msg.get(key)
            if isinstance(entries, list):
                self.merge_view(entries)
        notices = msg.get("dead")
        if isinstance(notices, list):
            self.merge_notices(notices)
        member = self._members.get(sender)
        if member is None:
            return False  # a heartbeat without an entry for its sender: ignore
        detector = self._detectors[sender]
        restarted = detector.last_seen[0] != 0 and gen > detector.last_seen[0]
        if restarted:  # a new process: its old arrival history says nothing about this one
            detector = self._detectors[sender] = Detector(last_heard=now, connected=detector.connected)
        detector.last_seen = (gen, counter)
        if gen > member.generation and member.version < REMOVED_BY_OPERATOR:  # the new life's first version
            self._put(replace(member, generation=gen, version=0))
        detector.arrival(now)
        keys = msg.get("keys")
        if type(keys) is int:
            detector.keys = keys
        digest = msg.get("dig")
        if type(digest) is int and digest != self._digest ^ self._notices.digest and now >= self._next_pull:
            self._pull = sender
        return restarted

    def take_pull(self, now: float) -> str | None:
        """The peer to ask for its whole view now (a heartbeat showed it differs), or None."""
        peer, self._pull = self._pull, None
        if peer is None or now < self._next_pull:
            return None
        intervals = PULL_INTERVALS if self.full_mesh else 1  # past a full mesh: heard from k peers only
        self._next_pull = now + intervals * self.heartbeat_interval
        self.pulls += 1
        return peer

    def view_entries(self) -> list[list[Any]]:
        """This node's whole view on the wire (the answer to a peer's pull, and to a joining node)."""
        self.pulls_answered += 1
        return [m.to_wire() for m in self._members.values()]

    @property
    def digest(self) -> int:
        """The XOR of :func:`entry_hash` over this node's view and its death notices (two nodes agree iff,
        almost surely, equal)."""
        return self._digest ^ self._notices.digest

    def _put(self, member: Member) -> None:
        """Store ``member``'s entry, keeping the digest current."""
        old = self._members.get(member.name)
        if old is not None:
            self._digest ^= entry_hash(old.name, old.generation, old.version)
        self._digest ^= entry_hash(member.name, member.generation, member.version)
        self._members[member.name] = member
        self._notices.superseded(member.name, member.generation, member.version)
        if old is None or (old.status == REMOVED) != (member.status == REMOVED):
            self._monitor.stale = True

    def merge_view(self, entries: Iterable[Any], relay: bool = False) -> list[str]:
        """Merge gossiped entries; returns the names of members this node had never heard of.

        ``relay``: this node heard the news first-hand (a joining node announced itself here), so its
        next heartbeats carry what changed to everyone (no one else may know yet)."""
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
                    stale = gen < known.generation or (gen == known.generation and entry[4] <= known.version)
                    # (news that this node was removed counts whatever its generation)
                    if stale and (entry[0] != self.me or entry[4] < REMOVED_BY_OPERATOR):
                        continue
            except (TypeError, IndexError, KeyError):
                pass
            member = member_from_wire(entry)
            if member is None:
                continue
            if member.name == self.me:
                removed = member.status == REMOVED and member.version >= REMOVED_BY_OPERATOR
                if removed and not self._joined and self._members[self.me].status == NORMAL:
                    self.removed_by_peers = True  # removenode while this node was gone: it must join anew
                elif member.generation >= self.generation:
                    self._outlive(member.generation)
                continue
            known = self._members.get(member.name)
            final = known is not None and known.status == REMOVED and known.version >= REMOVED_BY_OPERATOR
            if final and member.status != JOINING:
                continue  # removed by removenode is final for a name; only a fresh join brings it back
            if known is None:
                self._put(member)
                self._detectors[member.name] = Detector(last_heard=-math.inf)
                learned.append(member.name)
                self._learned.append(member.name)
                self._changed = True
            elif (member.generation, member.version) > (known.generation, known.version):
                if member.status != known.status or member.vnodes != known.vnodes:
                    self._changed = True
                self._put(member)
            else:
                continue
            if relay or not self.full_mesh:  # past a full mesh, news travels node to node
                self._relay.add(member.name)
                if not self.full_mesh:  # a full mesh keeps its heartbeat schedule (as it always had)
                    self._hurry()
        return learned

    def _outlive(self, generation: int) -> None:
        """A peer remembers this node under ``generation``: go above it, or every heartbeat is stale."""
        self.generation = generation + 1
        me = self._members[self.me]
        self._put(replace(me, generation=self.generation, version=0))
        self._next_heartbeat = -math.inf  # tell everyone now
        self.generation_raised = True

    # ------------------------------------------------------------------------------------------ monitoring

    @property
    def full_mesh(self) -> bool:
        """Up to nine members everyone hears and times everyone, exactly as before monitoring existed."""
        return len(self._members) <= FULL_MESH_MEMBERS

    def monitored(self) -> frozenset[str]:
        """The peers whose heartbeats this node listens to and times (``monitoring.monitored_peers``)."""
        return self._monitor.monitored

    @property
    def monitors_epoch(self) -> int:
        """Changes with :meth:`monitored` (the runtime subscribes to those peers' heartbeats)."""
        return self._monitor.epoch

    def check_peers(self, now: float) -> None:
        """Notice the monitored peers found silent with their connection up (a few times a second)."""
        monitor = self._monitor
        if monitor.stale:
            monitor.refresh(self.me, self._members, self._detectors, now)
        if now < monitor.next_check or self.full_mesh:
            return
        monitor.next_check = now + CHECK_INTERVALS * self.heartbeat_interval
        if monitor.check(self._members, self._detectors, self.is_up, now):
            self._hurry()
        monitor.wake_at = max(monitor.next_check, self._silent_from(now))

    def _silent_from(self, now: float) -> float:
        """The earliest time a monitored peer up now could be found down (:meth:`Monitor.silent_from`):
        phi stays below any threshold over log10(2) until a silence of PAUSE_INTERVALS intervals."""
        interval = self.heartbeat_interval
        quiet = PAUSE_INTERVALS * interval if self.phi_threshold > math.log10(2) else interval
        return self._monitor.silent_from(self._detectors, self.is_up, min(quiet, self.failure_timeout), now)

    def merge_notices(self, entries: Iterable[Any]) -> None:
        """Take gossiped death notices; one about this node's current entry is refuted at once."""
        for entry in entries:
            notice = notice_from_wire(entry)
            if notice is None:
                continue
            name, generation, version = notice
            if name == self.me:
                me = self._members[self.me]
                if (generation, version) >= (me.generation, me.version):
                    self._put(replace(me, version=max(me.version, version) + 1))  # "I am alive"
                    self._relay.add(self.me)
                    self._hurry()
                continue
            member = self._members.get(name)
            if member is None or (generation, version) < (member.generation, member.version):
                continue  # unknown, or about an entry already superseded
            if not self._notices.says_dead(name, generation, version):
                self._notices.add(name, generation, version)
                self._hurry()

    def notices(self) -> list[list[Any]]:
        """Every death notice this node holds, on the wire (with a view pulled from it)."""
        return self._notices.wire()

    def _hurry(self) -> None:
        """Publish news soon, not a whole interval later (a hop of the monitoring graph is then short)."""
        soon = self._last_heartbeat + HURRY_INTERVALS * self.heartbeat_interval
        self._next_heartbeat = min(self._next_heartbeat, soon)

    def relaying(self) -> bool:
        """Will the next heartbeats still relay news (the simulator waits for a settled cluster)?"""
        return bool(self._relay) or self._notices.relaying()

    def heartbeat_due(self, now: float) -> bool:
        if self.full_mesh:
            return now >= self._next_heartbeat
        return now >= self._next_heartbeat - EARLY_INTERVALS * self.heartbeat_interval

    def make_heartbeat(self, now: float, keys: int, wall: float | None = None) -> dict[str, Any]:
        """The next heartbeat to publish (O(1): this node's entry, its digest, a few relayed entries);
        schedules the one after: an interval later, or past a full mesh with ``wall`` (the wall clock at
        ``now``) at the grid's next instant at least half an interval away (:data:`EARLY_INTERVALS`)."""
        self._counter += 1
        interval = self.heartbeat_interval
        if wall is None or self.full_mesh:
            self._next_heartbeat = now + interval
        else:
            ahead = interval - wall % interval
            self._next_heartbeat = now + (ahead if ahead >= interval / 2 else ahead + interval)
        self._last_heartbeat = now
        msg = {
            "op": "hb",
            "node": self.me,
            "gen": self.generation,
            "hb": self._counter,
            "keys": keys,
            "me": self._members[self.me].to_wire(),
            "dig": self._digest ^ self._notices.digest,
        }
        if self._relay:
            names = self._relay.take(MAX_DELTA if self.full_mesh else MAX_RELAY)
            msg["delta"] = [m.to_wire() for n in names if (m := self._members.get(n)) is not None]
        if self._notices.relaying():
            msg["dead"] = self._notices.take_relay(MAX_DELTA)
        return msg

    def next_wakeup(self) -> float:
        """The next heartbeat, or past a full mesh the next look at the monitored peers, if sooner."""
        if self.full_mesh:
            return self._next_heartbeat
        return min(self._next_heartbeat, self._monitor.wake_at)

    # ------------------------------------------------------------------------------------------ state

    def set_status(self, status: str) -> None:
        """Change what this node says of itself (joining, normal, leaving, removed); gossip spreads it."""
        if status not in STATUSES:
            raise ValueError(f"unknown member status {status!r}")
        me = self._members[self.me]
        if me.status != status:
            self._put(replace(me, version=me.version + 1, status=status))
            self._changed = True

    def remove(self, name: str) -> None:
        """An operator's ``removenode``: ``name`` (a dead peer) is gone for good. Its entry turns
        ``removed`` in a version above what it said of itself, relayed at once like first-hand news."""
        member = self._members[name]
        if name == self.me or member.status == REMOVED:
            return
        version = max(member.version + 1, REMOVED_BY_OPERATOR)
        self._put(replace(member, version=version, status=REMOVED))
        self._relay.add(name)
        self._changed = True
        self.heartbeat_now()

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
        """Every member as this node sees it (the shell's ``nodes``)."""
        interval = self.heartbeat_interval
        return [
            peer_view(m, n == self.me, self._detectors.get(n), self.is_up(n, now), my_keys, now, interval)
            for n, m in sorted(self._members.items())
        ]
