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


async def nodes(request: web.Request) -> web.Response:
    rows = await request.app[POOL].run(lambda c: c.nodes())
    return web.json_response({"nodes": [node_json(n) for n in rows]})


async def ring(request: web.Request) -> web.Response:
    info = await request.app[POOL].run(lambda c: c.ring(refresh=True))
    return web.json_response(ring_json(info))


async def views(request: web.Request) -> web.Response:
    return web.json_response({"views": views_json(await request.app[POOL].run(lambda c: c.views()))})


async def node_status(request: web.Request) -> web.Response:
    name = request.match_info["name"]

    def status(client: Client) -> object:
        addresses = client.ring().addresses
        if name not in addresses:
            addresses = client.ring(refresh=True).addresses
        if name not in addresses:
            raise HttpError("not_found", f"no node named {name!r}", nodes=sorted(addresses))
        return client.status(addresses[name])

    return web.json_response(status_json(await request.app[POOL].run(status)))
