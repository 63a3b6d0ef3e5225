"""A node keeps its actor id across a clean restart and takes a new one after a crash (log engine)."""

from __future__ import annotations

from zkv.testing.localcluster import LocalCluster


def actor_and_generation(cluster: LocalCluster, name: str) -> tuple[str, int]:
    with cluster.client(timeout=2.0) as c:
        status = c.status(name)
    return status.actor, status.generation


def test_actor_survives_a_clean_stop_but_not_a_crash(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(3, engine="log")
    with cluster.client() as c:
        c.put("k", "v1", consistency="all")
    actor, generation = actor_and_generation(cluster, "n1")
    assert cluster.stop("n1") == 0  # SIGTERM: a clean stop
    cluster.start("n1")
    same_actor, later = actor_and_generation(cluster, "n1")
    assert same_actor == actor and later > generation
    cluster.kill("n1")  # SIGKILL: dots it sent may not be on its disk, so it must not mint under that id
    cluster.start("n1")
    fresh_actor, latest = actor_and_generation(cluster, "n1")
    assert fresh_actor != actor and latest > later
    with cluster.client() as c:
        for _ in range(3):
            c.put("k", "next", consistency="all", context=c.get("k"))
        assert c.get("k", consistency="all").values == [b"next"]
