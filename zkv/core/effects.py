"""What the core asks the runtime to do. In which order they leave around the turn's storage flush is
the turn plan's business (:mod:`zkv.core.turnplan`): requests and replies marked ``before_flush`` before
it, every other reply after it.

Named tuples: the core builds several per request, and a tuple is built in C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class Send(NamedTuple):
    """A request to peer ``node`` (over this node's DEALER to it); its reply comes back as a peer reply."""

    node: str
    msg: dict[str, Any]


class Reply(NamedTuple):
    """A reply on this node's ROUTER to ``route`` (a client's routing id, or a peer's name).

    ``before_flush``: the reply promises nothing that the turn's flush makes durable (a write decided by
    replicas' acknowledgements, whose local copy an earlier flush already synced), so it may leave
    before that flush instead of waiting for another node's unrelated writes to reach the disk.
    """

    route: bytes
    msg: dict[str, Any]
    before_flush: bool = False


class Publish(NamedTuple):
    """A heartbeat or gossip message on this node's PUB socket."""

    msg: dict[str, Any]


class Connect(NamedTuple):
    """A member learned through gossip or a join: open the request and gossip connections to it."""

    node: str
    address: str
    gossip: str


@dataclass(frozen=True, slots=True)
class Stop:
    """This node has left the cluster: stop serving."""


Effect = Send | Reply | Publish | Connect | Stop
