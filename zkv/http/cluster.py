"""``/v1/cluster/nodes|ring|views`` and ``/v1/nodes/{name}/status``: the data the shell shows, as JSON."""

from __future__ import annotations

from aiohttp import web

from zkv.client import Client
from zkv.http.errors import HttpError
from zkv.http.state import POOL
from zkv.http.wire import node_json, ring_json, status_json, views_json


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/cluster/nodes", nodes)
    app.router.add_get("/v1/cluster/ring", ring)
    app.router.add_get("/v1/cluster/views", views)
    app.router.add_get("/v1/nodes/{name}/status", node_status)
    app.router.add_get("/v1/nodes/{name}/faults", node_faults)  # admin tokens only (zkv.http.auth)
    app.router.add_post("/v1/nodes/{name}/leave", node_leave)  # admin tokens only


async def nodes(request: web.Request) -> web.Response:
    rows = await request.app[POOL].run(lambda c: c.nodes())
    return web.json_response({"nodes": [node_json(n) for n in rows]})


async def ring(request: web.Request) -> web.Response:
    info = await request.app[POOL].run(lambda c: c.ring(refresh=True))
    return web.json_response(ring_json(info))


async def views(request: web.Request) -> web.Response:
    return web.json_response({"views": views_json(await request.app[POOL].run(lambda c: c.views()))})


def _address(client: Client, name: str) -> str:
    addresses = client.ring().addresses
    if name not in addresses:
        addresses = client.ring(refresh=True).addresses
    if name not in addresses:
        raise HttpError("not_found", f"no node named {name!r}", nodes=sorted(addresses))
    return addresses[name]


async def node_status(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    status = await request.app[POOL].run(lambda c: c.status(_address(c, name)))
    return web.json_response(status_json(status))


async def node_faults(request: web.Request) -> web.Response:
    """The node's fault filter (what tools/partition.py sets), read-only over HTTP."""
    name = request.match_info["name"]
    reply = await request.app[POOL].run(lambda c: c.faults(_address(c, name)))
    return web.json_response(status_json(reply))


async def node_leave(request: web.Request) -> web.Response:
    """Decommission: the node hands its data over and leaves (as ``zkv-node leave``); 202: it takes time."""
    name = request.match_info["name"]
    reply = await request.app[POOL].run(lambda c: c.leave(_address(c, name)))
    return web.json_response(status_json(reply), status=202)
