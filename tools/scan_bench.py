#!/usr/bin/env python3
"""Key-scan benchmark: load N keys into a real local cluster, then scan them all, page by page.

Reports the load time, the scan's total time and keys/s (keys only, and with values), the pages it took,
and each node's resident memory before the scan and its peak (VmHWM) after, so the claim "a scan is never
unbounded in memory on any node" is a number: the peak should not move with N.

  tools/scan_bench.py                        # 100,000 keys, 3 nodes, the log engine, pages of 1000
  tools/scan_bench.py --keys 20000 --page 500 --engine memory --json scan.json
  tools/scan_bench.py --base-port 17100      # a manual run in a port range of its own

On a shared machine the numbers are disturbed by everything else running: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib.load import write_all

from zkv.testing.localcluster import LocalCluster


def rss_kib(pid: int) -> dict[str, int]:
    """A process's resident memory now (VmRSS) and its peak so far (VmHWM), in KiB (Linux)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zkv-scan-bench-") as work:
        settings: dict[str, Any] = {"engine": args.engine}
        if args.engine == "log":
            settings["fsync"] = "never"  # the scan is measured, not the load's fsyncs
        with LocalCluster(Path(work), nodes=args.nodes, base_port=args.base_port, **settings) as cluster:
            cluster.start()
            with cluster.client() as client:
                value = b"v" * args.value_bytes
                started = time.perf_counter()
                write_all(client.put_many, ((b"key:%09d" % i, value) for i in range(args.keys)))
                load_s = time.perf_counter() - started
                before = {n: rss_kib(cluster.pid(n)) for n in cluster.names}
                rows = []
                for values in (False, True):
                    started = time.perf_counter()
                    seen, pages, cursor = 0, 0, None
                    while True:
                        page = client.scan(b"key:", args.page, cursor, args.consistency, values)
                        seen += len(page.entries)
                        pages += 1
                        if page.cursor is None:
                            break
                        cursor = page.cursor
                    total_s = time.perf_counter() - started
                    if seen != args.keys:
                        raise SystemExit(f"the scan saw {seen} keys of {args.keys}")
                    rows.append(
                        {
                            "values": values,
                            "keys": seen,
                            "pages": pages,
                            "total_s": round(total_s, 3),
                            "keys_per_s": round(seen / total_s),
                            "ms_per_page": round(total_s * 1000 / pages, 2),
                            "peak_after_kib": {n: rss_kib(cluster.pid(n))["VmHWM"] for n in cluster.names},
                        }
                    )
                after = {n: rss_kib(cluster.pid(n)) for n in cluster.names}
    return {
        "nodes": args.nodes,
        "engine": args.engine,
        "keys": args.keys,
        "value_bytes": args.value_bytes,
        "page": args.page,
        "consistency": args.consistency,
        "load_s": round(load_s, 2),
        "scans": rows,
        "memory_kib": {
            n: {
                "rss_before": before[n]["VmRSS"],
                "peak_before": before[n]["VmHWM"],
                "peak_after": after[n]["VmHWM"],
            }
            for n in before
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--page", type=int, default=1000, help="keys per scan page (1-10000)")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--engine", default="log", choices=["memory", "log", "redis"])
    parser.add_argument("--consistency", default="quorum", choices=["one", "quorum", "all"])
    parser.add_argument("--base-port", type=int, default=None, help="ports from here up (default: free ones)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    report = run(args)
    print(
        f"{report['keys']} keys ({report['value_bytes']} B values) on {report['nodes']} nodes, engine "
        f"{report['engine']}, pages of {report['page']} at {report['consistency']}; load {report['load_s']} s"
    )
    for row in report["scans"]:
        what = "keys+values" if row["values"] else "keys only"
        print(
            f"  scan {what:11}  {row['total_s']:7.2f} s  {row['keys_per_s']:8} keys/s  "
            f"{row['pages']} pages, {row['ms_per_page']} ms/page; peak RSS after it "
            + ", ".join(f"{n} {kib / 1024:.1f} MiB" for n, kib in row["peak_after_kib"].items())
        )
    for node, mem in report["memory_kib"].items():
        print(
            f"  {node}: RSS before the scans {mem['rss_before'] / 1024:.1f} MiB, peak before "
            f"{mem['peak_before'] / 1024:.1f} MiB, peak after {mem['peak_after'] / 1024:.1f} MiB"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
