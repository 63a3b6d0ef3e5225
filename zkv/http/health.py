"""``/health`` (the gateway answers and so does its node) and ``/ready`` (the node can serve quorum).

``/ready`` is the node's own readiness (:mod:`zkv.core.readiness`): 200 once it has heard from a quorum
of replicas for every range it holds, 503 with the reason before that (and again if it loses them). A
free-standing gateway (``--listen`` without ``--node``) is ready when every node it knows is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from zkv.client import Client
from zkv.errors import ZkvError
from zkv.http.errors import error_response
from zkv.http.state import POOL, SETTINGS
from zkv.http.wire import status_json


def loop_name() -> str:
    """Which event loop serves: ``uvloop`` (the gateway's choice) or ``asyncio`` (when uvloop is missing)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)


async def health(request: web.Request) -> web.Response:
    address = request.app[SETTINGS].node_address
    reply = await request.app[POOL].run(lambda c: c.ping(address))
    return web.json_response({"status": "ok", "node": reply.get("node"), "loop": loop_name()})


async def ready(request: web.Request) -> web.Response:
    address = request.app[SETTINGS].node_address

    def ask(client: Client) -> dict[str, dict[str, Any]]:
        targets = [address] if address else list(client.ring().addresses.values())
        out = {}
        for target in targets:
            status = status_json(client.status(target))
            state = dict(status.get("readiness") or {"ready": True, "reason": ""})
            # a node whose disk refuses writes still serves reads and hands writes to a replica whose disk
            # takes them, so it stays ready; the state is shown so an operator sees it here too
            state["storage"] = (status.get("disk") or {}).get("state", "ok")
            out[str(status.get("node", target))] = state
        return out

    try:
        states = await request.app[POOL].run(ask)
    except ZkvError as exc:
        return error_response("not_ready", f"the node does not answer: {exc.message}", 503, cause=exc.code)
    waiting = {name: state for name, state in states.items() if not state.get("ready")}
    if waiting:
        reason = "; ".join(f"{name}: {state.get('reason')}" for name, state in sorted(waiting.items()))
        return error_response("not_ready", reason, 503, nodes=states)
    return web.json_response({"ready": True, "nodes": states})
