"""What the core knows of its cluster and itself, as plain values, declared once.

The cluster file (:class:`zkv.config.ClusterConfig`, where durations are whole milliseconds as an
operator writes them) becomes a node's :class:`NodeSettings` in one place, :meth:`NodeSettings.from_config`;
the runtime and the tools use it, the simulator and the tests build settings directly. Every duration
carries its unit in its name (``_s``: seconds, as the core's clock ``now`` counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zkv.core.clocks import DEFAULT_MAX_SKEW_S
from zkv.protocol import Limits

if TYPE_CHECKING:
    from zkv.config import ClusterConfig


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Everything the core needs to know about its cluster, as plain values."""

    name: str
    actor: str  # the id this node mints dots under (name plus incarnation)
    members: dict[str, tuple[str, str]]  # name -> (address, gossip)
    replication_factor: int = 3
    vnodes: int = 64
    read_consistency: str = "quorum"
    write_consistency: str = "quorum"
    request_timeout_s: float = 2.0
    heartbeat_interval_s: float = 0.5
    failure_timeout_s: float = 3.0
    phi_threshold: float = 8.0
    handoff_interval_s: float = 1.0
    max_hint_window_s: float = 10800.0  # hints only for owners down less than this (Cassandra's hint window)
    anti_entropy_interval_s: float = 10.0
    read_repair_chance: float = 0.1  # share of reads that ask every live replica, for read repair
    speculative_retry_s: float = 0.02  # a read whose asked replicas are silent this long asks the rest
    joining: bool = False  # start as a joining member: stream the ranges it will own before serving them
    generation: int = 1
    wall_offset_s: float = 0.0  # wall clock minus ``now`` at start (the runtime keeps NodeCore.wall_offset)
    max_clock_skew_s: float = DEFAULT_MAX_SKEW_S  # a peer's wall clock further off than this is warned of
    sloppy_quorum: bool = True  # hinted writes on fallbacks count toward W (a request may say otherwise)
    tombstone_grace_s: float = 86400.0  # a tombstone is purged no sooner than this after it died (purge.py)
    minted: int = 0  # the highest dot counter ``actor`` minted in earlier lives (a kept actor goes above)
    limits: Limits = Limits()

    @classmethod
    def from_config(
        cls,
        config: ClusterConfig,
        name: str,
        actor: str,
        generation: int = 1,
        joining: bool = False,
        wall_offset_s: float = 0.0,
    ) -> NodeSettings:
        """Node ``name`` of the cluster file, under this start's ``actor`` and ``generation``."""
        return cls(
            name=name,
            actor=actor,
            members={n.name: (n.address, n.gossip) for n in config.nodes},
            replication_factor=config.replication_factor,
            vnodes=config.vnodes,
            read_consistency=config.read_consistency,
            write_consistency=config.write_consistency,
            request_timeout_s=config.request_timeout_ms / 1000,
            heartbeat_interval_s=config.heartbeat_interval_ms / 1000,
            failure_timeout_s=config.failure_timeout_ms / 1000,
            phi_threshold=float(config.phi_threshold),
            handoff_interval_s=config.handoff_interval_ms / 1000,
            max_hint_window_s=float(config.max_hint_window_s),
            anti_entropy_interval_s=config.anti_entropy_interval_ms / 1000,
            read_repair_chance=config.read_repair_chance,
            speculative_retry_s=config.speculative_retry_ms / 1000,
            joining=joining,
            generation=generation,
            wall_offset_s=wall_offset_s,
            max_clock_skew_s=float(config.max_clock_skew_s),
            sloppy_quorum=config.sloppy_quorum,
            tombstone_grace_s=float(config.tombstone_grace_s),
            limits=Limits(
                max_key_bytes=config.max_key_bytes,
                max_value_bytes=config.max_value_bytes,
                max_siblings=config.max_siblings,
                max_context_bytes=config.max_context_bytes,
                max_in_flight_per_client=config.max_in_flight_per_client,
                max_message_bytes=config.max_message_bytes,
            ),
        )
