"""What the admin requests (nodes, ring, status) return: plain data, never formatting.

Like riak_core_status next to riak_core_console: the node returns data, and the shell decides how it
looks. Functions of a :class:`zkv.core.nodecore.NodeCore`, kept apart so the request logic stays readable.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from zkv.core.readiness import Readiness
from zkv.core.readiness import readiness as node_readiness

if TYPE_CHECKING:
    from zkv.core.nodecore import NodeCore


def readiness(core: NodeCore, now: float) -> Readiness:
    """Can this node serve ``quorum`` for every range it holds (see :mod:`zkv.core.readiness`)?"""
    membership = core.membership
    return node_readiness(
        core.name,
        membership.status_of(core.name) or "normal",
        core.ring.preference_lists(),
        lambda n: membership.heard_from(n, now),
    )


def nodes_view(core: NodeCore, now: float) -> list[dict[str, Any]]:
    share = core.ring.ownership()
    out = []
    for view in core.membership.view(now, len(core.store)):
        row = asdict(view)
        member = core.membership.member(view.name)
        row["vnodes"] = member.vnodes if member else core.settings.vnodes
        row["ownership"] = share.get(view.name, 0.0)
        mine = view.name == core.name
        row["disk"] = core.storage_health.state if mine else core.state.peer_disk.get(view.name, "ok")
        out.append(row)
    return out


def ring_view(core: NodeCore) -> dict[str, Any]:
    tokens = core.ring.tokens()
    return {
        "replication_factor": core.ring.replication_factor,
        "vnodes": core.settings.vnodes,
        "read_consistency": core.settings.read_level,
        "write_consistency": core.settings.write_level,
        "request_timeout": core.settings.request_timeout,
        "limits": asdict(core.settings.limits),
        "members": [
            {"name": n, "address": member.address, "tokens": tokens[n]}
            for n in core.ring.members
            if (member := core.membership.member(n)) is not None
        ],
    }


def status_view(core: NodeCore, now: float) -> dict[str, Any]:
    stats = core.stats
    return {
        "node": core.name,
        "generation": core.membership.generation,
        "actor": core.settings.actor,
        "uptime_s": now - core.started,
        "keys": len(core.store),
        "storage": asdict(core.store.statistics()),
        "disk": asdict(core.storage_health.statistics(now)),
        "clock": asdict(core.clocks.statistics()),
        "requests": dict(stats.requests),
        "errors": dict(stats.errors),
        "latency": {op: asdict(s) for op, s in stats.latency().items()},
        "forwarded": stats.forwarded,
        "read_repairs": stats.read_repairs,
        "bad_messages": stats.bad_messages,
        "in_flight": core.coordinator.in_flight,
        "hints": core.handoff.statistics() if core.handoff is not None else None,
        "hints_received": stats.hints_received,
        "anti_entropy": {
            **core.aae.statistics(),
            "indexing": core.replica.unindexed is not None,
            "seconds_since_round": {peer: now - at for peer, at in core.aae.round_at.items()},
        },
        "histograms": stats.histograms(),
        "member_status": core.membership.status_of(core.name),
        "transfer": _transfer_view(core),
        "peers_up": len([n for n in core.membership.peers() if core.membership.is_up(n, now)]),
        "peers": len(core.membership.peers()),
        "readiness": readiness(core, now).to_wire(),
        **core.status_extra,
    }


def _transfer_view(core: NodeCore) -> dict[str, Any]:
    out: dict[str, Any] = {
        "keys_served": core.replica.source.keys_sent,
        "keys_pushed_in": core.stats.keys_streamed_in,
    }
    if core.rebalance.join_stream is not None:
        j = core.rebalance.join_stream
        out["join"] = {
            "sources": j.sources,
            "done": sorted(j.done),
            "keys_received": j.keys_received,
            "retries": j.retries,
        }
    if core.rebalance.leave_stream is not None:
        ls = core.rebalance.leave_stream
        out["leave"] = {
            "keys": len(ls.keys),
            "position": ls.position,
            "keys_sent": ls.keys_sent,
            "retries": ls.retries,
        }
    return out
