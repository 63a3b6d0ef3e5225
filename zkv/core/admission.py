"""Which way a message that arrived on the request socket goes, and whether its sender may send it.

Theory of operation
-------------------
Every connection has a role (``node``, ``admin`` or ``client``; with CURVE it is the role of the key the
connection authenticated with, in plaintext every connection is a node's). A message from a route that is
no peer's is, by :func:`admit`:

* ``REFUSED`` — an op that changes a node's state (:data:`ADMIN_OPS`) from a client key: ``unauthorized``;
* ``FAULTS`` — the admin request that sets the fault filter (the runtime's: it filters sockets);
* ``RUNTIME`` — the other admin requests about this node's process and files (``snapshot``,
  ``restart``), answered by the runtime (:mod:`zkv.node.admin`);
* ``JOIN`` — a node's announcement that it joins, on its own ``join~NAME`` connection;
* ``CLIENT`` — everything else: a client request, which the core parses (and refuses if bad).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

NODE, ADMIN, CLIENT = "node", "admin", "client"  # connection roles (zkv.security assigns them)
RUNTIME_OPS = frozenset({"snapshot", "restart"})  # admin requests the runtime answers (zkv.node.admin)
# requests that change a node's state: admins and nodes only
ADMIN_OPS = (
    frozenset({"faults", "leave", "repair_now", "merge_states", "removenode", "cleanup"}) | RUNTIME_OPS
)
JOIN_ROUTE_PREFIX = b"join~"  # a joining node's announcement connection: routing id join~NAME


class Admission(Enum):
    CLIENT = "client"
    JOIN = "join"
    FAULTS = "faults"
    RUNTIME = "runtime"
    REFUSED = "refused"


def admit(route: bytes, msg: dict[str, Any], role: str) -> Admission:
    """The way a message from a non-peer route goes (see the module's theory of operation)."""
    op = msg.get("op")
    if role == CLIENT and op in ADMIN_OPS:
        return Admission.REFUSED
    if op == "faults":
        return Admission.FAULTS
    if op in RUNTIME_OPS:
        return Admission.RUNTIME
    if op == "join" and route.startswith(JOIN_ROUTE_PREFIX):
        return Admission.JOIN
    return Admission.CLIENT
