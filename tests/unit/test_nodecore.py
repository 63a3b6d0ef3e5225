"""NodeCore end to end through a fake network: quorum requests, failures, read repair, forwarding, validation.

:class:`FakeNet` is the fake link of STYLE.md (h11's two cores joined in a test), for a whole cluster: it
collects every core's effects, orders them by the core's turn plan (:func:`zkv.core.turnplan.plan_turn`, as
the runtime and the simulator do) and delivers them in FIFO order, through msgpack as on the real wire. Peer
requests (``Send``) reach the target's ``on_peer``; replies whose route is a node name go back to that
node's ``on_peer``; replies to ``b"client"`` are collected; heartbeats (``Publish``) reach every other
core's ``on_heartbeat``. Nodes can be *cut* (everything to and from them is lost), *held* (their traffic
waits until released), *silent* (their heartbeats are lost) or *unreachable* (a ``Send`` to them fails at
once, as when the runtime has no connection). Time only moves when a test moves it.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkv.client import EMPTY_CONTEXT
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.turnplan import plan_turn
from zkv.core.versions import EMPTY, MAX_COUNTER, covers, decode_context, encode_context
from zkv.protocol import PEER_OPS, Limits, pack, unpack_frame
from zkv.storage.memory import MemoryStore

CLIENT = b"client"


def wire(msg: dict[str, Any]) -> dict[str, Any]:
    """What the receiving side decodes: msgpack turns tuples into lists, and must accept everything sent."""
    (decoded,) = unpack_frame(pack(msg))
    return decoded


class FakeNet:
    def __init__(self, nodes: int = 3, replication_factor: int = 3, **settings: Any) -> None:
        self.members = {
            f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}")
            for i in range(1, nodes + 1)
        }
        self.now = 0.0
        self.cores = {
            name: NodeCore(
                NodeSettings(
                    name=name,
                    actor=name,
                    members=self.members,
                    replication_factor=replication_factor,
                    **settings,
                ),
                MemoryStore(),
                self.now,
            )
            for name in self.members
        }
        self.peer_routes = {name.encode(): name for name in self.members}
        self.cut: set[str] = set()
        self.held: set[str] = set()
        self.silent: set[str] = set()
        self.unreachable: set[str] = set()
        self.replies: list[tuple[str, dict[str, Any]]] = []  # (node that answered, reply)
        self.delivered: list[tuple[str, str, dict[str, Any]]] = []  # (src, dst, msg) peer traffic
        self.lost: list[tuple[str, str, dict[str, Any]]] = []
        self.early: list[tuple[str, dict[str, Any]]] = []  # replies marked before_flush: (node, msg)
        self._waiting: list[tuple[str, str, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self.issued = 0

    # ------------------------------------------------------------------------------------------ driving

    def run(self) -> None:
        """Carry every core's effects out in the order of its turn plan, one message at a time (FIFO).

        The plan's flush is a no-op here: a test says when a node's runtime flushed (``on_flushed``)."""
        queue: deque[tuple[str, str, Any, dict[str, Any]]] = deque()  # (src, how, destination, msg)

        def collect() -> None:
            for name, core in self.cores.items():
                effects = core.take_effects()
                if not effects:
                    continue
                plan = plan_turn(effects, core.store.needs_flush(), self.peer_routes)
                assert not plan.connects and not plan.stop, f"unexpected effects {effects!r}"
                queue.extend((name, "publish", None, msg) for msg in plan.publishes)
                queue.extend((name, "send", peer, m) for peer, msgs in plan.before.items() for m in msgs)
                queue.extend((name, "early", route, m) for route, msgs in plan.early.items() for m in msgs)
                queue.extend((name, "reply", route, m) for route, msgs in plan.after.items() for m in msgs)

        collect()
        while queue:
            src, how, dst, msg = queue.popleft()
            if how == "send":
                if dst not in self.unreachable:
                    self._deliver(src, dst, msg)
                elif msg.get("op") in PEER_OPS:  # a reply riding along is lost, as in the runtime
                    self.cores[src].on_send_failed(dst, msg, self.now)
            elif how == "publish":
                if src not in self.cut and src not in self.silent:
                    for name, core in self.cores.items():
                        if name != src and name not in self.cut:
                            core.on_heartbeat(wire(msg), self.now)
            else:
                if how == "early":
                    self.early.append((src, msg))
                if dst == CLIENT:
                    self.replies.append((src, wire(msg)))
                else:
                    self._deliver(src, dst.decode(), msg)
            collect()

    def _deliver(self, src: str, dst: str, msg: dict[str, Any]) -> None:
        assert dst in self.cores, f"{src} addressed unknown node {dst!r}"
        if src in self.cut or dst in self.cut:
            self.lost.append((src, dst, msg))
        elif src in self.held or dst in self.held:
            self._waiting.append((src, dst, msg))
        else:
            msg = wire(msg)
            self.delivered.append((src, dst, msg))
            self.cores[dst].on_peer(src, msg, self.now)

    def release(self) -> None:
        """Stop holding anyone and deliver what waited."""
        self.held.clear()
        waiting, self._waiting = self._waiting, []
        for src, dst, msg in waiting:
            self._deliver(src, dst, msg)
        self.run()

    def advance(self, to: float, step: float = 0.25) -> None:
        """Move time to ``to`` in steps, ticking every core (heartbeats flow unless cut or silent)."""
        while self.now < to:
            self.now = min(to, self.now + step)
            for core in self.cores.values():
                core.on_tick(self.now)
            self.run()

    # ------------------------------------------------------------------------------------------ clients

    def send(self, node: str, op: str, **fields: Any) -> int:
        rid = self.issued = next(self._ids)
        self.cores[node].on_client(CLIENT, wire({"op": op, "id": rid, **fields}), self.now)
        self.run()
        return rid

    def answer(self, rid: int) -> dict[str, Any] | None:
        found = [msg for _, msg in self.replies if msg.get("id") == rid]
        assert len(found) <= 1, f"request {rid} answered {len(found)} times: {found}"
        return found[0] if found else None

    def request(self, node: str, op: str, **fields: Any) -> dict[str, Any]:
        rid = self.send(node, op, **fields)
        reply = self.answer(rid)
        assert reply is not None, f"{op} {fields} got no answer"
        return reply

    def put(self, node: str, key: bytes, value: bytes, **fields: Any) -> dict[str, Any]:
        return self.request(node, "put", key=key, value=value, **fields)

    def get(self, node: str, key: bytes, **fields: Any) -> dict[str, Any]:
        return self.request(node, "get", key=key, **fields)

    # ------------------------------------------------------------------------------------------ looking

    def stored(self, node: str, key: bytes):
        return self.cores[node].store.get(key)

    def traffic(self, op: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(src, dst, msg) for src, dst, msg in self.delivered if msg.get("op") == op]


def key_outside(net: FakeNet, node: str) -> bytes:
    """A key whose preference list does not contain ``node``."""
    ring = net.cores[node].ring
    return next(k for k in (f"key-{i}".encode() for i in range(1000)) if node not in ring.preference_list(k))


LEVELS = ("one", "quorum", "all")


# ---------------------------------------------------------------------------------------------- happy path


@pytest.mark.parametrize("level", LEVELS)
def test_put_then_get(level):
    net = FakeNet()
    reply = net.put("n1", b"k", b"v", cl=level)
    assert reply["ok"] is True and reply["id"] == 1
    got = net.get("n2", b"k", cl=level)
    assert got["ok"] is True
    assert got["values"] == [b"v"]
    assert isinstance(got["ctx"], bytes) and len(got["timestamps"]) == 1
    # with every replica reachable the write lands on all of them, whatever the level
    states = [net.stored(n, b"k") for n in net.cores]
    assert all(s is not None and s.values == [b"v"] for s in states)
    assert states[0] == states[1] == states[2]


def test_get_of_a_missing_key_is_empty_with_the_empty_context():
    net = FakeNet()
    got = net.get("n3", b"nothing", cl="all")
    assert got["ok"] and got["values"] == [] and got["ctx"] == EMPTY_CONTEXT
    net.put("n1", b"nothing", b"meanwhile")
    # a write with the context of a read that found nothing supersedes nothing
    assert net.put("n2", b"nothing", b"mine", ctx=got["ctx"])["ok"]
    assert sorted(net.get("n1", b"nothing", cl="all")["values"]) == [b"meanwhile", b"mine"]


def test_put_with_context_replaces_with_the_empty_context_adds_a_sibling():
    net = FakeNet()
    net.put("n1", b"k", b"v1")
    ctx = net.get("n2", b"k")["ctx"]
    assert net.put("n3", b"k", b"v2", ctx=ctx)["ok"]
    assert net.get("n1", b"k")["values"] == [b"v2"]
    assert net.put("n2", b"k", b"sibling", ctx=EMPTY_CONTEXT)["ok"]  # saw nothing: concurrent
    assert sorted(net.get("n1", b"k", cl="all")["values"]) == [b"sibling", b"v2"]


def test_a_blind_put_or_delete_supersedes_what_its_coordinator_holds():
    net = FakeNet()
    coordinator = "n1"
    for i in range(50):
        assert net.put(coordinator, b"k", b"v%d" % i)["ok"]
    assert net.get("n2", b"k", cl="all")["values"] == [b"v49"]
    assert net.request(coordinator, "delete", key=b"k")["ok"]
    got = net.get("n3", b"k", cl="all")
    assert got["values"] == [] and net.stored("n1", b"k").is_deleted


def test_a_blind_put_keeps_a_concurrent_write_its_coordinator_has_not_seen():
    net = FakeNet(failure_timeout_s=60.0)
    net.put("n1", b"k", b"v0", cl="all")
    ctx = net.get("n1", b"k")["ctx"]
    net.cut.add("n1")  # n1 does not hear of the next write
    assert net.put("n2", b"k", b"with-context", ctx=ctx, cl="quorum")["ok"]
    net.cut.clear()
    assert net.stored("n1", b"k").values == [b"v0"]
    assert net.put("n1", b"k", b"blind", cl="one")["ok"]  # supersedes v0, the only version n1 holds
    assert sorted(net.get("n3", b"k", cl="all")["values"]) == [b"blind", b"with-context"]


def test_two_puts_with_one_context_through_two_coordinators_are_siblings_until_resolved():
    net = FakeNet()
    net.put("n1", b"k", b"v0")
    ctx = net.get("n1", b"k")["ctx"]
    net.put("n1", b"k", b"a", ctx=ctx)
    net.put("n2", b"k", b"b", ctx=ctx)
    net.put("n2", b"k", b"c", ctx=ctx)  # same context, same coordinator: still not lost
    got = net.get("n3", b"k", cl="all")
    assert sorted(got["values"]) == [b"a", b"b", b"c"]
    net.put("n3", b"k", b"resolved", ctx=got["ctx"])
    assert net.get("n1", b"k", cl="all")["values"] == [b"resolved"]


def test_delete_does_not_come_back_from_a_replica_that_missed_it():
    net = FakeNet(failure_timeout_s=60.0)
    net.put("n1", b"k", b"v", cl="all")
    ctx = net.get("n1", b"k")["ctx"]
    net.cut.add("n3")
    assert net.request("n1", "delete", key=b"k", ctx=ctx)["ok"]
    assert net.stored("n3", b"k").values == [b"v"]
    net.cut.clear()
    for node in ("n3", "n1"):  # n3 coordinating merges its stale copy with the others' tombstone
        got = net.get(node, b"k", cl="all")
        assert got["ok"] and got["values"] == [] and got["ctx"] is not None
    assert net.stored("n3", b"k").values == [], "read repair sent the tombstone to n3"


def test_info_requests_answer_locally():
    net = FakeNet()
    pong = net.request("n2", "ping")
    assert pong["ok"] and pong["node"] == "n2" and pong["generation"] == 1
    net.put("n1", b"k", b"v", cl="all")
    local = net.request("n3", "local_get", key=b"k")
    assert local["ok"] and local["node"] == "n3" and local["state"][0][0][3] == b"v"
    ring = net.request("n1", "ring")
    assert ring["replication_factor"] == 3 and len(ring["members"]) == 3
    status = net.request("n1", "status")
    assert status["ok"] and status["keys"] == 1 and status["in_flight"] == 0


# ---------------------------------------------------------------------------------------------- failures


def test_unavailable_when_two_of_three_peers_are_down():
    net = FakeNet(failure_timeout_s=3.0)
    net.now = 3.5  # no heartbeat ever arrived: both peers are past failure_timeout
    for op, fields in (("put", {"value": b"v"}), ("get", {})):
        reply = net.request("n1", op, key=b"k", cl="quorum", **fields)
        assert reply["ok"] is False and reply["error"] == "unavailable"
        assert reply["required"] == 2 and reply["alive"] == 1
    assert net.stored("n1", b"k") is None, "an unavailable write changes nothing"
    assert not net.delivered and not net.lost, "and nothing was sent"
    assert net.request("n1", "put", key=b"k", value=b"v", cl="one")["ok"]
    assert net.get("n1", b"k", cl="one")["values"] == [b"v"]
    assert net.cores["n1"].stats.errors["unavailable"] == 2


def test_one_peer_down_allows_quorum_but_not_all_and_recovers_on_heartbeat():
    net = FakeNet(failure_timeout_s=3.0)
    net.silent.add("n3")
    net.advance(4.0)  # n2's heartbeats keep it up, n3 says nothing
    assert net.put("n1", b"k", b"v", cl="quorum")["ok"]
    refused = net.put("n1", b"k", b"v", cl="all")
    assert refused["error"] == "unavailable" and refused["required"] == 3 and refused["alive"] == 2
    net.silent.clear()
    net.advance(5.0)
    assert net.put("n1", b"k", b"v2", cl="all")["ok"]


def test_dropped_connection_makes_a_peer_down_at_once():
    net = FakeNet(failure_timeout_s=60.0)
    core = net.cores["n1"]
    if not hasattr(core, "on_connection"):
        pytest.skip("NodeCore.on_connection not present in this version")
    for peer in ("n2", "n3"):
        core.on_connection(peer, True, net.now)
        core.on_connection(peer, False, net.now)
    assert net.put("n1", b"k", b"v")["error"] == "unavailable"
    core.on_connection("n2", True, net.now)
    assert net.put("n1", b"k", b"v")["ok"]


def test_a_connection_not_made_yet_does_not_make_a_peer_down():
    """The start-up race: "not connected" before a first connection is not "lost"."""
    net = FakeNet(failure_timeout_s=60.0)
    core = net.cores["n1"]
    core.on_connection("n2", False, net.now)
    core.on_connection("n3", False, net.now)
    assert net.put("n1", b"k", b"v", cl="all")["ok"]
    assert not core.readiness(net.now).ready  # presumed up, not heard from


def test_a_write_whose_local_copy_was_flushed_is_answered_before_the_next_flush():
    """The reply to a write decided by acknowledgements that came after the coordinator's flush promises
    nothing that a later flush adds: it may leave before it. Every other reply waits for the flush."""
    net = FakeNet(failure_timeout_s=60.0)
    same_turn = net.send("n1", "put", key=b"a", value=b"v", cl="quorum")  # acked before any flush
    local_only = net.send("n1", "put", key=b"b", value=b"v", cl="one")  # decided by the local write
    assert net.answer(same_turn)["ok"] and net.answer(local_only)["ok"]
    assert net.early == []
    net.held |= {"n2", "n3"}
    rid = net.send("n1", "put", key=b"c", value=b"v", cl="all")
    assert net.answer(rid) is None
    net.cores["n1"].on_flushed()  # the runtime synced n1's copy; the replicas' acks are still out
    net.release()
    assert net.answer(rid)["ok"]
    assert [(node, msg["id"]) for node, msg in net.early] == [("n1", rid)]  # not the replicas' rput_ok


def test_write_times_out_when_a_replica_never_answers():
    net = FakeNet(request_timeout_s=2.0, failure_timeout_s=60.0)
    net.cut.add("n3")
    rid = net.send("n1", "put", key=b"k", value=b"v", cl="all")
    assert net.answer(rid) is None
    net.advance(1.9)
    assert net.answer(rid) is None
    net.advance(2.1)
    reply = net.answer(rid)
    assert reply is not None and reply["error"] == "timeout"
    assert reply["required"] == 3 and reply["acknowledged"] == 2
    net.advance(10.0)
    assert net.answer(rid) == reply  # answered exactly once
    assert net.cores["n1"].status(net.now).in_flight == 0


def test_read_times_out_when_replicas_never_answer():
    net = FakeNet(request_timeout_s=2.0, failure_timeout_s=60.0)
    net.cut |= {"n2", "n3"}
    rid = net.send("n1", "get", key=b"k", cl="quorum")
    assert net.answer(rid) is None
    net.advance(2.5)
    reply = net.answer(rid)
    assert reply is not None and reply["error"] == "timeout"
    assert reply["required"] == 2 and reply["acknowledged"] == 1


def test_quorum_write_times_out_when_both_peers_are_silent_on_requests():
    net = FakeNet(request_timeout_s=2.0, failure_timeout_s=60.0)
    net.cut |= {"n2", "n3"}
    rid = net.send("n2", "put", key=b"k", value=b"v")
    net.advance(2.5)
    reply = net.answer(rid)
    assert reply["error"] == "timeout" and reply["required"] == 2 and reply["acknowledged"] == 1


def test_unreachable_replicas_fail_a_write_at_once():
    net = FakeNet(failure_timeout_s=60.0)
    net.unreachable.add("n3")
    reply = net.put("n1", b"k", b"v", cl="all")
    # decided the moment the send to n3 fails, before n2's ack is back: only n1's own write counts
    assert reply["error"] == "unavailable" and reply["required"] == 3
    assert reply["acknowledged"] == 1 and reply["alive"] == 2
    assert net.put("n1", b"k", b"v", cl="quorum")["ok"]


# ---------------------------------------------------------------------------------------------- read repair


def test_quorum_read_asks_only_the_replicas_it_needs():
    net = FakeNet(failure_timeout_s=60.0, read_repair_chance=0.0)
    assert net.put("n1", b"k", b"v", cl="all")["ok"]
    before = len(net.traffic("rget"))
    assert net.get("n1", b"k", cl="quorum")["values"] == [b"v"]
    assert len(net.traffic("rget")) - before == 1, "R = 2: the coordinator's copy and one other"
    assert net.get("n1", b"k", cl="all")["values"] == [b"v"]
    assert len(net.traffic("rget")) - before == 3, "all asks every other replica"


def test_a_silent_replica_makes_a_read_ask_the_spare_after_speculative_retry():
    net = FakeNet(failure_timeout_s=60.0, read_repair_chance=0.0, speculative_retry_s=0.05)
    assert net.put("n1", b"k", b"v", cl="all")["ok"]
    before = len(net.traffic("rget"))
    net.held |= {"n2", "n3"}
    rid = net.send("n1", "get", key=b"k", cl="quorum")
    (asked,) = [n for n in ("n2", "n3") if any(m[0] == "n1" and m[1] == n for m in net._waiting)]
    spare = ({"n2", "n3"} - {asked}).pop()
    net.held.discard(spare)
    assert net.answer(rid) is None, "the spare is not asked before speculative_retry"
    net.advance(0.1, step=0.05)
    reply = net.answer(rid)
    assert reply is not None and reply["values"] == [b"v"], "answered by the spare"
    assert len(net.traffic("rget")) - before == 1, "only the spare answered; the held one still waits"


def test_an_unreachable_replica_makes_a_read_ask_the_spare_at_once():
    net = FakeNet(failure_timeout_s=60.0, read_repair_chance=0.0)
    assert net.put("n1", b"k", b"v", cl="all")["ok"]
    net.unreachable |= {"n2"}
    assert net.get("n1", b"k", cl="quorum")["values"] == [b"v"]
    net.unreachable = {"n3"}
    assert net.get("n1", b"k", cl="quorum")["values"] == [b"v"]


def test_read_repair_after_every_replica_answered():
    net = FakeNet(failure_timeout_s=60.0, read_repair_chance=1.0)
    net.cut.add("n3")
    assert net.put("n1", b"k", b"v", cl="quorum")["ok"]
    assert net.stored("n3", b"k") is None
    net.cut.clear()
    net.held.add("n3")
    got = net.get("n1", b"k", cl="quorum")
    assert got["values"] == [b"v"], "the quorum answered without n3"
    assert not net.traffic("repair"), "no repair before every replica answered"
    net.release()
    repairs = net.traffic("repair")
    assert [(src, dst) for src, dst, _ in repairs] == [("n1", "n3")]
    assert net.stored("n3", b"k") == net.stored("n1", b"k") == net.stored("n2", b"k")
    assert net.cores["n1"].stats.read_repairs == 1
    net.get("n1", b"k", cl="all")
    assert len(net.traffic("repair")) == 1, "nothing left to repair"


def test_read_repair_of_the_coordinator_itself():
    net = FakeNet(failure_timeout_s=60.0)
    net.cut.add("n1")
    net.put("n2", b"k", b"v", cl="quorum")
    net.cut.clear()
    assert net.get("n1", b"k", cl="all")["values"] == [b"v"]
    assert net.stored("n1", b"k") == net.stored("n2", b"k")
    assert not net.traffic("repair")


# ---------------------------------------------------------------------------------------------- forwarding


def test_request_to_a_node_outside_the_preference_list_is_forwarded():
    net = FakeNet(nodes=5, replication_factor=3)
    key = key_outside(net, "n1")
    preference = net.cores["n1"].ring.preference_list(key)
    reply = net.put("n1", key, b"v", cl="all")
    assert reply["ok"] and reply["id"] == 1
    assert [node for node, msg in net.replies] == ["n1"], "the client hears from the node it asked"
    (fwd,) = net.traffic("fwd")
    (back,) = net.traffic("fwd_reply")
    assert fwd[0] == "n1" and fwd[1] in preference
    assert back[:2] == (fwd[1], "n1") and back[2]["reply"]["ok"] is True
    assert net.stored("n1", key) is None
    assert all(net.stored(n, key).values == [b"v"] for n in preference)
    got = net.get("n1", key, cl="quorum")
    assert got["values"] == [b"v"] and got["id"] == 2
    assert net.cores["n1"].stats.forwarded == 2


def test_forwarded_errors_come_back_to_the_client():
    net = FakeNet(nodes=5, replication_factor=3, failure_timeout_s=3.0)
    key = key_outside(net, "n1")
    preference = net.cores["n1"].ring.preference_list(key)
    net.silent |= set(preference[1:])
    net.advance(3.5)
    # n1 still sees preference[0] up; it coordinates, but sees the other two down
    reply = net.put("n1", key, b"v", cl="all")
    assert reply["ok"] is False and reply["error"] == "unavailable"
    assert net.traffic("fwd_reply")


def test_forward_is_unavailable_when_no_replica_is_up():
    net = FakeNet(nodes=5, replication_factor=3, failure_timeout_s=3.0)
    key = key_outside(net, "n1")
    net.silent |= set(net.cores["n1"].ring.preference_list(key))
    net.advance(3.5)
    reply = net.get("n1", key)
    assert reply["error"] == "unavailable"
    assert not net.traffic("fwd")


def test_forward_tries_the_next_replica_when_one_is_unreachable():
    net = FakeNet(nodes=5, replication_factor=3, failure_timeout_s=60.0)
    key = key_outside(net, "n1")
    first = net.cores["n1"].ring.preference_list(key)[0]
    net.unreachable.add(first)
    reply = net.put("n1", key, b"v", cl="quorum")
    assert reply["ok"], reply
    (fwd,) = net.traffic("fwd")
    assert fwd[1] != first


def test_forwarded_request_times_out():
    net = FakeNet(nodes=5, replication_factor=3, failure_timeout_s=60.0, request_timeout_s=2.0)
    key = key_outside(net, "n1")
    net.cut |= set(net.cores["n1"].ring.preference_list(key))
    rid = net.send("n1", "get", key=key)
    net.advance(2.5)
    assert net.answer(rid)["error"] == "timeout"


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("msg", "code", "echo"),
    [
        ({"op": "put", "id": 7, "key": b"k", "value": b"v", "cl": "two"}, "invalid_request", True),
        ({"op": "get", "id": 7, "key": b"k", "cl": 3}, "invalid_request", True),
        ({"op": "put", "id": 7, "value": b"v"}, "invalid_request", True),
        ({"op": "get", "id": 7}, "invalid_request", True),
        ({"op": "put", "id": 7, "key": b"", "value": b"v"}, "invalid_request", True),
        ({"op": "put", "id": 7, "key": 5, "value": b"v"}, "invalid_request", True),
        ({"op": "put", "id": 7, "key": b"k" * 1025, "value": b"v"}, "key_too_large", True),
        ({"op": "get", "id": 7, "key": "k" * 1025}, "key_too_large", True),
        ({"op": "put", "id": 7, "key": b"k", "value": b"v" * 65}, "value_too_large", True),
        ({"op": "put", "id": 7, "key": b"k"}, "invalid_request", True),
        ({"op": "put", "id": 7, "key": b"k", "value": b"v", "ctx": b"\xc1garbage"}, "invalid_request", True),
        ({"op": "delete", "id": 7, "key": b"k", "ctx": "not-bytes"}, "invalid_request", True),
        ({"op": "put", "id": -1, "key": b"k", "value": b"v"}, "protocol_error", False),
        ({"op": "put", "key": b"k", "value": b"v"}, "protocol_error", False),
        ({"id": 7, "key": b"k"}, "protocol_error", True),
        ({"op": "rput", "id": 7, "key": b"k", "state": [[], []]}, "protocol_error", True),
        ({"op": "frobnicate", "id": 7}, "protocol_error", True),
    ],
    ids=[
        "bad-level",
        "level-not-a-string",
        "put-missing-key",
        "get-missing-key",
        "empty-key",
        "key-not-bytes",
        "huge-key",
        "huge-string-key",
        "huge-value",
        "put-missing-value",
        "garbage-context",
        "context-not-bytes",
        "negative-id",
        "missing-id",
        "missing-op",
        "peer-op-from-client",
        "unknown-op",
    ],
)
def test_invalid_requests_get_an_error_and_change_nothing(msg, code, echo):
    net = FakeNet(limits=Limits(max_value_bytes=64))
    net.cores["n1"].on_client(CLIENT, msg, net.now)
    net.run()
    assert len(net.replies) == 1
    node, reply = net.replies[0]
    assert node == "n1" and reply["ok"] is False and reply["error"] == code
    assert reply["id"] == (7 if echo else None)
    assert isinstance(reply["message"], str) and reply["message"]
    assert not net.delivered and not net.lost
    assert all(len(core.store) == 0 for core in net.cores.values())
    assert net.cores["n1"].stats.bad_messages == 1


def test_too_many_siblings_is_refused_and_changes_nothing():
    net = FakeNet(limits=Limits(max_siblings=3))
    for i in range(3):
        assert net.put("n1", b"k", b"v%d" % i, ctx=EMPTY_CONTEXT)["ok"]
    before = net.stored("n1", b"k")
    refused = net.put("n1", b"k", b"one-too-many", ctx=EMPTY_CONTEXT)
    assert refused["error"] == "too_many_siblings"
    assert net.stored("n1", b"k") is before
    ctx = net.get("n1", b"k")["ctx"]
    assert net.put("n1", b"k", b"resolved", ctx=ctx)["ok"], "a put with the context resolves them"


def test_bad_peer_messages_are_answered_with_rerr_and_change_nothing():
    net = FakeNet()
    core = net.cores["n1"]
    core.on_peer("n2", {"op": "rput", "id": 9, "key": b"k", "state": [[["n2", 5, 0.0, b"v"]], []]}, 0.0)
    core.on_peer("n2", {"op": "rget", "id": 10, "key": "not-bytes"}, 0.0)
    core.on_peer("n2", {"op": "bogus"}, 0.0)
    effects = core.take_effects()
    assert [(e.route, e.msg["op"], e.msg["id"]) for e in effects] == [(b"n2", "rerr", 9), (b"n2", "rerr", 10)]
    assert len(core.store) == 0 and core.stats.bad_messages == 3


# ---------------------------------------------------------------------------------------------- bugs


def test_peer_state_with_infinite_counter_is_rejected_not_raised():
    net = FakeNet()
    core = net.cores["n1"]
    core.on_peer("n2", {"op": "rput", "id": 5, "key": b"k", "state": [[], [["n2", math.inf]]]}, 0.0)
    (effect,) = core.take_effects()
    assert effect.msg["op"] == "rerr"


def test_context_returned_by_get_is_always_accepted_by_put():
    net = FakeNet()
    assert net.put("n1", b"k", b"v0")["ok"]
    refused = net.put("n1", b"k", b"v", ctx=encode_context({"n1": 2**63 - 1}))
    assert refused["error"] == "invalid_request"
    # a forged claim near the counter ceiling is cut back to what the replica saw: the write lands
    assert net.put("n1", b"k", b"v1", ctx=encode_context({"n1": MAX_COUNTER}))["ok"]
    ctx = net.get("n1", b"k")["ctx"]
    assert net.put("n1", b"k", b"v2", ctx=ctx)["ok"]
    assert net.get("n1", b"k")["values"] == [b"v2"]


def test_a_forged_context_near_the_counter_ceiling_does_not_make_a_key_unwritable():
    net = FakeNet()
    assert net.put("n1", b"k", b"forged", ctx=encode_context({"n2": MAX_COUNTER}))["ok"]
    assert net.put("n2", b"k", b"next", ctx=EMPTY_CONTEXT)["ok"], "n2 can still mint a dot for the key"
    assert sorted(net.get("n1", b"k")["values"]) == [b"forged", b"next"]


def test_made_up_actors_in_contexts_do_not_make_a_key_unwritable():
    net = FakeNet()
    net.advance(1.0)  # heartbeats heard: a node that has heard none refuses unknown actors (see below)
    for batch in range(2):
        ghosts = encode_context({f"ghost{batch}-{i}": 1 for i in range(200)})
        assert net.put("n1", b"k", b"v", ctx=ghosts)["ok"]
    ctx = net.get("n1", b"k")["ctx"]
    assert net.put("n1", b"k", b"v2", ctx=ctx)["ok"]


def test_a_replicated_key_needs_no_repair_on_every_read():
    net = FakeNet()
    state = [[["n2", 1, math.nan, b"v"]], [["n2", 1]]]
    for core in net.cores.values():
        core.on_peer("n2", {"op": "repair", "key": b"k", "state": state}, net.now)
    assert net.get("n1", b"k", cl="all")["ok"]
    after_first = len(net.traffic("repair"))
    for _ in range(3):
        assert net.get("n1", b"k", cl="all")["ok"]
    assert len(net.traffic("repair")) == after_first, "replicas that agree need no repair"


def test_fake_net_sanity():
    net = FakeNet()
    assert set(net.cores) == {"n1", "n2", "n3"}
    assert all(net.stored(n, b"x") is None for n in net.cores)
    assert EMPTY.values == []


# ---------------------------------------------------------------------------------------------- random runs

NODES = st.sampled_from(("n1", "n2", "n3"))
NONE = st.just("")
operations = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(("put", "delete")), NODES, st.integers(0, 8), st.sampled_from(LEVELS)),
        st.tuples(st.just("get"), NODES, st.just(0), st.sampled_from(LEVELS)),
        st.tuples(st.just("cut"), NODES, st.just(0), NONE),
        st.tuples(st.sampled_from(("heal", "wait")), NONE, st.just(0), NONE),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_random_runs_converge_and_lose_no_write(ops):
    """Whatever the partitions and timeouts: once healed and read at ``all`` everywhere, every replica holds
    the same state, and a write is visible exactly when no later write's context had seen it."""
    net = FakeNet(failure_timeout_s=1000.0, request_timeout_s=1.0)
    contexts: list[bytes | None] = [None]  # every context a get returned
    writes: list[
        tuple[tuple[str, int], bytes | None]
    ] = []  # (dot, value) of every write a coordinator applied
    used: list[dict[str, int]] = []  # the context each applied write carried
    for n, (op, node, pick, level) in enumerate(ops):
        if op in ("put", "delete"):
            ctx = contexts[pick % len(contexts)]
            value = b"v%d" % n if op == "put" else None
            before = net.stored(node, b"k")
            fields = {"key": b"k", "cl": level, **({"value": value} if value is not None else {})}
            if ctx is not None:
                fields["ctx"] = ctx
            reply = net.answer(net.send(node, op, **fields))
            after = net.stored(node, b"k")
            if after is not before:  # the coordinator applied it (ok, or a timeout still pending)
                new = [s for s in after.siblings if s.actor == node and s.value == value]
                dot = max((s.dot for s in new), key=lambda d: d[1])
                writes.append((dot, value))
                # a blind write (no context) supersedes exactly what its coordinator held
                used.append(decode_context(ctx) if ctx is not None else dict(before.clock) if before else {})
            else:
                assert reply is not None and reply["ok"] is False and reply["error"] != "timeout"
        elif op == "get":
            rid = net.send(node, "get", key=b"k", cl=level)
            reply = net.answer(rid)
            if reply is not None and reply["ok"]:
                contexts.append(reply["ctx"])
        elif op == "cut":
            net.cut.add(node)
        elif op == "heal":
            net.cut.clear()
        else:
            net.advance(net.now + 1.5)
    net.cut.clear()
    net.advance(net.now + 1.5)  # every pending request expires
    for node in ("n1", "n2", "n3", "n1"):
        assert net.get(node, b"k", cl="all")["ok"]
    states = [net.stored(node, b"k") or EMPTY for node in ("n1", "n2", "n3")]
    assert states[0] == states[1] == states[2], "replicas converged"
    final = states[0]
    for dot, value in writes:
        seen = any(covers(ctx, dot) for ctx in used)
        assert (dot in final.dots()) is not seen, (dot, value, seen)
    for rid in range(1, net.issued + 1):
        net.answer(rid)  # no request was answered twice


def test_a_node_that_heard_no_heartbeat_yet_refuses_a_context_naming_unknown_members():
    """Just started from its config, it may not know members that joined since; dropping their context
    entries would keep the siblings the client's write superseded, so it asks for a retry instead."""
    net = FakeNet()
    ctx = encode_context({"n9~x": 1})
    reply = net.put("n1", b"k", b"v", ctx=ctx)
    assert reply["ok"] is False and reply["error"] == "unavailable"
    assert net.stored("n1", b"k") is None
    net.advance(1.0)
    assert net.put("n1", b"k", b"v", ctx=ctx)["ok"]
