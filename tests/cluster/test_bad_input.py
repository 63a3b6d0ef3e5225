"""Garbage on the wire gets a named error (or a silent drop) and the node keeps serving, data intact."""

from __future__ import annotations

import math

import msgpack
import pytest
import zmq

from zkv.localcluster import LocalCluster

JUNK = [
    [b"\xc1\xc1\xc1 not msgpack"],
    [b""],
    [msgpack.packb(42)],
    [msgpack.packb([1, 2, 3])],
    [msgpack.packb({"op": "put"})],
    [msgpack.packb({"op": "put", "id": -1, "key": b"k", "value": b"v"})],
    [msgpack.packb({"op": "put", "id": 1, "key": 5, "value": b"v"})],
    [msgpack.packb({"op": "put", "id": 2, "key": b"k", "value": {"nested": True}})],
    [msgpack.packb({"op": "get", "id": 3, "key": b"k", "cl": "most"})],
    [msgpack.packb({"op": "get", "id": 4, "key": b"x" * 5000})],
    [msgpack.packb({"op": "put", "id": 5, "key": b"k", "value": b"v", "ctx": b"\x00\x01garbage"})],
    [msgpack.packb({"op": "rput", "id": 6, "key": b"k", "state": [[], []]})],  # node-only op from a client
    [msgpack.packb({"op": "nuke", "id": 7})],
    [msgpack.packb({"op": "get", "id": math.nan, "key": b"k"})],
    [msgpack.packb({"op": "get", "id": 2**64 - 1, "key": b"k"})],
    [msgpack.packb([{"op": "ping", "id": i} for i in range(5000)])],  # a batch over the limit
    [b"a", b"b", b"c"],  # extra frames
    [msgpack.packb(msgpack.ExtType(5, b"ext"))],
]


@pytest.fixture
def raw(cluster3: LocalCluster):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cluster3.addresses["n1"])
    yield sock
    ctx.destroy(linger=0)


def test_junk_gets_errors_and_the_node_keeps_serving(cluster3: LocalCluster, raw: zmq.Socket) -> None:
    with cluster3.client() as c:
        c.put("keep", "me", consistency="all")
    codes = []
    for frames in JUNK:
        raw.send_multipart(frames)
        if raw.poll(2000):
            reply = msgpack.unpackb(raw.recv(), raw=False)
            assert reply["ok"] is False
            codes.append(reply["error"])
    assert set(codes) <= {"protocol_error", "invalid_request", "too_large"}
    assert len(codes) >= len(JUNK) - 2  # everything answerable got a named error
    raw.send(msgpack.packb({"op": "ping", "id": 99}))
    assert raw.poll(2000) and msgpack.unpackb(raw.recv(), raw=False)["ok"] is True
    with cluster3.client() as c:
        assert c.get("keep", consistency="all").values == [b"me"]
        assert c.status("n1")["bad_messages"] >= 5
