"""Values near their limit move between nodes in messages under ``max_message_bytes``.

ZeroMQ drops a connection that carries a message over ZMQ_MAXMSGSIZE, without a word, so handoff,
anti-entropy, join streaming and batched replica writes must size their messages by bytes, not only by
count. Here a small message limit makes every one of those paths split: a path that did not would never
deliver, and the node would never catch up.
"""

from __future__ import annotations

from zkv.testing.localcluster import LocalCluster, wait_until

VALUE = 60 * 1024
LIMITS = {
    "max_value_bytes": 64 * 1024,
    "max_siblings": 4,
    "max_message_bytes": 300_000,  # room for one key at its limits, not for five of them
    "handoff_interval_ms": 200,
    "anti_entropy_interval_ms": 500,
}


def _holds(cluster: LocalCluster, node: str, keys: list[str]) -> bool:
    with cluster.client(timeout=2.0) as c:
        for k in keys:
            replica = c.replicas(k).get(node)
            if replica is None:
                continue  # not a replica of this key
            if isinstance(replica, Exception) or replica.values != [_value(k)]:
                return False
    return True


def _value(key: str) -> bytes:
    return key.encode().ljust(VALUE, b".")


def test_large_values_reach_a_returning_node_and_a_joining_one(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(4, start=False, initial=3, **LIMITS)
    cluster.start()
    keys = [f"big{i}" for i in range(60)]  # 3.6 MB: a dozen messages' worth
    cluster.kill("n3")
    with cluster.client("n1", "n2", timeout=5.0) as c:
        wait_until(lambda: {n.name: n.status for n in c.nodes()}["n3"] == "down", 10, "n3 to be seen down")
        assert c.put_many([(k, _value(k)) for k in keys], consistency="quorum") == [None] * len(keys)
    cluster.start("n3")  # memory engine: back empty; hints and anti-entropy must refill it
    wait_until(lambda: _holds(cluster, "n3", keys), 60, "n3 to hold every large value again")
    cluster.start("n4")  # joins: streams the ranges it will own
    wait_until(lambda: _holds(cluster, "n4", keys), 60, "n4 to hold the large values it owns")
    with cluster.client(timeout=5.0) as c:
        assert all(c.get(k, consistency="all").values == [_value(k)] for k in keys)
        status = c.status("n1")
        assert status.bad_messages == 0
