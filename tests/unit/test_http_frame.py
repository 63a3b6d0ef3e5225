"""The gateway's batched frames are what the node's unpack_frame reads: one message, or an array of them."""

from __future__ import annotations

from zkv.http.loopclient import BATCH_BYTES, batches, frame
from zkv.protocol import MAX_BATCH, pack, unpack_frame


def test_a_frame_of_packed_messages_unpacks_to_the_messages_in_order():
    for count in (1, 2, 15, 16, 17, 300, MAX_BATCH):  # the array header's two forms, and the edges
        msgs = [{"op": "get", "key": f"k{i}".encode(), "id": i} for i in range(count)]
        payload = frame([pack(m) for m in msgs])
        assert unpack_frame(payload) == msgs
        assert payload == pack(msgs if count > 1 else msgs[0])


def test_batches_keep_to_the_count_and_byte_limits_in_order():
    small = [(None, b"x" * 10)] * (MAX_BATCH + 5)
    cut = batches(small)  # type: ignore[arg-type]
    assert [len(b) for b in cut] == [MAX_BATCH, 5]
    big = [(None, b"y" * (BATCH_BYTES // 2 + 1))] * 3
    assert [len(b) for b in batches(big)] == [1, 1, 1]  # type: ignore[arg-type]
    assert [item for b in cut for item in b] == small
