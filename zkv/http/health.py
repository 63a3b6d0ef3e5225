"""``/health``: the gateway answers and so does the node it fronts (or, free-standing, any node)."""

from __future__ import annotations

from aiohttp import web

from zkv.http.state import POOL, SETTINGS


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)


async def health(request: web.Request) -> web.Response:
    address = request.app[SETTINGS].node_address
    reply = await request.app[POOL].run(lambda c: c.ping(address))
    return web.json_response({"status": "ok", "node": reply.get("node")})
