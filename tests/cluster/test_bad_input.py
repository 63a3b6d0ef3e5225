"""Hostile input against a live node, plaintext and CURVE: every case gets its named error (or a silent
drop where no reply is possible), and after each one the node answers a normal request and the data
written before is intact."""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Iterator

import msgpack
import pytest
import zmq

from zkv.core.versions import encode_context
from zkv.errors import MessageTooLarge, TooManyRequests
from zkv.security import load_key, make_curve_client
from zkv.testing.localcluster import LocalCluster

LIMITS = {
    "max_key_bytes": 64,
    "max_value_bytes": 4096,
    "max_siblings": 4,
    "max_context_bytes": 512,
    "max_message_bytes": 30000,
    "max_in_flight_per_client": 50,
}
SILENT = None  # no reply can be given (the frame has no usable route/id, or ZeroMQ drops the connection)


def _p(obj: object) -> list[bytes]:
    return [msgpack.packb(obj)]


def _put(**fields: object) -> list[bytes]:
    return _p({"op": "put", "id": 1, "key": b"k", "value": b"v", **fields})


# (name, frames, expected error code, or SILENT)
CASES: list[tuple[str, list[bytes], str | None]] = [
    ("not msgpack", [b"\xc1\xc1\xc1 not msgpack"], "protocol_error"),
    ("empty frame", [b""], "protocol_error"),
    ("truncated msgpack", [msgpack.packb({"op": "put", "id": 1, "key": b"k" * 40})[:-5]], "protocol_error"),
    ("integer frame", _p(42), "protocol_error"),
    ("array of integers", _p([1, 2, 3]), "protocol_error"),
    ("no op", _p({"id": 1, "key": b"k"}), "protocol_error"),
    ("op is an integer", _p({"op": 7, "id": 1}), "protocol_error"),
    ("op is bytes", _p({"op": b"get", "id": 1, "key": b"k"}), "protocol_error"),
    ("unknown op", _p({"op": "nuke", "id": 7}), "protocol_error"),
    ("node-only op", _p({"op": "rput", "id": 6, "key": b"k", "state": [[], []]}), "protocol_error"),
    ("peer reply from a client", _p({"op": "rget_ok", "id": 6, "state": [[], []]}), "protocol_error"),
    ("no id", _p({"op": "get", "key": b"k"}), "protocol_error"),
    ("id is a string", _p({"op": "get", "id": "1", "key": b"k"}), "protocol_error"),
    ("negative id", _put(id=-1), "protocol_error"),
    ("huge id", _p({"op": "get", "id": 2**64 - 1, "key": b"k"}), "protocol_error"),
    ("NaN id", _p({"op": "get", "id": math.nan, "key": b"k"}), "protocol_error"),
    ("boolean id", _p({"op": "get", "id": True, "key": b"k"}), "protocol_error"),
    ("key is an integer", _put(key=5), "invalid_request"),
    ("key is a float", _put(key=1.5), "invalid_request"),
    ("key is nil", _put(key=None), "invalid_request"),
    ("key is a list", _put(key=[b"k"]), "invalid_request"),
    ("empty key", _put(key=b""), "invalid_request"),
    ("value is a map", _put(value={"nested": True}), "invalid_request"),
    ("value is an integer", _put(value=-(2**63)), "invalid_request"),
    ("value is NaN", _put(value=math.nan), "invalid_request"),
    ("value is an ext type", _put(value=msgpack.ExtType(5, b"ext")), "invalid_request"),
    ("level is unknown", _p({"op": "get", "id": 3, "key": b"k", "cl": "most"}), "invalid_request"),
    ("level is an integer", _p({"op": "get", "id": 3, "key": b"k", "cl": 2}), "invalid_request"),
    ("context is an integer", _put(ctx=12), "invalid_request"),
    ("context is garbage", _put(ctx=b"\x00\x01garbage"), "invalid_request"),
    ("context with a negative counter", _put(ctx=msgpack.packb([["n1~x", -5]])), "invalid_request"),
    ("context with a float counter", _put(ctx=msgpack.packb([["n1~x", 1.5]])), "invalid_request"),
    ("context with a huge counter", _put(ctx=msgpack.packb([["n1~x", 2**64 - 1]])), "invalid_request"),
    ("context over its limit", _put(ctx=b"\x90" * 600), "context_too_large"),
    ("key over its limit", _put(key=b"k" * 65), "key_too_large"),
    ("value over its limit", _put(value=b"v" * 4097), "value_too_large"),
    ("ext type frame", _p(msgpack.ExtType(5, b"ext")), "protocol_error"),
    ("batch over 1024 messages", _p([{}] * 1100), "protocol_error"),
    ("batch holding an integer", _p([{"op": "ping", "id": 1}, 5]), "protocol_error"),
    ("extra frames", [b"a", b"b", b"c"], "protocol_error"),
    ("1,000 frames", [b"x"] * 1000, "protocol_error"),
    ("message over max_message_bytes", [b"\x00" * 40000], SILENT),
    ("faults with a bad probability", _p({"op": "faults", "id": 9, "drop_in": {"n2": 7}}), "invalid_request"),
    ("faults naming no peer", _p({"op": "faults", "id": 9, "drop_in": {"zz": 0.5}}), "invalid_request"),
    ("map with integer keys", [b"\x81\x01\x02"], "protocol_error"),
]


@pytest.fixture(scope="module", params=["plaintext", "curve"])
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    curve = request.param == "curve"
    cluster = LocalCluster(tmp_path_factory.mktemp(request.param), 3, curve=curve, **LIMITS)
    try:
        cluster.start()
        with cluster.client(key="alice", timeout=3.0) as c:
            c.put("keep", "me", consistency="all")  # every test checks it is still exactly this
        yield cluster
    finally:
        assert not cluster.close()


@pytest.fixture
def raw(hostile: LocalCluster) -> Iterator[Callable[[], zmq.Socket]]:
    """Raw DEALER sockets to n1, with the client key under CURVE (a fresh one per call)."""
    ctx = zmq.Context()

    def connect() -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if hostile.curve:
            keys = load_key(hostile.keys / "clients" / "alice.key_secret")
            make_curve_client(sock, keys, load_key(hostile.keys / "n1.key").public)
        sock.connect(hostile.addresses["n1"])
        return sock

    yield connect
    ctx.destroy(linger=0)


def _ping(sock: zmq.Socket) -> bool:
    sock.send(msgpack.packb({"op": "ping", "id": 424242}))
    while sock.poll(3000):
        reply = msgpack.unpackb(sock.recv(), raw=False)
        if reply.get("id") == 424242:
            return reply["ok"] is True
    return False


def _intact(cluster: LocalCluster) -> None:
    with cluster.client(key="alice", timeout=3.0) as c:
        assert c.get("keep", consistency="all").values == [b"me"]


@pytest.mark.parametrize(("name", "frames", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_its_error_and_changes_nothing(
    hostile: LocalCluster, raw: Callable[[], zmq.Socket], name: str, frames: list[bytes], expected: str | None
) -> None:
    if hostile.curve and name.startswith("faults"):
        expected = "unauthorized"  # a client key may not touch the fault filter at all
    with hostile.client(key="alice", timeout=3.0) as c:
        before = {n: c.status(n).keys for n in hostile.names}
    sock = raw()
    sock.send_multipart(frames)
    if expected is SILENT:
        assert not sock.poll(500), f"{name}: expected no reply"
        sock = raw()  # ZeroMQ dropped that connection
    else:
        assert sock.poll(3000), f"{name}: no reply"
        reply = msgpack.unpackb(sock.recv(), raw=False)
        assert reply["ok"] is False and reply["error"] == expected, (name, reply)
        assert isinstance(reply["message"], str) and reply["message"]
    assert _ping(sock), f"{name}: the node stopped answering"
    _intact(hostile)
    with hostile.client(key="alice", timeout=3.0) as c:
        after = {n: c.status(n).keys for n in hostile.names}
        assert c.status("n1").bad_messages >= 1
    assert after == before, f"{name} stored something"


def test_keys_and_values_at_their_limits_are_accepted(hostile: LocalCluster) -> None:
    with hostile.client(key="alice", timeout=3.0) as c:
        c.put(b"k" * 64, b"v" * 4096, consistency="all")
        assert c.get(b"k" * 64).values == [b"v" * 4096]
        c.delete(b"k" * 64, context=c.get(b"k" * 64))


def test_siblings_stop_at_their_limit_until_resolved(hostile: LocalCluster) -> None:
    with hostile.client(key="alice", timeout=3.0) as c:
        for i in range(4):
            c.put("crowded", f"v{i}", concurrent=True)  # supersedes nothing: each one a sibling
        with pytest.raises(Exception) as info:
            c.put("crowded", "one too many", concurrent=True)
        assert getattr(info.value, "code", "") == "too_many_siblings"
        assert "resolve" in str(info.value)
        c.put("crowded", "merged", context=c.get("crowded"))
        assert c.get("crowded").values == [b"merged"]


def test_a_forged_context_changes_no_other_data(hostile: LocalCluster) -> None:
    forged = encode_context({"n1~forged": 10**12, "nobody~x": 1, "n2~zz": 3})
    with hostile.client(key="alice", timeout=3.0) as c:
        c.put("forged", "x", context=forged, consistency="all")
        # a later write that saw nothing is not swallowed by the forged clock
        c.put("forged", "y", consistency="all", concurrent=True)
        assert sorted(c.get("forged", consistency="all").values) == [b"x", b"y"]
    _intact(hostile)


def test_oversize_requests_are_refused_by_the_client_before_sending(hostile: LocalCluster) -> None:
    with hostile.client(key="alice", timeout=3.0) as c:
        c.ring()
        with pytest.raises(MessageTooLarge):
            c.put("k", b"v" * 31000)
    _intact(hostile)


def test_a_client_over_its_in_flight_limit_is_told_to_wait(
    hostile: LocalCluster, raw: Callable[[], zmq.Socket]
) -> None:
    sock = raw()
    for i in range(200):
        sock.send(msgpack.packb({"op": "get", "id": i, "key": b"k%d" % i, "cl": "all"}))
    codes = []
    while len(codes) < 200 and sock.poll(5000):
        replies = msgpack.unpackb(sock.recv(), raw=False)  # the node batches replies to one client
        codes += [r.get("error") for r in (replies if isinstance(replies, list) else [replies])]
    assert len(codes) == 200, "every request got an answer"
    assert TooManyRequests.code in codes and codes.count(None) >= 50
    assert _ping(sock)
    with hostile.client(key="alice", timeout=3.0) as c:  # the client library keeps within the limit
        assert all(r is None for r in c.put_many((f"many{i}", "v") for i in range(300)))


def test_raw_tcp_junk_is_dropped(hostile: LocalCluster, raw: Callable[[], zmq.Socket]) -> None:
    host, port = hostile.addresses["n1"].removeprefix("tcp://").rsplit(":", 1)
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\xff" * 4096, b"\x01\x00" + b"\x00" * 100, b""):
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(junk)
    assert _ping(raw())
    _intact(hostile)
