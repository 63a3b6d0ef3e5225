"""What the dashboard's live feed says each second, computed from two polls of the cluster.

The gateway polls, once a second while a dashboard listens, the membership view of its own node and every
up node's ``status``. Nodes report cumulative counters (requests by ``op/consistency``, errors by code, read
repairs, hints delivered, anti-entropy exchanges) and cumulative latency histograms; a rate is the
difference of two polls over the time between them, as Prometheus' ``rate()`` does with two scrapes, and
the p50/p99 of an interval are the quantiles of the difference of its histograms (:mod:`zkv.http.quantiles`),
per node and pooled over the cluster. A counter that went
down means the node restarted: its new value is then all that happened since (a reset, as in Prometheus).

Pure: the poller hands in each poll with the monotonic time it was taken; nothing here touches a socket.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zkv.core.ring import RING_SIZE, Ring
from zkv.http import quantiles

DATA_OPS = ("get", "put", "delete")  # what a user sends; "status", "nodes", "ring"... are admin requests


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll: the view of the asked node, each node's status (None: it did not answer), and when."""

    at: float  # monotonic seconds
    wall: float  # unix seconds, for the chart's time axis
    seen_by: str
    nodes: list[dict[str, Any]]
    statuses: Mapping[str, dict[str, Any] | None]


@dataclass(slots=True)
class HintAges:
    """When this gateway first saw hints pending for each (holder, target): the age of the oldest one,
    for nodes that do not report it themselves (``hints.oldest_age_s``, sent by nodes since then).

    Hints drain as soon as their owner is up, so a queue that stayed non-empty since a poll holds a hint
    at least that old; a gateway started after the hints were written under-reports (it says "at least").
    """

    since: dict[str, dict[str, float]] = field(default_factory=dict)  # holder -> target -> first seen

    def observe(self, holder: str, pending: Mapping[str, int], now: float) -> dict[str, float]:
        before = self.since.get(holder, {})
        seen = {target: before.get(target, now) for target, count in pending.items() if count > 0}
        self.since[holder] = seen
        return {target: now - first for target, first in seen.items()}


def _delta(cur: float, prev: float | None) -> float:
    """How much a counter moved; a counter below its last value restarted from zero."""
    if prev is None:
        return 0.0
    return cur - prev if cur >= prev else cur


def _rates(cur: Mapping[str, int], prev: Mapping[str, int] | None, dt: float) -> dict[str, float]:
    if prev is None or dt <= 0:
        return {}
    out = {}
    for name, value in cur.items():
        moved = _delta(value, prev.get(name, 0))
        if moved:
            out[name] = round(moved / dt, 3)
    return out


def data_rates(requests: Mapping[str, float]) -> dict[str, float]:
    """Only the data requests (``get/quorum``...), which is what a user means by ops/s."""
    return {k: v for k, v in requests.items() if k.partition("/")[0] in DATA_OPS}


def ring_version(nodes: list[dict[str, Any]]) -> str:
    """Changes exactly when the membership that shapes the ring does (names, vnodes, who is removed)."""
    shape = sorted((n["name"], n.get("vnodes", 0), n.get("status") == "removed") for n in nodes)
    return hashlib.blake2b(json.dumps(shape).encode(), digest_size=8).hexdigest()


def ring_drawing(ring: Ring, vnodes: int) -> dict[str, Any]:
    """Every member's tokens as fractions of the ring (7 digits: far below a pixel), for drawing it."""
    tokens = ring.tokens()
    members = [{"name": n, "tokens": [round(t / RING_SIZE, 7) for t in tokens[n]]} for n in sorted(tokens)]
    return {
        "replication_factor": ring.replication_factor,
        "vnodes": vnodes,
        "ownership": ring.ownership(),
        "members": members,
    }


def _worst_latency(latency: Mapping[str, Mapping[str, float]], which: str) -> float | None:
    values = [lat.get(which, 0.0) for op, lat in latency.items() if op in DATA_OPS and lat.get("count")]
    return round(max(values), 3) if values else None


def node_rates(cur: dict[str, Any] | None, prev: dict[str, Any] | None, dt: float) -> dict[str, Any]:
    """One node's rates between two of its statuses (empty rates when either poll missed it)."""
    if cur is None:
        return {"reached": False}
    base = prev if prev is not None and dt > 0 else None
    if base is not None and cur.get("uptime_s", 0) < base.get("uptime_s", 0):
        base = {}  # it restarted: everything it counted happened since the last poll
    requests = _rates(cur.get("requests") or {}, None if base is None else base.get("requests") or {}, dt)
    errors = _rates(cur.get("errors") or {}, None if base is None else base.get("errors") or {}, dt)
    latency = cur.get("latency") or {}
    data = data_rates(requests)
    histograms = (cur.get("histograms") or {}).get("latency")
    if base is None:
        interval, p50, p99 = None, None, None  # one poll: nothing happened "since" yet
    elif isinstance(histograms, dict):
        # the requests of this interval only: the difference of the two polls' histograms
        interval = quantiles.delta(histograms, (base.get("histograms") or {}).get("latency"), DATA_OPS)
        p50, p99 = _ms(quantiles.quantile(interval, 0.5)), _ms(quantiles.quantile(interval, 0.99))
    else:  # an older node without histograms: its recent-window percentiles are all there is
        interval, p50, p99 = None, _worst_latency(latency, "p50_ms"), _worst_latency(latency, "p99_ms")
    return {
        "reached": True,
        "requests": data,
        "admin_requests": round(sum(v for k, v in requests.items() if k not in data), 3),
        "errors": errors,
        "ops": round(sum(data.values()), 3),
        "p50_ms": p50,
        "p99_ms": p99,
        "latency": {op: lat for op, lat in latency.items() if op in DATA_OPS},
        "latency_interval": interval,
        "keys": cur.get("keys"),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _counter(status: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = status
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return float(value) if isinstance(value, int | float) else None


def healing(
    cur: Mapping[str, dict[str, Any] | None],
    prev: Mapping[str, dict[str, Any] | None],
    dt: float,
    ages: HintAges,
    now: float,
) -> dict[str, Any]:
    """Hints per holder and target (with their age), read repairs, anti-entropy rounds and the keys still
    differing per peer at each node's last round, and join/leave transfers in progress."""
    hints, repairs, aae, transfers = [], [], [], []
    for name, status in sorted(cur.items()):
        if status is None:
            continue
        before = prev.get(name)
        h = status.get("hints") or {}
        pending = h.get("pending") or {}
        age = ages.observe(name, pending, now)
        reported = h.get("oldest_age_s") or {}  # the holder's own record (older nodes do not send it)
        for target, count in sorted(pending.items()):
            exact = isinstance(reported.get(target), int | float)
            seconds = reported[target] if exact else age[target]
            hints.append(
                {"holder": name, "target": target, "count": count, "age_s": round(seconds, 1), "exact": exact}
            )

        def rate(*path: str, status: dict[str, Any] = status, before: Any = before) -> float:
            c, p = _counter(status, *path), _counter(before, *path)
            return round(_delta(c, p) / dt, 3) if c is not None and p is not None and dt > 0 else 0.0

        repairs.append(
            {
                "node": name,
                "read_repairs": status.get("read_repairs", 0),
                "read_repairs_s": rate("read_repairs"),
                "hints_delivered": h.get("delivered", 0),
                "hints_dropped": h.get("dropped", 0),
                "hints_received": status.get("hints_received", 0),
            }
        )
        a = status.get("anti_entropy") or {}
        aae.append(
            {
                "node": name,
                "rounds": a.get("exchanges", 0),
                "rounds_s": rate("anti_entropy", "exchanges"),
                "keys_sent": a.get("keys_sent", 0),
                "keys_received": a.get("keys_received", 0),
                "differing": dict(sorted((a.get("last_differences") or {}).items())),
                "leaves_differing": dict(sorted((a.get("leaves_differing") or {}).items())),
                "since_round_s": {
                    p: round(v, 1) for p, v in sorted((a.get("seconds_since_round") or {}).items())
                },
                "indexing": bool(a.get("indexing")),
                "full_pass": a.get("pass") or {},  # a repair asked for (zkv-node repair, the page's button)
            }
        )
        t = status.get("transfer") or {}
        for kind in ("join", "leave"):
            if kind in t:
                transfers.append({"node": name, "kind": kind, **t[kind]})
    return {"hints": hints, "repairs": repairs, "anti_entropy": aae, "transfers": transfers}


def snapshot(cur: Poll, prev: Poll | None, ages: HintAges) -> dict[str, Any]:
    """The feed's message for one tick: the node table with rates, cluster totals, healing."""
    dt = cur.at - prev.at if prev is not None else 0.0
    before = prev.statuses if prev is not None else {}
    per_node = {name: node_rates(st, before.get(name), dt) for name, st in cur.statuses.items()}
    # who drops what a node sends (an injected cut, installed on the receivers): a node cut off from all
    # looks down and answers no poll, so this is how the page can tell "isolated" from "crashed"
    cut_by: dict[str, list[str]] = {}
    for holder, st in sorted(cur.statuses.items()):
        for sender in ((st or {}).get("faults") or {}).get("drop_in") or {}:
            cut_by.setdefault(sender, []).append(holder)
    rows = []
    for node in cur.nodes:
        r = per_node.get(node["name"], {"reached": False})
        status = cur.statuses.get(node["name"])
        keys = status.get("keys") if status else None
        if keys is None and node.get("keys", -1) >= 0:
            keys = node["keys"]  # what gossip last said, when the node did not answer this poll
        rows.append(
            {
                **node,
                "keys": keys,
                "ops": r.get("ops"),
                "p50_ms": r.get("p50_ms"),
                "p99_ms": r.get("p99_ms"),
                "faults": (status or {}).get("faults"),  # an injected fault filter (isolate, partition.py)
                "dropped_by": cut_by.get(node["name"], []),  # nodes whose filter drops what it sends
            }
        )
    totals: dict[str, float] = {}
    errors: dict[str, float] = {}
    for r in per_node.values():
        for k, v in (r.get("requests") or {}).items():
            totals[k] = round(totals.get(k, 0.0) + v, 3)
        for k, v in (r.get("errors") or {}).items():
            errors[k] = round(errors.get(k, 0.0) + v, 3)
    interval: quantiles.Buckets | None = None
    for r in per_node.values():
        interval = quantiles.add(interval, r.get("latency_interval"))
    if interval is not None:  # the cluster's requests of the last second, pooled over every node
        cluster_p50 = _ms(quantiles.quantile(interval, 0.5))
        cluster_p99 = _ms(quantiles.quantile(interval, 0.99))
    else:  # nodes without histograms: the worst node's (a cluster has no single p50 then)
        p50s = [r["p50_ms"] for r in per_node.values() if r.get("p50_ms") is not None]
        p99s = [r["p99_ms"] for r in per_node.values() if r.get("p99_ms") is not None]
        cluster_p50, cluster_p99 = (max(p50s) if p50s else None), (max(p99s) if p99s else None)
    return {
        "t": cur.wall,
        "dt": round(dt, 3),
        "seen_by": cur.seen_by,
        "ring_version": ring_version(cur.nodes),
        "nodes": rows,
        "cluster": {
            "requests": totals,
            "errors": errors,
            "ops": round(sum(totals.values()), 3),
            "p50_ms": cluster_p50,
            "p99_ms": cluster_p99,
            "latency_buckets": quantiles.to_wire(interval),  # what the two quantiles were taken from
        },
        "per_node": {
            name: {k: v for k, v in r.items() if k in ("requests", "errors", "ops", "p50_ms", "p99_ms")}
            for name, r in per_node.items()
            if r.get("reached")
        },
        "healing": healing(cur.statuses, before, dt, ages, cur.at),
    }
