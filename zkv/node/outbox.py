"""What leaves a node: messages packed into as few frames as the limits allow, sent on the ROUTER (to
clients and to peers that asked) or a peer's DEALER, and held briefly for a peer whose first connection
is still being made.

A message that cannot be sent is reported to the core (:meth:`NodeCore.on_send_failed`), which decides
what its request becomes; nothing here decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import zmq

from zkv.core.nodecore import NodeCore
from zkv.errors import MessageTooLarge
from zkv.node.faults import FaultFilter
from zkv.protocol import MAX_BATCH, PEER_OPS, pack

log = logging.getLogger(__name__)


def payloads(msgs: list[dict], limit: int) -> Iterator[tuple[list[dict], bytes | None]]:
    """Pack ``msgs`` into as few frames as the batch and message limits allow: (messages, frame)
    pairs, the frame None for a lone message that is over ``limit`` bytes by itself."""
    for start in range(0, len(msgs), MAX_BATCH):
        pending = [msgs[start : start + MAX_BATCH]]
        while pending:
            chunk = pending.pop()
            payload = pack(chunk if len(chunk) > 1 else chunk[0])
            if len(payload) <= limit:
                yield chunk, payload
            elif len(chunk) == 1:
                op, size = chunk[0].get("op"), len(payload)
                log.error("a %s message of %d bytes is over max_message_bytes", op, size)
                yield chunk, None
            else:  # rare (large values): halve until each part fits
                half = len(chunk) // 2
                pending += [chunk[half:], chunk[:half]]


class Outbox:
    """The sending half of a node's sockets."""

    def __init__(
        self,
        router: zmq.Socket,
        dealers: dict[str, zmq.Socket],
        peer_routes: dict[bytes, str],
        faults: FaultFilter,
        core: NodeCore,
        max_message_bytes: int,
    ) -> None:
        self.router = router
        self.dealers = dealers
        self.peer_routes = peer_routes
        self.faults = faults
        self.core = core
        self.limit = max_message_bytes
        # messages to a peer whose first connection is not up yet: (deadline, messages, frame), in order
        self.unconnected: dict[str, list[tuple[float, list[dict], bytes]]] = {}

    def next_deadline(self) -> float:
        """When the oldest held message gives up waiting for its connection (inf when none waits)."""
        unconnected = self.unconnected
        return min(held[0][0] for held in unconnected.values()) if unconnected else float("inf")

    def send_peer(self, peer: str, msgs: list[dict], now: float) -> None:
        if self.faults.active and self.faults.drops_out(peer):
            return
        dealer = self.dealers[peer]
        membership = self.core.membership
        for chunk, payload in payloads(msgs, self.limit):
            try:
                if payload is None:
                    raise zmq.Again  # one message over the limit: it cannot be sent at all
                dealer.send(payload, zmq.NOBLOCK)
            except zmq.Again:
                if payload is not None and membership.awaiting_connection(peer, now):
                    # its first connection is still being made (it started just after us): wait for it
                    deadline = now + membership.first_connect_wait
                    self.unconnected.setdefault(peer, []).append((deadline, chunk, payload))
                    continue
                self._failed(peer, chunk, now)

    def _failed(self, peer: str, chunk: list[dict], now: float) -> None:
        for msg in chunk:
            if msg.get("op") in PEER_OPS:  # a reply riding along is lost, as on the ROUTER
                self.core.on_send_failed(peer, msg, now)

    def release(self, peer: str, now: float) -> None:
        """The first connection to ``peer`` is up: send what waited for it."""
        dealer = self.dealers.get(peer)
        for _, chunk, payload in self.unconnected.pop(peer, []):
            try:
                if dealer is None:
                    raise zmq.Again
                dealer.send(payload, zmq.NOBLOCK)
            except zmq.Again:
                self._failed(peer, chunk, now)

    def expire(self, now: float) -> None:
        """Messages that waited ``first_connect_wait`` for a first connection that never came: failed."""
        for peer in list(self.unconnected):
            waiting = self.unconnected[peer]
            while waiting and waiting[0][0] <= now:
                _, chunk, _ = waiting.pop(0)
                self._failed(peer, chunk, now)
            if not waiting:
                del self.unconnected[peer]

    def send_reply(self, route: bytes, msgs: list[dict]) -> None:
        peer = self.peer_routes.get(route)
        if peer is not None and self.faults.active and self.faults.drops_out(peer):
            return
        router = self.router
        for chunk, payload in payloads(msgs, self.limit):
            if payload is None:
                if peer is not None or "id" not in chunk[0]:
                    continue
                # a reply too large to send (a key with many large siblings): say so instead
                error = MessageTooLarge("the reply is over max_message_bytes: resolve the key's siblings")
                payload = pack({"id": chunk[0]["id"], **error.to_wire()})
            try:
                # two sends, not send_multipart (3x slower in pyzmq); with ROUTER_MANDATORY only the
                # first frame can fail, and then nothing was queued
                router.send(route, zmq.SNDMORE | zmq.NOBLOCK)
                router.send(payload, zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # Again (queue full) or EHOSTUNREACH (the client is gone)
                log.debug("reply to %r dropped: %s", route, exc)
                return

    def reply_error(self, route: bytes, rid: int | None, exc: Exception) -> None:
        body = exc.to_wire() if hasattr(exc, "to_wire") else {"ok": False, "error": "internal"}
        self.send_reply(route, [{"id": rid, **body}])
