"""How many data requests (get, put, delete) the cluster's nodes have answered, read from the gateways'
``/metrics`` (Prometheus text, parsed by prometheus_client): what the rates chart should agree with.

Every gateway exports its own node's counters, labelled ``node``; each node is counted once, whichever
gateways export it.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from zkv.testing.localcluster import LocalCluster

DATA_OPS = ("get", "put", "delete")


def data_requests(cluster: LocalCluster) -> float:
    per_node: dict[str, float] = {}
    for name in cluster.http:
        with urllib.request.urlopen(f"{cluster.url(name)}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "zkv_requests":
                continue
            for sample in family.samples:
                if sample.name == "zkv_requests_total" and sample.labels.get("op") in DATA_OPS:
                    node = sample.labels["node"]
                    counts[node] = counts.get(node, 0.0) + sample.value
        per_node.update(counts)
    assert set(per_node) == set(cluster.http), f"/metrics counted {sorted(per_node)}, not every node"
    return sum(per_node.values())


def data_latency_buckets(cluster: LocalCluster) -> dict[float, float]:
    """``zkv_request_duration_seconds_bucket`` of the data ops, summed over every node: upper bound
    (``le``, +Inf as inf) -> cumulative count, as Prometheus' ``histogram_quantile`` takes it."""
    per_node: dict[str, dict[float, float]] = {}
    for name in cluster.http:
        with urllib.request.urlopen(f"{cluster.url(name)}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name != "zkv_request_duration_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels.get("op") in DATA_OPS:
                    buckets = per_node.setdefault(sample.labels["node"], {})
                    le = float(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
    out: dict[float, float] = {}
    for buckets in per_node.values():
        for le, count in buckets.items():
            out[le] = out.get(le, 0.0) + count
    return out


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over the increase of cumulative buckets between two scrapes."""
    bounds = sorted(after)
    cumulative = [after[b] - before.get(b, 0.0) for b in bounds]
    rank = q * cumulative[-1]
    for i, b in enumerate(bounds):
        if cumulative[i] >= rank:
            if b == float("inf"):
                return bounds[i - 1]
            lower, below = (bounds[i - 1], cumulative[i - 1]) if i > 0 else (0.0, 0.0)
            return lower + (b - lower) * (rank - below) / (cumulative[i] - below)
    return bounds[-2]
