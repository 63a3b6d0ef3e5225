"""Blind writes on real clusters: a put or delete without a context replaces what its coordinator holds,
so a loop of puts leaves one value and a delete deletes; writes with one context still stay concurrent."""

from __future__ import annotations

from zkv import Client
from zkv.testing.localcluster import LocalCluster, wait_until


def test_a_thousand_sequential_blind_puts_leave_one_value(cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        for i in range(1000):
            client.put("hot", f"v{i}")
        assert client.get("hot", consistency="all").values == [b"v999"]
        for name, state in client.replicas("hot").items():
            assert not isinstance(state, Exception) and state.values == [b"v999"], name


def test_a_blind_delete_then_get_is_not_found(cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        client.put("d1", "x")
        client.delete("d1")
        got = client.get("d1", consistency="all")
        assert not got.found and got.values == []


def test_sequential_blind_puts_through_different_coordinators_leave_one_value(cluster3: LocalCluster) -> None:
    pinned = {n: Client([cluster3.addresses[n]], pinned=True) for n in cluster3.names}
    try:
        for i in range(30):
            name = cluster3.names[i % 3]
            pinned[name].put("roam", f"v{i}")
            # the next coordinator must have seen this write (it was sent to every replica at once)
            wait_until(
                lambda i=i: all(
                    s.values == [f"v{i}".encode()]  # type: ignore[union-attr]
                    for s in pinned["n1"].replicas("roam").values()
                ),
                5,
                f"v{i} on every replica",
            )
        for client in pinned.values():
            assert client.get("roam", consistency="all").values == [b"v29"]
        pinned["n2"].delete("roam")
        assert not pinned["n3"].get("roam", consistency="all").found
    finally:
        for client in pinned.values():
            client.close()


def test_writes_with_one_context_and_concurrent_puts_still_make_siblings(cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        client.put("cart", "base")
        ctx = client.get("cart").context
        with (
            Client([cluster3.addresses["n1"]], pinned=True) as a,
            Client([cluster3.addresses["n2"]], pinned=True) as b,
        ):
            a.put("cart", "apple", context=ctx)
            b.put("cart", "pear", context=ctx)
            a.put("cart", "plum", context=ctx)
        assert sorted(client.get("cart", consistency="all").values) == [b"apple", b"pear", b"plum"]
        client.put("cart", "fig", concurrent=True)  # Dynamo's raw put: a sibling of all of them
        assert len(client.get("cart", consistency="all").values) == 4
        client.put("cart", "only")  # blind: replaces what its coordinator holds
        assert client.get("cart", consistency="all").values == [b"only"]


def test_a_put_with_the_previous_puts_result_supersedes_it_through_any_coordinator(
    cluster3: LocalCluster,
) -> None:
    """The write's reply carries its version's context: put, then put with the result, no get between,
    through another coordinator; a concurrent write the first never saw stays a sibling."""
    with (
        Client([cluster3.addresses["n1"]], pinned=True) as a,
        Client([cluster3.addresses["n2"]], pinned=True) as b,
    ):
        first = a.put("chain", "v1", consistency="all")
        assert first.context
        second = b.put("chain", "v2", consistency="all", context=first)
        assert second.context and second.context != first.context
        assert a.get("chain", consistency="all").values == [b"v2"]  # one value, no siblings
        # a writer that read v2, and one that writes on from its own put: concurrent, both stay
        seen = a.get("chain", consistency="all")
        b.put("chain", "theirs", consistency="all", context=seen)
        a.put("chain", "mine", consistency="all", context=second)
        assert sorted(a.get("chain", consistency="all").values) == [b"mine", b"theirs"]
        deleted = a.delete("chain", consistency="all", context=a.get("chain", consistency="all"))
        assert deleted.context and not b.get("chain", consistency="all").found
