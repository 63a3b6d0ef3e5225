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
