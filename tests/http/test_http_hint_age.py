"""The age of the oldest pending hint per target, on a real cluster: a node down, writes, the age grows
in each holder's status and /metrics, and goes away once the node is back and the hints are delivered."""

from __future__ import annotations

import time
from collections.abc import Callable

from conftest import Http
from prometheus_client.parser import text_string_to_metric_families

from zkv.testing.localcluster import LocalCluster, wait_until

HOLDERS = ("n1", "n2")


def metric_ages(cluster: LocalCluster, name: str) -> dict[str, float]:
    """``zkv_hints_oldest_age_seconds`` of node ``name``'s gateway, by target."""
    reply = Http(cluster.url(name)).get("/metrics")
    assert reply.status == 200
    out = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        if family.name == "zkv_hints_oldest_age_seconds":
            for sample in family.samples:
                assert sample.labels["node"] == name
                out[sample.labels["target"]] = sample.value
    return out


def status_ages(cluster: LocalCluster) -> dict[str, dict[str, float]]:
    with cluster.client("n1", "n2", timeout=1.0) as c:
        out = {}
        for name in HOLDERS:
            hints = c.status(name).hints
            assert hints is not None
            out[name] = dict(hints.oldest_age_s)
        return out


def test_the_oldest_hints_age_grows_while_its_target_is_down(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    # handoff every 200 ms: once n3 is back the hints leave quickly; the hint window (default 3 h) is
    # far beyond this test, so no hint is dropped however loaded the machine is
    cluster = make_cluster(3, http=True, handoff_interval_ms=200)
    cluster.kill("n3")
    with cluster.client("n1", "n2") as c:
        # both holders must see n3 down, or one sends it the writes and keeps no hint
        wait_until(
            lambda: all(c.nodes(cluster.addresses[n])[2].status == "down" for n in HOLDERS),
            10,
            "n1 and n2 to see n3 down",
        )
        first = c.put_many([(f"age-{i}", b"v") for i in range(40)], consistency="quorum")
        assert first == [None] * 40
        written = time.monotonic()
    ages = status_ages(cluster)
    assert all(set(a) == {"n3"} for a in ages.values()), ages  # both holders keep hints for n3 only
    start = {name: a["n3"] for name, a in ages.items()}
    # no sleep: poll until two more seconds went by on the holders' own clocks
    wait_until(
        lambda: all(status_ages(cluster)[n]["n3"] >= start[n] + 2 for n in HOLDERS), 20, "the age to grow"
    )
    # later writes do not make the queue younger: its age is its oldest hint's
    with cluster.client("n1", "n2") as c:
        assert c.put_many([(f"age-late-{i}", b"v") for i in range(10)], consistency="quorum") == [None] * 10
    now = status_ages(cluster)
    for name in HOLDERS:
        assert now[name]["n3"] >= start[name] + 2
        assert now[name]["n3"] <= time.monotonic() - written + start[name] + 1.5  # not older than the writes
        scraped = metric_ages(cluster, name)
        assert set(scraped) == {"n3"}
        assert scraped["n3"] >= now[name]["n3"]  # scraped after the status: at least as old
    cluster.start("n3")
    wait_until(lambda: all(not metric_ages(cluster, n) for n in HOLDERS), 30, "n3's hints to be delivered")
    assert status_ages(cluster) == {"n1": {}, "n2": {}}
