"""The shell's link to the cluster: a client pinned to one coordinator, and node name <-> address lookup.

``switch NODE`` promises that the following commands are coordinated by that node, so the shell uses a
pinned :class:`zkv.Client` (``pinned=True``): every request goes to the connected node, and a node that
holds no replica of a key forwards the request inside the cluster, so the semantics stay Dynamo's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zkv.client import Client, curve_options
from zkv.config import ClusterConfig
from zkv.errors import ZkvError

PROBE_TIMEOUT_S = 0.5  # a live node answers a ping on loopback in milliseconds

ClientOptions = Mapping[str, Any]  # what every client the shell opens needs besides addresses: CURVE keys


def client_options(config: ClusterConfig, key_file: str | None) -> ClientOptions:
    """The CURVE keys of every client the shell opens, from the config and ``--key`` (none in plaintext)."""
    return dict(curve_options(config, key_file))


def open_client(addresses: list[str], options: ClientOptions | None = None, **kwargs: Any) -> Client:
    """A client with the shell's keys."""
    return Client(addresses, **(options or {}), **kwargs)


class PinnedClient(Client):
    """A :class:`Client` that sends every request to one node, the session's coordinator."""

    def __init__(
        self, address: str, timeout: float | None = None, options: ClientOptions | None = None
    ) -> None:
        self.options: ClientOptions = dict(options or {})  # the shell's other clients open with these too
        super().__init__([address], timeout=timeout, pinned=True, **self.options)

    def pin(self, address: str) -> None:
        """Make ``address`` the coordinator of every following request (sockets to others stay open)."""
        self.seeds = [address]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A node the shell can talk to: its name (``?`` until it told us) and its ROUTER address."""

    name: str
    address: str


def probe(client: Client, address: str) -> str | None:
    """The name of the node answering at ``address``, or None when nothing answers."""
    try:
        reply = client.ping(address)
    except ZkvError:
        return None
    return str(reply.get("node", "?"))


def probe_all(addresses: dict[str, str], options: ClientOptions | None = None) -> dict[str, bool]:
    """Which of the named nodes answer a ping right now (down nodes cost PROBE_TIMEOUT_S each)."""
    if not addresses:
        return {}
    with open_client(list(addresses.values()), options, timeout=PROBE_TIMEOUT_S) as client:
        return {name: probe(client, address) is not None for name, address in addresses.items()}
