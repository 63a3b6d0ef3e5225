"""The retry contract: an ``unavailable`` with no ``acknowledged`` field means nothing was written, so the
client and the gateway (:mod:`zkv.client.retry`) may send even a write to another preference-list node.

The first tests pin that contract on the core's real replies (through the fake network of
test_nodecore): every way a node refuses before sending anything leaves ``acknowledged`` out, and the one
way a write fails after reaching replicas puts it in. The last ones pin the decision itself.
"""

from __future__ import annotations

from test_nodecore import FakeNet, key_outside

from zkv.client.retry import attempted, next_candidates


def test_unavailable_before_any_attempt_has_no_acknowledged_and_wrote_nothing():
    net = FakeNet(failure_timeout_s=3.0)
    net.now = 3.5  # no heartbeat ever came: n1 sees both peers down
    for op, fields in (("put", {"value": b"v"}), ("delete", {}), ("get", {})):
        reply = net.request("n1", op, key=b"k", cl="quorum", **fields)
        assert reply["error"] == "unavailable" and not attempted(reply), reply
    assert not net.delivered and not net.lost and net.stored("n1", b"k") is None


def test_unavailable_for_all_with_a_replica_down_has_no_acknowledged():
    net = FakeNet(failure_timeout_s=3.0)
    net.silent.add("n3")
    net.advance(4.0)
    reply = net.put("n1", b"k", b"v", cl="all")
    assert reply["error"] == "unavailable" and not attempted(reply)
    assert all(net.stored(n, b"k") is None for n in net.cores)


def test_a_forward_with_no_replica_up_is_unavailable_without_acknowledged():
    net = FakeNet(nodes=5, replication_factor=3, failure_timeout_s=3.0)
    key = key_outside(net, "n1")
    net.silent |= set(net.cores["n1"].ring.preference_list(key))
    net.advance(3.5)
    reply = net.put("n1", key, b"v")
    assert reply["error"] == "unavailable" and not attempted(reply)
    assert all(net.stored(n, key) is None for n in net.cores)


def test_a_write_that_failed_after_reaching_replicas_says_how_many_acknowledged():
    net = FakeNet(failure_timeout_s=60.0)
    net.unreachable.add("n3")
    reply = net.put("n1", b"k", b"v", cl="all")
    assert reply["error"] == "unavailable" and attempted(reply) and reply["acknowledged"] == 1
    assert net.stored("n1", b"k") is not None, "and it was stored where acknowledged"


PREFERRED = ("a", "b", "c")
REST = ["b", "x", "c", "y"]  # what is left to try after "a": preference-list nodes and others


def test_pre_attempt_unavailable_goes_to_the_rest_of_the_preference_list_for_reads_and_writes():
    reply = {"ok": False, "error": "unavailable", "required": 2, "alive": 1}
    for write in (False, True):
        assert next_candidates(reply, write, REST, PREFERRED) == ["b", "c"]
    assert next_candidates(reply, True, ["x", "y"], PREFERRED) is None, "no preference node left"


def test_unavailable_after_an_attempt_is_final_for_a_write_but_not_for_a_read():
    reply = {"ok": False, "error": "unavailable", "required": 3, "alive": 2, "acknowledged": 1}
    assert next_candidates(reply, True, REST, PREFERRED) is None
    assert next_candidates(reply, False, REST, PREFERRED) == ["b", "c"]


def test_stopping_goes_to_any_next_node_and_other_errors_are_answers():
    assert next_candidates({"error": "stopping"}, True, REST, PREFERRED) == REST
    assert next_candidates({"error": "stopping"}, True, [], PREFERRED) is None
    for code in ("timeout", "invalid_request", "not_found", "overloaded"):
        assert next_candidates({"error": code}, False, REST, PREFERRED) is None
