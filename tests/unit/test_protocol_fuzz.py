"""Property-based fuzzing of everything that decodes or validates bytes from the network.

The promise under test: whatever arrives, the only exception that escapes is the defined one
(:class:`ProtocolError`, or a :class:`ZkvError` with a wire code for a client request), and a core fed
schema-valid envelopes with garbage payloads neither raises nor stores anything.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkv.core.membership import Membership
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.errors import ProtocolError, ZkvError
from zkv.protocol import NODE_SCHEMAS, Limits, check_node_message, pack, parse_request, unpack_frame
from zkv.storage.memory import MemoryStore

MEMBERS = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in (1, 2, 3)}
logging.getLogger("zkv").setLevel(logging.ERROR)  # the core logs every bad message it drops
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.sampled_from(["n1", "n2", "n3", "n1~x", "put", "get", "one", "quorum", "all", "hb"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
ops = st.sampled_from(sorted(NODE_SCHEMAS) + ["put", "get", "delete", "ping", "status", "nuke", ""])


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """Maps that look like zkv messages: a plausible op, plausible field names, anything in them."""
    fields = st.sampled_from(["id", "key", "value", "cl", "ctx", "state", "items"])
    msg = draw(st.dictionaries(fields, values))
    if draw(st.booleans()):
        msg["op"] = draw(ops)
    return msg


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Node messages that pass their schema, with garbage wherever the schema allows anything."""
    op = draw(st.sampled_from(sorted(NODE_SCHEMAS)))
    kinds = {
        "id": st.integers(min_value=0, max_value=2**63 - 1),
        "int": st.integers(min_value=-(2**63 - 1), max_value=2**63 - 1),
        "str": st.text(max_size=12) | st.sampled_from(["n1", "n2", "n3", "n9"]),
        "bytes": st.binary(max_size=64) | st.just(b"\x00" * 8192),
        "list": st.lists(values, max_size=6),
        "map": st.dictionaries(st.text(max_size=6), values, max_size=5) | messages(),
        "bool": st.booleans(),
    }
    msg: dict[str, Any] = {"op": op}
    for name, kind in NODE_SCHEMAS[op].items():
        if kind.endswith("?") and draw(st.booleans()):
            continue
        msg[name] = draw(kinds[kind.rstrip("?")])
    return msg


@FUZZ
@given(st.binary(max_size=300))
def test_unpack_frame_raises_only_protocol_error(payload: bytes) -> None:
    try:
        out = unpack_frame(payload)
    except ProtocolError:
        return
    assert isinstance(out, list) and all(isinstance(m, dict) for m in out)


@FUZZ
@given(values)
def test_any_msgpack_value_decodes_or_is_a_protocol_error(value: Any) -> None:
    with contextlib.suppress(ProtocolError):
        unpack_frame(msgpack.packb(value))


@FUZZ
@given(st.integers(min_value=0, max_value=127), st.binary(max_size=30))
def test_ext_types_are_protocol_errors(code: int, data: bytes) -> None:
    payload = msgpack.packb({"op": "put", "id": 1, "key": b"k", "value": msgpack.ExtType(code, data)})
    try:
        unpack_frame(payload)
    except ProtocolError:
        return  # or decoded: then parse_request must refuse the value (test below)


@FUZZ
@given(messages())
def test_client_request_validation_raises_only_wire_errors(msg: dict[str, Any]) -> None:
    try:
        parse_request(msg, Limits())
    except ZkvError as exc:
        assert exc.to_wire()["error"] in {
            "protocol_error",
            "invalid_request",
            "key_too_large",
            "value_too_large",
            "context_too_large",
        }


@FUZZ
@given(messages() | envelopes())
def test_node_message_schema_raises_only_protocol_error(msg: dict[str, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        assert check_node_message(msg) == msg["op"]


def _core() -> NodeCore:
    return NodeCore(NodeSettings(name="n1", actor="n1~a", members=MEMBERS), MemoryStore(), 0.0)


@FUZZ
@given(st.lists(messages(), max_size=6))
def test_core_answers_any_client_message_without_raising(msgs: list[dict[str, Any]]) -> None:
    core = _core()
    for msg in msgs:
        (decoded,) = unpack_frame(pack(msg)) if _packable(msg) else (msg,)
        core.on_client(b"c", decoded, 1.0)
    core.on_tick(5.0)  # every pending request expires: still nothing escapes
    for effect in core.take_effects():
        assert isinstance(effect.msg, dict)


@FUZZ
@given(st.lists(envelopes(), min_size=1, max_size=6))
def test_core_takes_schema_valid_garbage_from_peers_without_raising_or_storing(
    msgs: list[dict[str, Any]],
) -> None:
    core = _core()
    for msg in msgs:
        if msg["op"] == "hb":
            core.on_heartbeat({**msg, "node": "n2"}, 1.0)
        elif msg["op"] == "join":
            core.on_join(b"join~n9", msg, 1.0)
        elif msg["op"] == "join_ok":
            core.on_join_ok(msg, 1.0)
        else:
            core.on_peer("n2", msg, 1.0)
    core.on_tick(10.0)
    for key in list(core.store.keys()):
        state = core.store.get(key)
        assert all(isinstance(s.value, bytes | None) for s in state.siblings)


@FUZZ
@given(st.lists(values, max_size=8), st.integers(), st.integers())
def test_membership_takes_any_gossip_view(view: list[Any], gen: int, counter: int) -> None:
    m = Membership("n1", MEMBERS, 1, 0.5, 3.0, 0.0)
    m.on_heartbeat({"op": "hb", "node": "n2", "gen": gen, "hb": counter, "keys": 0, "view": view}, 1.0)
    assert {"n1", "n2", "n3"} <= set(m.ring_members())


def _packable(msg: dict[str, Any]) -> bool:
    try:
        pack(msg)
        return True
    except (TypeError, ValueError, OverflowError):
        return False


def test_nan_and_infinite_numbers_are_refused_in_every_numeric_field() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        for op, schema in NODE_SCHEMAS.items():
            numeric = [f for f, kind in schema.items() if kind.rstrip("?") in ("id", "int")]
            for field in numeric:
                msg = {"op": op, **{f: 1 for f in schema}, field: bad}
                try:
                    check_node_message(msg)
                except ProtocolError:
                    continue
                raise AssertionError(f"{op}.{field} accepted {bad}")
