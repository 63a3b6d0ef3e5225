"""A coordinator whose storage engine cannot be reached (the redis engine's server gone): the core's
decisions, through the fake network of ``test_nodecore.py``."""

from __future__ import annotations

from typing import Any

from test_nodecore import FakeNet

from zkv.core.storagehealth import UNAVAILABLE, StorageHealth
from zkv.errors import StorageUnavailable


def break_store(net: FakeNet, node: str) -> None:
    """Every read and write of ``node``'s store now fails as the redis engine does when Redis is gone."""

    def fail(*_: Any) -> None:
        raise StorageUnavailable("Redis at unix:/x is not reachable (read)")

    store = net.cores[node].store
    store.get = fail  # type: ignore[method-assign]
    store.put = fail  # type: ignore[method-assign]


def test_a_read_the_store_cannot_serve_is_handed_to_another_replica_and_writes_follow() -> None:
    net = FakeNet()
    assert net.put("n1", b"k", b"v", cl="all")["ok"]
    break_store(net, "n1")
    got = net.get("n1", b"k", cl="quorum")
    assert got["ok"] and got["values"] == [b"v"]  # answered through n2 or n3
    core = net.cores["n1"]
    assert core.storage_health.state == UNAVAILABLE and core.stats.forwarded == 1
    reply = net.put("n1", b"k2", b"w", cl="quorum")  # refused locally: coordinated elsewhere
    assert reply["ok"] and core.stats.forwarded == 2
    assert net.stored("n2", b"k2").values == [b"w"] and net.stored("n3", b"k2").values == [b"w"]
    refused = net.put("n2", b"k3", b"x", cl="all")  # n1 answers its replica write with the refusal
    assert (
        refused["error"] == "storage_unavailable"
        and "n1 refused the write: storage unavailable" in (refused["message"])
    )


def test_unavailable_storage_is_probed_soon_and_refused_with_its_own_code() -> None:
    health = StorageHealth(10.0)
    health.on_fault(StorageUnavailable.code, "Redis at unix:/x is not reachable", 10.0)
    assert health.state == UNAVAILABLE and not health.writable and health.next_probe == 10.5
    refusal = health.refusal()
    assert isinstance(refusal, StorageUnavailable) and "Redis at unix:/x" in refusal.message
    assert health.on_probe(1 << 30, 10.5) and health.writable
