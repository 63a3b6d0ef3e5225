"""How many data requests (get, put, delete) the cluster's nodes have answered: what the rates chart shows.

From the gateways' ``/metrics`` (Prometheus text, parsed by prometheus_client) where they serve it, one
sample set per node label (every gateway may export several nodes: each node is counted once); from the
nodes' own ``status`` counters where no gateway has ``/metrics``.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from zkv.localcluster import LocalCluster

DATA_OPS = ("get", "put", "delete")


def _metrics(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
            return reply.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def from_metrics(cluster: LocalCluster) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    per_node: dict[str, float] = {}
    for name in cluster.http:
        text = _metrics(cluster.url(name))
        if text is None:
            return None
        for family in text_string_to_metric_families(text):
            if family.name != "zkv_requests":
                continue
            counts: dict[str, float] = {}
            for sample in family.samples:
                if sample.name == "zkv_requests_total" and sample.labels.get("op") in DATA_OPS:
                    node = sample.labels.get("node", name)
                    counts[node] = counts.get(node, 0.0) + sample.value
            per_node.update(counts)
    return sum(per_node.values())


def from_status(cluster: LocalCluster) -> float:
    with cluster.client() as client:
        statuses = client.statuses(list(cluster.addresses.values()))
    total = 0.0
    for status in statuses:
        assert isinstance(status, dict), status
        for label, count in status["requests"].items():
            if label.partition("/")[0] in DATA_OPS:
                total += count
    return total


def data_requests(cluster: LocalCluster) -> float:
    counted = from_metrics(cluster)
    return from_status(cluster) if counted is None else counted
