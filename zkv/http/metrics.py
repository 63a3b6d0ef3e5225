"""``/metrics``: a node's status as Prometheus metrics, built with prometheus_client (no hand-written text).

Each scrape asks the gateway's node for its ``status`` and ``nodes`` (one round trip each) and turns them
into metric families with a custom collector, so the numbers are the node's own counters (every request
it coordinated, whoever sent it), not the gateway's. The gateway adds its own HTTP request counter and
latency histogram. Every node metric has the label ``node``. The mapping reads the status in its wire
(JSON) form, so a change of the status type only touches :func:`zkv.http.wire.status_json`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from zkv.client import Client
from zkv.errors import ZkvError
from zkv.http.state import POOL, SETTINGS
from zkv.http.wire import node_json, status_json


def setup(app: web.Application) -> None:
    app[HTTP_METRICS] = HttpMetrics(app[SETTINGS].node or "")
    app.middlewares.insert(0, app[HTTP_METRICS].middleware)  # outermost: it sees the JSON error answers too
    app.router.add_get("/metrics", metrics)


MAX_LABEL_SETS = 1024  # cached metric children; methods are client-chosen strings, so bounded


class HttpMetrics:
    """The gateway's own numbers: HTTP requests by route, method and status, and their latency."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "zkv_http_requests",
            "HTTP requests the gateway answered, by route, method and status",
            ["node", "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zkv_http_request_duration_seconds",
            "Time from the HTTP request's arrival to its answer, by route",
            ["node", "route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        key = (route, request.method, response.status)
        children = self._children.get(key)
        if children is None:  # labels() builds and looks up a child: once per route, method and status
            label = "static" if route == "/{path}" else route
            children = (
                self.requests.labels(self.node, label, request.method, str(response.status)),
                self.latency.labels(self.node, label),
            )
            if len(self._children) < MAX_LABEL_SETS:
                self._children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)
        return response


HTTP_METRICS: web.AppKey[HttpMetrics] = web.AppKey("zkv_http_metrics", HttpMetrics)


async def metrics(request: web.Request) -> web.Response:
    address = request.app[SETTINGS].node_address

    def fetch(client: Client) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        targets = [address] if address else list(client.ring().addresses.values())
        return [(status_json(client.status(t)), [node_json(n) for n in client.nodes(t)]) for t in targets]

    registry = CollectorRegistry(auto_describe=False)
    try:
        snapshots = await request.app[POOL].run(fetch)
    except ZkvError as exc:
        registry.register(_Unreachable(request.app[SETTINGS].node or "", exc.code))
    else:
        registry.register(NodeCollector(snapshots))
    body = generate_latest(registry) + generate_latest(request.app[HTTP_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class _Unreachable(Collector):
    def __init__(self, node: str, code: str) -> None:
        self.node, self.code = node, code

    def collect(self) -> Iterator[Metric]:
        reachable = GaugeMetricFamily("zkv_node_reachable", "1 when the node answered", labels=["node"])
        reachable.add_metric([self.node], 0)
        yield reachable


class NodeCollector(Collector):
    """Metric families from status snapshots: ``[(status, nodes), ...]``, one per node."""

    def __init__(self, snapshots: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
            if name not in families:
                families[name] = CounterMetricFamily(name, doc, labels=["node", *labels])
            return families[name]  # type: ignore[return-value]

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
            if name not in families:
                families[name] = GaugeMetricFamily(name, doc, labels=["node", *labels])
            return families[name]  # type: ignore[return-value]

        def histogram(name: str, doc: str, labels: tuple[str, ...] = ()) -> HistogramMetricFamily:
            if name not in families:
                families[name] = HistogramMetricFamily(name, doc, labels=["node", *labels])
            return families[name]  # type: ignore[return-value]

        for status, members in self.snapshots:
            _node_metrics(status, members, counter, gauge, histogram)
        yield from families.values()


def _node_metrics(
    status: dict[str, Any], members: list[dict[str, Any]], counter: Any, gauge: Any, hist: Any
) -> None:
    node = str(status.get("node", ""))
    gauge("zkv_node_reachable", "1 when the node answered").add_metric([node], 1)
    ready = status.get("readiness") or {}
    gauge("zkv_ready", "1 once the node can serve quorum for every range it holds").add_metric(
        [node], 1 if ready.get("ready", True) else 0
    )
    uptime = status.get("uptime_s", 0)
    gauge("zkv_uptime_seconds", "Seconds since the node started").add_metric([node], uptime)
    requests = counter(
        "zkv_requests", "Requests this node coordinated, by op and consistency", ("op", "consistency")
    )
    for label, count in sorted((status.get("requests") or {}).items()):
        op, _, consistency = str(label).partition("/")
        requests.add_metric([node, op, consistency], count)
    errors = counter("zkv_errors", "Requests this node answered with an error, by wire code", ("code",))
    for code, count in sorted((status.get("errors") or {}).items()):
        errors.add_metric([node, str(code)], count)
    histograms = status.get("histograms") or {}
    latency = hist("zkv_request_duration_seconds", "Request latency at the coordinator, by op", ("op",))
    for op, h in sorted((histograms.get("latency") or {}).items()):
        latency.add_metric([node, op], _buckets(h), h["sum"])
    if "siblings" in histograms:
        h = histograms["siblings"]
        hist("zkv_read_siblings", "Concurrent values (siblings) a successful read returned").add_metric(
            [node], _buckets(h), h["sum"]
        )
    if "flush" in histograms:
        h = histograms["flush"]
        hist("zkv_flush_duration_seconds", "Group commits: a turn's records written and fsynced").add_metric(
            [node], _buckets(h), h["sum"]
        )
    storage = status.get("storage") or {}
    gauge("zkv_keys", "Keys this node stores").add_metric([node], status.get("keys", 0))
    gauge("zkv_stored_bytes", "Bytes of keys and values stored").add_metric([node], storage.get("bytes", 0))
    gauge("zkv_disk_bytes", "Bytes of the node's data files").add_metric([node], storage.get("disk_bytes", 0))
    counter("zkv_fsyncs", "fsync calls of the storage engine").add_metric([node], storage.get("fsyncs", 0))
    _storage_health_metrics(node, status.get("disk") or {}, counter, gauge)
    repairs = status.get("read_repairs", 0)
    counter("zkv_read_repairs", "Stale replicas repaired by reads").add_metric([node], repairs)
    counter("zkv_forwarded", "Requests forwarded to a replica").add_metric([node], status.get("forwarded", 0))
    in_flight = status.get("in_flight", 0)
    gauge("zkv_in_flight_requests", "Requests being coordinated now").add_metric([node], in_flight)
    hints = status.get("hints") or {}
    pending = gauge("zkv_hints_pending", "Hinted writes kept for a down replica, by target", ("target",))
    for target, count in sorted((hints.get("pending") or {}).items()):
        pending.add_metric([node, str(target)], count)
    age = gauge(
        "zkv_hints_oldest_age_seconds", "Age of the oldest hinted write kept for a down replica", ("target",)
    )
    for target, seconds in sorted((hints.get("oldest_age_s") or {}).items()):
        age.add_metric([node, str(target)], seconds)
    delivered, dropped = hints.get("delivered", 0), hints.get("dropped", 0)
    counter("zkv_hints_delivered", "Hints handed to their replica").add_metric([node], delivered)
    counter("zkv_hints_dropped", "Hints dropped (too old, too many)").add_metric([node], dropped)
    counter("zkv_hints_received", "Hinted writes received for this node").add_metric(
        [node], status.get("hints_received", 0)
    )
    aae = status.get("anti_entropy") or {}
    rounds = aae.get("exchanges", 0)
    counter("zkv_anti_entropy_rounds", "Merkle tree exchanges started").add_metric([node], rounds)
    counter("zkv_anti_entropy_keys_sent", "Keys pushed to peers by anti-entropy").add_metric(
        [node], aae.get("keys_sent", 0)
    )
    counter("zkv_anti_entropy_keys_received", "Keys received from peers by anti-entropy").add_metric(
        [node], aae.get("keys_received", 0)
    )
    since = gauge(
        "zkv_anti_entropy_seconds_since_round", "Seconds since the last round with a peer", ("peer",)
    )
    for peer, seconds in sorted((aae.get("seconds_since_round") or {}).items()):
        since.add_metric([node, str(peer)], seconds)
    leaves = gauge("zkv_merkle_leaves_differing", "Merkle leaves that differed in the last round", ("peer",))
    for peer, count in sorted((aae.get("leaves_differing") or {}).items()):
        leaves.add_metric([node, str(peer)], count)
    keys_differing = gauge("zkv_anti_entropy_keys_differing", "Keys differing in the last round", ("peer",))
    for peer, count in sorted((aae.get("last_differences") or {}).items()):
        keys_differing.add_metric([node, str(peer)], count)
    up = gauge("zkv_member_up", "1 when this node sees the member up", ("member",))
    states = gauge("zkv_members", "Members as this node sees them, by state", ("state",))
    by_state: dict[str, int] = {}
    for member in members:
        up.add_metric([node, str(member.get("name"))], 1 if member.get("status") == "up" else 0)
        by_state[str(member.get("status"))] = by_state.get(str(member.get("status")), 0) + 1
    for state, count in sorted(by_state.items()):
        states.add_metric([node, state], count)


STORAGE_STATES = ("ok", "full", "failed", "unavailable")  # zkv.core.storagehealth's states


def _storage_health_metrics(node: str, disk: dict[str, Any], counter: Any, gauge: Any) -> None:
    """Whether the node's storage takes writes (a full or failing disk, a Redis that is gone): one gauge
    per state, so an alert is ``zkv_storage_state{state!="ok"} == 1``."""
    state = str(disk.get("state", "ok"))
    states = gauge(
        "zkv_storage_state", "1 for the state the node's storage is in, 0 for the others", ("state",)
    )
    for name in (*STORAGE_STATES, *(() if state in STORAGE_STATES else (state,))):
        states.add_metric([node, name], 1 if name == state else 0)
    counter("zkv_storage_faults", "Times the storage refused a write, fsync or metadata save").add_metric(
        [node], disk.get("faults", 0)
    )
    counter("zkv_storage_refused_writes", "Writes refused because the storage took none").add_metric(
        [node], disk.get("refused_writes", 0)
    )
    free = disk.get("free_bytes")
    if free is not None:
        gauge("zkv_storage_free_bytes", "Free bytes the last storage probe measured").add_metric([node], free)


def _buckets(h: dict[str, Any]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs from per-bucket counts, ending at +Inf."""
    out, total = [], 0
    for bound, count in zip([*h["bounds"], float("inf")], h["counts"], strict=True):
        total += count
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return out
