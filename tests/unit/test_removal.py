"""removenode in the core, through the fake network: the checks, the gossiped decision, the pulls that
bring every key the removed member held back to N copies, and a removed node that comes back."""

from __future__ import annotations

import pytest
from test_nodecore import FakeNet

from zkv.core.membership import JOINING, NORMAL, REMOVED, Member, Membership
from zkv.core.removal import check_removable
from zkv.core.ring import ring_of
from zkv.errors import InvalidRequest

KEYS = [f"key-{i}".encode() for i in range(300)]


def four_nodes_with_n4_dead() -> FakeNet:
    net = FakeNet(nodes=4, replication_factor=3)
    for key in KEYS:
        assert net.put("n1", key, b"v:" + key, cl="all")["ok"]
    net.cut.add("n4")  # SIGKILLed: nothing to or from it
    net.advance(net.now + 5.0)
    assert not net.cores["n1"].membership.is_up("n4", net.now)
    return net


def copies(net: FakeNet, key: bytes) -> list[str]:
    return [name for name in ("n1", "n2", "n3") if net.stored(name, key) is not None]


def test_removenode_of_a_dead_member_brings_every_key_back_to_three_copies() -> None:
    net = four_nodes_with_n4_dead()
    short = [k for k in KEYS if len(copies(net, k)) < 3]
    assert short, "n4 replicated some keys: they are one copy short"
    reply = net.request("n1", "removenode", name="n4")
    assert reply["ok"] and reply["removed"] == "n4" and reply["already"] is False
    net.advance(net.now + 5.0)
    for name in ("n1", "n2", "n3"):
        core = net.cores[name]
        assert core.membership.status_of("n4") == REMOVED, name
        assert "n4" not in core.ring.members
        assert core.rebalance.removals.statistics()["n4"]["done"] is True
    for key in KEYS:
        assert copies(net, key) == ["n1", "n2", "n3"], key
        assert net.stored("n2", key).values == [b"v:" + key]
    status = net.request("n2", "status")["transfer"]["removal"]["n4"]
    assert status["done"] is True and status["keys_received"] > 0
    row = next(r for r in net.request("n3", "nodes")["nodes"] if r["name"] == "n4")
    assert row["status"] == REMOVED and row["rereplication"]["done"] is True
    # asked again: nothing changes, and the answer says so
    assert net.request("n2", "removenode", name="n4")["already"] is True


def test_removenode_refuses_a_live_node_an_unknown_name_and_the_node_asked() -> None:
    net = FakeNet(nodes=3)
    net.advance(2.0)
    for name, says in (("n2", "is up (seen by n1)"), ("n9", "no member named 'n9'"), ("n1", "node asked")):
        reply = net.request("n1", "removenode", name=name)
        assert reply["ok"] is False and reply["error"] == "invalid_request", reply
        assert says in reply["message"], reply
    for core in net.cores.values():
        assert {m.status for m in core.membership.members()} == {NORMAL}
        assert core.ring.members == ("n1", "n2", "n3")


def test_removenode_of_the_last_ring_member_is_refused() -> None:
    """Asked of a node outside the ring (still joining), removing the ring's one member would leave none."""
    members = {"n1": ("tcp://127.0.0.1:7001", "tcp://127.0.0.1:8001"), "n2": ("tcp://127.0.0.1:7002", "")}
    joining = Membership("n2", members, 1, 0.5, 3.0, 0.0, status=JOINING)
    ring = ring_of((("n1", 64),), 3)
    with pytest.raises(InvalidRequest, match="last node of the ring"):
        check_removable(joining, ring, "n1", 100.0)  # n1 silent for 100 s: down
    assert joining.status_of("n1") == NORMAL


def test_a_removed_node_that_comes_back_as_it_was_is_refused_and_a_fresh_join_is_taken() -> None:
    net = four_nodes_with_n4_dead()
    assert net.request("n1", "removenode", name="n4")["ok"]
    net.advance(net.now + 2.0)
    n1 = net.cores["n1"].membership
    old = n1.member("n4")
    assert old is not None
    # n4's next life, as it was (normal, a later generation): the entry does not supersede "removed"
    back = Member("n4", old.address, old.gossip, old.generation + 1000, 0, NORMAL, old.vnodes)
    n1.merge_view([back.to_wire()])
    assert n1.status_of("n4") == REMOVED and "n4" not in net.cores["n1"].ring.members
    # and n4, hearing what the others say of it, stops with a clear error
    n4 = net.cores["n4"]
    n4.membership.merge_view([m.to_wire() for m in n1.members()])
    assert n4.membership.removed_by_peers
    n4.on_tick(net.now)
    assert n4.rebalance.refused
    assert any(type(e).__name__ == "Stop" for e in n4.take_effects())
    # a fresh join of the name (joining, a later generation) is taken in
    fresh = Member("n4", old.address, old.gossip, old.generation + 2000, 0, JOINING, old.vnodes)
    n1.merge_view([fresh.to_wire()])
    assert n1.status_of("n4") == JOINING
