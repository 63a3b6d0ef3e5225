"""Readiness: quorum of replicas heard from for every range a node holds (pure, no cluster)."""

from __future__ import annotations

from zkv.core.readiness import readiness
from zkv.core.ring import Ring

RING5 = Ring.from_nodes([f"n{i}" for i in range(1, 6)], vnodes=16, replication_factor=3)


def test_ready_when_every_peer_is_heard_from() -> None:
    state = readiness("n1", "normal", RING5.preference_lists(), lambda n: True)
    assert state.ready and state.short == 0
    assert state.ranges == sum(1 for p in RING5.preference_lists() if "n1" in p)
    assert "quorum" in state.reason


def test_not_ready_alone_and_names_whom_it_waits_for() -> None:
    state = readiness("n1", "normal", RING5.preference_lists(), lambda n: n == "n1")
    assert not state.ready
    assert state.short == state.ranges > 0
    assert set(state.waiting_for) == {"n2", "n3", "n4", "n5"} - {"n1"}
    assert state.to_wire()["waiting_for"] == list(state.waiting_for)


def test_one_silent_peer_still_leaves_a_quorum_everywhere() -> None:
    state = readiness("n1", "normal", RING5.preference_lists(), lambda n: n != "n3")
    assert state.ready


def test_two_silent_peers_leave_some_ranges_short_of_quorum() -> None:
    lists = RING5.preference_lists()
    state = readiness("n1", "normal", lists, lambda n: n not in ("n2", "n3"))
    short = [p for p in lists if "n1" in p and "n2" in p and "n3" in p]
    assert state.short == len(short) > 0
    assert not state.ready and set(state.waiting_for) == {"n2", "n3"}


def test_a_joining_or_leaving_node_is_not_ready() -> None:
    for status in ("joining", "leaving", "removed"):
        state = readiness("n1", status, RING5.preference_lists(), lambda n: True)
        assert not state.ready and status in state.reason


def test_a_single_node_cluster_is_ready_at_once() -> None:
    ring = Ring.from_nodes(["solo"], vnodes=8, replication_factor=1)
    assert readiness("solo", "normal", ring.preference_lists(), lambda n: n == "solo").ready


def test_a_node_without_tokens_is_not_ready() -> None:
    assert not readiness("n9", "normal", RING5.preference_lists(), lambda n: True).ready
