"""The turn plan: what leaves before the flush, what after, and when replies ride with requests."""

from __future__ import annotations

from pathlib import Path

from zkv.core.effects import Connect, Publish, Reply, Send, Stop
from zkv.core.turnplan import plan_turn

ROOT = Path(__file__).resolve().parents[2]
PEERS = {b"n2": "n2", b"n3": "n3"}
CLIENT = b"client-1"


def test_requests_leave_before_the_flush_and_replies_after_it():
    effects = [
        Reply(CLIENT, {"id": 1, "ok": True}),
        Send("n2", {"op": "rput", "id": 7}),
        Reply(b"n3", {"op": "rput_ok", "id": 4}),
        Send("n2", {"op": "rget", "id": 8}),
        Reply(CLIENT, {"id": 2, "ok": True}),
    ]
    plan = plan_turn(effects, wrote=True, peer_of=PEERS)
    assert plan.before == {"n2": [{"op": "rput", "id": 7}, {"op": "rget", "id": 8}]}
    assert plan.early == {}
    assert plan.after == {
        CLIENT: [{"id": 1, "ok": True}, {"id": 2, "ok": True}],
        b"n3": [{"op": "rput_ok", "id": 4}],
    }


def test_a_reply_marked_before_flush_leaves_before_the_flush():
    effects = [Reply(CLIENT, {"id": 1, "ok": True}, before_flush=True), Reply(CLIENT, {"id": 2, "ok": True})]
    plan = plan_turn(effects, wrote=True, peer_of=PEERS)
    assert plan.early == {CLIENT: [{"id": 1, "ok": True}]}
    assert plan.after == {CLIENT: [{"id": 2, "ok": True}]}


def test_replies_ride_with_requests_to_the_same_peer_when_the_turn_wrote_nothing():
    effects = [
        Reply(b"n2", {"op": "rget_ok", "id": 3}),
        Send("n2", {"op": "rget", "id": 9}),
        Reply(b"n3", {"op": "rget_ok", "id": 5}),  # no request to n3: stays a reply
        Reply(CLIENT, {"id": 1, "ok": True}),  # a client's route never rides
    ]
    plan = plan_turn(effects, wrote=False, peer_of=PEERS)
    assert plan.before == {"n2": [{"op": "rget", "id": 9}, {"op": "rget_ok", "id": 3}]}
    assert plan.after == {b"n3": [{"op": "rget_ok", "id": 5}], CLIENT: [{"id": 1, "ok": True}]}


def test_replies_wait_for_the_flush_when_the_turn_wrote():
    effects = [Reply(b"n2", {"op": "rput_ok", "id": 3}), Send("n2", {"op": "rput", "id": 9})]
    plan = plan_turn(effects, wrote=True, peer_of=PEERS)
    assert plan.before == {"n2": [{"op": "rput", "id": 9}]}
    assert plan.after == {b"n2": [{"op": "rput_ok", "id": 3}]}


def test_publishes_connects_and_the_stop_are_kept():
    connect = Connect("n4", "tcp://a", "tcp://b")
    plan = plan_turn([Publish({"op": "hb"}), connect, Stop()], wrote=False, peer_of=PEERS)
    assert plan.publishes == [{"op": "hb"}] and plan.connects == [connect] and plan.stop
    assert not plan.before and not plan.early and not plan.after
    assert not plan_turn([], wrote=False, peer_of=PEERS).stop


def test_the_runtime_the_simulator_and_the_fake_network_carry_out_this_one_plan():
    """Nothing but the plan reads ``before_flush``, and every driver of a core calls :func:`plan_turn`."""
    drivers = ["zkv/node/runtime.py", "zkv/sim/cluster.py", "tests/unit/test_nodecore.py", "tools/hotpath.py"]
    for path in drivers:
        assert "plan_turn(" in (ROOT / path).read_text(), f"{path} does not carry out the turn plan"
    readers = [
        str(p.relative_to(ROOT))
        for folder in ("zkv", "tools", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if ".before_flush" in p.read_text() and p.name != "test_turnplan.py"
    ]
    assert readers == ["zkv/core/turnplan.py"]
