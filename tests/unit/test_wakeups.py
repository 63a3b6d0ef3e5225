"""What wakes an idle node (issue #20): its heartbeats, on the wall clock's grid, and nothing else.

An idle node's CPU was a fixed cost per wake-up (~12 a second: a 200 ms poll floor, each peer's heartbeat
on its own, its own heartbeats); docs/scale.md has the numbers. These pin the core's side (the deadlines
it asks for) and the poller's (a signal ends a poll that has no deadline).
"""

from __future__ import annotations

import math
import signal
import time

from zkv.core.detector import PAUSE_INTERVALS
from zkv.core.membership import EARLY_INTERVALS, Membership
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.replica import BACKGROUND_TICK_S
from zkv.core.versions import EMPTY
from zkv.node.sockets import SocketPoller
from zkv.storage.memory import MemoryStore

INTERVAL = 0.5


def members(n: int) -> dict[str, tuple[str, str]]:
    return {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in range(1, n + 1)}


def membership(me: str, n: int, now: float = 0.0) -> Membership:
    return Membership(me, members(n), 5, heartbeat_interval=INTERVAL, failure_timeout=3.0, now=now)


def test_heartbeats_go_out_on_the_wall_clocks_grid_whatever_the_turns_timing() -> None:
    offset = 1_700_000_000.123  # wall = monotonic + offset
    m = membership("n1", 20)
    sent = []
    now = 0.0
    while now < 10.0:
        now += 0.013  # turns at odd times (other work, a loaded machine)
        if m.heartbeat_due(now):
            m.make_heartbeat(now, 0, now + offset)
            sent.append(now)
    slots = [round((t + offset) / INTERVAL) for t in sent[1:]]  # the first one goes out at once
    assert all(abs((t + offset) - s * INTERVAL) < 0.014 for t, s in zip(sent[1:], slots, strict=True))
    assert all(b - a == 1 for a, b in zip(slots, slots[1:], strict=False)), "one heartbeat per interval"


def test_a_turn_just_before_the_grids_instant_sends_the_heartbeat_and_the_next_stays_on_the_grid() -> None:
    m = membership("n1", 20)
    m.make_heartbeat(0.0, 0, 100.2)  # wall 100.2: the next instant is 100.5, 0.3 s on
    assert math.isclose(m._next_heartbeat, 0.3)  # noqa: SLF001
    early = 0.3 - EARLY_INTERVALS * INTERVAL / 2
    assert m.heartbeat_due(early) and not m.heartbeat_due(0.3 - 2 * EARLY_INTERVALS * INTERVAL)
    m.make_heartbeat(early, 0, 100.0 + early + 0.2)
    assert math.isclose(m._next_heartbeat, 0.8), "not half an interval later: the grid's next instant"  # noqa: SLF001


def test_past_a_full_mesh_an_idle_node_wakes_for_its_heartbeats_only_and_for_a_silent_peer_when_due() -> None:
    a = membership("n1", 20)
    watched = sorted(a.monitored())
    for n in members(20):
        if n != "n1":
            a.on_connection(n, True)
    peers = {n: membership(n, 20) for n in watched}
    t = 0.0
    while t < 5.0:  # everyone beats: the only wake-ups asked for are this node's heartbeats
        t = round(t + 0.05, 2)
        for n in watched:
            if peers[n].heartbeat_due(t):
                a.on_heartbeat(peers[n].make_heartbeat(t, 0), t)
        a.check_peers(t)
        if a.heartbeat_due(t):
            a.make_heartbeat(t, 0)
        assert a.next_wakeup() <= t + INTERVAL
        assert a.next_wakeup() == a._next_heartbeat  # noqa: SLF001 (no other wake-up: no look at the peers)
    hung = watched[0]
    last = t
    while t < 12.0:  # one goes silent: the node asks to look once its silence could be phi's
        t = round(t + 0.05, 2)
        for n in watched[1:]:
            if peers[n].heartbeat_due(t):
                a.on_heartbeat(peers[n].make_heartbeat(t, 0), t)
        a.check_peers(t)
        if a.heartbeat_due(t):
            a.make_heartbeat(t, 0)
        if a.notices():
            break
    assert not a.is_up(hung, t) and [n[0] for n in a.notices()] == [hung]
    assert t - last >= PAUSE_INTERVALS * INTERVAL


def test_a_silent_monitored_peer_gets_a_wakeup_of_its_own() -> None:
    a = membership("n1", 20)
    for n in members(20):
        if n != "n1":
            a.on_connection(n, True)
    for n in a.monitored():
        a.on_heartbeat(membership(n, 20).make_heartbeat(1.0, 0), 1.0)
    a.make_heartbeat(1.0, 0)
    a.check_peers(1.0)
    # nobody beats again and this node stops publishing: it still wakes, when silence may mean down
    a._next_heartbeat = math.inf  # noqa: SLF001
    assert math.isclose(a.next_wakeup(), 1.0 + PAUSE_INTERVALS * INTERVAL)


def test_a_full_mesh_keeps_its_schedule() -> None:
    """Up to nine members: an interval after the last heartbeat, however the wall clock stands (the
    simulator's seeds were found under that schedule)."""
    m = membership("n1", 3)
    m.make_heartbeat(0.0, 0, 100.2)
    assert m.next_wakeup() == INTERVAL and not m.heartbeat_due(INTERVAL - 0.001)


def core(nodes: int, **settings: object) -> NodeCore:
    return NodeCore(
        NodeSettings(name="n1", actor="n1", members=members(nodes), **settings), MemoryStore(), 0.0
    )


def test_an_idle_core_past_a_full_mesh_asks_for_no_wakeup_before_its_next_heartbeat() -> None:
    c = core(20, heartbeat_interval_s=INTERVAL, wall_offset_s=1_700_000_000.0)
    for n in members(20):
        if n != "n1":
            c.on_connection(n, True, 0.0)
    now = 0.0
    for _ in range(40):
        c.on_tick(now)
        c.take_effects()
        wake = c.next_wakeup()
        assert wake > now
        assert wake >= min(now + INTERVAL / 2, c.membership.next_wakeup()) - 1e-9, (now, wake)
        now = wake


def test_background_work_asks_for_ticks_until_it_is_done() -> None:
    store = MemoryStore()
    for i in range(5000):
        store.put(f"k{i}".encode(), EMPTY)
    c = NodeCore(NodeSettings(name="n1", actor="n1", members=members(3)), store, 0.0)
    assert c.replica.unindexed is not None  # digests of the keys found at start: a slice per tick
    c.on_tick(0.0)
    assert c.next_wakeup() <= BACKGROUND_TICK_S
    now = 0.0
    while c.replica.unindexed is not None:
        now = c.next_wakeup()
        c.on_tick(now)
    assert now < 10 * BACKGROUND_TICK_S


def test_a_signal_ends_a_poll_that_waits_forever() -> None:
    poller = SocketPoller()
    poller.wake_on_signals()
    seen: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        started = time.monotonic()
        assert poller.poll(-1) == []
        assert poller.signalled and seen == [signal.SIGALRM]
        assert time.monotonic() - started < 5.0
        assert poller.poll(0) == [] and not poller.signalled  # the wake-up byte was taken
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        poller.close()
