"""What every role of one node shares: its settings, membership and rings, local store, and outbox.

The core is split by role (:mod:`zkv.core.coordinator`, :mod:`zkv.core.replica`,
:mod:`zkv.core.rebalance`, with :class:`zkv.core.nodecore.NodeCore` as the front that dispatches to
them). They are composed, not mixed in: each holds this one object and reads the node's shared state
through it, typed, instead of reaching into each other's attributes.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zkv.core.antientropy import AntiEntropy
from zkv.core.effects import Effect
from zkv.core.handoff import Handoff
from zkv.core.membership import Membership
from zkv.core.ring import Ring, ring_of
from zkv.core.settings import NodeSettings
from zkv.core.stats import RequestStats
from zkv.core.storagehealth import StorageHealth

if TYPE_CHECKING:
    from zkv.storage.base import Store  # the interface only: the core opens no engine


@dataclass(slots=True)
class NodeState:
    """One node's shared state. ``ring`` and ``future_ring`` are rebuilt when the ring members change."""

    settings: NodeSettings
    store: Store
    membership: Membership
    rng: random.Random  # all the core's randomness
    aae: AntiEntropy
    handoff: Handoff | None  # None: no hint store, so no sloppy quorum
    batch_bytes: int  # states per node-to-node message: well under ZMQ_MAXMSGSIZE, whatever the values
    storage_health: StorageHealth  # whether this node's disk takes writes
    ring: Ring = field(init=False)
    future_ring: Ring = field(init=False)
    stats: RequestStats = field(default_factory=RequestStats)
    effects: list[Effect] = field(default_factory=list)  # the outbox: NodeCore.take_effects empties it
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))  # ids of this node's requests
    # replies that acknowledge a write not flushed yet: withdrawn if the flush fails (on_store_fault)
    unflushed_acks: list[dict[str, Any]] = field(default_factory=list)
    peer_disk: dict[str, str] = field(default_factory=dict)  # a peer's disk state when not ok (heartbeats)
    wall_offset_s: float = 0.0  # wall clock minus ``now``: the runtime follows a clock set while running
    minted: int = 0  # the highest dot counter this node's actor minted, over all keys (versions.update)

    def wall(self, now: float) -> float:
        """The wall time at ``now`` (sibling timestamps, TTL expiry, the clock-skew check)."""
        return now + self.wall_offset_s

    def __post_init__(self) -> None:
        self.wall_offset_s = self.settings.wall_offset_s
        self.minted = self.settings.minted
        self.ring = self.build_ring()
        self.future_ring = self.build_ring(future=True)

    @property
    def name(self) -> str:
        return self.settings.name

    def build_ring(self, future: bool = False) -> Ring:
        """The ring of the members that own tokens (``future``: as it will be once joins and leaves end).

        Tokens are a pure function of a member's name and vnodes, so every node builds the same ring.
        """
        members = self.membership.future_ring_members() if future else self.membership.ring_members()
        return ring_of(tuple(sorted(members.items())), self.settings.replication_factor)

    def hints_wanted(self, owner: str, now: float) -> bool:
        """Hints are kept only for an owner down less than the hint window; past it, anti-entropy repairs."""
        return self.membership.silence(owner, now) <= self.settings.max_hint_window_s
