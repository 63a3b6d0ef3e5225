"""The dashboard's server side: a live feed over Server-Sent Events and the JSON the page draws from.

Routes (mounted on the gateway by :func:`setup`):

* ``GET /v1/dashboard/events`` — ``text/event-stream``: first a ``hello`` event with the last few minutes
  of cluster-wide rates, then a ``tick`` event every second (see :mod:`zkv.http.feed`).
* ``GET /v1/dashboard/history?node=NAME`` — that node's rates over the same minutes (the chart's node
  picker), so the feed itself stays small with 150 nodes.
* ``GET /v1/dashboard/ring`` — every member's tokens as fractions of the ring, for drawing it.
* ``GET /v1/dashboard/keys/{key}`` — the key inspector (:mod:`zkv.http.inspect`).
* ``GET /v1/dashboard/whoami`` — whether the page may offer admin actions (``role``: admin or client).
* ``POST /v1/dashboard/nodes/{name}/decommission`` — admin only: the node hands its data over and leaves
  (the shell's ``decommission``).

Roles fail closed: a request is admin when the gateway runs without security, or when an authentication
layer in front of these handlers put ``role = "admin"`` on it (``request[ROLE]``); with security on and no
role set, it is a client and admin actions are refused.

One :class:`Feed` per gateway polls the cluster once a second, and only while at least one page listens;
every listener gets the same encoded message. Like every route, it runs its blocking client calls on the
gateway's client pool, off the event loop.
SSE rather than a WebSocket: the page only listens, and ``fetch`` streaming lets it send the bearer token in
a header (``EventSource`` cannot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from zkv.client import Client
from zkv.errors import InvalidRequest, Unauthorized, ZkvError
from zkv.http.feed import HintAges, Poll, ring_drawing, snapshot
from zkv.http.inspect import inspect
from zkv.http.state import POOL, SETTINGS

TICK_S = 1.0
HISTORY_TICKS = 300  # five minutes of one-second points
KEEPALIVE_S = 15.0  # a comment line now and then, so proxies and the page see the stream is alive
QUEUE_TICKS = 5  # a listener this far behind loses its oldest ticks rather than growing memory
POLL_TIMEOUT_S = 0.8  # a node slower than this to report misses one tick, not the whole feed


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


Run = Callable[[Callable[[Client], Any]], Awaitable[Any]]


class Feed:
    """Polls the cluster each second while someone listens and fans the result out to every listener."""

    def __init__(self, run: Run, node: str | None = None, node_address: str | None = None) -> None:
        self.run = run  # runs a blocking client call off the event loop (the gateway's client pool)
        self.node = node  # the gateway's own node: the table shows the cluster as it sees it
        self.node_address = node_address
        self._listeners: set[asyncio.Queue[bytes]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: Poll | None = None
        self._ages = HintAges()
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_TICKS)
        self.latest: dict[str, Any] | None = None

    def _view(self, client: Client) -> tuple[list[Any], str | None]:
        """The membership view of the gateway's node, or when it is down, of the next node up."""
        up = [n["address"] for n in (self._last.nodes if self._last else []) if n["status"] == "up"]
        # its own node first, unless the last view had it down (a silent node would cost a timeout a tick)
        own_up = self.node_address is not None and (self._last is None or self.node_address in up)
        candidates = list(dict.fromkeys([self.node_address, *up] if own_up else up))
        for address in candidates:
            try:
                return client.nodes(address), address
            except ZkvError:
                continue
        return client.nodes(), None  # any node that answers (raises when none does)

    def _poll(self, client: Client) -> Poll:
        infos, address = self._view(client)
        nodes = [asdict(n) for n in infos]
        asked = [n for n in infos if n.status in ("up", "joining", "leaving")]
        replies = client.statuses([n.address for n in asked], timeout=POLL_TIMEOUT_S) if asked else []
        statuses: dict[str, dict[str, Any] | None] = {n.name: None for n in infos}
        for info, reply in zip(asked, replies, strict=True):
            # the feed's rates walk counters by path in the wire form (the same data, JSON-ready)
            statuses[info.name] = None if isinstance(reply, ZkvError) else reply.to_wire()
        seen_by = next((n.name for n in infos if address is not None and n.address == address), "")
        return Poll(time.monotonic(), time.time(), seen_by, nodes, statuses)

    # ------------------------------------------------------------------------------------------ feed

    def listen(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE_TICKS)
        self._listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def stop_listening(self, queue: asyncio.Queue[bytes]) -> None:
        self._listeners.discard(queue)

    async def _run(self) -> None:
        while self._listeners:
            started = time.monotonic()
            try:
                poll = await self.run(self._poll)
            except ZkvError as exc:
                message = _sse("unreachable", {"error": exc.code, "message": str(exc)})
            else:
                snap = snapshot(poll, self._last, self._ages)
                self._last = poll
                if snap["dt"] > 0:
                    self.latest = snap
                    self.history.append(
                        {"t": snap["t"], "cluster": snap["cluster"], "per_node": snap["per_node"]}
                    )
                message = _sse("tick", snap)
            for queue in list(self._listeners):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(message)
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - started)))
        self._last = None  # a gap with nobody listening is not a rate

    def hello(self) -> dict[str, Any]:
        """What a page gets first: the cluster-wide points of the last minutes and the latest tick."""
        return {
            "tick_s": TICK_S,
            "history": [{"t": h["t"], "cluster": h["cluster"]} for h in self.history],
            "latest": self.latest,
        }

    def node_history(self, node: str) -> list[dict[str, Any]]:
        return [{"t": h["t"], "node": h["per_node"][node]} for h in self.history if node in h["per_node"]]

    async def close(self) -> None:
        """End every stream (an empty message tells its handler to return) and the poll."""
        for queue in list(self._listeners):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(b"")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


FEED = web.AppKey("zkv_dashboard_feed", Feed)


async def events(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEED]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = feed.listen()
    try:
        await response.write(_sse("hello", feed.hello()))
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                message = b": keepalive\n\n"
            if not message:
                break  # the gateway is shutting down
            await response.write(message)
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    finally:
        feed.stop_listening(queue)
    return response


async def history(request: web.Request) -> web.Response:
    node = request.query.get("node", "")
    if not node:
        raise InvalidRequest("give the node: /v1/dashboard/history?node=NAME")
    return web.json_response({"node": node, "history": request.app[FEED].node_history(node)})


def _ring(client: Client) -> dict[str, Any]:
    info = client.ring(refresh=True)
    return ring_drawing(info.ring, info.vnodes)


async def ring(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FEED].run(_ring))


#: the request key an auth middleware sets to "admin" or "client" (a typed key where aiohttp has them)
ROLE: Any = web.RequestKey("zkv_role", str) if hasattr(web, "RequestKey") else "zkv_role"


def role(request: web.Request) -> str:
    """``admin`` or ``client`` (see the module doc: without security everyone is admin)."""
    set_by_auth = request.get(ROLE)
    if isinstance(set_by_auth, str):
        return set_by_auth
    config = request.app[SETTINGS].config
    security = config.security if config is not None else None
    secured = security is not None and (security.curve or getattr(security, "http_tokens", None) is not None)
    return "client" if secured else "admin"


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"role": role(request)})


async def decommission(request: web.Request) -> web.Response:
    if role(request) != "admin":
        raise Unauthorized("decommissioning a node needs an admin token")
    name = request.match_info["name"]
    reply = await request.app[FEED].run(lambda c: c.leave(name))
    return web.json_response({"node": name, "leaving": True, **{k: v for k, v in reply.items() if k != "id"}})


def _inspect(client: Client, key: bytes) -> dict[str, Any]:
    info = client.ring(refresh=True)
    up = {n.name for n in client.nodes() if n.status == "up"}
    return inspect(key, info.ring, up, client.replicas(key))


async def key(request: web.Request) -> web.Response:
    name = request.match_info["key"]
    if not name:
        raise InvalidRequest("the key is empty")
    data = name.encode("utf-8", "surrogateescape")
    return web.json_response(await request.app[FEED].run(lambda c: _inspect(c, data)))


def setup(app: web.Application) -> None:
    """Mount the dashboard's routes on the gateway; the feed borrows the gateway's client pool."""
    settings = app[SETTINGS]
    feed = Feed(app[POOL].run, settings.node, settings.node_address)
    app[FEED] = feed

    async def close(_: web.Application) -> None:
        await feed.close()

    app.on_shutdown.append(close)
    app.router.add_get("/v1/dashboard/events", events)
    app.router.add_get("/v1/dashboard/history", history)
    app.router.add_get("/v1/dashboard/ring", ring)
    app.router.add_get("/v1/dashboard/keys/{key}", key)
    app.router.add_get("/v1/dashboard/whoami", whoami)
    app.router.add_post("/v1/dashboard/nodes/{name}/decommission", decommission)
