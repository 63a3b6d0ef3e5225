"""The dashboard's admin actions on one node, beyond decommission: what a Riak Control or nodetool user
reaches for when the healing view shows trouble, or to see how the cluster takes a fault.

* ``POST /v1/dashboard/nodes/{name}/repair`` — a full anti-entropy pass with every peer now (the node's
  ``repair_now``, as ``zkv-node repair`` / ``nodetool repair``); its progress is in the healing view.
* ``POST /v1/dashboard/nodes/{name}/isolate`` — fault injection: cut the node off from every other node,
  both ways, through the nodes' fault filters (as ``tools/partition.py isolate``). The others soon see it
  down and take hints for it; clients still reach it (a partition between nodes, not from clients).
* ``POST /v1/dashboard/nodes/{name}/heal`` — undo it: the node's own rules and every rule about it on the
  others are removed; hints and anti-entropy then catch it up.
* ``POST /v1/dashboard/nodes/{name}/restart`` — drain and restart (the node's ``restart``: it refuses new
  reads and writes with ``stopping`` for a request timeout, then exits for its supervisor to start it
  again, as ``zkv-node rolling-restart`` does one node at a time).

Admin only, twice over: the auth middleware refuses client tokens on these routes (``zkv.http.auth``),
and each handler checks the role again (fail closed, as decommission does). The blocking client calls run
on the gateway's client pool, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from zkv.client import Client
from zkv.errors import InvalidRequest, Unauthorized, ZkvError
from zkv.http.dashboard import FEED, role

FAULT_KINDS = ("drop_in", "drop_out", "delay_in")
PATHS = {
    action: f"/v1/dashboard/nodes/{{name}}/{action}" for action in ("repair", "isolate", "heal", "restart")
}


def _others(client: Client, name: str) -> list[str]:
    """The members other than ``name`` that can take a fault rule (a removed one is no member)."""
    nodes = client.nodes()
    if name not in {n.name for n in nodes}:
        raise InvalidRequest(f"no node named {name!r}", node=name)
    return [n.name for n in nodes if n.name != name and n.status != "removed"]


def _rules(client: Client, node: str) -> dict[str, dict[str, float]]:
    reply = client.faults(node)
    return {kind: dict(reply.get(kind) or {}) for kind in FAULT_KINDS}


def isolate(client: Client, name: str) -> dict[str, Any]:
    """Drop everything between ``name`` and every other node: installed on each receiver as ``drop_in``
    (which covers requests, replies and heartbeats), keeping the rules each node had."""
    others = _others(client, name)
    own = _rules(client, name)  # first: a node that does not answer is refused before anything changes
    for peer in others:
        rules = _rules(client, peer)
        rules["drop_in"][name] = 1.0
        client.faults(peer, **rules)
    own["drop_in"].update(dict.fromkeys(others, 1.0))
    client.faults(name, **own)
    return {"node": name, "isolated_from": others}


def heal(client: Client, name: str) -> dict[str, Any]:
    """Remove every fault rule of ``name`` and every rule about it on the others (those that answer)."""
    others = _others(client, name)
    healed = []
    for peer in others:
        try:
            rules = _rules(client, peer)
        except ZkvError:
            continue  # a node that is down: nothing to remove now (its filter is gone when it restarts)
        if any(name in rules[kind] for kind in FAULT_KINDS):
            kept = {kind: {p: v for p, v in r.items() if p != name} for kind, r in rules.items()}
            client.faults(peer, **kept)
            healed.append(peer)
    client.faults(name, drop_in={}, drop_out={}, delay_in={})
    return {"node": name, "healed": sorted([name, *healed])}


def _action(what: str, call: Callable[[Client, str], dict[str, Any]]) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        if role(request) != "admin":
            raise Unauthorized(f"{what} needs an admin token")
        name = request.match_info["name"]
        reply = await request.app[FEED].run(lambda c: call(c, name))
        return web.json_response({"node": name, **{k: v for k, v in reply.items() if k != "id"}})

    return handler


def setup(app: web.Application) -> None:
    app.router.add_post(PATHS["repair"], _action("a repair", lambda c, n: c.repair_now(n)))
    app.router.add_post(PATHS["isolate"], _action("fault injection", isolate))
    app.router.add_post(PATHS["heal"], _action("fault injection", heal))
    app.router.add_post(PATHS["restart"], _action("a restart", lambda c, n: c.restart(n)))
