"""What one simulated node process is (:class:`SimNode`), and a bug its core raised (:class:`Bug`).

Apart from :mod:`zkv.sim.cluster`, which drives them, so that checkers and reports can name them
without the driver.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.sim.storage import Disk


def address(name: str) -> tuple[str, str]:
    return f"sim://{name}", f"sim://{name}/gossip"


@dataclass(slots=True)
class SimNode:
    """One node process and what outlives it."""

    name: str
    settings: NodeSettings  # generation and actor are filled in at each start
    disk: Disk
    rng: random.Random
    core: NodeCore | None = None
    alive: bool = False
    life: int = 0  # increments at every start: frames and timers of an earlier life are void
    paused_until: float = 0.0
    timer_at: float = float("inf")
    dealers: dict[str, None] = field(default_factory=dict)  # peers with a request connection (ordered)
    peer_routes: dict[bytes, str] = field(default_factory=dict)  # their routes (the runtime's _peer_routes)
    connected: dict[str, bool] = field(default_factory=dict)  # whether that connection is up
    join_seeds: list[str] = field(default_factory=list)  # started with --join through these
    seeds: list[str] = field(default_factory=list)  # the seeds still to announce to, until taken in
    torn_crash: bool = False
    subscribed: dict[str, None] = field(default_factory=dict)  # publishers its SUB hears (ordered)
    sub_epoch: int = -1  # the core's monitors_epoch those follow
    clean_stops: int = 0
    starts: int = 0


@dataclass(slots=True)
class Bug:
    """An exception a core handler raised, with where and when."""

    node: str
    at: float
    handler: str
    error: str
