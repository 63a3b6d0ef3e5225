"""TTL in the core: an absolute expiry inside the version, read as a tombstone at every level, never
resurrected by a replica that missed the expiry (read repair, anti-entropy), cleared by a put without one."""

from __future__ import annotations

import pytest
from test_nodecore import FakeNet

from zkv.core.merkle import state_digest
from zkv.core.versions import EMPTY, is_dead, state_from_wire, state_to_wire, update, visible

LEVELS = ("one", "quorum", "all")


def test_an_expiry_travels_and_counts_in_the_digest() -> None:
    plain, _ = update(EMPTY, "n1", {}, b"v", 100.0)
    expiring, _ = update(EMPTY, "n1", {}, b"v", 100.0, expires=130.0)
    assert state_from_wire(state_to_wire(expiring)) == expiring
    assert state_to_wire(plain)[0][0] == ["n1", 1, 100.0, b"v"]  # states without a TTL read as before
    assert state_digest(b"k", plain) != state_digest(b"k", expiring)
    assert visible(expiring, 129.9).values == [b"v"]
    assert visible(expiring, 130.0).values == [] and is_dead(expiring, 130.0)
    assert visible(expiring, 130.0).clock == expiring.clock  # the context still covers the dot
    with pytest.raises(ValueError, match="expiry"):
        state_from_wire([[["n1", 1, 100.0, b"v", "soon"]], [["n1", 1]]])


@pytest.mark.parametrize("level", LEVELS)
def test_an_expired_key_reads_as_not_found_at_every_level(level: str) -> None:
    net = FakeNet()
    assert net.put("n1", b"k", b"v", ttl=30)["ok"]
    assert net.get("n2", b"k", cl=level)["values"] == [b"v"]
    net.advance(29.0)
    assert net.get("n3", b"k", cl=level)["values"] == [b"v"]
    net.advance(31.0)
    got = net.get("n3", b"k", cl=level)
    assert got["ok"] and got["values"] == []
    assert got["ctx"] is not None  # a put with this context supersedes the expired version


def test_a_replica_that_missed_the_ttl_write_never_brings_the_old_value_back() -> None:
    net = FakeNet(anti_entropy_interval_s=1.0)
    net.put("n1", b"k", b"old", cl="all")
    ctx = net.get("n1", b"k", cl="all")["ctx"]
    net.cut.add("n3")
    assert net.put("n1", b"k", b"new", ttl=5, cl="quorum", ctx=ctx)["ok"]
    net.advance(10.0)  # expired while n3 was away, still holding "old" without a TTL
    assert net.stored("n3", b"k").values == [b"old"]
    net.cut.clear()
    net.advance(12.0)  # heartbeats again: the nodes see each other up
    # quorum and all meet a replica with the expiring version; `one` on n3 may read its stale copy
    # until repaired, as after a delete it missed (the eventual consistency of level one, no more)
    for level in ("quorum", "all"):
        assert net.get("n3", b"k", cl=level)["values"] == []
    net.advance(40.0)  # read repair and anti-entropy have run
    for node in net.cores:
        state = net.stored(node, b"k")
        assert state is not None and state.values == [b"new"] and is_dead(state, 1e9)
        assert all(s.expires is not None for s in state.siblings)
    for level in LEVELS:
        assert net.get("n2", b"k", cl=level)["values"] == []


def test_a_put_without_ttl_clears_the_expiry() -> None:
    net = FakeNet()
    net.put("n1", b"k", b"short", ttl=5)
    net.put("n2", b"k", b"forever", ctx=net.get("n2", b"k")["ctx"])
    net.advance(20.0)
    assert net.get("n3", b"k", cl="all")["values"] == [b"forever"]
    assert all(s.expires is None for s in net.stored("n3", b"k").siblings)
    net.put("n2", b"k", b"short again", ttl=5, ctx=net.get("n2", b"k")["ctx"])
    net.advance(30.0)
    assert net.get("n1", b"k", cl="all")["values"] == []


@pytest.mark.parametrize(
    ("ttl", "says"),
    [
        (-1, "more than 0"),
        (0, "more than 0"),
        ("30s", "number"),
        (True, "number"),
        (1e12, "maximum"),
        (float("nan"), "number"),
    ],
)
def test_bad_ttls_are_refused_with_a_clear_error(ttl: object, says: str) -> None:
    net = FakeNet()
    reply = net.put("n1", b"k", b"v", ttl=ttl)
    assert reply["ok"] is False and reply["error"] == "invalid_request" and says in reply["message"]
    assert net.stored("n1", b"k") is None


def test_a_delete_takes_no_ttl() -> None:
    net = FakeNet()
    reply = net.request("n1", "delete", key=b"k", ttl=5)
    assert reply["error"] == "invalid_request" and "ttl" in reply["message"]
