"""Key scans on real clusters: every live key once, in byte order, across pages; prefixes, values;
tombstones and expired keys hidden; one node down at quorum and all; bad input refused by name."""

from __future__ import annotations

import pytest

from zkv.client import Client, ScanPage
from zkv.errors import BadCursor, BadLimit, Unavailable
from zkv.testing.localcluster import LocalCluster, wait_until


def every_key(client: Client, prefix: bytes = b"", limit: int = 100, **kwargs) -> list[bytes]:
    keys: list[bytes] = []
    cursor = None
    while True:
        page = client.scan(prefix, limit, cursor, **kwargs)
        assert isinstance(page, ScanPage) and len(page.entries) <= limit
        keys += page.keys
        if page.cursor is None:
            return keys
        cursor = page.cursor


def test_scan_pages_hold_every_live_key_once_in_order_and_hide_deletes_and_expiry(
    cluster5: LocalCluster,
) -> None:
    with cluster5.client() as c:
        keys = [f"user:{i:04d}".encode() for i in range(1200)] + [f"order:{i}".encode() for i in range(300)]
        failed = [e for e in c.put_many([(k, b"v-" + k) for k in keys], consistency="quorum") if e]
        assert not failed, failed[:3]
        deleted = keys[::7]
        # a delete with the context of a quorum read supersedes the put whichever replicas took it
        reads = c.get_many(deleted, consistency="quorum")
        items = [(k, r.context) for k, r in zip(deleted, reads, strict=True) if not isinstance(r, Exception)]
        assert len(items) == len(deleted)
        failed = [e for e in c.delete_many(items, consistency="quorum") if e]
        assert not failed, failed[:3]
        live = sorted(set(keys) - set(deleted))
        assert every_key(c, limit=97) == live
        c.put("user:ttl", "soon gone", consistency="quorum", ttl=10)  # long enough for a loaded machine
        assert c.scan(b"user:t", 10).keys == [b"user:ttl"]
        wait_until(lambda: c.scan(b"user:t", 10).keys == [], 40, "the ttl key to expire")
        assert every_key(c, limit=1000) == live
        assert every_key(c, b"order:", limit=50) == [k for k in live if k.startswith(b"order:")]
        page = c.scan("order:1", 3, values=True)
        assert [(e.key, e.values) for e in page.entries] == [(k, (b"v-" + k,)) for k in page.keys]
        assert page.keys == [k for k in live if k.startswith(b"order:1")][:3] and page.cursor
        assert all(e.values == () for e in c.scan("order:1", 3).entries)  # keys only by default


def test_a_scan_with_one_node_down_succeeds_at_quorum_and_is_unavailable_at_all(
    cluster3: LocalCluster,
) -> None:
    with cluster3.client() as c:
        keys = [f"k{i:03d}".encode() for i in range(300)]
        assert c.put_many([(k, b"v") for k in keys], consistency="quorum") == [None] * len(keys)
        cluster3.kill("n2")
        assert every_key(c, limit=64, consistency="quorum") == keys
        assert every_key(c, limit=64, consistency="one") == keys
        with pytest.raises(Unavailable) as caught:
            c.scan(limit=10, consistency="all")
        assert "n2" in caught.value.message


def test_bad_scan_input_gets_named_errors_and_the_nodes_keep_serving(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        c.put("a", "1")
        for limit in (0, -5, 10_001, 10**9):
            with pytest.raises(BadLimit):
                c.scan(limit=limit)
        for cursor in ("not a cursor!", "AAAA", c.scan("a", 1).cursor or "x"):
            with pytest.raises(BadCursor):
                c.scan("b", 1, cursor)
        # straight to a node, past the client's checks: the node refuses by name and keeps serving
        for bad in ({"limit": 0}, {"limit": "9"}, {"limit": 5, "prefix": 7}, {"limit": 5, "values": "yes"}):
            with pytest.raises(Exception) as caught:
                c.transport.call({"op": "local_scan", **bad}, [cluster3.addresses["n1"]])
            assert getattr(caught.value, "code", "") in ("bad_limit", "invalid_request"), bad
        reply = c.transport.call({"op": "local_scan", "limit": 5}, [cluster3.addresses["n1"]])
        assert reply["items"][0][0] == b"a" and reply["full"] is False
        assert c.scan(limit=5).keys == [b"a"]
