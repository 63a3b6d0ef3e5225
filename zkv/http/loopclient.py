"""Keyed requests (get, put, delete) sent straight from aiohttp's event loop, without a thread hop.

The gateway's hot path. The synchronous :class:`zkv.client.Client` in a thread pool costs a thread
hand-off and a GIL convoy per request (measured: ~550 us of gateway CPU per quorum get, most of it
there); this sends the same request messages on non-blocking DEALER sockets owned by the loop and
resolves a future when the reply comes, so a request costs a msgpack pack, a send and a receive.

It routes as the client does, with the client's own routing and connections
(:func:`zkv.client.transport.route`, :func:`~zkv.client.transport.dealer`): to the key's preference list
first, in order, then to every other node; a node that is not connected is skipped at once; a silent node
makes a read go to the next one and a write fail with ``timeout`` (re-sent, it could land twice); a node
that answers ``stopping`` (draining for a restart: it did nothing) gets the request's next candidate at
once, a write too, and one that answers ``unavailable`` before attempting anything the next node of the
preference list (:mod:`zkv.client.retry`, the client's own policy); each request has one deadline. The
ring comes from a pooled :class:`Client` (``refresh_ring``), re-learned in the background every few
seconds, so joins and leaves reach the gateway as they reach the client.

Per request it costs a msgpack pack and a share of a send and a receive: the requests queued in one loop
turn go to each node as one frame (:func:`frame`), no timer per request (one sweep a tick expires the
calls past their deadline), no copy of the message.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import zmq

from zkv.client import CONNECT_PATIENCE_S, RING_TTL_S, Client, GetResult, RingInfo
from zkv.client.retry import BUDGET_WAITS, next_candidates
from zkv.client.transport import dealer, routes
from zkv.errors import NoNodeAvailable, Timeout, ZkvError, from_reply
from zkv.protocol import MAX_BATCH, pack, unpack_frame

log = logging.getLogger("zkv.http")

SWEEP_S = 0.05  # how often calls past their deadline are expired (a timeout is seconds: 50 ms is noise)
BATCH_BYTES = 256 * 1024  # a frame of queued requests stops growing here (a large value goes alone)


def frame(packed: list[bytes]) -> bytes:
    """One frame holding already packed messages: the message itself, or a msgpack array of them (the
    array's header and the messages' bytes side by side: no second packing pass)."""
    count = len(packed)
    if count == 1:
        return packed[0]
    header = bytes((0x90 | count,)) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return header + b"".join(packed)


def batches(queue: list[tuple[_Call, bytes]]) -> list[list[tuple[_Call, bytes]]]:
    """``queue`` cut into frames of at most MAX_BATCH messages and about BATCH_BYTES each."""
    out: list[list[tuple[_Call, bytes]]] = []
    size = 0
    for item in queue:
        if not out or len(out[-1]) >= MAX_BATCH or size + len(item[1]) > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[1])
    return out


class _Call:
    __slots__ = (
        "msg",
        "candidates",
        "preferred",
        "future",
        "deadline",
        "final",
        "write",
        "rid",
        "last_error",
    )

    def __init__(
        self,
        msg: dict[str, Any],
        routed: tuple[list[str], tuple[str, ...]],
        future: asyncio.Future,
        write: bool,
        final: float,
    ) -> None:
        self.msg = msg
        self.candidates, self.preferred = routed  # where to try, and the key's preference list
        self.future = future
        self.deadline = 0.0  # this attempt's
        self.final = final  # the request's one deadline
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
        # (deadline, request id) of every send, a heap: an attempt ends at the request's one deadline
        self._waiting: list[tuple[float, int]] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._ring: RingInfo | None = None
        self._ring_at = -float("inf")
        self._refreshing: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outgoing: dict[str, list[tuple[_Call, bytes]]] = {}  # address -> (call, packed) this turn
        self._flushing = False

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
        self,
        key: bytes,
        value: bytes,
        level: str | None,
        context: bytes | None,
        ttl: float | None = None,
        condition: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A put; ``condition`` (serial only): ``{"if_absent": True}`` or ``{"if_value": b"..."}``."""
        msg: dict[str, Any] = {"op": "put", "key": key, "cl": level, "value": value, **(condition or {})}
        if context is not None:
            msg["ctx"] = context
        if ttl is not None:
            msg["ttl"] = ttl
        return await self._request(msg, write=True)

    async def delete(
        self, key: bytes, level: str | None, context: bytes | None, condition: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "delete", "key": key, "cl": level, **(condition or {})}
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
        final = time.monotonic() + BUDGET_WAITS * self.timeout
        call = _Call(
            msg, routes(self._ring, msg["key"], self._template.seeds), loop.create_future(), write, final
        )
        self._dispatch(call)
        return await call.future

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
        """Queue ``call`` for its next candidate; the queues go out together when this loop turn ends."""
        while call.candidates:
            address = call.candidates.pop(0)
            sock = self._socket(address)
            if sock is None:
                continue
            rid = next(self._ids)
            call.msg["id"] = rid  # the call owns its message: no copy per send
            queue = self._outgoing.get(address)
            if queue is None:
                queue = self._outgoing[address] = []
            queue.append((call, pack(call.msg)))
            self._calls[rid] = call
            call.rid = rid
            call.deadline = min(call.final, time.monotonic() + self.timeout)
            heapq.heappush(self._waiting, (call.deadline, rid))
            assert self._loop is not None
            if not self._flushing:
                self._flushing = True
                self._loop.call_soon(self._flush)
            if self._sweeper is None:
                self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)
            return
        if not call.future.done():
            call.future.set_exception(
                call.last_error or NoNodeAvailable("no zkv node answered; is the cluster running?")
            )

    def _flush(self) -> None:
        """Send each node what this turn queued for it as one frame (a msgpack array of the requests,
        which the node takes as a batch: :func:`zkv.protocol.unpack_frame`): one send, one receive on
        the node instead of one per request when several HTTP requests arrive together."""
        self._flushing = False
        outgoing, self._outgoing = self._outgoing, {}
        for address, queue in outgoing.items():
            sock = self._sockets.get(address)
            for chunk in batches(queue):
                try:
                    if sock is None:
                        raise zmq.Again
                    sock.send(frame([payload for _, payload in chunk]), zmq.NOBLOCK)
                except zmq.Again:
                    for call, _ in chunk:
                        self._unsent(call, address)
                    continue
            if sock is not None and cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                assert self._loop is not None
                self._loop.call_soon(self._drain, sock)  # edge-triggered fd: a reply may already wait

    def _unsent(self, call: _Call, address: str) -> None:
        """Not connected (IMMEDIATE): a fresh socket gets a moment to connect, else the next node."""
        self._calls.pop(call.rid, None)
        if call.future.done():
            return
        if time.monotonic() - self._born.get(address, 0.0) < CONNECT_PATIENCE_S:
            call.candidates.insert(0, address)
            assert self._loop is not None
            self._loop.call_later(0.01, self._dispatch, call)
            return
        self._dispatch(call)

    def _sweep(self) -> None:
        """Expire the calls past their deadline (the earliest first); the rest expire later."""
        self._sweeper = None
        waiting, calls, now = self._waiting, self._calls, time.monotonic()
        while waiting and (waiting[0][1] not in calls or waiting[0][0] <= now):
            _, rid = heapq.heappop(waiting)
            if rid in calls:
                self._expire(rid)  # a read goes to the next node: a new id at the back of the queue
        if waiting and self._loop is not None and not self._loop.is_closed():
            self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)

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
        if time.monotonic() >= call.final:
            call.future.set_exception(call.last_error)  # its one deadline has passed
            return
        self._dispatch(call)

    def _socket(self, address: str) -> zmq.Socket | None:
        sock = self._sockets.get(address)
        if sock is not None:
            return sock
        try:
            sock = dealer(self._ctx, address, self._template.curve_key, self._template.server_keys)
        except ZkvError as exc:  # an address that does not resolve: the next node
            log.warning("%s", exc)
            return None
        if sock is None:
            return None
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
                if call is None or call.future.done():
                    continue  # (its entry in the sweep's queue goes when the sweep reaches it)
                if reply.get("ok"):
                    call.future.set_result(reply)
                    continue
                rest = next_candidates(reply, call.write, call.candidates, call.preferred)
                if rest is not None and time.monotonic() < call.final:
                    call.candidates = rest  # it did nothing (draining, or too few replicas in its view)
                    call.last_error = from_reply(reply)
                    self._dispatch(call)
                else:
                    call.future.set_exception(from_reply(reply))

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for call in self._calls.values():
            if not call.future.done():
                call.future.cancel()
        self._calls.clear()
        self._waiting.clear()
        self._outgoing.clear()
        for sock in self._sockets.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(cast(int, sock.getsockopt(zmq.FD)))
            sock.close(linger=0)
        self._sockets.clear()
        self._ctx.term()
