"""What the admin requests (nodes, ring, status) return: data, never formatting.

Like riak_core_status next to riak_core_console: the node returns data, and the shell decides how it
looks. Functions of a :class:`zkv.core.nodecore.NodeCore`, kept apart so the request logic stays readable.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from zkv.core.readiness import Readiness
from zkv.core.readiness import readiness as node_readiness
from zkv.core.status import JoinStatistics, LeaveStatistics, NodeStatus, TransferStatistics

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
    removal = core.rebalance.removals.statistics()
    out = []
    for view in core.membership.view(now, len(core.store)):
        row = asdict(view)
        member = core.membership.member(view.name)
        row["vnodes"] = member.vnodes if member else core.settings.vnodes
        row["ownership"] = share.get(view.name, 0.0)
        mine = view.name == core.name
        row["disk"] = core.storage_health.state if mine else core.state.peer_disk.get(view.name, "ok")
        if view.name in removal:  # removed by removenode: this node's pull of the ranges it gained
            row["rereplication"] = removal[view.name]
        out.append(row)
    return out


def ring_view(core: NodeCore) -> dict[str, Any]:
    tokens = core.ring.tokens()
    return {
        "replication_factor": core.ring.replication_factor,
        "vnodes": core.settings.vnodes,
        "read_consistency": core.settings.read_consistency,
        "write_consistency": core.settings.write_consistency,
        "request_timeout": core.settings.request_timeout_s,
        "limits": asdict(core.settings.limits),
        "members": [
            {"name": n, "address": member.address, "tokens": tokens[n]}
            for n in core.ring.members
            if (member := core.membership.member(n)) is not None
        ],
    }


def node_status(core: NodeCore, now: float) -> NodeStatus:
    """What the ``status`` request answers: every component's statistics, put together."""
    stats = core.stats
    membership = core.membership
    extra = dict(core.status_extra)  # what only the runtime knows
    return NodeStatus(
        node=core.name,
        generation=core.membership.generation,
        actor=core.settings.actor,
        uptime_s=now - core.started,
        keys=len(core.store),
        storage=core.store.statistics(),
        disk=core.storage_health.statistics(now),
        clock=core.clocks.statistics(),
        requests=dict(stats.requests),
        errors=dict(stats.errors),
        latency=stats.latency(),
        forwarded=stats.forwarded,
        read_repairs=stats.read_repairs,
        bad_messages=stats.bad_messages,
        in_flight=core.coordinator.in_flight,
        hints=core.handoff.statistics(now) if core.handoff is not None else None,
        hints_received=stats.hints_received,
        anti_entropy=replace(
            core.aae.statistics(),
            indexing=core.replica.unindexed is not None,
            seconds_since_round={peer: now - at for peer, at in core.aae.round_at.items()},
        ),
        member_status=membership.status_of(core.name),
        transfer=_transfer(core),
        peers_up=len([n for n in membership.peers() if membership.is_up(n, now)]),
        peers=len(membership.peers()),
        histograms=stats.histograms(),
        readiness=readiness(core, now).to_wire(),
        purge=core.replica.purge.statistics(),
        pid=extra.pop("pid", None),
        address=extra.pop("address", None),
        gossip=extra.pop("gossip", None),
        build=extra.pop("build", None),
        extra=extra,
    )


def _transfer(core: NodeCore) -> TransferStatistics:
    join, leave = core.rebalance.join_stream, core.rebalance.leave_stream
    return TransferStatistics(
        keys_served=core.replica.source.keys_sent,
        keys_pushed_in=core.stats.keys_streamed_in,
        join=JoinStatistics(list(join.sources), sorted(join.done), join.keys_received, join.retries)
        if join is not None
        else None,
        leave=LeaveStatistics(len(leave.keys), leave.position, leave.keys_sent, leave.retries)
        if leave is not None
        else None,
        removal=core.rebalance.removals.statistics(),
        cleanup=core.rebalance.cleanup.statistics() if core.rebalance.cleanup is not None else None,
    )
