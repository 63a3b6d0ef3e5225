"""A writer process for tests/cluster/test_durability.py: group commits into a LogStore until it is killed.

``python durable_writer.py DATA_DIR FIRST`` puts writes FIRST, FIRST+1, ... in batches of 1 to 20 (as one
loop turn of a node would), flushes (fsync=always) and only then prints ``ack FIRST LAST`` for the batch,
as a node acknowledges only after its flush. Between batches it runs a compaction slice, so a kill can
land anywhere: mid-batch, mid-fsync, mid-roll or mid-compaction. Segments are small so all of those happen.
"""

from __future__ import annotations

import random
import sys

from zkv.core.versions import EMPTY, update
from zkv.storage.log import LogStore

HOT_KEYS = 50
SEGMENT_BYTES = 64 * 1024


def key_of(i: int) -> bytes:
    """Every third write overwrites one of a few hot keys; the others write fresh keys."""
    return b"hot%d" % (i % HOT_KEYS) if i % 3 == 0 else b"key%d" % i


def value_of(i: int) -> bytes:
    return b"value-%d-" % i + b"x" * (i * 7919 % 300)


def main() -> None:
    data_dir, first = sys.argv[1], int(sys.argv[2])
    store = LogStore(data_dir, fsync="always", segment_bytes=SEGMENT_BYTES, compaction_min_bytes=0)
    rng = random.Random(first)
    i = first
    while True:
        start = i
        for _ in range(rng.randint(1, 20)):
            store.put(key_of(i), update(EMPTY, "writer", {}, value_of(i), float(i))[0])
            i += 1
        store.flush()
        sys.stdout.write(f"ack {start} {i - 1}\n")
        sys.stdout.flush()
        store.compact_step(0.002)


if __name__ == "__main__":
    main()
