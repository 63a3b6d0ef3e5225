"""A node's connections to its peers: one DEALER each for requests and replies, with a monitor that says
when the peer's process is there or gone, and one SUB socket subscribed to the PUBs of the peers the core
monitors (heartbeats: all of them up to nine members, ceil(log3 N) past that: zkv.core.monitoring).

One SUB for all peers keeps the sockets a node polls at one per peer plus a few (issue #20): the event
loop's cost does not grow with idle gossip connections. Which peers to connect to is the core's decision
(the ``connects`` of its turn plan); this module opens the sockets once and remembers whose they are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from zkv.errors import ProtocolError
from zkv.node.sockets import SocketPoller
from zkv.protocol import pack, unpack_frame
from zkv.security import KeyPair, make_curve_client

if TYPE_CHECKING:
    from zkv.core.membership import Membership

log = logging.getLogger("zkv.node.runtime")

# a peer that is not listening is retried after 100 ms, then ever more slowly up to this: at the fixed
# 100 ms a lone node of a 150-node cluster spent 8.6% of a core on retries to its 149 absent peers
# (ZeroMQ's default), which made the start of 150 nodes on one machine a storm of connection attempts
RECONNECT_IVL_MAX_MS = 1000


class PeerLinks:
    """The DEALERs, their monitors and the shared SUB of node ``name``, registered in ``poller``."""

    def __init__(
        self,
        name: str,
        make_socket: Callable[[int], zmq.Socket],
        poller: SocketPoller,
        keys: KeyPair | None,
        node_keys: dict[str, bytes],
    ) -> None:
        self.name = name
        self._make_socket = make_socket
        self._poller = poller
        self._keys, self._node_keys = keys, node_keys
        self.dealers: dict[str, zmq.Socket] = {}  # peer -> its DEALER
        self.dealer_peer: dict[zmq.Socket, str] = {}
        self.monitors: dict[zmq.Socket, str] = {}  # a DEALER's monitor socket -> the peer
        self.routes: dict[bytes, str] = {}  # a peer's routing identity on our ROUTER -> its name
        self.sub = make_socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        poller.register(self.sub, always=True)
        # what gossip costs this node, counted where the bytes are (tools/scale.py reads it from status)
        self.traffic = {"sent": 0, "sent_bytes": 0, "received": 0, "received_bytes": 0}
        self.subscribed: dict[str, str] = {}  # peer -> the gossip endpoint the SUB is connected to
        self.sub_epoch = -1  # the core's monitors_epoch those subscriptions follow

    def connect(self, peer: str, address: str, gossip: str, hear: bool = True) -> None:
        """Open the request (DEALER) connection to a member, once; ``hear``: subscribe to its heartbeats
        at once, as a full mesh does (past one, the SUB follows :meth:`subscribe`)."""
        if peer == self.name or peer in self.dealers:
            return
        peer_key = self._node_keys.get(peer)
        if self._keys is not None and peer_key is None:
            log.error("no CURVE public key for %s (add %s.key to node_keys): not connecting", peer, peer)
            return
        dealer = self._make_socket(zmq.DEALER)
        dealer.setsockopt(zmq.IDENTITY, self.name.encode())
        dealer.setsockopt(zmq.IMMEDIATE, 1)  # never queue for a peer that is not connected
        dealer.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        if self._keys is not None and peer_key is not None:
            make_curve_client(dealer, self._keys, peer_key)
        # connection events tell the core at once when a peer's process is gone (or back); the monitor
        # is attached before connect() so the first handshake cannot slip past it
        monitor = dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self.monitors[monitor] = peer
        dealer.connect(address)
        self.dealers[peer] = dealer
        self.dealer_peer[dealer] = peer
        self.routes[peer.encode()] = peer
        self._poller.register(dealer)
        self._poller.register(monitor)
        if hear:
            self._hear(peer, gossip)

    def follow_monitors(self, membership: Membership) -> None:
        """Hear the peers ``membership`` monitors, once its monitored set changed (a new epoch)."""
        if membership.monitors_epoch == self.sub_epoch:
            return
        monitored = (membership.member(p) for p in membership.monitored())
        self.subscribe(membership.monitors_epoch, {m.name: m.gossip for m in monitored if m is not None})

    def subscribe(self, epoch: int, want: dict[str, str]) -> None:
        """Hear the heartbeats of ``want`` (peer -> gossip endpoint) only: the core's monitored peers."""
        self.sub_epoch = epoch
        for peer, endpoint in list(self.subscribed.items()):
            if want.get(peer) != endpoint:
                del self.subscribed[peer]
                with contextlib.suppress(zmq.ZMQError):  # never connected: refused at connect
                    self.sub.disconnect(endpoint)
        for peer, endpoint in want.items():
            if peer in self.dealers:  # not connected to at all (no CURVE key): nothing to hear it on
                self._hear(peer, endpoint)
        self._poller.touched(self.sub)

    def _hear(self, peer: str, endpoint: str) -> None:
        """Connect the SUB to ``peer``'s PUB at ``endpoint`` (once)."""
        if peer in self.subscribed:
            return
        peer_key = self._node_keys.get(peer)
        if self._keys is not None and peer_key is not None:
            make_curve_client(self.sub, self._keys, peer_key)  # taken by the sub's next connect()
        self.sub.connect(endpoint)
        self.subscribed[peer] = endpoint

    def heartbeats(self, limit: int) -> list[dict[str, Any]]:
        """The gossip messages waiting on the SUB (at most ``limit`` frames), counted; a frame that does
        not decode is counted and skipped (the sender's schema is checked by the caller)."""
        traffic, out = self.traffic, []
        for _ in range(limit):
            try:
                payload = self.sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            traffic["received"] += 1
            traffic["received_bytes"] += len(payload)
            with contextlib.suppress(ProtocolError):
                out.extend(unpack_frame(payload))
        return out

    def publish(self, pub: zmq.Socket, msg: dict[str, Any]) -> None:
        """Send one gossip message on ``pub`` (every subscribed peer gets it), counted."""
        payload = pack(msg)
        pub.send(payload, zmq.NOBLOCK)
        self.traffic["sent"] += 1
        self.traffic["sent_bytes"] += len(payload)

    def connection_events(self, monitor: zmq.Socket) -> Iterator[tuple[str, bool]]:
        """What ``monitor`` reported: (peer, True) for a finished handshake, (peer, False) for a drop."""
        peer = self.monitors[monitor]
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                yield peer, True
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                yield peer, False

    def close(self) -> None:
        for dealer in self.dealers.values():
            dealer.disable_monitor()
