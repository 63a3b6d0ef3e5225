"""Time ``zkv-node removenode``: a dead node's ranges re-replicated on a real local cluster.

    .venv/bin/python tools/removenode_bench.py [--keys 100000] [--value-bytes 100]

Starts 4 nodes (N=3, log engine) in a temporary folder, loads the keys at quorum, SIGKILLs n4, waits
until every other node sees it down, then times ``zkv-node removenode n4`` (which returns once every
live node has pulled the ranges it gained) and checks a sample of keys is on n1, n2 and n3. Prints one
line per step (docs/operations.md quotes them).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.load import write_all

from zkv.client import ReplicaState
from zkv.testing.localcluster import LocalCluster, wait_until

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]
LIVE = ("n1", "n2", "n3")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--fsync", default="always", help="the nodes' fsync policy (default always)")
    parser.add_argument("--sample", type=int, default=2000, help="keys checked on 3 live nodes after")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zkv-removenode-bench-"))
    try:
        with LocalCluster(work, nodes=4, engine="log", fsync=args.fsync) as cluster:
            cluster.start()
            value = b"x" * args.value_bytes
            started = time.monotonic()
            with cluster.client(timeout=10.0) as client:
                write_all(client.put_many, ((f"key-{i}", value) for i in range(args.keys)))
                print(
                    f"load of {args.keys} keys ({args.value_bytes} B, quorum): "
                    f"{time.monotonic() - started:.1f}s"
                )
                n4_keys = client.status(cluster.addresses["n4"]).keys
                print(f"n4 held {n4_keys} keys (each then one copy short)")
            cluster.kill("n4")
            t0 = time.monotonic()

            def all_see_down() -> bool:
                with cluster.client() as c:
                    return all(
                        {n.name: n.status for n in c.nodes(cluster.addresses[m])}["n4"] == "down"
                        for m in LIVE
                    )

            wait_until(all_see_down, 60, "n4 seen down")
            print(f"n4 SIGKILLed; seen down by n1-n3 after {time.monotonic() - t0:.1f}s")
            t0 = time.monotonic()
            done = subprocess.run(
                [*ZKV_NODE, "removenode", "n4", "--config", str(cluster.config_path), "--timeout", "600"],
                capture_output=True,
                text=True,
            )
            took = time.monotonic() - t0
            if done.returncode != 0:
                raise SystemExit(f"removenode failed: {done.stderr.strip()}")
            print(done.stdout.strip())
            print(f"removenode n4 until every key is back at 3 copies: {took:.1f}s")
            with cluster.client(timeout=10.0) as client:
                client.ring(refresh=True)
                pulled = {m: client.status(cluster.addresses[m]).transfer.removal["n4"] for m in LIVE}
                print("keys pulled per node:", {m: p["keys_received"] for m, p in pulled.items()})
                sample = random.Random(1).sample(range(args.keys), min(args.sample, args.keys))
                for i in sample:
                    held = client.replicas(f"key-{i}")
                    ok = sorted(held) == list(LIVE) and all(
                        isinstance(r, ReplicaState) and r.values == [value] for r in held.values()
                    )
                    if not ok:
                        raise SystemExit(f"key-{i} not on 3 live nodes: {held}")
                print(f"{len(sample)} sampled keys: each on n1, n2 and n3 with its value")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
