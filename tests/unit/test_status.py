"""NodeStatus: typed statistics on the node, plain data on the wire, the same keys as before."""

from __future__ import annotations

import json

from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.status import AntiEntropyStatistics, HandoffStatistics, NodeStatus
from zkv.protocol import pack, unpack_frame
from zkv.storage.hints import MemoryHintStore
from zkv.storage.memory import MemoryStore

MEMBERS = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in (1, 2, 3)}
WIRE_KEYS = {
    "node", "generation", "actor", "uptime_s", "keys", "storage", "disk", "clock", "requests", "errors",
    "latency", "forwarded", "read_repairs", "bad_messages", "in_flight", "hints", "hints_received",
    "anti_entropy", "member_status", "transfer", "peers_up", "peers", "histograms", "readiness", "purge",
}  # fmt: skip


def node() -> NodeCore:
    core = NodeCore(
        NodeSettings(name="n1", actor="n1", members=MEMBERS), MemoryStore(), 0.0, hints=MemoryHintStore()
    )
    core.status_extra.update(
        pid=42, address="tcp://127.0.0.1:7001", gossip="tcp://127.0.0.1:8001", build="compiled (mypyc)"
    )
    return core


def status_reply(core: NodeCore, now: float) -> dict:
    core.on_client(b"c", {"op": "status", "id": 3}, now)
    (reply,) = core.take_effects()
    (decoded,) = unpack_frame(pack(reply.msg))
    return decoded


def test_components_report_frozen_dataclasses():
    core = node()
    assert isinstance(core.aae.statistics(), AntiEntropyStatistics)
    assert core.handoff is not None and isinstance(core.handoff.statistics(0.0), HandoffStatistics)
    status = core.status(5.0)
    assert status.uptime_s == 5.0 and status.pid == 42 and status.member_status == "normal"
    assert status.build == "compiled (mypyc)"


def test_the_wire_keeps_every_key_a_node_always_sent_and_round_trips():
    core = node()
    core.on_client(b"c", {"op": "put", "id": 1, "key": b"k", "value": b"v", "cl": "one"}, 1.0)
    core.take_effects()
    wire = status_reply(core, 2.0)
    assert WIRE_KEYS | {"id", "ok", "pid", "address", "gossip", "build"} == set(wire)
    assert wire["requests"] == {"put/one": 1} and wire["keys"] == 1 and wire["hints"]["pending"] == {}
    status = NodeStatus.from_wire(wire)
    assert status.requests == {"put/one": 1} and status.latency["put"].count == 1
    assert status.to_wire() == {k: v for k, v in wire.items() if k not in ("id", "ok")}
    json.dumps(status.to_wire())  # plain types: JSON takes it as it is (the HTTP gateway's status)


def test_from_wire_takes_an_older_node_and_keeps_what_a_newer_one_adds():
    old = {"node": "n2", "generation": 3, "actor": "n2~3", "uptime_s": 1.5, "keys": 7, "requests": {}}
    status = NodeStatus.from_wire({**old, "storage": {"engine": "log", "keys": 7, "bytes": 9, "flushes": 2}})
    assert status.disk is None and status.hints is None and status.transfer.join is None
    assert status.storage.engine == "log" and status.anti_entropy.exchanges == 0
    newer = NodeStatus.from_wire({**old, "ttl_expired": 4, "storage": {"engine": "x", "new_field": 1}})
    assert newer.extra == {"ttl_expired": 4} and newer.to_wire()["ttl_expired"] == 4
