"""What the admin requests (nodes, ring, status) return: plain data, never formatting.

Like riak_core_status next to riak_core_console: the node returns data, and the shell decides how it
looks. A mixin of :class:`zkv.core.nodecore.NodeCore`, kept apart so the request logic stays readable.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from zkv.core.readiness import Readiness, readiness


class ViewsMixin:
    """Admin views of a node's state (mixed into NodeCore, whose attributes it reads)."""

    def nodes_view(self, now: float) -> list[dict[str, Any]]:
        share = self.ring.ownership()
        out = []
        for view in self.membership.view(now, len(self.store)):
            row = asdict(view)
            member = self.membership.member(view.name)
            row["vnodes"] = member.vnodes if member else self.settings.vnodes
            row["ownership"] = share.get(view.name, 0.0)
            mine = view.name == self.name
            row["disk"] = self.storage_health.state if mine else self._peer_disk.get(view.name, "ok")
            out.append(row)
        return out

    def ring_view(self) -> dict[str, Any]:
        tokens = self.ring.tokens()
        return {
            "replication_factor": self.ring.replication_factor,
            "vnodes": self.settings.vnodes,
            "read_consistency": self.settings.read_level,
            "write_consistency": self.settings.write_level,
            "request_timeout": self.settings.request_timeout,
            "limits": asdict(self.settings.limits),
            "members": [
                {"name": n, "address": self.membership.member(n).address, "tokens": tokens[n]}
                for n in self.ring.members
            ],
        }

    def readiness(self, now: float) -> Readiness:
        """Can this node serve ``quorum`` for every range it holds (see :mod:`zkv.core.readiness`)?"""
        membership = self.membership
        return readiness(
            self.name,
            membership.status_of(self.name) or "normal",
            self.ring.preference_lists(),
            lambda n: membership.heard_from(n, now),
        )

    def status_view(self, now: float) -> dict[str, Any]:
        stats = self.stats
        return {
            "node": self.name,
            "generation": self.membership.generation,
            "actor": self.settings.actor,
            "uptime_s": now - self.started,
            "keys": len(self.store),
            "storage": asdict(self.store.statistics()),
            "disk": asdict(self.storage_health.statistics(now)),
            "clock": asdict(self.clocks.statistics()),
            "requests": dict(stats.requests),
            "errors": dict(stats.errors),
            "latency": {op: asdict(s) for op, s in stats.latency().items()},
            "forwarded": stats.forwarded,
            "read_repairs": stats.read_repairs,
            "bad_messages": stats.bad_messages,
            "in_flight": len(self._pending),
            "hints": self.handoff.statistics() if self.handoff is not None else None,
            "hints_received": stats.hints_received,
            "anti_entropy": {
                **self.aae.statistics(),
                "indexing": self._unindexed is not None,
                "seconds_since_round": {peer: now - at for peer, at in self.aae.round_at.items()},
            },
            "histograms": stats.histograms(),
            "member_status": self.membership.status_of(self.name),
            "transfer": self._transfer_view(),
            "peers_up": len([n for n in self.membership.peers() if self.membership.is_up(n, now)]),
            "peers": len(self.membership.peers()),
            "readiness": self.readiness(now).to_wire(),
            **self.status_extra,
        }

    def _transfer_view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keys_served": self.source.keys_sent,
            "keys_pushed_in": self.stats.keys_streamed_in,
        }
        if self.join_stream is not None:
            j = self.join_stream
            out["join"] = {
                "sources": j.sources,
                "done": sorted(j.done),
                "keys_received": j.keys_received,
                "retries": j.retries,
            }
        if self.leave_stream is not None:
            ls = self.leave_stream
            out["leave"] = {
                "keys": len(ls.keys),
                "position": ls.position,
                "keys_sent": ls.keys_sent,
                "retries": ls.retries,
            }
        return out
