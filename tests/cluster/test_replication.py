"""Real clusters of zkv-node processes: replication, consistency levels, siblings, tombstones, repair."""

from __future__ import annotations

import time

import pytest

from zkv import Client, InvalidRequest, Unavailable
from zkv.testing.localcluster import LocalCluster, wait_until

LEVELS = ("one", "quorum", "all")


def isolate(cluster: LocalCluster, name: str) -> None:
    """Cut ``name`` off from every other node, both directions, requests and heartbeats."""
    others = [n for n in cluster.names if n != name]
    with cluster.client() as c:
        c.faults(name, drop_in=others, drop_out=others)
        for other in others:
            c.faults(other, drop_in=[name], drop_out=[name])


def heal(cluster: LocalCluster) -> None:
    with cluster.client() as c:
        for name in cluster.names:
            c.faults(name, drop_in=[], drop_out=[])


@pytest.mark.parametrize("level", LEVELS)
def test_put_get_delete_at_every_level(cluster3: LocalCluster, level: str) -> None:
    with cluster3.client() as c:
        c.put(f"k-{level}", "v1", consistency=level)
        assert c.get(f"k-{level}", consistency=level).values == [b"v1"]
        c.put(f"k-{level}", b"\x00\xffbinary", consistency=level, context=c.get(f"k-{level}"))
        assert c.get(f"k-{level}", consistency=level).values == [b"\x00\xffbinary"]
        c.delete(f"k-{level}", consistency=level, context=c.get(f"k-{level}"))
        result = c.get(f"k-{level}", consistency=level)
        assert result.values == [] and not result.found
        assert c.get("never-written", consistency=level).values == []


def test_every_node_accepts_every_request(cluster3: LocalCluster) -> None:
    """Pinned clients make each node coordinate (or forward) for every key."""
    for writer in cluster3.names:
        with Client([cluster3.addresses[writer]], pinned=True) as c:
            for i in range(20):
                c.put(f"from-{writer}-{i}", writer)
    for reader in cluster3.names:
        with Client([cluster3.addresses[reader]], pinned=True) as c:
            for writer in cluster3.names:
                assert c.get(f"from-{writer}-7", consistency="all").values == [writer.encode()]


def test_each_key_is_held_by_exactly_n_nodes(cluster5: LocalCluster) -> None:
    keys = [f"key-{i}" for i in range(60)]
    with cluster5.client() as c:
        for k in keys:
            c.put(k, k, consistency="all")
        preference = {k: set(c.ring().preference_list(k)) for k in keys}
        for k in keys:
            replicas = c.replicas(k)
            assert set(replicas) == preference[k] and len(preference[k]) == 3
            assert all(r.values == [k.encode()] for r in replicas.values())
        # and no node outside the preference list holds the key
        holders = {k: set() for k in keys}
        for name in cluster5.names:
            with Client([cluster5.addresses[name]], pinned=True) as node:
                for k in keys:
                    state = node.transport.call({"op": "local_get", "key": k.encode()}, None)["state"]
                    if state[0]:
                        holders[k].add(name)
        assert holders == preference
        # forwarding: a node outside the preference list still serves the key
        k = keys[0]
        outsider = next(n for n in cluster5.names if n not in preference[k])
        with Client([cluster5.addresses[outsider]], pinned=True) as far:
            assert far.get(k).values == [k.encode()]
            far.put(k, "via-outsider", context=far.get(k))
        assert c.get(k, consistency="all").values == [b"via-outsider"]
        assert c.status(outsider).forwarded >= 2


def test_sigkill_one_of_three(cluster3: LocalCluster) -> None:
    timeout_s = 2.0
    with cluster3.client() as c:
        for i in range(30):
            c.put(f"k{i}", f"v{i}", consistency="all")
        cluster3.kill("n2")
        for i in range(30):
            assert c.get(f"k{i}", consistency="quorum").values == [f"v{i}".encode()]
            c.put(f"k{i}", f"w{i}", consistency="quorum", context=c.get(f"k{i}"))
            assert c.get(f"k{i}", consistency="one").values == [f"w{i}".encode()]
        for op in ("put", "get"):
            started = time.monotonic()
            with pytest.raises(Unavailable) as info:
                if op == "put":
                    c.put("k0", "x", consistency="all")
                else:
                    c.get("k0", consistency="all")
            assert time.monotonic() - started < timeout_s
            assert info.value.required == 3
            assert info.value.alive == 2


def test_same_context_puts_become_siblings_and_merge(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("cart", "base")
        ctx = c.get("cart").context
        # same coordinator twice (a pinned client), then a different coordinator, all with one context
        with Client([cluster3.addresses["n1"]], pinned=True) as a:
            a.put("cart", "apple", context=ctx)
            a.put("cart", "pear", context=ctx)
        assert sorted(c.get("cart", consistency="all").values) == [b"apple", b"pear"]
        with Client([cluster3.addresses["n3"]], pinned=True) as b:
            b.put("cart", "plum", context=ctx)
        siblings = c.get("cart", consistency="all")
        assert sorted(siblings.values) == [b"apple", b"pear", b"plum"]
        c.put("cart", "apple+pear+plum", context=siblings)
        for name in cluster3.names:
            with Client([cluster3.addresses[name]], pinned=True) as each:
                assert each.get("cart", consistency="all").values == [b"apple+pear+plum"]


def test_two_writers_same_context_via_different_coordinators(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("reg", "v0")
        ctx = c.get("reg").context
    with (
        Client([cluster3.addresses["n1"]], pinned=True) as a,
        Client([cluster3.addresses["n2"]], pinned=True) as b,
    ):
        a.put("reg", "from-a", context=ctx)
        b.put("reg", "from-b", context=ctx)
        result = a.get("reg", consistency="all")
        assert sorted(result.values) == [b"from-a", b"from-b"]
        b.put("reg", "resolved", context=result)
        assert a.get("reg", consistency="all").values == [b"resolved"]


def test_delete_while_replica_cut_off_does_not_resurrect(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("doomed", "alive", consistency="all")
        isolate(cluster3, "n3")
        with Client([cluster3.addresses["n1"]], pinned=True) as n1:
            n1.delete("doomed", consistency="quorum", context=n1.get("doomed"))
        assert c.replicas("doomed")["n3"].values == [b"alive"]  # n3 missed the delete
        heal(cluster3)
        # through n3 itself (its own copy is stale), at every level: still deleted
        with Client([cluster3.addresses["n3"]], pinned=True) as n3:
            wait_until(
                lambda: n3.get("doomed", consistency="all").values == [], 5, "n3 to see the peers again"
            )
            for level in LEVELS:
                assert n3.get("doomed", consistency=level).values == [] or level == "one"
        # read repair then spreads the tombstone to n3
        wait_until(
            lambda: all(r.values == [] and r.versions for r in c.replicas("doomed").values()),
            5,
            "every replica to hold the tombstone",
        )
        assert c.get("doomed", consistency="one").values == []


def test_deleted_key_stays_deleted_after_a_replica_restarts(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("gone", "x", consistency="all")
        cluster3.kill("n2")
        c.delete("gone", consistency="quorum", context=c.get("gone"))
        cluster3.start("n2")
        for level in LEVELS:
            assert c.get("gone", consistency=level).values == []


def test_read_repair_fills_a_replica_that_missed_a_write(make_cluster) -> None:
    cluster3 = make_cluster(3, read_repair_chance=1.0)  # every read asks every replica
    with cluster3.client() as c:
        isolate(cluster3, "n2")
        with Client([cluster3.addresses["n1"]], pinned=True) as n1:
            n1.put("missed", "value", consistency="quorum")
        assert c.replicas("missed")["n2"].values == []
        heal(cluster3)
        with Client([cluster3.addresses["n1"]], pinned=True) as n1:
            wait_until(lambda: n1.nodes()[1].status == "up", 5, "n1 to hear n2 again")
            assert n1.get("missed", consistency="quorum").values == [b"value"]
        wait_until(lambda: c.replicas("missed")["n2"].values == [b"value"], 5, "read repair to reach n2")
        assert sum(c.status(n).read_repairs for n in cluster3.names) >= 1


def test_bad_requests_get_named_errors_and_change_nothing(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("keep", "me")
        with pytest.raises(InvalidRequest, match="consistency"):
            c.transport.call({"op": "get", "key": b"keep", "cl": "most"}, None)
        with pytest.raises(InvalidRequest, match="context"):
            c.put("keep", "other", context=b"\x93garbage")
        with pytest.raises(InvalidRequest):
            c.transport.call({"op": "put", "key": 12, "value": b"x"}, None)
        with pytest.raises(ValueError):
            Client(cluster3.addresses["n1"], consistency="most")
        assert c.get("keep", consistency="all").values == [b"me"]


def test_client_fails_over_when_a_coordinator_dies(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("fo", "1", consistency="all")
        first = c.ring().preference_list("fo")[0]
        cluster3.kill(first)
        assert c.get("fo", consistency="quorum").values == [b"1"]
        c.put("fo", "2", consistency="quorum", context=c.get("fo"))
        assert c.get("fo", consistency="quorum").values == [b"2"]


def test_many_requests_in_flight_on_one_client(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        errors = c.put_many([(f"bulk{i}", f"v{i}") for i in range(3000)])
        assert errors == [None] * 3000
        results = c.get_many([f"bulk{i}" for i in range(3000)])
        assert [r.values for r in results] == [[f"v{i}".encode()] for i in range(3000)]
