"""Time the tombstone purge on a real local cluster: disk bytes before, after deleting every key, after
the purge and compaction.

    .venv/bin/python tools/purge_bench.py [--keys 100000] [--grace 10]

Starts a 3-node cluster (log engine, ``tombstone_grace_s`` = ``--grace``) in a temporary folder, loads
the keys at quorum, deletes them all, and times (from the last delete) until every node has purged every
tombstone and until compaction brought each node's disk back to under 5% of its peak. Prints one line
per step (docs/operations.md quotes them).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchlib.load import write_all

from zkv.testing.localcluster import LocalCluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--grace", type=int, default=10, help="tombstone_grace_s (and max_hint_window_s)")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zkv-purge-bench-"))
    settings = {
        "engine": "log",
        "tombstone_grace_s": args.grace,
        "max_hint_window_s": args.grace,
        "segment_bytes": 8 << 20,
    }
    try:
        with LocalCluster(work, **settings) as cluster:
            cluster.start()
            keys = [f"key-{i}" for i in range(args.keys)]
            with cluster.client(timeout=10.0) as client:
                started = time.monotonic()
                write_all(client.put_many, [(k, b"x" * args.value_bytes) for k in keys])
                print(f"load of {args.keys} keys at quorum: {time.monotonic() - started:.1f}s")

                def disk() -> dict[str, tuple[int, int, int]]:
                    out = {}
                    for name in cluster.names:
                        s = client.status(name)
                        out[name] = (s.keys, s.storage.disk_bytes, s.purge.purged if s.purge else 0)
                    return out

                deadline = time.monotonic() + args.timeout
                while any(keys_ < args.keys for keys_, _, _ in disk().values()):
                    if time.monotonic() > deadline:
                        raise SystemExit("the replicas never all held every key")
                    time.sleep(1.0)
                peak = {name: size for name, (_, size, _) in disk().items()}
                print(f"disk bytes with every key: {peak}")
                started = time.monotonic()
                write_all(client.delete_many, keys, "delete")
                deleted = time.monotonic()
                print(f"delete of {args.keys} keys at quorum: {deleted - started:.1f}s; {disk()}")
                purged_at = None
                while time.monotonic() < deadline:
                    now = disk()
                    if purged_at is None and all(k == 0 and p >= args.keys for k, _, p in now.values()):
                        purged_at = time.monotonic()
                        print(
                            f"every tombstone purged on every node: {purged_at - deleted:.1f}s after the "
                            f"last delete (grace {args.grace}s); disk bytes {now}"
                        )
                    if purged_at is not None and all(size < peak[n] / 20 for n, (_, size, _) in now.items()):
                        print(
                            f"compacted to under 5% of the peak: {time.monotonic() - deleted:.1f}s after "
                            f"the last delete; disk bytes {now}"
                        )
                        return 0
                    time.sleep(0.5)
                raise SystemExit(f"not back to near empty within {args.timeout}s: {disk()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
