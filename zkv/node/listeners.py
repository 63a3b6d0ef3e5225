"""The sockets a node listens on: the ROUTER for requests (clients and peers) and the PUB for gossip,
with their CURVE server keys when security is on, and the socket options every zkv socket shares."""

from __future__ import annotations

import zmq

from zkv.config import ClusterConfig, NodeSpec
from zkv.security import GOSSIP_DOMAIN, REQUEST_DOMAIN, KeyPair, make_curve_server


def make_socket(ctx: zmq.Context, config: ClusterConfig, kind: int) -> zmq.Socket:
    """A socket with the cluster's limits: high-water marks, largest message, handshake deadline."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, config.high_water_mark)
    sock.setsockopt(zmq.RCVHWM, config.high_water_mark)
    # a message over this drops the connection (ZeroMQ cannot answer it); clients check it first
    sock.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
    # a connection that has not finished its (CURVE) handshake by then is dropped
    sock.setsockopt(zmq.HANDSHAKE_IVL, config.handshake_interval_ms)
    return sock


def open_listeners(
    ctx: zmq.Context, config: ClusterConfig, spec: NodeSpec, keys: KeyPair | None
) -> tuple[zmq.Socket, zmq.Socket]:
    """Bind the ROUTER and the PUB of node ``spec``; OSError naming both addresses when either is taken."""
    curve = config.security.curve
    router = make_socket(ctx, config, zmq.ROUTER)
    # plaintext: a restarted peer takes its routing identity over at once. With CURVE a client key
    # could take a node's identity over that way, so it is off, and ZeroMQ heartbeats drop a dead
    # peer's connection soon enough for its next incarnation to connect
    router.setsockopt(zmq.ROUTER_HANDOVER, 0 if curve else 1)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    if curve:
        router.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
    pub = make_socket(ctx, config, zmq.PUB)
    if keys is not None:
        make_curve_server(router, keys, REQUEST_DOMAIN)
        make_curve_server(pub, keys, GOSSIP_DOMAIN)
    try:
        router.bind(spec.address)
        pub.bind(spec.gossip)
    except zmq.ZMQError as exc:
        router.close(linger=0)
        pub.close(linger=0)
        raise OSError(f"{spec.name}: cannot listen on {spec.address} / {spec.gossip}: {exc}") from None
    return router, pub
