"""A joining node's sockets to its seeds: it announces itself on them until one seed takes it in.

They are DEALERs of their own (identity ``join~NAME``) rather than the peer DEALERs, because a joining
node does not know the cluster's members yet, only where to find some of them. When the core says the
node joined, the sockets are closed. When to announce is the core's decision
(:meth:`zkv.core.nodecore.NodeCore.announcement_due`); this module only moves the bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import zmq

from zkv.config import ClusterConfig
from zkv.errors import ProtocolError
from zkv.node.sockets import SocketPoller
from zkv.protocol import pack, unpack_frame
from zkv.security import KeyPair, make_curve_client

JOIN_OK_OPS = frozenset({"join_ok"})


class JoinSeeds:
    """The announcement sockets of a node started with ``--join``, registered in ``poller``."""

    def __init__(
        self,
        config: ClusterConfig,
        name: str,
        join: str,
        make_socket: Callable[[int], zmq.Socket],
        poller: SocketPoller,
        keys: KeyPair | None,
        node_keys: dict[str, bytes],
    ) -> None:
        """``join``: a seed's address, or "" for every other node of the config file."""
        self._poller = poller
        self.sockets: dict[zmq.Socket, str] = {}
        seeds = [join] if join else [n.address for n in config.nodes if n.name != name]
        by_address = {n.address: n.name for n in config.nodes}
        for address in seeds:
            seed = make_socket(zmq.DEALER)
            seed.setsockopt(zmq.IDENTITY, f"join~{name}".encode())
            if keys is not None:
                seed_key = node_keys.get(by_address.get(address, ""))
                if seed_key is None:
                    self.close()
                    raise OSError(f"{name}: no CURVE public key known for the seed {address}")
                make_curve_client(seed, keys, seed_key)
            seed.connect(address)
            self.sockets[seed] = address
            poller.register(seed, always=True)

    def __bool__(self) -> bool:
        return bool(self.sockets)

    def __contains__(self, sock: object) -> bool:
        return sock in self.sockets

    def announce(self, core: Any, now: float) -> None:
        """Until a seed took this node in, tell every seed about it as often as the core says."""
        if core.joined:
            self.close()
            return
        announcement = core.announcement_due(now)
        if announcement is None:
            return
        payload = pack(announcement)
        for seed in self.sockets:
            with contextlib.suppress(zmq.Again):
                seed.send(payload, zmq.NOBLOCK)

    def drain(self, sock: zmq.Socket) -> list[tuple[dict[str, Any], str]]:
        """Every message waiting on ``sock``, each with the seed's address."""
        address = self.sockets[sock]
        out: list[tuple[dict[str, Any], str]] = []
        while True:
            try:
                payload = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return out
            with contextlib.suppress(ProtocolError):
                out.extend((msg, address) for msg in unpack_frame(payload))

    def close(self) -> None:
        for seed in list(self.sockets):
            self._poller.unregister(seed)
            seed.close(linger=0)
        self.sockets.clear()
