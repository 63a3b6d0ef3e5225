"""Keyed requests (get, put, delete) sent straight from aiohttp's event loop, without a thread hop.

The gateway's hot path. The synchronous :class:`zkv.client.Client` in a thread pool costs a thread
hand-off and a GIL convoy per request (measured: ~550 us of gateway CPU per quorum get, most of it
there); this sends the same request messages on non-blocking DEALER sockets owned by the loop and
resolves a future when the reply comes, so a request costs a msgpack pack, a send and a receive.

It routes as the client does (DESIGN.md §2): to the key's preference list first, in order, then to every
other node; a node that is not connected is skipped at once; a silent node makes a read go to the next
one and a write fail with ``timeout`` (re-sent, it could land twice). The ring comes from a pooled
:class:`Client` (``refresh_ring``), re-learned in the background every few seconds, so joins and leaves
reach the gateway as they reach the client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import zmq

from zkv.client import CONNECT_PATIENCE_S, RING_TTL_S, Client, GetResult, RingInfo
from zkv.errors import NoNodeAvailable, Timeout, ZkvError, from_reply
from zkv.protocol import pack, unpack_frame
from zkv.security import make_curve_client

log = logging.getLogger("zkv.http")

HWM = 100_000


class _Call:
    __slots__ = ("msg", "candidates", "future", "timer", "write", "rid", "last_error")

    def __init__(
        self, msg: dict[str, Any], candidates: list[str], future: asyncio.Future, write: bool
    ) -> None:
        self.msg = msg
        self.candidates = candidates
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.write = write
        self.rid = 0
        self.last_error: ZkvError | None = None


class LoopClient:
    """Non-blocking keyed requests for one event loop; ``template`` gives the keys, limits and timeout."""

    def __init__(
        self,
        template: Client,
        refresh_ring: Callable[[], Awaitable[RingInfo]],
        default_timeout: float | None = None,
    ) -> None:
        self._template = template  # never used for I/O here: only its settings (CURVE keys, seeds)
        self._refresh_ring = refresh_ring
        self._timeout = default_timeout
        self._ctx = zmq.Context()
        self._sockets: dict[str, zmq.Socket] = {}
        self._born: dict[str, float] = {}  # when each socket was made: a young one may still be connecting
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._ring: RingInfo | None = None
        self._ring_at = -float("inf")
        self._refreshing: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def timeout(self) -> float:
        if self._timeout is not None:
            return self._timeout
        return (self._ring.request_timeout if self._ring else 2.0) + 0.5

    # ------------------------------------------------------------------------------------------ requests

    async def get(self, key: bytes, level: str | None) -> GetResult:
        reply = await self._request({"op": "get", "key": key, "cl": level}, write=False)
        return GetResult(
            key, list(reply.get("values", [])), reply.get("ctx"), list(reply.get("timestamps", []))
        )

    async def put(
        self, key: bytes, value: bytes, level: str | None, context: bytes | None, ttl: float | None = None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "put", "key": key, "cl": level, "value": value}
        if context is not None:
            msg["ctx"] = context
        if ttl is not None:
            msg["ttl"] = ttl
        return await self._request(msg, write=True)

    async def delete(self, key: bytes, level: str | None, context: bytes | None) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "delete", "key": key, "cl": level}
        if context is not None:
            msg["ctx"] = context
        return await self._request(msg, write=True)

    async def _request(self, msg: dict[str, Any], write: bool) -> dict[str, Any]:
        loop = self._loop or asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if self._ring is None:
            await self._learn_ring()
        elif time.monotonic() - self._ring_at > RING_TTL_S and self._refreshing is None:
            self._refreshing = loop.create_task(self._learn_ring())
        call = _Call(msg, self._candidates(msg["key"]), loop.create_future(), write)
        self._dispatch(call)
        return await call.future

    def _candidates(self, key: bytes) -> list[str]:
        assert self._ring is not None
        addresses = self._ring.addresses
        preferred = [addresses[n] for n in self._ring.preference_list(key)]
        rest = [a for a in [*addresses.values(), *self._template.seeds] if a not in preferred]
        return list(dict.fromkeys(preferred + rest))

    async def _learn_ring(self) -> None:
        try:
            self._ring = await self._refresh_ring()
            self._ring_at = time.monotonic()
            for address in self._ring.addresses.values():
                self._socket(address)  # connect early: the first request to a node finds it connected
        except ZkvError as exc:
            if self._ring is None:
                raise
            log.warning("could not refresh the ring (%s); keeping the one learned before", exc)
        finally:
            self._refreshing = None

    def _dispatch(self, call: _Call) -> None:
        while call.candidates:
            address = call.candidates.pop(0)
            sock = self._socket(address)
            if sock is None:
                continue
            rid = next(self._ids)
            try:
                sock.send(pack({**call.msg, "id": rid}), zmq.NOBLOCK)
            except zmq.Again:
                # not connected (IMMEDIATE): a fresh socket gets a moment to connect, else the next node
                if time.monotonic() - self._born[address] < CONNECT_PATIENCE_S:
                    call.candidates.insert(0, address)
                    assert self._loop is not None
                    self._loop.call_later(0.01, self._dispatch, call)
                    return
                continue
            self._calls[rid] = call
            call.rid = rid
            assert self._loop is not None
            call.timer = self._loop.call_later(self.timeout, self._expire, rid)
            if cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                self._loop.call_soon(self._drain, sock)  # edge-triggered fd: a reply may already wait
            return
        if not call.future.done():
            call.future.set_exception(
                call.last_error or NoNodeAvailable("no zkv node answered; is the cluster running?")
            )

    def _expire(self, rid: int) -> None:
        call = self._calls.pop(rid, None)
        if call is None or call.future.done():
            return
        if call.write:
            call.future.set_exception(
                Timeout(
                    f"no answer from a node within {self.timeout:.1f}s; the write may or may not have been "
                    "applied (read before writing again)"
                )
            )
            return
        call.last_error = Timeout(f"no answer from a node within {self.timeout:.1f}s")
        self._dispatch(call)

    def _socket(self, address: str) -> zmq.Socket | None:
        sock = self._sockets.get(address)
        if sock is not None:
            return sock
        template = self._template
        server_key = template.server_keys.get(address)
        if template.curve_key is not None and server_key is None:
            return None
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if template.curve_key is not None and server_key is not None:
            make_curve_client(sock, template.curve_key, server_key)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.connect(address)
        self._sockets[address] = sock
        self._born[address] = time.monotonic()
        loop = self._loop or asyncio.get_running_loop()
        loop.add_reader(cast(int, sock.getsockopt(zmq.FD)), self._drain, sock)
        return sock

    def _drain(self, sock: zmq.Socket) -> None:
        while cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                payload = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                replies = unpack_frame(payload)
            except ZkvError:
                continue
            for reply in replies:
                rid = reply.get("id")
                call = self._calls.pop(rid, None) if type(rid) is int else None
                if call is None:
                    continue
                if call.timer is not None:
                    call.timer.cancel()
                if call.future.done():
                    continue
                if reply.get("ok"):
                    call.future.set_result(reply)
                else:
                    call.future.set_exception(from_reply(reply))

    def close(self) -> None:
        for call in self._calls.values():
            if call.timer is not None:
                call.timer.cancel()
            if not call.future.done():
                call.future.cancel()
        self._calls.clear()
        for sock in self._sockets.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(cast(int, sock.getsockopt(zmq.FD)))
            sock.close(linger=0)
        self._sockets.clear()
        self._ctx.term()
