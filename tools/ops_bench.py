"""Time the day-2 operations on a real local cluster: snapshot, verify and restore of many keys.

    .venv/bin/python tools/ops_bench.py [--keys 100000] [--value-bytes 100]

Starts a 3-node cluster (log engine) in a temporary folder, loads the keys at quorum, then times
``zkv-node snapshot`` (every node), ``zkv-node verify``, a restore into wiped data dirs and the restart
until every node serves. Prints one line per step (docs/operations.md quotes them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.load import write_all

from zkv.testing.localcluster import LocalCluster

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]


def timed(what: str, *args: str) -> float:
    started = time.monotonic()
    result = subprocess.run([*ZKV_NODE, *args], capture_output=True, text=True)
    took = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{what} failed: {result.stderr.strip()}")
    print(f"{what}: {took:.2f}s")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zkv-ops-bench-"))
    try:
        with LocalCluster(work, engine="log") as cluster:
            cluster.start()
            value = b"x" * args.value_bytes
            started = time.monotonic()
            with cluster.client(timeout=10.0) as client:
                write_all(client.put_many, ((f"key-{i}", value) for i in range(args.keys)))
            took = time.monotonic() - started
            print(f"load of {args.keys} keys ({args.value_bytes} B values, quorum): {took:.1f}s")
            config = str(cluster.config_path)
            snap = work / "snap"
            timed("snapshot (3 nodes)", "snapshot", "--config", config, "--out", str(snap))
            size = sum(p.stat().st_size for p in snap.rglob("*.log"))
            print(f"snapshot size: {size / 1e6:.1f} MB in {len(list(snap.rglob('*.log')))} segments")
            timed("verify (3 nodes)", "verify", str(snap))
            for name in cluster.names:
                cluster.stop(name)
                shutil.rmtree(work / "data" / name)
            timed("restore (3 nodes)", "restore", "--config", config, "--from", str(snap))
            started = time.monotonic()
            cluster.start()
            print(f"restart until every node serves: {time.monotonic() - started:.2f}s")
            with cluster.client(timeout=10.0) as client:
                missing = [
                    k for k in (f"key-{i}" for i in range(0, args.keys, 97)) if not client.get(k).values
                ]
            print(
                f"spot check of {len(range(0, args.keys, 97))} keys after the restore: {len(missing)} missing"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
