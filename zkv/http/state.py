"""What the route modules share through the aiohttp app (typed keys, so mypy checks every use)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from zkv.config import ClusterConfig
from zkv.http.auth import Identity
from zkv.http.loopclient import LoopClient
from zkv.http.pool import ClientPool


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Where the gateway stands: its cluster file (None with bare seeds) and the node it fronts."""

    config: ClusterConfig | None
    node: str | None  # the node this gateway belongs to (--node), None for a free-standing one
    node_address: str | None
    tokens: dict[str, Identity] | None = field(default=None)  # hash -> identity; None: no tokens asked


POOL: web.AppKey[ClientPool] = web.AppKey("zkv_pool", ClientPool)
SETTINGS: web.AppKey[GatewaySettings] = web.AppKey("zkv_settings", GatewaySettings)
LOOP: web.AppKey[LoopClient] = web.AppKey("zkv_loop_client", LoopClient)
