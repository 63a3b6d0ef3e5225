"""Merkle-tree anti-entropy on real processes: a wiped replica refills without any client read."""

from __future__ import annotations

import random
import time

from zkv.testing.localcluster import LocalCluster, wait_until

KEYS = 10_000
REFILL_BOUND_S = 60.0


def test_a_wiped_replica_gets_every_key_back_without_reads(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(3, anti_entropy_interval_ms=500)
    keys = [f"key-{i}" for i in range(KEYS)]
    with cluster.client() as c:
        for start in range(0, KEYS, 1000):
            chunk = keys[start : start + 1000]
            assert c.put_many([(k, f"v-{k}") for k in chunk], consistency="all") == [None] * len(chunk)
        c.delete(keys[0], consistency="all", context=c.get(keys[0]))  # a tombstone travels too
    cluster.kill("n3")
    cluster.start("n3")  # the memory engine: n3 comes back with nothing
    started = time.monotonic()
    with cluster.client(timeout=2.0) as c:
        assert c.status("n3").keys < KEYS
        wait_until(lambda: c.status("n3").keys == KEYS, REFILL_BOUND_S, "n3 to hold every key again", 0.2)
        took = time.monotonic() - started
        status = c.status("n3")
        assert status.requests.get("get/quorum", 0) == 0  # refilled with no client read
        assert status.anti_entropy.keys_received >= KEYS
        for k in random.Random(7).sample(keys[1:], 200):
            assert c.replicas(k)["n3"].values == [f"v-{k}".encode()]
        tomb = c.replicas(keys[0])["n3"]
        assert tomb.values == [] and tomb.versions and tomb.versions[0].is_tombstone
    assert took < REFILL_BOUND_S


def test_diverged_replicas_converge_both_ways(make_cluster) -> None:
    """Writes that only reached one side of a cut are exchanged in both directions."""
    cluster: LocalCluster = make_cluster(3, anti_entropy_interval_ms=300)
    with cluster.client() as c:
        for name in cluster.names:
            c.faults(name, drop_in=[n for n in cluster.names if n != name], drop_out=[])
        # every node is deaf to the others: each write lands on its coordinator only
        from zkv import Client

        for name in cluster.names:
            with Client([cluster.addresses[name]], pinned=True) as pinned:
                for i in range(50):
                    pinned.put(f"{name}-{i}", name, consistency="one")
        for name in cluster.names:
            c.faults(name, drop_in=[], drop_out=[])

        def converged() -> bool:
            for name in cluster.names:
                for i in (0, 25, 49):
                    replicas = c.replicas(f"{name}-{i}")
                    if any(r.values != [name.encode()] for r in replicas.values()):
                        return False
            return True

        wait_until(converged, 30, "every replica to hold every write", 0.2)
        assert all(c.status(n).keys == 150 for n in cluster.names)
