"""Sloppy quorum and hinted handoff on real processes."""

from __future__ import annotations

import time

from zkv.client import Client
from zkv.testing.localcluster import LocalCluster, wait_until

DELIVERY_BOUND_S = 15.0


def pending_hints(cluster: LocalCluster, names: list[str]) -> int:
    with cluster.client(timeout=1.0) as c:
        return sum(sum(c.status(n).hints.pending.values()) for n in names)


def seen_down(c: Client, cluster: LocalCluster, node: str, observers: list[str]) -> bool:
    index = cluster.names.index(node)
    return all(c.nodes(cluster.addresses[n])[index].status == "down" for n in observers)


def holds_all(cluster: LocalCluster, node: str, keys: list[str]) -> bool:
    with cluster.client(timeout=1.0) as c:
        for k in keys:
            replica = c.replicas(k)[node]
            if isinstance(replica, Exception) or replica.values != [f"v-{k}".encode()]:
                return False
    return True


def test_writes_while_a_replica_is_down_reach_it_when_it_returns(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(3, handoff_interval_ms=200)
    keys = [f"k{i}" for i in range(500)]
    cluster.kill("n3")
    with cluster.client("n1", "n2") as c:
        # both coordinators must see n3 down: one that still thinks it up sends it the write, counts the
        # failed send, and keeps no hint (the test once found 49 hints for 50 writes)
        wait_until(lambda: seen_down(c, cluster, "n3", ["n1", "n2"]), 5, "n1 and n2 to see n3 down")
        errors = c.put_many([(k, f"v-{k}") for k in keys], consistency="quorum")
        assert errors == [None] * len(keys)
        assert pending_hints(cluster, ["n1", "n2"]) == len(keys)
    cluster.start("n3")
    started = time.monotonic()
    wait_until(
        lambda: pending_hints(cluster, ["n1", "n2"]) == 0, DELIVERY_BOUND_S, "every hint to be delivered"
    )
    assert holds_all(cluster, "n3", keys)
    assert time.monotonic() - started < DELIVERY_BOUND_S
    with cluster.client() as c:
        assert c.status("n3").hints_received == len(keys)


def test_fallback_nodes_stand_in_for_a_down_primary(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(5, handoff_interval_ms=200)
    with cluster.client() as c:
        keys = [f"k{i}" for i in range(400)]
        mine = [k for k in keys if "n5" in c.ring().preference_list(k)]
        assert mine
        cluster.kill("n5")
        wait_until(
            lambda: all(c.nodes(cluster.addresses[n])[4].status == "down" for n in ["n1", "n2", "n3", "n4"]),
            5,
            "everyone to see n5 down",
        )
        # `all` still needs every primary; `quorum` and `one` take a fallback's hint
        assert c.put_many([(k, f"v-{k}") for k in mine], consistency="quorum") == [None] * len(mine)
        fallbacks_hold = sum(c.status(n).hints.pending.get("n5", 0) for n in ["n1", "n2", "n3", "n4"])
        assert fallbacks_hold >= len(mine)
        # the fallbacks kept the writes as hints, not as their own data
        for k in mine[:20]:
            owners = c.ring().preference_list(k)
            outsiders = [n for n in ["n1", "n2", "n3", "n4"] if n not in owners]
            for n in outsiders:
                state = c.transport.call({"op": "local_get", "key": k.encode()}, [cluster.addresses[n]])[
                    "state"
                ]
                assert state[0] == []
    cluster.start("n5")
    wait_until(
        lambda: pending_hints(cluster, cluster.names) == 0,
        DELIVERY_BOUND_S,
        "the fallbacks to hand off to n5",
    )
    assert holds_all(cluster, "n5", mine)


def test_no_hints_for_a_node_down_longer_than_the_hint_window(make_cluster) -> None:
    # The window is counted from the last time n3 was heard, so it must comfortably hold the failure
    # detector's time to call n3 down plus the early writes, even on a loaded machine (2 s did not).
    window_s = 8
    cluster: LocalCluster = make_cluster(3, handoff_interval_ms=200, max_hint_window_s=window_s)
    cluster.kill("n3")
    killed = time.monotonic()
    with cluster.client("n1", "n2") as c:
        # both coordinators must see n3 down: one that still thinks it up sends it the write, counts the
        # failed send, and keeps no hint (the test once found 49 hints for 50 writes)
        wait_until(lambda: seen_down(c, cluster, "n3", ["n1", "n2"]), 5, "n1 and n2 to see n3 down")
        assert c.put_many([(f"early{i}", "v") for i in range(50)], consistency="quorum") == [None] * 50
        assert time.monotonic() - killed < window_s, "the early writes took longer than the hint window"
        assert pending_hints(cluster, ["n1", "n2"]) == 50
        # past the window the kept hints are dropped and no new ones are taken
        wait_until(lambda: pending_hints(cluster, ["n1", "n2"]) == 0, window_s + 10, "old hints to go")
        assert c.put_many([(f"late{i}", "v") for i in range(50)], consistency="quorum") == [None] * 50
        assert pending_hints(cluster, ["n1", "n2"]) == 0
        dropped = sum(c.status(n).hints.dropped for n in ["n1", "n2"])
        assert dropped == 50
