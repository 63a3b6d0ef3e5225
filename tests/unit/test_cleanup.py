"""cleanup in the core, through the fake network: a node drops the keys it no longer replicates only
when every owner confirmed it holds them; what an owner lacks, or holds an older version of, stays."""

from __future__ import annotations

from test_nodecore import FakeNet

from zkv.core.cleanup import covering
from zkv.core.versions import EMPTY, update


def strays_of(net: FakeNet, node: str, count: int) -> list[bytes]:
    ring = net.cores[node].ring
    keys = (f"key-{i}".encode() for i in range(10_000))
    return [k for k in keys if node not in ring.preference_list(k)][:count]


def test_cleanup_drops_strays_every_owner_holds_and_keeps_the_rest() -> None:
    net = FakeNet(nodes=4, replication_factor=2)
    net.advance(1.0)
    strays = strays_of(net, "n1", 30)
    for key in strays:  # written through n1 at all: every owner holds the value; n1 keeps a stray copy
        assert net.put("n1", key, b"v", cl="all")["ok"]
        owner = net.cores[net.cores["n1"].ring.preference_list(key)[0]]
        net.cores["n1"].store.put(key, owner.store.get(key))
    behind, newer_here = strays[0], strays[1]
    # an owner that lost a key, and a version only n1 holds: neither may be dropped
    net.cores[net.cores["n1"].ring.preference_list(behind)[1]].store.delete(behind)
    held = net.stored("n1", newer_here)
    state, _ = update(held, "n1", dict(held.clock), b"newer", 5.0)
    net.cores["n1"].store.put(newer_here, state)
    own = [
        k for k in (f"own-{i}".encode() for i in range(50)) if "n1" in net.cores["n1"].ring.preference_list(k)
    ]
    for key in own:
        assert net.put("n1", key, b"mine", cl="all")["ok"]
    before = len(net.cores["n1"].store)
    reply = net.request("n1", "cleanup")
    assert reply["ok"] and reply["done"] is False
    net.advance(net.now + 3.0)
    run = net.request("n1", "status")["transfer"]["cleanup"]
    assert run["done"] is True and run["dropped"] == len(strays) - 2 and run["kept"] == 2, run
    assert run["bytes_freed"] > 0
    assert len(net.cores["n1"].store) == before - (len(strays) - 2)
    assert net.stored("n1", behind) is not None and net.stored("n1", newer_here).values == [b"newer"]
    for key in own:
        assert net.stored("n1", key).values == [b"mine"]
    for key in strays[2:]:
        assert net.stored("n1", key) is None
        assert net.get("n2", key, cl="all")["values"] == [b"v"]


def test_an_owner_that_does_not_answer_keeps_the_keys() -> None:
    net = FakeNet(nodes=4, replication_factor=2)
    net.advance(1.0)
    strays = strays_of(net, "n1", 20)
    for key in strays:
        assert net.put("n1", key, b"v", cl="all")["ok"]
        owner = net.cores[net.cores["n1"].ring.preference_list(key)[0]]
        net.cores["n1"].store.put(key, owner.store.get(key))
    net.cut.add("n3")
    assert net.request("n1", "cleanup")["ok"]
    net.advance(net.now + 10.0)
    run = net.request("n1", "status")["transfer"]["cleanup"]
    assert run["done"] is True
    with_n3 = [k for k in strays if "n3" in net.cores["n1"].ring.preference_list(k)]
    assert with_n3 and run["kept"] == len(with_n3) and run["dropped"] == len(strays) - len(with_n3)
    for key in with_n3:
        assert net.stored("n1", key) is not None


def test_covering() -> None:
    value, _ = update(EMPTY, "a", {}, b"x", 1.0)
    tomb, _ = update(value, "a", dict(value.clock), None, 2.0)
    assert covering(value, dict(value.clock)) and covering(value, dict(tomb.clock))
    assert not covering(tomb, dict(value.clock))  # the owner has not seen the delete
    assert not covering(value, None) and covering(tomb, None)  # a tombstone the owners purged
