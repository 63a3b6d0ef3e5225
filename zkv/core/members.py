"""A member's gossip entry: what every node agrees on about it (eventually), its wire form and its share
of a view digest.

An entry is ``[name, address, gossip, generation, version, status, vnodes]``; ``version`` counts the
changes its owner made to it (a status change) within one generation, and the entry with the higher
``(generation, version)`` wins wherever two meet (:mod:`zkv.core.membership`). ``status`` is what the
member says of itself: ``joining``, ``normal``, ``leaving`` or ``removed``; the ring is built from the
``normal`` and ``leaving`` members. The one entry a node changes for another is ``removed``, by an
operator's ``removenode`` of a dead member, in a version of at least :data:`REMOVED_BY_OPERATOR`.

Pure: no clocks, no sockets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zkv.core.detector import Detector

UP = "up"
DOWN = "down"
JOINING = "joining"
NORMAL = "normal"
LEAVING = "leaving"
REMOVED = "removed"
STATUSES = (JOINING, NORMAL, LEAVING, REMOVED)
RING_STATUSES = (NORMAL, LEAVING)

DIGEST_BITS = 62  # a view digest fits the wire's signed 64-bit integers
#: the version an operator's removenode gives a member's entry (at least): far above any status change a
#: node makes of itself, so every node tells "removed for good" from a member that left on its own
REMOVED_BY_OPERATOR = 1 << 40


def entry_hash(name: str, generation: int, version: int) -> int:
    """One entry's share of a view digest: stable across processes (unlike ``hash``), 62 bits."""
    data = f"{name}\x00{generation}\x00{version}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> (64 - DIGEST_BITS)


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


def member_from_wire(entry: Any) -> Member | None:
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


class Relay:
    """Names whose news rides along with this node's next few heartbeats: each for ``repeats``
    heartbeats (one may be lost), taken in turns when more wait than one heartbeat carries."""

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self._left: dict[str, int] = {}  # name -> heartbeats that still relay it

    def __bool__(self) -> bool:
        return bool(self._left)

    def add(self, name: str) -> None:
        self._left[name] = self.repeats

    def discard(self, name: str) -> None:
        self._left.pop(name, None)

    def take(self, limit: int) -> list[str]:
        """The names the next heartbeat carries (at most ``limit``)."""
        names = list(self._left)[:limit]
        for name in names:
            left = self._left.pop(name) - 1
            if left > 0:
                self._left[name] = left  # to the back: the others get their turn
        return names


def peer_view(
    member: Member, me: bool, detector: Detector | None, up: bool, my_keys: int, now: float, interval: float
) -> PeerView:
    """One row of a node's view: the member's entry, and what this node's detector says of it
    (``interval``: the heartbeat interval phi expects while it has heard too little)."""
    heard = detector is not None and detector.heard_directly
    status = (UP if up else DOWN) if member.status == NORMAL else member.status
    return PeerView(
        name=member.name,
        address=member.address,
        gossip=member.gossip,
        status=status,
        generation=member.generation,
        heartbeat_age=0.0 if me else (now - detector.last_heard if heard and detector else None),
        keys=my_keys if me else (detector.keys if detector else -1),
        phi=0.0 if me or not heard or detector is None else round(detector.phi(now, interval), 2),
    )
