"""How far each peer's wall clock is from this node's, from the wall time its heartbeats carry.

Theory of operation
-------------------
Nothing in zkv's correctness depends on wall clocks: generations go above whatever gossip remembers
(:mod:`zkv.core.membership`), causality is dotted version vectors. The wall clock still shows: sibling
timestamps (display order only) and, before this module, generations. A clock that is far off usually
means a broken NTP setup an operator wants to hear about, so each heartbeat carries its sender's wall
time in ms and the receiver keeps the difference (transit time, a few ms, is in it; it is negligible next
to the threshold). A peer off by more than ``max_skew`` is logged once per crossing and listed in
``status``; when most peers are off the same way (so they agree with each other), it is this node's
clock that is wrong, and status says so (``suspect_self``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_MAX_SKEW_S = 60.0


@dataclass(frozen=True, slots=True)
class ClockStats:
    max_skew_s: float  # the warning threshold
    peer_offsets_s: dict[str, float]  # peer's wall clock minus this node's, per peer heard
    off_peers: tuple[str, ...]  # peers past the threshold
    suspect_self: bool  # most peers are past it: this node's clock is the odd one


class ClockSkew:
    """Per-peer wall-clock offsets and the warnings they deserve."""

    def __init__(self, name: str, max_skew: float = DEFAULT_MAX_SKEW_S) -> None:
        self.name = name
        self.max_skew = max_skew
        self.offsets: dict[str, float] = {}
        self._warned: set[str] = set()

    def on_heartbeat(self, peer: str, peer_wall_ms: int, my_wall: float) -> None:
        offset = peer_wall_ms / 1000 - my_wall
        self.offsets[peer] = offset
        if abs(offset) > self.max_skew:
            if peer not in self._warned:
                self._warned.add(peer)
                log.warning(
                    "clock: %s's wall clock is %+.1f s from %s's (more than %.0f s): check NTP on both",
                    peer,
                    offset,
                    self.name,
                    self.max_skew,
                )
        elif peer in self._warned:
            self._warned.discard(peer)
            log.warning("clock: %s is within %.0f s of %s again", peer, self.max_skew, self.name)

    def statistics(self) -> ClockStats:
        off = tuple(sorted(p for p, o in self.offsets.items() if abs(o) > self.max_skew))
        ahead = sum(1 for p in off if self.offsets[p] > 0)
        same_way = max(ahead, len(off) - ahead)  # peers off in one direction agree with each other
        return ClockStats(
            max_skew_s=self.max_skew,
            peer_offsets_s={p: round(o, 3) for p, o in sorted(self.offsets.items())},
            off_peers=off,
            suspect_self=same_way * 2 > len(self.offsets),
        )
