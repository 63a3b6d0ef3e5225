#!/usr/bin/env python3
"""zkv benchmark: throughput and latency of a cluster, against the bare-ZeroMQ ceiling of the same run.

Starts a local cluster (or targets a running one with --config), measures a bare pyzmq DEALER->ROUTER echo
with the same payload size, number in flight and client processes (the ceiling: what the transport and a
Python loop can do on this machine right now, with no zkv code), then runs the workload from several
client processes and prints each result also as a fraction of the ceiling. That fraction is the number we
steer by: on a shared machine absolute numbers move with the load, the fraction less so.

  tools/bench.py                                    # 3 nodes, quorum puts, 64 in flight, 5 s
  tools/bench.py --op get --consistency one --concurrency 1
  tools/bench.py --matrix --duration 3 --json out.json   # the docs/performance.md table
  tools/bench.py --config cluster.toml --op mixed --read-ratio 0.9

Method and measured numbers: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchlib.options import build_parser, check_args
from benchlib.pool import BenchFailed, EchoServer, WorkerPool
from benchlib.probes import sample_siblings
from benchlib.record import attach_ceiling, bench_json
from benchlib.report import check_targets, render, render_targets
from benchlib.stats import CpuMeter, combine
from benchlib.workload import Job, split
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from zkv.client import Client
from zkv.config import ClusterConfig, load_config
from zkv.errors import ZkvError
from zkv.testing.localcluster import LocalCluster

FILL_CONCURRENCY = 64
SHIPPED_DETECTOR = ("heartbeat_interval_ms", "failure_timeout_ms")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


# ---------------------------------------------------------------------------------------------- run


class Bench:
    """One invocation: the cluster, the processes, the rows."""

    def __init__(self, args: argparse.Namespace, err: Console) -> None:
        self.args = args
        self.err = err
        self.run_id = f"{random.Random().getrandbits(32):08x}"
        self.rows: list[dict[str, Any]] = []
        self.ceilings: dict[int, dict[str, Any]] = {}  # per concurrency: the echo run used as the ceiling
        self.ceiling_runs: dict[int, list[dict[str, Any]]] = {}  # every echo run (before / after)
        self.notes: list[str] = []
        self.stack = contextlib.ExitStack()
        self.pool: WorkerPool | None = None
        self.echo: EchoServer | None = None
        self.client: Client | None = None
        self.node_pids: dict[str, int] = {}
        self.cluster_info: dict[str, Any] = {}
        self.cluster: LocalCluster | None = None
        self.grace = 3.0  # seconds a process of ours gets to exit when asked, before SIGTERM

    # ------------------------------------------------------------------------------------------ setup

    def setup(self) -> None:
        args = self.args
        if args.config:
            config = load_config(args.config)
            addresses = [n.address for n in config.nodes]
            self.cluster_info = {
                "started": False,
                "config": str(args.config),
                "nodes": len(config.nodes),
                "fsync": config.fsync,
            }
        else:
            workdir = Path(tempfile.mkdtemp(prefix="zkv-bench-"))
            self.stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            settings: dict[str, Any] = {
                "replication_factor": args.replication_factor,
                "fsync": args.fsync,
                # the shipped failure detector, not the test cluster's quick one (100 ms heartbeats), which
                # takes a node whose disk stalls for a few hundred milliseconds for down
                **{k: ClusterConfig.__dataclass_fields__[k].default for k in SHIPPED_DETECTOR},
            }
            if args.engine:
                settings["engine"] = args.engine
            cluster = LocalCluster(workdir, nodes=args.nodes, **settings)
            self.cluster = cluster
            self.stack.callback(self._close_cluster, cluster)
            self.err.print(f"starting {args.nodes} nodes (N={args.replication_factor}) in {workdir}")
            cluster.start()
            addresses = list(cluster.addresses.values())
            self.node_pids = {n: cluster.pid(n) for n in cluster.names}
            self.cluster_info = {"started": True, "config": None, "nodes": args.nodes, "fsync": args.fsync}
        self.client = self.stack.enter_context(Client(addresses, timeout=args.timeout))
        info = self.client.ring()
        self.ring_info = info
        names = sorted(info.addresses)
        self.addresses = tuple(info.addresses[n] for n in names)
        tokens = info.ring.tokens()
        self.ring = {n: (i, tokens[n]) for i, n in enumerate(names)}
        engines = set()
        for name in names:
            status = self.client.status(name)
            engines.add(status.storage.engine)
            if name not in self.node_pids and _is_loopback(info.addresses[name]) and status.pid:
                self.node_pids[name] = int(status.pid)
        engine = ",".join(sorted(engines))
        self.cluster_info.update(
            replication_factor=info.replication_factor, vnodes=info.vnodes, engine=engine, nodes=len(names)
        )
        if engine == "memory":
            self.notes.append(
                f"engine: memory, so --fsync {self.cluster_info['fsync']} has no effect (no disk)"
            )
        if not self.node_pids:
            self.notes.append("nodes CPU not measured (the nodes are not local processes)")
        self.pool = WorkerPool(args.processes)
        self.stack.callback(self._close_pool)
        if not args.no_ceiling:
            self.echo = EchoServer()
            self.stack.callback(self._close_echo)

    def _close_cluster(self, cluster: LocalCluster) -> None:
        killed = cluster.close()
        if killed:
            self.err.print(f"nodes that had to be killed: {killed}")

    def _close_pool(self) -> None:
        if self.pool is not None:
            killed = self.pool.close(self.grace)
            if killed:
                self.err.print(f"client processes that had to be killed: {killed}")

    def _close_echo(self) -> None:
        if self.echo is not None and self.echo.close(self.grace):
            self.err.print("the echo server had to be killed")

    def close(self) -> None:
        self.stack.close()

    def show_node_errors(self, lines: int = 25) -> None:
        """After a failure: the end of each started node's log that reports an error."""
        if self.cluster is None:
            return
        for name in self.cluster.names:
            log = self.cluster.log(name)
            if "Traceback" in log or " ERROR " in log:
                tail = "\n".join(log.rstrip().splitlines()[-lines:])
                self.err.print(f"--- end of {name}'s log:\n{tail}", markup=False, highlight=False)

    # ------------------------------------------------------------------------------------------ plan

    def plan(self) -> list[tuple[str, str, int]]:
        """Every row to run, grouped by concurrency (each group is preceded by its echo ceiling)."""
        args = self.args
        return [(op, level, c) for c in args.concurrency for op in args.op for level in args.consistency]

    def run(self) -> None:
        args = self.args
        plan = self.plan()
        if any(op == "get" for op, _, _ in plan):
            self.fill(self._namespace("g"))
        groups: dict[int, list[tuple[int, str, str]]] = {}
        for index, (op, level, concurrency) in enumerate(plan):
            groups.setdefault(concurrency, []).append((index, op, level))
        for concurrency, items in groups.items():
            # the ceiling is measured before the group's rows and again after them; the better of the
            # two is used, so a burst of other work during one echo run does not inflate the ratios
            echoes = [] if args.no_ceiling else [self.measure_ceiling(concurrency, "before")]
            rows = [self.measure(index, op, level, concurrency) for index, op, level in items]
            if echoes and not args.ceiling_once:
                echoes.append(self.measure_ceiling(concurrency, "after"))
            if echoes:
                best = max(echoes, key=lambda e: e["total"]["ops_per_s"])
                for echo in echoes:
                    echo["ceiling_used"] = echo is best
                self.ceilings[concurrency] = best
                self.ceiling_runs[concurrency] = echoes
                for row in rows:
                    attach_ceiling(row, best)
            self.rows += echoes + rows

    # ------------------------------------------------------------------------------------------ jobs

    def _jobs(
        self,
        *,
        kind: str,
        op: str,
        level: str,
        concurrency: int,
        namespace: bytes,
        duration: float | None,
        ops: int | None,
        warmup: float,
        seed: int,
        chained: bool = False,
    ) -> list[Job]:
        args = self.args
        active = min(args.processes, concurrency)
        concs = split(concurrency, active)
        op_shares = split(ops, active) if ops is not None else [None] * active
        jobs = []
        for i in range(active):
            if op_shares[i] == 0:
                continue
            jobs.append(
                Job(
                    kind=kind,
                    addresses=self.addresses if kind == "load" else (self.echo.address,),  # type: ignore[union-attr]
                    op=op,
                    consistency=level,
                    value_size=args.value_size,
                    keys=args.keys,
                    namespace=namespace,
                    distribution=args.distribution,
                    read_ratio=args.read_ratio,
                    concurrency=concs[i],
                    duration=duration,
                    ops=op_shares[i],
                    warmup=warmup,
                    timeout=args.timeout,
                    seed=seed * 1000 + i,
                    ring=self.ring if kind == "load" else {},
                    replication_factor=self.ring_info.replication_factor,
                    chained=chained,
                )
            )
        return jobs

    def _namespace(self, tag: str) -> bytes:
        return f"bench:{self.run_id}:{tag}:".encode()

    def _execute(self, label: str, jobs: list[Job], total: float, by_time: bool) -> tuple[list[dict], dict]:
        """Run the jobs with a progress bar; their results and the CPU that nodes/echo/machine used."""
        assert self.pool is not None
        pids = dict(self.node_pids)
        if self.echo is not None:
            pids["echo"] = self.echo.pid
        meter = CpuMeter(pids)
        limit = total + self.args.timeout * 2 + 120 if by_time else 3600.0
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}" + (" s" if by_time else " ops")),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
            disable=not self.err.is_terminal,
        ) as progress:
            task = progress.add_task(label, total=total)
            started = [0.0]

            def on_start() -> None:
                started[0] = time.monotonic()
                meter.start(started[0])

            def on_wait(completed: int) -> None:
                if by_time:
                    progress.update(task, completed=min(total, time.monotonic() - started[0]))
                else:
                    progress.update(task, completed=min(total, completed))

            if not self.err.is_terminal:
                self.err.print(f"running {label}", markup=False, highlight=False)
            results = self.pool.run(jobs, on_start=on_start, on_wait=on_wait, limit_s=limit)
        return results, meter.stop(time.monotonic())

    def fill(self, namespace: bytes) -> None:
        """Write each key of ``namespace`` once, at ``all``: gets then find one version on every replica."""
        keys = self.args.keys
        jobs = self._jobs(
            kind="load",
            op="fill",
            level="all",
            concurrency=FILL_CONCURRENCY,
            namespace=namespace,
            duration=None,
            ops=None,
            warmup=0.0,
            seed=0,
        )
        results, _ = self._execute(f"pre-loading {keys:,} keys", jobs, keys, by_time=False)
        per_op, elapsed, total = combine(results)
        if total.errors:
            raise BenchFailed(f"pre-loading met errors {total.errors}")
        self.err.print(f"pre-loaded {total.ok:,} keys at all in {elapsed:.1f}s ({total.ops_per_s:,.0f}/s)")

    def measure_ceiling(self, concurrency: int, when: str) -> dict[str, Any]:
        args = self.args
        duration = args.ceiling_duration or (args.duration if args.ops is None else 1.0)
        warmup = args.warmup if args.ops is None else min(args.warmup, 0.2)
        jobs = self._jobs(
            kind="echo",
            op="put",
            level="quorum",
            concurrency=concurrency,
            namespace=self._namespace("echo"),
            duration=duration,
            ops=None,
            warmup=warmup,
            seed=7,
        )
        label = f"echo ceiling x{concurrency} ({when})"
        results, cpu = self._execute(label, jobs, warmup + duration, by_time=True)
        row = self._row("echo", "-", concurrency, jobs, results, cpu)
        row["when"] = when
        return row

    def measure(self, index: int, op: str, level: str, concurrency: int) -> dict[str, Any]:
        args = self.args
        # gets read the pre-loaded keys; puts write keys no earlier row wrote, so every row starts alike
        namespace = self._namespace("g" if op == "get" else f"r{index}")
        if op == "mixed":
            self.fill(namespace)
        if args.ops is not None:
            duration, ops, warmup = None, args.ops, 0.0
            total, by_time = float(args.ops), False
        else:
            duration, ops, warmup = args.duration, None, args.warmup
            total, by_time = warmup + duration, True
        jobs = self._jobs(
            kind="load",
            op=op,
            level=level,
            concurrency=concurrency,
            namespace=namespace,
            duration=duration,
            ops=ops,
            warmup=warmup,
            seed=index + 1,
            chained=op in ("put", "mixed") and not args.blind_puts,
        )
        results, cpu = self._execute(f"{op} {level} x{concurrency}", jobs, total, by_time)
        row = self._row(op, level, concurrency, jobs, results, cpu)
        if op in ("put", "mixed"):
            row["siblings"] = sample_siblings(self.client, namespace, index, self.args.keys)
        return row

    def _row(
        self,
        op: str,
        level: str,
        concurrency: int,
        jobs: list[Job],
        results: list[dict],
        cpu: dict,
    ) -> dict[str, Any]:
        args = self.args
        per_op, elapsed, total = combine(results)
        clients_s = sum(r["cpu_s"] for r in results)
        loop_wall = max(r["wall_s"] for r in results)
        answered = max(1, sum(r["completed"] for r in results))  # warmup included, as the CPU figures are
        wall = cpu["wall_s"]
        per_proc = cpu["per_process_s"]
        # the server side: the nodes for a workload, the echo server for the ceiling
        if op == "echo":
            server_s = per_proc.get("echo")
            per_node: dict[str, float] = {}
        else:
            per_node = {k: v for k, v in per_proc.items() if k != "echo"}
            server_s = sum(per_node.values()) if self.node_pids and per_node else None
        other_s = None
        if cpu["machine_s"] is not None:
            other_s = max(0.0, cpu["machine_s"] - clients_s - (server_s or 0.0))
        row: dict[str, Any] = {
            "op": op,
            "consistency": level,
            "concurrency": concurrency,
            "processes": len(jobs),
            "value_size": args.value_size,
            "keys": args.keys,
            "distribution": args.distribution,
            "measured_s": round(elapsed, 4),
            "total": total.to_json(),
            "per_op": {name: s.to_json() for name, s in per_op.items()},
            "errors": total.errors,
            "cpu": {
                "wall_s": round(wall, 4),
                "clients_s": round(clients_s, 4),
                "clients_pct": round(100 * clients_s / loop_wall, 1),
                "clients_us_per_op": round(1e6 * clients_s / answered, 1),
                # nodes (or the echo server): CPU seconds, percent of one core, CPU microseconds per request
                "server": "echo server" if op == "echo" else "nodes",
                "server_s": None if server_s is None else round(server_s, 4),
                "server_pct": None if server_s is None else round(100 * server_s / wall, 1),
                "server_us_per_op": None if server_s is None else round(1e6 * server_s / answered, 1),
                "per_node_pct": {k: round(100 * v / wall, 1) for k, v in per_node.items()},
                "machine_pct": None if cpu["machine_s"] is None else round(100 * cpu["machine_s"] / wall, 1),
                "other_pct": None if other_s is None else round(100 * other_s / wall, 1),
            },
        }
        if op == "mixed":
            row["read_ratio"] = args.read_ratio
        return row

    # ------------------------------------------------------------------------------------------ report

    def title(self) -> str:
        a = self.args
        info = self.cluster_info
        where = f"cluster {a.config}" if a.config else f"local cluster of {info['nodes']} nodes"
        return (
            f"zkv bench: {where}, N={info['replication_factor']}, engine {info['engine']}, "
            f"{a.value_size} B values, {a.keys:,} keys {a.distribution}, {a.processes} client processes, "
            + (f"{a.ops:,} ops per row" if a.ops is not None else f"{a.duration:g} s per row")
        )

    def report(self, out: Console) -> list[dict[str, Any]]:
        notes = list(self.notes)
        for row in self.rows:
            if row.get("siblings", {}).get("max", 1) > 1:
                s = row["siblings"]
                notes.append(
                    f"{row['op']} {row['consistency']} x{row['concurrency']}: written keys hold {s['mean']} "
                    f"versions on average (max {s['max']}): blind puts to one key are concurrent, so siblings"
                )
        render(out, self.title(), self.rows, notes)
        targets = check_targets(self.rows) if self._targets_apply() else []
        render_targets(out, targets)
        return targets

    def _targets_apply(self) -> bool:
        info = self.cluster_info
        return self.args.value_size == 100 and info.get("replication_factor") == 3 and info.get("nodes") == 3


def _is_loopback(address: str) -> bool:
    return (urlparse(address).hostname or "") in LOOPBACK or address.startswith("ipc://")


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    err = Console(stderr=True)
    out = Console()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    for own in ("cas", "txn"):
        if own in args.op:
            if args.op != [own]:
                parser.error(f"--op {own} runs its own rows (quorum put next to it): give it alone")
            from benchlib.cas import run_cas

            return run_cas(args, err, out, own)
    bench = Bench(args, err)
    try:
        bench.setup()
        bench.run()
    except KeyboardInterrupt:
        err.print("interrupted; stopping everything this run started")
        bench.grace = 0.2  # the client processes may be mid-run: they ignore SIGINT, SIGTERM ends them
        bench.close()
        return 130
    except (BenchFailed, ZkvError, RuntimeError, AssertionError, OSError) as exc:
        err.print(f"bench failed: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        bench.show_node_errors()
        bench.close()
        return 1
    except BaseException:
        bench.close()
        raise
    try:
        targets = bench.report(out)
        if args.json:
            Path(args.json).write_text(json.dumps(bench_json(bench, targets, argv), indent=2) + "\n")
            err.print(f"wrote {args.json}")
    finally:
        bench.close()
    errors = sum(sum(r["errors"].values()) for r in bench.rows)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
