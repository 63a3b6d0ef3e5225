"""Regression tests for what the simulator found in the core, each replayed in isolation."""

from __future__ import annotations

import random

from zkv.core.membership import Membership
from zkv.core.ring import Ring, node_tokens, ring_of
from zkv.sim.cluster import SimCluster
from zkv.sim.network import Network, Scheduler


def _cluster(names: list[str]) -> tuple[Scheduler, Network, SimCluster]:
    scheduler = Scheduler()
    network = Network(scheduler, random.Random(1))
    cluster = SimCluster(
        scheduler, network, random.Random(2), names, vnodes=8, anti_entropy_interval=1.0, request_timeout=1.0
    )
    for name in names:
        cluster.start(name)
    return scheduler, network, cluster


def test_a_node_with_no_peer_up_does_not_spin() -> None:
    """Anti-entropy left its next wakeup in the past while no exchange could start (no peer up, or one
    in flight), so next_wakeup() said "now" after every turn and the runtime's loop polled with 0 ms."""
    scheduler, network, cluster = _cluster(["n1", "n2", "n3"])
    scheduler.run_until(2.0)
    others = [("n1", "n2"), ("n2", "n1"), ("n1", "n3"), ("n3", "n1")]
    network.blocked.update(others)  # n1 alone for longer than failure detection takes
    scheduler.run_until(10.0)
    network.heal()
    scheduler.run_until(12.0)
    cluster.crash("n2")
    cluster.crash("n3")  # and then every peer of n1 down
    turns = cluster.counts["turns"]
    scheduler.run_until(20.0)
    assert cluster.counts["busy_wakeups"] == 0
    assert cluster.counts["turns"] - turns < 200  # n1 alone: heartbeats and the 200 ms poll cap only


def test_merge_view_skips_what_is_not_newer_and_still_drops_garbage() -> None:
    """The fast path of merge_view (found hot at 150 nodes) must change nothing about what it accepts."""
    members = {f"n{i}": (f"a{i}", f"g{i}") for i in range(4)}
    m = Membership("n0", members, 5, 0.5, 3.0, 0.0)
    garbage = [None, "n1", 7, {"n1": 1}, ["n1"], ["n1", "a", "g", "x", 1, "normal", 8]]
    garbage += [[["n1"], 1, 2, 3, 4, 5, 6]]
    garbage += [["n1", "a", "g", -1, 1, "normal", 8], ["n1", "a", "g", 1, 1, "bogus", 8]]
    assert m.merge_view(garbage) == []
    assert m.member("n1").generation == 0
    assert m.merge_view([["n1", "a1", "g1", 3, 4, "leaving", 8]]) == []
    assert (m.member("n1").generation, m.member("n1").version, m.member("n1").status) == (3, 4, "leaving")
    assert m.merge_view([["n1", "a1", "g1", 3, 4, "normal", 8], ["n1", "a1", "g1", 2, 9, "normal", 8]]) == []
    assert m.member("n1").status == "leaving"  # neither entry was newer
    assert m.merge_view([["n9", "a9", "g9", 1, 1, "joining", 8]]) == ["n9"]


def test_memoized_rings_are_the_rings_built_directly() -> None:
    members = (("a", 8), ("b", 8), ("c", 16))
    ring = ring_of(members, 3)
    direct = Ring({name: node_tokens(name, v) for name, v in members}, 3)
    assert ring_of(members, 3) is ring
    assert ring.tokens() == direct.tokens()
    assert all(ring.preference_list(k) == direct.preference_list(k) for k in (b"x", b"y", b"z"))
