"""Who watches whom, and how a death one watcher saw reaches everyone (issue #20, SWIM-style).

With every node hearing every node's heartbeat, an idle node took in 2 (N - 1) heartbeats a second, and
40 real nodes took most of a core on one machine (docs/scale.md). Past :data:`FULL_MESH_MEMBERS`
members, a node instead **monitors** a few peers: those at ring offsets 1, 3, 9, 27, ... from it in the
sorted list of members (``ceil(log3 N)`` of them: 4 at 40 nodes, 5 at 150), subscribes to their
heartbeats only and runs phi-accrual on those. Every member is monitored by as many, and news spreads
from any node to any other in at most ~2 log3 N hops of that graph.

The rest of the members a node does not time itself. It takes one of them as up while its request
connection is (a crashed process closes its sockets, so every node sees a SIGKILL at once), and no
**death notice** names it: a monitor that finds a peer silent (phi or the hard bound) with the
connection still up — a hung process, a cut link — notices it ``[name, generation, version]``, and the
notice travels in heartbeats (relayed a few times by each node that learns it, and pulled with views
when digests differ). A notice holds while the member's entry is not newer; the member itself, on
hearing one about its current entry, **refutes** it by bumping its version (SWIM's incarnation), which
supersedes the notice everywhere; a restart (a new generation) does too. A node that hears none of the
peers it monitors accuses nobody: it is more likely the one cut off.

Pure: no clocks, no sockets.
"""

from __future__ import annotations

from typing import Any

FULL_MESH_MEMBERS = 9  # up to this many members, everyone monitors everyone (the 3-node defaults)
MONITOR_BASE = 3  # ring offsets 1, 3, 9, 27, ...


def monitored_peers(names: list[str], me: str) -> frozenset[str]:
    """The peers ``me`` monitors among ``names`` (every member that is not removed, ``me`` included)."""
    ordered = sorted(set(names) | {me})
    if len(ordered) <= FULL_MESH_MEMBERS:
        return frozenset(n for n in ordered if n != me)
    at, size = ordered.index(me), len(ordered)
    out = set()
    offset = 1
    while offset < size:
        out.add(ordered[(at + offset) % size])
        offset *= MONITOR_BASE
    return frozenset(out)


def notice_from_wire(entry: Any) -> tuple[str, int, int] | None:
    """A gossiped death notice ``[name, generation, version]``, or None when malformed."""
    if not isinstance(entry, list) or len(entry) != 3:
        return None
    name, generation, version = entry
    if not isinstance(name, str) or type(generation) is not int or type(version) is not int:
        return None
    if generation < 0 or version < 0:
        return None
    return name, generation, version
