"""A stand-in gateway with a synthetic 150-node cluster, to test that the page itself scales.

150 real nodes do not fit on this machine; the page's cost does not depend on where the JSON comes from.
This serves the real static files and the dashboard's routes with data built by the real pure code
(:func:`zkv.http.feed.snapshot` over synthetic statuses, :func:`zkv.http.feed.ring_drawing` of a real
150-member ring, :func:`zkv.http.inspect.inspect`), in a thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from aiohttp import web

from zkv.client import ReplicaState, StoredVersion
from zkv.core.ring import Ring
from zkv.http.app import index, static_file
from zkv.http.feed import HintAges, Poll, ring_drawing, snapshot
from zkv.http.inspect import inspect

VNODES = 64


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeCluster:
    def __init__(self, nodes: int) -> None:
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.ring = Ring.from_nodes(self.names, VNODES, 3)
        self.share = self.ring.ownership()
        self.down = {self.names[-1]}
        self.polls = 0
        self.ages = HintAges()
        self.last: Poll | None = None

    def poll(self) -> Poll:
        self.polls += 1
        k = self.polls
        share = self.share
        nodes = [
            {
                "name": n,
                "address": f"tcp://10.0.{i // 250}.{i % 250}:7101",
                "status": "down" if n in self.down else "up",
                "generation": 1,
                "heartbeat_age": 0.1 if n not in self.down else 42.0,
                "keys": 1000 + i,
                "vnodes": VNODES,
                "ownership": share.get(n, 0.0),
                "gossip": "",
                "phi": 0.0,
            }
            for i, n in enumerate(self.names)
        ]
        statuses: dict[str, dict[str, Any] | None] = {}
        for i, n in enumerate(self.names):
            if n in self.down:
                statuses[n] = None
                continue
            statuses[n] = {
                "uptime_s": 100.0 + k,
                "keys": 1000 + i,
                "requests": {"get/quorum": 50 * k + i, "put/quorum": 20 * k, "put/one": 5 * k},
                "errors": {"timeout": k // 3} if i % 10 == 0 else {},
                "latency": {"get": {"count": 100, "p50_ms": 0.9, "p99_ms": 4.0 + i % 7, "max_ms": 12.0}},
                "hints": {"pending": {self.names[-1]: 10 + i}, "delivered": i, "dropped": 0},
                "read_repairs": k,
                "anti_entropy": {
                    "exchanges": k,
                    "keys_sent": i,
                    "keys_received": 0,
                    "last_differences": {self.names[(i + 1) % len(self.names)]: i % 3},
                },
                "transfer": {},
            }
        return Poll(float(k), time.time(), self.names[0], nodes, statuses)

    def views(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for observer in self.names:
            if observer in self.down:
                out[observer] = {"error": "no_node_available", "message": "not answering"}
                continue
            rows = {}
            for n in self.names:
                status = "down" if n in self.down else "up"
                if observer == self.names[1] and n == self.names[2]:
                    status = "down"  # one disagreement
                rows[n] = {"name": n, "status": status, "heartbeat_age": 0.2}
            out[observer] = rows
        return {"views": out}


class FakeGateway:
    """``with FakeGateway(150) as gw: gw.url``"""

    def __init__(self, nodes: int) -> None:
        self.cluster = FakeCluster(nodes)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        cluster = self.cluster

        async def events(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            first = cluster.poll()
            snap = snapshot(cluster.poll(), first, cluster.ages)
            # two minutes of (identical) points to draw at once
            history = [{"t": snap["t"] - 120 + i, "cluster": snap["cluster"]} for i in range(120)]
            await response.write(_sse("hello", {"tick_s": 1.0, "history": history, "latest": None}))
            try:
                while True:
                    poll = cluster.poll()
                    await response.write(_sse("tick", snapshot(poll, cluster.last, cluster.ages)))
                    cluster.last = poll
                    await asyncio.sleep(1.0)
            except (ConnectionError, asyncio.CancelledError):
                pass
            return response

        async def ring(request: web.Request) -> web.Response:
            return web.json_response(ring_drawing(cluster.ring, VNODES))

        views_body = json.dumps(cluster.views())  # built once: the test times the page, not this stand-in

        async def views(request: web.Request) -> web.Response:
            return web.Response(text=views_body, content_type="application/json")

        async def key(request: web.Request) -> web.Response:
            name = request.match_info["key"].encode()
            owners = cluster.ring.preference_list(name)
            a = StoredVersion(b"red", "n1~x", 2, 10.0)
            b = StoredVersion(b"blue", "n2~y", 1, 11.0)
            states: dict[str, Any] = {n: ReplicaState([b, a], {"n1~x": 2, "n2~y": 1}) for n in owners}
            up = {n for n in cluster.names if n not in cluster.down}
            return web.json_response(inspect(name, cluster.ring, up, states))

        async def whoami(request: web.Request) -> web.Response:
            return web.json_response({"role": "client"})  # as a client token would: no admin action

        async def history(request: web.Request) -> web.Response:
            return web.json_response({"node": request.query.get("node"), "history": []})

        app.router.add_get("/v1/dashboard/events", events)
        app.router.add_get("/v1/dashboard/ring", ring)
        app.router.add_get("/v1/dashboard/history", history)
        app.router.add_get("/v1/dashboard/keys/{key}", key)
        app.router.add_get("/v1/cluster/views", views)
        app.router.add_get("/v1/dashboard/whoami", whoami)
        app.router.add_get("/", index)
        app.router.add_get("/{path:.+}", static_file)
        return app

    async def _start(self) -> str:
        self._runner = web.AppRunner(self._app(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> FakeGateway:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
