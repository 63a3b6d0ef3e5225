"""When a failed request may go to another node: the one policy of the Python client and the gateway.

A request goes to its key's preference list first (:func:`zkv.client.transport.route`). What makes it
go on to another node, and which:

* a node that cannot be reached (no connection) or that answers ``stopping`` (draining for a restart:
  it did nothing): any next candidate, a write too;
* ``unavailable`` *before anything was attempted* (the reply has no ``acknowledged`` field: the node's
  own view had too few live replicas, or it could not forward; nothing was written anywhere): another
  node of the key's preference list, a write too, since nothing of it was stored. A node cut off from
  its peers answers this for every key it coordinates, while the other replicas can still serve;
* ``unavailable`` after a write was sent to replicas (``acknowledged`` is there: it may be stored on
  some): a write is not sent again (through another coordinator it would be stored a second time, as a
  sibling); a read is, to another preference-list node (a read writes nothing but repairs);
* silence (no answer within one node's wait): a read goes to the next candidate; a write fails with
  ``timeout`` (it may have landed), unless the client was made with ``retry_writes=True``.

Only the preference list is tried after ``unavailable``: a node outside it would forward to the same
replicas, so ``all`` with a replica really down costs at most N round trips. And every request has one
deadline (:data:`BUDGET_WAITS` node waits from its first send), however many nodes it tries.
"""

from __future__ import annotations

from typing import Any

from zkv.errors import NodeStopping, Unavailable

#: a request's deadline, in node waits (``request_timeout`` + 0.5 s each): room for one silent node
#: and the answer of the next; before, every silent node a read met cost a full wait of its own
BUDGET_WAITS = 2.0


def attempted(reply: dict[str, Any]) -> bool:
    """Did the failed write behind ``reply`` reach any replica? (``unavailable`` carries
    ``acknowledged`` only then: the contract tests/unit/test_retry.py pins on the core's replies.)"""
    return "acknowledged" in reply


def next_candidates(
    reply: dict[str, Any], write: bool, candidates: list[str], preferred: tuple[str, ...]
) -> list[str] | None:
    """The nodes a request that got the error ``reply`` may still go to, in order; None: the error
    is the answer."""
    code = reply.get("error")
    if code == NodeStopping.code:
        return candidates or None
    if code == Unavailable.code and not (write and attempted(reply)):
        rest = [address for address in candidates if address in preferred]
        return rest or None
    return None
