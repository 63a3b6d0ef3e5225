"""Decisions the runtime used to make next to its sockets, now the core's: who may send what, which way
a message goes, when a joining node announces itself, what a malformed replica request gets back."""

from __future__ import annotations

import pytest

from zkv.core.admission import ADMIN, CLIENT, NODE, Admission, admit
from zkv.core.effects import Reply
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.errors import ProtocolError
from zkv.security import AccessPolicy
from zkv.storage.memory import MemoryStore

MEMBERS = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in (1, 2, 3)}


def core(joining: bool = False) -> NodeCore:
    return NodeCore(NodeSettings(name="n1", actor="n1", members=MEMBERS, joining=joining), MemoryStore(), 0.0)


@pytest.mark.parametrize(
    ("route", "op", "role", "way"),
    [
        (b"c1", "leave", CLIENT, Admission.REFUSED),
        (b"c1", "faults", CLIENT, Admission.REFUSED),
        (b"c1", "leave", ADMIN, Admission.CLIENT),  # the core serves leave
        (b"c1", "faults", ADMIN, Admission.FAULTS),
        (b"c1", "faults", NODE, Admission.FAULTS),  # plaintext: every connection is a node's
        (b"join~n4", "join", NODE, Admission.JOIN),
        (b"n4", "join", NODE, Admission.CLIENT),  # a join off its join~ connection is just a bad request
        (b"c1", "get", CLIENT, Admission.CLIENT),
    ],
)
def test_admit_routes_each_message_one_way(route, op, role, way):
    assert admit(route, {"op": op, "id": 1}, role) is way


def test_a_refused_admin_request_is_answered_and_counted_by_the_core():
    node = core()
    assert node.admit(b"c1", {"op": "leave", "id": 7}, CLIENT) is Admission.REFUSED
    (reply,) = node.take_effects()
    assert isinstance(reply, Reply) and reply.route == b"c1"
    assert reply.msg["id"] == 7 and reply.msg["error"] == "unauthorized"
    assert node.stats.errors["unauthorized"] == 1


def test_a_malformed_replica_request_gets_an_rerr_and_is_counted():
    node = core()
    node.on_malformed("n2", {"op": "rput", "id": 5}, ProtocolError("rput: missing key"))
    (reply,) = node.take_effects()
    assert reply.route == b"n2" and reply.msg == {
        "op": "rerr",
        "id": 5,
        "error": "protocol_error",
        "message": "rput: missing key",
    }
    node.on_malformed("stranger", {"op": "rput", "id": 6}, ProtocolError("x"))  # not a member: no answer
    node.on_malformed("n2", {"op": "hb"}, ProtocolError("x"))  # not a replica request: no answer
    assert node.take_effects() == []
    assert node.stats.bad_messages == 3 and node.stats.errors["protocol_error"] == 3


def test_count_rejected_counts_malformed_and_error_codes_apart():
    node = core()
    node.count_rejected(None, malformed=True)
    node.count_rejected("internal")
    assert node.stats.bad_messages == 1 and dict(node.stats.errors) == {"internal": 1}


def test_a_joining_node_announces_itself_once_per_interval_until_taken_in():
    node = core(joining=True)
    first = node.announcement_due(0.0)
    assert first is not None and first["op"] == "join" and first["member"][0] == "n1"
    assert node.announcement_due(0.5) is None
    assert node.announcement_due(1.0) == first
    node.on_join_ok({"op": "join_ok", "ok": True, "view": []}, 1.2)
    assert node.joined and node.announcement_due(5.0) is None


def test_the_access_policy_names_an_impostor():
    policy = AccessPolicy()
    policy.add({b"k2": "n2"}, NODE)
    assert policy.impostor(b"n2", "client:alice") == "n2"
    assert policy.impostor(b"join~n9", "client:alice") == "n9"
    assert policy.impostor(b"n2", "node:n2") is None
    assert policy.impostor(b"some-client", "client:alice") is None
