"""Tombstone purge in the core (zkv.core.purge): a tombstone goes only once every replica agreed on it
after its grace, a replica that was down meanwhile gets the tombstone instead of bringing its old value
back, and expired values are purged the same way."""

from __future__ import annotations

import math

from test_nodecore import FakeNet

from zkv.core.purge import TombstonePurge
from zkv.core.versions import EMPTY, dead_from, update

GRACE = 30.0


def net() -> FakeNet:
    return FakeNet(anti_entropy_interval_s=1.0, tombstone_grace_s=GRACE)


def holders(n: FakeNet, key: bytes) -> list[str]:
    return [name for name in n.cores if n.stored(name, key) is not None]


def test_dead_from_is_the_delete_or_the_last_expiry() -> None:
    live, _ = update(EMPTY, "n1", {}, b"v", 100.0)
    assert dead_from(live) is None and dead_from(EMPTY) is None
    tomb, _ = update(live, "n1", dict(live.clock), None, 150.0)
    assert dead_from(tomb) == 150.0
    expiring, _ = update(EMPTY, "n1", {}, b"v", 100.0, expires=130.0)
    assert dead_from(expiring) == 130.0
    both, _ = update(expiring, "n2", {}, b"w", 101.0, expires=170.0)  # concurrent siblings
    assert dead_from(both) == 170.0
    mixed, _ = update(expiring, "n2", {}, b"w", 101.0)  # one sibling never expires
    assert dead_from(mixed) is None


def test_retired_keys_wait_for_every_other_replica_to_agree_after_retiring() -> None:
    purge = TombstonePurge(GRACE)
    tomb, _ = update(EMPTY, "n1", {}, None, 100.0)
    purge.on_write(b"k", tomb)
    assert purge.retire_due(wall=129.0, now=5.0) == [] and purge.due_at() == 130.0
    assert purge.retire_due(wall=130.0, now=6.0) == [b"k"]
    agreed = {"n2": 7.0, "n3": 5.5}  # n3 agreed before the key retired: that says nothing of it
    owners = lambda key: ["n1", "n2", "n3"]  # noqa: E731
    assert purge.purgeable(10.0, "n1", owners, lambda peer, key: agreed[peer]) == []
    agreed["n3"] = 8.0
    assert purge.purgeable(10.5, "n1", owners, lambda peer, key: agreed[peer]) == []  # checks once a second
    assert purge.purgeable(11.0, "n1", owners, lambda peer, key: agreed[peer]) == [b"k"]
    assert purge.purgeable(12.0, "n4", owners, lambda peer, key: math.inf) == []  # not a replica: never
    # a write after retiring puts it back into the comparison
    assert purge.on_write(b"k", update(tomb, "n2", dict(tomb.clock), b"back", 200.0)[0]) is True
    assert b"k" not in purge.retired and purge.due_at() == math.inf


def test_a_hint_older_than_the_grace_is_stale() -> None:
    purge = TombstonePurge(GRACE)
    old, _ = update(EMPTY, "n1", {}, b"v", 100.0)
    assert not purge.stale_hint(old, 129.0) and purge.stale_hint(old, 131.0)


def test_a_deleted_key_is_purged_everywhere_once_all_replicas_agreed() -> None:
    n = net()
    assert n.put("n1", b"k", b"v", cl="all")["ok"]
    ctx = n.get("n1", b"k", cl="all")["ctx"]
    assert n.request("n2", "delete", key=b"k", ctx=ctx, cl="all")["ok"]
    n.advance(GRACE - 5)
    assert holders(n, b"k") == ["n1", "n2", "n3"]  # the grace is not over: tombstones stay
    n.advance(GRACE + 20)
    assert holders(n, b"k") == []
    for node in n.cores:
        assert n.get(node, b"k", cl="all")["values"] == []
        status = n.cores[node].replica.purge.statistics()
        assert status.purged == 1 and status.retired == 0


def test_a_replica_down_past_the_grace_blocks_the_purge_and_gets_the_tombstone() -> None:
    n = net()
    assert n.put("n1", b"k", b"old", cl="all")["ok"]
    ctx = n.get("n1", b"k", cl="all")["ctx"]
    n.cut.add("n3")
    assert n.request("n1", "delete", key=b"k", ctx=ctx, cl="quorum")["ok"]
    n.advance(10 * GRACE)  # far past the grace: n1 and n2 retired the tombstone, but n3 never agreed
    assert holders(n, b"k") == ["n1", "n2", "n3"] and n.stored("n3", b"k").values == [b"old"]
    assert all(n.cores[x].replica.purge.statistics().retired == 1 for x in ("n1", "n2"))
    n.cut.clear()
    n.advance(12 * GRACE)
    assert holders(n, b"k") == []  # n3 was reconciled (it got the tombstone), then everyone purged
    for node in n.cores:
        for level in ("one", "quorum", "all"):
            assert n.get(node, b"k", cl=level)["values"] == []


def test_an_expired_value_is_purged_like_a_delete() -> None:
    n = net()
    assert n.put("n1", b"k", b"v", ttl=5, cl="all")["ok"]
    n.advance(5 + GRACE + 20)
    assert holders(n, b"k") == []
    assert n.get("n2", b"k", cl="all")["values"] == []
