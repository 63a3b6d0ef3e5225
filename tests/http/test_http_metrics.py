"""/metrics: Prometheus text that prometheus_client parses, whose counters move by exactly the requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Http
from prometheus_client.parser import text_string_to_metric_families

from zkv.testing.localcluster import LocalCluster


@pytest.fixture(scope="module")
def metrics_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of its own: the counters must see only this module's requests."""
    cluster = LocalCluster(Path(tmp_path_factory.mktemp("metrics")), nodes=3, http=True, engine="log")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def scrape(cluster: LocalCluster) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of every node's /metrics, by (sample name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for name in cluster.names:
        reply = Http(cluster.url(name)).get("/metrics")
        assert reply.status == 200
        assert reply.header(
            "Content-Type",
        ).startswith("text/plain")
        for family in text_string_to_metric_families(reply.body.decode()):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def test_metrics_parse_and_name_every_promised_family(metrics_cluster: LocalCluster) -> None:
    web = Http(metrics_cluster.url("n1"))
    web.put("/v1/keys/m-first", b"v")
    web.get("/v1/keys/m-first")
    assert web.put("/v1/keys/" + "k" * 1100, b"v").status == 413  # the node refuses it: an error counted
    names = {n for n, _ in scrape(metrics_cluster)}
    for expected in (
        "zkv_requests_total",
        "zkv_errors_total",
        "zkv_request_duration_seconds_bucket",
        "zkv_keys",
        "zkv_stored_bytes",
        "zkv_fsyncs_total",
        "zkv_flush_duration_seconds_bucket",
        "zkv_hints_delivered_total",
        "zkv_hints_dropped_total",
        "zkv_read_repairs_total",
        "zkv_anti_entropy_keys_sent_total",
        "zkv_member_up",
        "zkv_members",
        "zkv_read_siblings_bucket",
        "zkv_ready",
        "zkv_http_requests_total",
        "zkv_http_request_duration_seconds_bucket",
    ):
        assert expected in names, expected
    samples = scrape(metrics_cluster)
    assert total(samples, "zkv_member_up", node="n1", member="n2") == 1
    assert total(samples, "zkv_ready", node="n2") == 1
    assert all(dict(ls).get("node") for n, ls in samples if n.startswith("zkv_"))


def test_counters_move_by_exactly_the_requests_made(metrics_cluster: LocalCluster) -> None:
    web = Http(metrics_cluster.url("n2"))
    before = scrape(metrics_cluster)
    for i in range(7):
        assert web.put(f"/v1/keys/m-{i}?consistency=quorum", b"x" * 10).status == 204
    for i in range(5):
        assert web.get(f"/v1/keys/m-{i}?consistency=one").status == 200
    for i in range(3):
        assert web.get(f"/v1/keys/m-missing-{i}?consistency=all").status == 404
    assert web.get("/v1/keys/m-0?consistency=bad").status == 400  # refused by the gateway: no node request
    assert web.put("/v1/keys/" + "k" * 1100, b"v").status == 413  # refused by the node
    after = scrape(metrics_cluster)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("zkv_requests_total", op="put", consistency="quorum") == 7
    assert moved("zkv_requests_total", op="get", consistency="one") == 5
    assert moved("zkv_requests_total", op="get", consistency="all") == 3
    assert moved("zkv_request_duration_seconds_count", op="put") == 7
    assert moved("zkv_read_siblings_count") == 5 + 3  # every successful read, found or not
    assert moved("zkv_read_siblings_sum") == 5
    assert moved("zkv_keys") == 3 * 7  # every node holds every key (N = 3)
    assert (
        moved("zkv_http_requests_total", node="n2", route="/v1/keys/{key}", method="PUT", status="204") == 7
    )
    assert (
        moved("zkv_http_requests_total", node="n2", route="/v1/keys/{key}", method="GET", status="404") == 3
    )
    assert (
        moved("zkv_http_requests_total", node="n2", route="/v1/keys/{key}", method="GET", status="400") == 1
    )
    assert moved("zkv_errors_total", code="key_too_large") == 1
    assert moved("zkv_fsyncs_total") > 0  # engine log, fsync always
