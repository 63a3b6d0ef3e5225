#!/usr/bin/env python3
"""HTTP gateway benchmark: quorum put/get through ``zkv-http`` next to the native client, in one run.

The client shape is the one the seed projects' REST APIs were measured with: 8 threads (spread over a few
processes, so the load generator's own GIL is not the bottleneck), each with one keep-alive connection,
100-byte values, 2,000 keys. Each HTTP thread talks to one gateway (thread i to node i mod N); each native
thread has its own :class:`zkv.Client` (smart routing). A row at one thread shows what the gateway adds
to a request's latency with no queueing.

  tools/http_bench.py                         # a local 3-node cluster with gateways, 5 s per row
  tools/http_bench.py --duration 3 --json out.json
  tools/http_bench.py --config cluster.toml   # a running cluster (make run); writes the bench keys

On a shared machine the numbers move with the load; docs/http.md has the measured table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from zkv.client import Client
from zkv.config import load_config
from zkv.testing.localcluster import LocalCluster

KEY_PREFIX = "httpbench:"


def _keys(count: int) -> list[str]:
    return [f"{KEY_PREFIX}{i:06d}" for i in range(count)]


def _http_thread(
    base: tuple[str, int], op: str, keys: list[str], value: bytes, until: float, out: list
) -> None:
    conn = http.client.HTTPConnection(*base, timeout=10)
    rng = random.Random()
    lat: list[int] = []
    errors = 0
    while True:
        now = time.monotonic_ns()
        if now >= until:
            break
        path = f"/v1/keys/{rng.choice(keys)}?consistency=quorum"
        try:
            if op == "put":
                conn.request("PUT", path, body=value)
            else:
                conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status in (200, 204, 300)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(*base, timeout=10)
            ok = False
        done = time.monotonic_ns()
        if ok:
            lat.append(done - now)
        else:
            errors += 1
    conn.close()
    out.append((lat, errors))


def _native_thread(seeds: list[str], op: str, keys: list[str], value: bytes, until: float, out: list) -> None:
    rng = random.Random()
    lat: list[int] = []
    errors = 0
    with Client(seeds) as client:
        client.ring()
        while True:
            now = time.monotonic_ns()
            if now >= until:
                break
            key = rng.choice(keys)
            try:
                if op == "put":
                    client.put(key, value, "quorum")
                else:
                    client.get(key, "quorum")
                ok = True
            except Exception:
                ok = False
            done = time.monotonic_ns()
            if ok:
                lat.append(done - now)
            else:
                errors += 1
    out.append((lat, errors))


def _process(job: dict[str, Any], start_at: float, queue: Any) -> None:
    """One load process: ``job["threads"]`` threads until ``start_at + duration`` (monotonic seconds)."""
    keys = _keys(job["keys"])
    value = os.urandom(job["value_bytes"] // 2).hex().encode()[: job["value_bytes"]]
    out: list = []
    threads = []
    until = int((start_at + job["duration"]) * 1e9)
    while time.monotonic() < start_at:
        time.sleep(0.001)
    for i in range(job["threads"]):
        slot = job["first_slot"] + i
        if job["mode"] == "http":
            target = job["gateways"][slot % len(job["gateways"])]
            args: tuple = (target, job["op"], keys, value, until, out)
            fn: Any = _http_thread
        else:
            args = (job["seeds"], job["op"], keys, value, until, out)
            fn = _native_thread
        threads.append(threading.Thread(target=fn, args=args))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(out)


def run_row(
    mode: str, op: str, threads: int, processes: int, target: dict[str, Any], args: Any
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    processes = max(1, min(processes, threads))
    per = [threads // processes + (1 if i < threads % processes else 0) for i in range(processes)]
    start_at = time.monotonic() + 1.5  # spawn time
    pids = target.get("pids", {})
    cpu_before = {role: _cpu_s(ps) for role, ps in pids.items()}
    driver_before = _children_cpu_s()
    procs = []
    slot = 0
    for n in per:
        job = {
            "mode": mode,
            "op": op,
            "threads": n,
            "first_slot": slot,
            "keys": args.keys,
            "value_bytes": args.value_bytes,
            "duration": args.duration,
            **target,
        }
        slot += n
        p = ctx.Process(target=_process, args=(job, start_at, queue))
        p.start()
        procs.append(p)
    results = [queue.get(timeout=args.duration + 60) for _ in procs]
    cpu = {role: _cpu_s(ps) - cpu_before[role] for role, ps in pids.items()}
    for p in procs:
        p.join(timeout=10)
    cpu["driver"] = _children_cpu_s() - driver_before  # (includes the load processes' start-up)
    lat = sorted(x for res in results for lats, _ in res for x in lats)
    errors = sum(e for res in results for _, e in res)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6 if lat else float("nan")

    return {
        "client": mode,
        "op": op,
        "consistency": "quorum",
        "threads": threads,
        "ops_per_s": len(lat) / args.duration,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
        # CPU per completed request (us) of each kind of process: far less load-sensitive than ops/s
        **{f"{role}_us": 1e6 * seconds / max(1, len(lat)) for role, seconds in cpu.items()},
    }


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (Linux /proc; 0 where it cannot be read)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="a running cluster's file (its nodes need http keys)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per row (default 5)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--processes", type=int, default=2, help="processes the threads are spread over")
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument(
        "--gateway-threads", type=int, default=None, help="zkv-http --threads (local cluster)"
    )
    parser.add_argument(
        "--engine",
        choices=("log", "memory"),
        default="log",
        help="storage engine (local cluster; default log)",
    )
    parser.add_argument("--no-single", action="store_true", help="skip the one-thread rows")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    cluster = None
    try:
        if args.config:
            config = load_config(args.config)
            seeds = [n.address for n in config.nodes]
            gateways = [n.http for n in config.nodes if n.http]
            if not gateways:
                print(f"http_bench: no node of {args.config} has an http key", file=sys.stderr)
                return 2
        else:
            workdir = Path(tempfile.mkdtemp(prefix="zkv-http-bench-"))
            print(f"starting 3 nodes with gateways in {workdir}", file=sys.stderr)
            cluster = LocalCluster(
                workdir, 3, http=True, engine=args.engine, heartbeat_interval_ms=500, failure_timeout_ms=3000
            )
            cluster.start(wait=True)
            if args.gateway_threads:
                for name in cluster.names:
                    cluster.gateways[name].terminate()
                    cluster.gateways[name].wait()
                cluster.start_http(*cluster.names, args=("--threads", str(args.gateway_threads)))
            seeds = list(cluster.addresses.values())
            gateways = [cluster.http[n] for n in cluster.names]
            pids = {
                "gateway": [cluster.gateways[n].pid for n in cluster.names],
                "nodes": [cluster.procs[n].pid for n in cluster.names],
            }
        target: dict[str, Any] = {
            "seeds": seeds,
            "gateways": [(g.rpartition(":")[0].strip("[]"), int(g.rpartition(":")[2])) for g in gateways],
        }
        if cluster is not None:
            target["pids"] = pids
        with Client(seeds) as client:
            value = b"v" * args.value_bytes
            errors = [e for e in client.put_many(((k, value) for k in _keys(args.keys)), "all") if e]
            if errors:
                print(f"http_bench: pre-loading failed: {errors[0]}", file=sys.stderr)
                return 1
        rows = []
        for threads in (args.threads,) if args.no_single else (1, args.threads):
            for op in ("get", "put"):
                for mode in ("native", "http"):
                    print(f"running {mode} {op} quorum x{threads}", file=sys.stderr)
                    rows.append(run_row(mode, op, threads, args.processes, target, args))
        print(render(rows, args))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return 0
    finally:
        if cluster is not None:
            cluster.close()


def render(rows: list[dict[str, Any]], args: Any) -> str:
    lines = [
        f"zkv http bench: 3 nodes, N=3, {args.value_bytes} B values, {args.keys} keys, "
        f"{args.duration:g} s per row, keep-alive connections",
        f"{'client':8} {'op':4} {'level':7} {'threads':>7} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7}   CPU us/request: gateways  nodes  driver",
    ]
    for r in rows:
        lines.append(
            f"{r['client']:8} {r['op']:4} {r['consistency']:7} {r['threads']:>7} {r['ops_per_s']:>9,.0f} "
            f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['errors']:>7}"
            + (
                f"   {r['gateway_us'] if r['client'] == 'http' else 0:>23.0f} {r['nodes_us']:>6.0f} "
                f"{r['driver_us']:>7.0f}"
                if "nodes_us" in r
                else ""
            )
        )
    by = {(r["client"], r["op"], r["threads"]): r for r in rows}
    for threads in sorted({r["threads"] for r in rows}):
        for op in ("get", "put"):
            n, h = by.get(("native", op, threads)), by.get(("http", op, threads))
            if n and h:
                lines.append(
                    f"gateway adds {h['p50_ms'] - n['p50_ms']:+.3f} ms to the p50 of a quorum {op} at "
                    f"{threads} thread(s); HTTP does {h['ops_per_s'] / n['ops_per_s']:.0%} of native ops/s"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
