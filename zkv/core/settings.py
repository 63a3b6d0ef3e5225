"""What the core knows of its cluster and itself, as plain values (built by the runtime or the simulator)."""

from __future__ import annotations

from dataclasses import dataclass

from zkv.core.clocks import DEFAULT_MAX_SKEW_S
from zkv.protocol import Limits


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Everything the core needs to know about its cluster, as plain values."""

    name: str
    actor: str  # the id this node mints dots under (name plus incarnation)
    members: dict[str, tuple[str, str]]  # name -> (address, gossip)
    replication_factor: int = 3
    vnodes: int = 64
    read_level: str = "quorum"
    write_level: str = "quorum"
    request_timeout: float = 2.0
    heartbeat_interval: float = 0.5
    failure_timeout: float = 3.0
    phi_threshold: float = 8.0
    handoff_interval: float = 1.0
    max_hint_window: float = 10800.0  # hints only for owners down less than this (Cassandra's hint window)
    anti_entropy_interval: float = 10.0
    read_repair_chance: float = 0.1  # share of reads that ask every live replica, for read repair
    speculative_retry: float = 0.02  # seconds before a read whose asked replicas are silent asks the rest
    joining: bool = False  # start as a joining member: stream the ranges it will own before serving them
    generation: int = 1
    wall_offset: float = 0.0  # wall clock minus ``now`` at start (the runtime keeps NodeCore.wall_offset)
    max_clock_skew: float = DEFAULT_MAX_SKEW_S  # a peer's wall clock further off than this is warned of
    sloppy_quorum: bool = True  # hinted writes on fallbacks count toward W (a request may say otherwise)
    limits: Limits = Limits()
