"""Strict and sloppy quorums through the fake network: what counts toward W, and what a read then sees.

Sloppy (the default, Dynamo's): a write whose primaries are down is acknowledged by fallbacks holding
hints, and a quorum read of the primaries can miss it until the hints are delivered. Strict (Riak's
pw, Cassandra's QUORUM): only the key's preference-list replicas count; hints are still written.
"""

from __future__ import annotations

from test_nodecore import FakeNet

from zkv.core.handoff import Handoff
from zkv.storage.hints import MemoryHintStore


def _net(**settings) -> FakeNet:
    net = FakeNet(5, **settings)
    for core in net.cores.values():
        core.handoff = Handoff(MemoryHintStore(), 1.0, 2.0)  # hints: what makes a sloppy quorum possible
    net.advance(1.0)
    return net


def _key(net: FakeNet) -> tuple[bytes, list[str], list[str]]:
    ring = net.cores["n1"].ring
    key = next(k for k in (b"k%d" % i for i in range(1000)) if ring.preference_list(k)[0] == "n1")
    primaries = list(ring.preference_list(key))
    return key, primaries, [n for n in net.cores if n not in primaries]


def test_a_sloppy_write_counts_a_fallback_and_a_quorum_read_of_the_primaries_misses_it() -> None:
    net = _net()
    key, (p1, p2, p3), _ = _key(net)
    net.cut |= {p2, p3}
    net.advance(6.0)  # p1 sees them down
    reply = net.put(p1, key, b"v", cl="quorum")
    assert reply["ok"] and reply["quorum"] == "sloppy" and reply["hinted"] == 1, reply
    # the primaries come back, p1 and the fallbacks do not (their hints wait): p2 reads without it
    net.cut = set(net.cores) - {p2, p3}
    net.advance(12.0)
    assert net.get(p2, key, cl="quorum")["values"] == []  # a stale quorum read


def test_a_strict_write_counts_only_primaries_and_still_leaves_hints() -> None:
    net = _net(sloppy_quorum=False)
    key, (p1, p2, p3), _ = _key(net)
    net.cut |= {p2, p3}
    net.advance(6.0)
    refused = net.put(p1, key, b"v", cl="quorum")
    assert refused["error"] == "unavailable" and "strict quorum needs 2" in refused["message"], refused
    net.cut = {p3}
    net.advance(12.0)
    reply = net.put(p1, key, b"v2", cl="quorum")
    assert reply["ok"] and reply["quorum"] == "strict" and reply["hinted"] == 0, reply
    hinted = [dst for _, dst, msg in net.traffic("rput") if msg.get("hint") == p3]
    assert hinted, "the fallback still got the write as a hint for the down primary"
    # a strict quorum read of the primaries sees it, whichever two answer
    net.cut = {p1}
    net.advance(18.0)
    assert net.get(p2, key, cl="quorum")["values"] == [b"v2"]


def test_a_request_overrides_the_cluster_default() -> None:
    net = _net()  # sloppy by default
    key, (p1, p2, p3), _ = _key(net)
    net.cut |= {p2, p3}
    net.advance(6.0)
    assert net.put(p1, key, b"v", cl="quorum", sloppy=False)["error"] == "unavailable"
    assert net.put(p1, key, b"v", cl="quorum")["ok"]
    strict = _net(sloppy_quorum=False)
    key, (q1, q2, q3), _ = _key(strict)
    strict.cut |= {q2, q3}
    strict.advance(6.0)
    assert strict.put(q1, key, b"v", cl="quorum", sloppy=True)["hinted"] == 1
    bad = strict.put(q1, key, b"v", cl="quorum", sloppy="yes")
    assert bad["error"] == "invalid_request" and "sloppy must be" in bad["message"]
