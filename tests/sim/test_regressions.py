"""Regression tests for what the simulator found in the core, each replayed in isolation."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from zkv.core.effects import Reply
from zkv.core.membership import Membership
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.ring import Ring, node_tokens, ring_of
from zkv.core.transfer import JoinStream, LeaveStream, checksum
from zkv.core.versions import EMPTY, KeyState, encode_context, update
from zkv.sim.cluster import SimCluster
from zkv.sim.network import Network, Scheduler
from zkv.storage.hints import MemoryHintStore
from zkv.storage.memory import MemoryStore


def _cluster(names: list[str]) -> tuple[Scheduler, Network, SimCluster]:
    scheduler = Scheduler()
    network = Network(scheduler, random.Random(1))
    cluster = SimCluster(
        scheduler,
        network,
        random.Random(2),
        names,
        vnodes=8,
        anti_entropy_interval_s=1.0,
        request_timeout_s=1.0,
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


def _leave_setup() -> tuple[LeaveStream, Ring, Ring, dict[bytes, KeyState]]:
    ring = Ring.from_nodes(["a", "b", "c", "d", "e"], 8, 3)
    future = Ring.from_nodes(["b", "c", "d", "e"], 8, 3)  # a leaves
    data = {f"k{i}".encode(): update(EMPTY, "a~1", {}, b"v", 0.0)[0] for i in range(40)}
    keys = sorted(k for k in data if "a" in ring.preference_list(k))
    return LeaveStream(keys, timeout=1.0), ring, future, data


def test_a_leave_does_not_flood_the_other_targets_while_one_is_unreachable() -> None:
    """on_failed used to retry the whole batch on the next tick: while one target was down, every loop
    turn re-sent it to every target, and their answers made more turns (a million messages a second)."""
    stream, ring, future, data = _leave_setup()
    ids = itertools.count(1)
    first = stream.pushes(0.0, ring, future, data.get, ids)
    assert len(first) >= 2
    (down, failed), *others = first
    stream.on_failed(failed["id"])
    for _, msg in others:
        stream.on_push_ok(msg["id"])
    assert stream.pushes(0.01, ring, future, data.get, ids) == []  # no retry before the deadline
    again = stream.pushes(1.5, ring, future, data.get, ids)
    assert [target for target, _ in again] == [down]  # and then only to the one that did not take it


def test_a_key_written_during_a_leave_is_pushed_again_before_it_completes() -> None:
    """A write the leaving node took after pushing the key, whose copies to the new owners were lost,
    stopped with the node (an acknowledged write lost after a clean leave under a partition)."""
    stream, ring, future, data = _leave_setup()
    ids = itertools.count(1)
    while not stream.complete:
        for _, msg in stream.pushes(0.0, ring, future, data.get, ids):
            stream.on_push_ok(msg["id"])
        if stream.position >= len(stream.keys) and not stream.waiting:
            break
    key = stream.keys[0]
    data[key] = update(data[key], "a~1", {}, b"later", 1.0)[0]
    stream.touch(key)
    assert not stream.complete
    pushed = stream.pushes(1.0, ring, future, data.get, ids)
    assert pushed and all(item[0] == key for _, msg in pushed for item in msg["items"])
    for _, msg in pushed:
        stream.on_push_ok(msg["id"])
    assert stream.complete


def test_a_join_stops_waiting_for_a_source_that_left_the_ring() -> None:
    """A join that began while a member was leaving waited for that member's stream forever."""
    stream = JoinStream(["a", "b", "c"], timeout=1.0)
    ids = itertools.count(1)
    asked = dict(stream.requests(0.0, lambda n: n != "b", ids))
    for source in ("a", "c"):
        done = {"id": asked[source]["id"], "items": [], "crc": checksum([]), "next": None}
        stream.on_stream_ok(source, done)
    assert not stream.complete  # b is still owed
    stream.drop_departed(["a", "c"])  # b left the ring
    assert stream.complete


def test_a_context_entry_of_an_actor_this_node_does_not_know_yet_still_supersedes() -> None:
    """A node restarted from its config does not know members that joined since until gossip tells it;
    it dropped their context entries, so a write kept the sibling its client had seen and replaced."""
    settings = NodeSettings(name="n1", actor="n1~b", members={"n1": ("sim://n1", "sim://n1/g")})
    store = MemoryStore()
    old, _ = update(EMPTY, "n9~a", {}, b"old", 1.0)  # written through n9, a member n1 has not heard of
    store.put(b"k", old)
    core = NodeCore(replace(settings, replication_factor=1), store, 0.0)
    core.on_client(b"c", {"op": "put", "id": 1, "key": b"k", "value": b"new", "ctx": old.context()}, 2.0)
    assert [e.msg.get("ok") for e in core.take_effects() if isinstance(e, Reply)] == [True]
    assert store.get(b"k").values == [b"new"]  # the sibling the context saw is gone
    forged = encode_context({"n7~z": 5})  # an actor neither known nor in the key's clock: still dropped
    core.on_client(b"c", {"op": "put", "id": 2, "key": b"k", "value": b"x", "ctx": forged}, 3.0)
    assert "n7~z" not in store.get(b"k").clock


def test_a_key_this_node_no_longer_owns_is_hinted_to_its_owners_after_a_ring_change() -> None:
    """An old owner cut off while a join completed took a write at ``one`` for a key the new owner had
    already streamed; no one would ever pull it from there (anti-entropy compares shared keys only)."""
    members = {n: (f"sim://{n}", f"sim://{n}/g") for n in ("n1", "n2")}
    settings = NodeSettings(name="n1", actor="n1~b", members=members, replication_factor=1, vnodes=8)
    hints = MemoryHintStore()
    core = NodeCore(settings, MemoryStore(), 0.0, hints=hints)
    joined = {**members, "n3": ("sim://n3", "sim://n3/g")}
    future = Ring.from_nodes(joined, 8, 1)
    key = next(k for k in (f"k{i}".encode() for i in range(500)) if future.preference_list(k) == ("n3",))
    assert core.ring.preference_list(key) == ("n1",)  # n1 owns it before the join: the write is right
    core.store.put(key, update(EMPTY, "n1~b", {}, b"late", 1.0)[0])
    core.membership.merge_view([["n3", "sim://n3", "sim://n3/g", 5, 1, "normal", 8]])  # the join ends
    core.on_heartbeat({"op": "hb", "node": "n2", "gen": 1, "hb": 1, "view": []}, 2.0)
    core.on_tick(2.0)
    assert hints.counts() == {"n3": 1}  # handed to its owner, delivered like any hint


def test_a_leave_pushes_to_every_future_owner_not_only_the_new_ones() -> None:
    """A current replica may lack a write the leaving node holds; with the other copy's disk lost, the
    leaving node's push was its last chance (a quorum write acknowledged by it and a wiped replica)."""
    stream, ring, future, data = _leave_setup()
    ids = itertools.count(1)
    pushed: dict[bytes, set[str]] = {}
    for _ in range(10):
        batch = stream.pushes(0.0, ring, future, data.get, ids)
        for target, msg in batch:
            for key, _ in msg["items"]:
                pushed.setdefault(key, set()).add(target)
            stream.on_push_ok(msg["id"])
    assert pushed == {key: set(future.preference_list(key)) for key in stream.keys}
