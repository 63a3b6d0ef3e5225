"""The storage's state (a full or failing disk) in ``/metrics``: built from a node status as the
gateway's collector gets it, so every state can be checked without filling a disk (the real disk-full
test is tests/cluster/test_disk_faults.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zkv.http.metrics import NodeCollector


def _samples(status: dict) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(NodeCollector([(status, [])]))
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_full_disk_shows_as_its_state_with_its_counts() -> None:
    disk = {"state": "full", "faults": 3, "refused_writes": 41, "free_bytes": 4096, "since_s": 2.0}
    samples = _samples({"node": "n3", "disk": disk})
    state = {s: samples[("zkv_storage_state", (("node", "n3"), ("state", s)))] for s in ("ok", "full")}
    assert state == {"ok": 0, "full": 1}
    assert samples[("zkv_storage_state", (("node", "n3"), ("state", "failed")))] == 0
    assert samples[("zkv_storage_faults_total", (("node", "n3"),))] == 3
    assert samples[("zkv_storage_refused_writes_total", (("node", "n3"),))] == 41
    assert samples[("zkv_storage_free_bytes", (("node", "n3"),))] == 4096


def test_a_healthy_node_is_ok_and_a_status_without_disk_fields_too() -> None:
    for status in ({"node": "n1", "disk": {"state": "ok", "faults": 0, "refused_writes": 0}}, {"node": "n1"}):
        samples = _samples(status)
        assert samples[("zkv_storage_state", (("node", "n1"), ("state", "ok")))] == 1
        assert samples[("zkv_storage_state", (("node", "n1"), ("state", "unavailable")))] == 0
        assert ("zkv_storage_free_bytes", (("node", "n1"),)) not in samples
