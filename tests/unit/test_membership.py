"""Gossip views and the phi-accrual failure detector, driven with simulated time."""

from __future__ import annotations

import math

from zkv.core.members import DOWN, JOINING, LEAVING, NORMAL, UP
from zkv.core.membership import Membership

MEMBERS = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in (1, 2, 3)}
INTERVAL = 0.1


def make(me: str, now: float = 0.0, generation: int = 1, **kw) -> Membership:
    return Membership(me, MEMBERS, generation, INTERVAL, failure_timeout=5.0, now=now, **kw)


def beat(sender: Membership, receiver: Membership, now: float, keys: int = 0) -> bool:
    return receiver.on_heartbeat(sender.make_heartbeat(now, keys), now)


def pull(receiver: Membership, peers: dict[str, Membership], now: float) -> str | None:
    """What the node core does after a heartbeat: pull the view of the peer it names, if any."""
    peer = receiver.take_pull(now)
    if peer is not None:
        receiver.merge_view(peers[peer].view_entries())
    return peer


def test_peer_stays_up_with_regular_heartbeats_and_goes_down_when_they_stop() -> None:
    a, b = make("n1"), make("n2")
    now = 0.0
    for _ in range(50):
        now += INTERVAL
        beat(b, a, now)
        assert a.is_up("n2", now)
    # silence: phi climbs; down well before the hard failure_timeout
    down_at = None
    t = now
    while t < now + 5.0:
        t += 0.01
        if not a.is_up("n2", t):
            down_at = t - now
            break
    assert down_at is not None and INTERVAL < down_at < 1.0
    assert a.phi("n2", now + down_at) >= 8.0
    beat(b, a, now + down_at + 0.01)
    assert a.is_up("n2", now + down_at + 0.01)


def test_phi_grows_with_silence_and_is_finite() -> None:
    a, b = make("n1"), make("n2")
    for i in range(1, 30):
        beat(b, a, i * INTERVAL)
    last = 29 * INTERVAL
    phis = [a.phi("n2", last + d) for d in (0.05, 0.3, 0.6, 1.0, 100.0)]
    assert phis == sorted(phis)
    assert all(math.isfinite(p) for p in phis)


def test_jittery_peer_tolerated_longer_than_a_regular_one() -> None:
    regular, jittery = make("n1"), make("n1")
    b1, b2 = make("n2"), make("n2")
    t1 = t2 = 0.0
    for i in range(60):
        t1 += INTERVAL
        beat(b1, regular, t1)
        t2 += INTERVAL * (0.3 if i % 2 else 1.7)
        beat(b2, jittery, t2)
    silence = 0.8
    assert regular.phi("n2", t1 + silence) > jittery.phi("n2", t2 + silence)


def test_dropped_connection_means_down_at_once() -> None:
    a = make("n1")
    a.on_connection("n2", True)
    assert a.is_up("n2", 0.01)
    a.on_connection("n2", False)
    assert not a.is_up("n2", 0.01)
    a.on_connection("n2", True)
    assert a.is_up("n2", 0.01)


def test_a_connection_not_made_yet_is_not_a_lost_one() -> None:
    """The start-up race: a peer that starts a moment later is still presumed up, and messages to it wait."""
    a = make("n1")
    a.on_connection("n2", False)  # the runtime's word at start: nothing connected yet
    assert a.is_up("n2", 0.01)
    assert a.awaiting_connection("n2", 0.01)
    assert not a.heard_from("n2", 0.01)  # presumed up, not proven
    a.on_connection("n2", True)
    assert not a.awaiting_connection("n2", 0.02)


def test_a_peer_never_heard_of_is_down_after_failure_timeout_and_not_awaited() -> None:
    a = make("n1")
    assert a.awaiting_connection("n3", 0.05)
    assert a.is_up("n3", 4.9)  # no heartbeat yet: phi has nothing to judge by, only the hard bound counts
    assert not a.is_up("n3", 5.1)
    assert not a.awaiting_connection("n3", 5.1)  # down: a message to it fails at once
    assert a.first_connect_wait == 1.0


def test_heard_from_needs_a_heartbeat_and_a_connection() -> None:
    a, b = make("n1"), make("n2")
    assert a.heard_from("n1", 0.0)  # itself
    beat(b, a, 0.1)
    assert not a.heard_from("n2", 0.1)  # heartbeat, no request connection yet
    a.on_connection("n2", True)
    assert a.heard_from("n2", 0.1)
    a.on_connection("n2", False)
    assert not a.heard_from("n2", 0.1)


def test_restart_is_detected_by_a_higher_generation() -> None:
    a, b = make("n1"), make("n2", generation=100)
    assert not beat(b, a, 0.1)
    restarted = make("n2", generation=200)
    assert beat(restarted, a, 0.2)
    assert a.member("n2").generation == 200
    # an old heartbeat of the previous incarnation is ignored
    assert not a.on_heartbeat({"op": "hb", "node": "n2", "gen": 100, "hb": 99, "view": []}, 0.3)
    assert a.member("n2").generation == 200


def test_views_merge_by_generation_and_version() -> None:
    a, b, c = make("n1"), make("n2"), make("n3")
    c.set_status(LEAVING)
    beat(c, b, 0.1)  # b hears c leaving
    beat(b, a, 0.2)  # b's digest differs from a's: a pulls b's view (c it does not hear)
    assert pull(a, {"n2": b}, 0.2) == "n2"
    assert a.status_of("n3") == LEAVING
    stale = [["n3", MEMBERS["n3"][0], MEMBERS["n3"][1], 1, 0, NORMAL, 64]]
    a.merge_view(stale)  # older news does not undo newer
    assert a.status_of("n3") == LEAVING
    assert set(a.ring_members()) == {"n1", "n2", "n3"}  # leaving members still own tokens


def test_a_member_learned_through_gossip_joins_the_view() -> None:
    a = make("n1")
    learned = a.merge_view([["n4", "tcp://127.0.0.1:7004", "tcp://127.0.0.1:8004", 5, 1, JOINING, 64]])
    assert learned == ["n4"]
    assert a.status_of("n4") == JOINING
    assert "n4" not in a.ring_members()
    assert not a.is_up("n4", 0.0)  # never heard directly
    view = {v.name: v for v in a.view(0.0, 0)}
    assert view["n4"].status == JOINING and view["n4"].heartbeat_age is None


def test_malformed_gossip_is_ignored() -> None:
    a = make("n1")
    before = [m.to_wire() for m in a.members()]
    a.merge_view([None, [1, 2, 3], ["n2", "x", "y", -1, 0, NORMAL, 64], ["n2", "x", "y", 9, 9, "zombie", 64]])
    assert [m.to_wire() for m in a.members()] == before
    assert not a.on_heartbeat({"op": "hb", "node": "n2", "gen": "x", "hb": 1}, 0.1)


def test_view_reports_status_and_liveness() -> None:
    a, b = make("n1"), make("n2")
    beat(b, a, 0.1, keys=42)
    view = {v.name: v for v in a.view(0.15, my_keys=7)}
    assert view["n1"].status == UP and view["n1"].keys == 7
    assert view["n2"].status == UP and view["n2"].keys == 42
    assert abs(view["n2"].heartbeat_age - 0.05) < 1e-9
    a.on_connection("n3", True)
    a.on_connection("n3", False)
    assert {v.name: v.status for v in a.view(0.15, 0)}["n3"] == DOWN


def test_a_restart_under_a_generation_below_the_remembered_one_goes_above_it_at_once() -> None:
    """A clock that was ahead in the previous life (or set back since) must not keep a node out."""
    a, b = make("n1", generation=5000), make("n2", generation=9000)
    for now in (0.1, 0.2):
        beat(b, a, now)
        beat(a, b, now)
    assert a.is_up("n2", 0.2)
    restarted = make("n2", now=1.0, generation=100)  # clock corrected, data dir empty
    assert not beat(restarted, a, 1.0)  # stale: n1 remembers 9000 and drops it
    beat(a, restarted, 1.0)  # n1's digest differs: n2 pulls n1's view, which names it under 9000
    assert pull(restarted, {"n1": a}, 1.0) == "n1"
    assert restarted.generation == 9001 and restarted.generation_raised
    assert restarted.heartbeat_due(1.0)  # it says so at once
    assert beat(restarted, a, 1.05)  # a restart, as n1 sees it
    assert a.member("n2").generation == 9001 and a.is_up("n2", 1.05)


def test_a_heartbeat_is_the_same_size_whatever_the_cluster() -> None:
    """O(1) per heartbeat (issue #20): its sender's entry and a digest, not one entry per member."""
    import msgpack

    sizes = []
    for n in (3, 30, 300):
        members = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{9000 + i}") for i in range(n)}
        m = Membership("n0", members, 1, INTERVAL, failure_timeout=5.0, now=0.0)
        sizes.append(len(msgpack.packb(m.make_heartbeat(0.0, 0))))
    assert max(sizes) - min(sizes) <= 16, sizes
    assert max(sizes) < 200, sizes


def test_equal_views_have_equal_digests_and_a_settled_pair_pulls_nothing() -> None:
    a, b = make("n1", generation=10), make("n2", generation=20)
    assert a.digest != b.digest  # each knows only its own generation yet
    for now in (0.1, 0.2, 0.3):
        beat(a, b, now)
        beat(b, a, now)
        pull(a, {"n2": b}, now)
        pull(b, {"n1": a}, now)
    assert a.digest == b.digest
    pulls = a.pulls + b.pulls
    for i in range(10):
        now = 0.4 + i * INTERVAL
        beat(a, b, now)
        beat(b, a, now)
        assert a.take_pull(now) is None and b.take_pull(now) is None
    assert a.pulls + b.pulls == pulls


def test_pulls_are_rate_limited() -> None:
    a, b = make("n1"), make("n2")
    b.set_status(LEAVING)
    b.merge_view([["n9", "tcp://x:1", "tcp://x:2", 5, 0, NORMAL, 64]])  # news a lacks
    assert beat(b, a, 0.1) is False and a.take_pull(0.1) == "n2"
    beat(b, a, 0.15)
    assert a.take_pull(0.15) is None  # within PULL_INTERVALS heartbeat intervals of the last one
    beat(b, a, 0.35)
    assert a.take_pull(0.35) == "n2"


def test_a_node_taken_in_first_hand_is_relayed_for_a_few_heartbeats() -> None:
    seed, other = make("n1"), make("n2")
    joiner = ["n4", "tcp://127.0.0.1:7004", "tcp://127.0.0.1:8004", 5, 0, JOINING, 64]
    seed.merge_view([joiner], relay=True)
    deltas = [seed.make_heartbeat(0.1 * i, 0).get("delta") for i in range(1, 6)]
    assert deltas[:3] == [[joiner]] * 3 and deltas[3:] == [None, None]
    other.on_heartbeat({**seed.make_heartbeat(0.6, 0), "delta": [joiner]}, 0.6)
    assert other.status_of("n4") == JOINING
    assert [m.name for m in other.take_learned()] == ["n4"]
    assert other.make_heartbeat(0.7, 0).get("delta") is None  # second-hand news is not relayed again


def test_phi_stays_finite_for_a_peer_whose_heartbeats_were_long_and_steady() -> None:
    """A loaded machine: heartbeats 5 s apart, steadily; well before the next is due phi is 0, not an
    OverflowError (at 80 nodes on a loaded machine every ``nodes`` request failed with one)."""
    a, b = make("n1"), make("n2")
    for i in range(1, 20):
        beat(b, a, i * 5.0)
    for silence in (0.01, 3.9, 4.05, 4.2):  # y from about -106 to -22: math.exp overflowed in (-30, -21.5)
        assert a.phi("n2", 95.0 + silence) == 0.0
        assert a.is_up("n2", 95.0 + silence)
    assert a.view(99.05, 0)  # the nodes view computes phi for every member
    assert math.isfinite(a.phi("n2", 10_000.0))


def test_past_nine_members_a_node_monitors_a_few_peers_and_every_member_is_monitored() -> None:
    from zkv.core.monitoring import monitored_peers

    for n in (3, 9):
        names = [f"n{i}" for i in range(1, n + 1)]
        assert monitored_peers(names, "n1") == frozenset(names) - {"n1"}  # the 3-node defaults: all
    for n, k in ((10, 3), (40, 4), (150, 5)):
        names = [f"n{i}" for i in range(1, n + 1)]
        sets = {m: monitored_peers(names, m) for m in names}
        assert all(len(s) == k for s in sets.values())
        watchers = {m: sum(m in s for s in sets.values()) for m in names}
        assert set(watchers.values()) == {k}, watchers


def test_a_death_notice_holds_until_the_member_refutes_it() -> None:
    from zkv.core.membership import Membership

    members = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in range(1, 21)}
    a = Membership("n1", members, generation=5, heartbeat_interval=0.5, failure_timeout=3.0, now=0.0)
    x = Membership("n2", members, generation=7, heartbeat_interval=0.5, failure_timeout=3.0, now=0.0)
    target = next(n for n in members if n != "n1" and n not in a.monitored())
    a.on_connection(target, True)
    assert a.is_up(target, 10.0)  # not monitored: its connection is up and no notice names it
    a.merge_notices([[target, 0, 0], ["n1", 0, 0], "junk"])
    assert not a.is_up(target, 10.0)  # its monitors noticed it silent
    assert a.notices() == [[target, 0, 0]]
    a.merge_view([[target, *members[target], 0, 1, "normal", 64]])  # it refuted: a newer entry
    assert a.is_up(target, 10.0) and a.notices() == []
    x.merge_notices([["n2", 7, 0]])  # a notice about x's own entry: x refutes by its version
    assert x.member("n2").version == 1
    assert x.make_heartbeat(1.0, 0)["me"][4] == 1


def test_a_monitor_notices_a_silent_peer_unless_it_hears_none_and_relays_the_notice() -> None:
    from zkv.core.membership import Membership

    members = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in range(1, 21)}

    def node(name: str) -> Membership:
        return Membership(name, members, generation=5, heartbeat_interval=0.5, failure_timeout=3.0, now=0.0)

    a = node("n1")
    watched = sorted(a.monitored())
    peers = {n: node(n) for n in watched}
    for n in members:
        if n != "n1":
            a.on_connection(n, True)
    t = 0.0
    while t < 6.0:  # nobody heard at all: most likely n1 is the one cut off, so it accuses nobody
        t += 0.1
        a.check_peers(t)
    assert a.notices() == [] and a.digest == node("n1").digest
    hung, *alive = watched
    while t < 12.0:  # all but one keep beating; the hung one keeps its connection up
        t += 0.1
        for n in alive:
            if peers[n].heartbeat_due(t):
                a.on_heartbeat(peers[n].make_heartbeat(t, 0), t)
        a.check_peers(t)
    assert a.notices() == [[hung, 0, 0]] and not a.is_up(hung, t)
    assert all(a.is_up(n, t) for n in alive)
    assert a.digest != node("n1").digest  # the notice is in the digest: a node without it pulls
    relayed = [a.make_heartbeat(t + i, 0).get("dead") for i in range(4)]
    assert relayed == [[[hung, 0, 0]]] * 3 + [None]  # relayed a few times, then only pulled with views
