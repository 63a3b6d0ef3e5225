"""``tools/bench.py --op cas``: serial compare-and-set next to quorum put, in the same run.

Three rows, each with ``--concurrency`` (its first value) client processes for ``--duration`` seconds:

* **quorum put** — blind puts, each process to its own keys (the baseline);
* **cas uncontended** — each process runs a compare-and-set loop on its own key (read once, then each
  CAS names the value the last one wrote): a serial write with nobody in its way;
* **cas contended** — every process runs the CAS loop on one shared key (a refused CAS reads the
  current value from the refusal and tries again): progress under contention, not livelock.

``--op txn`` runs quorum put, cas uncontended and:

* **txn 3 keys** — each process runs transactions on its own three keys: each puts all three, checked
  ``if_value`` the values its last transaction wrote (one round of intents on three keys, the record's
  commit point, then the resolution): what a multi-key transaction costs with nobody in its way;
* **txn contended** — every process runs that loop on the same three keys: a refused transaction
  (``ConditionFailed``) learns the current value from the refusal and tries again, and one that meets
  another's intents (``txn_conflict``) is retried by the client with back-off (column *conflicts*: such
  meetings, retried or given up): progress under contention, not livelock.

Each process uses the Python client (one request at a time), so the numbers are latency-bound: they
compare the protocols' round trips, not the node's peak throughput (``--op put`` measures that).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zkv import Client
from zkv.config import load_config
from zkv.errors import ConditionFailed, OutcomeUnknown, TxnConflict, ZkvError
from zkv.testing.localcluster import LocalCluster


def _worker(mode: str, index: int, addresses: list[str], seconds: float, queue: Any) -> None:
    latencies: list[float] = []
    counts = {"applied": 0, "refused": 0, "unknown": 0, "conflicts": 0, "errors": 0}
    codes: dict[str, int] = {}  # the errors' codes
    key = "cas-shared" if mode == "cas contended" else f"cas-{index}"
    with Client(addresses, timeout=10.0) as db:
        current: bytes | None = None
        first = mode != "txn contended" or index == 0  # the shared keys are created once
        n = 0
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            n += 1
            started = time.perf_counter()
            try:
                if mode == "quorum put":
                    db.put(f"put-{index}-{n % 1000}", b"x" * 100, consistency="quorum")
                elif mode.startswith("txn"):
                    new = b"%d-%d" % (index, n)
                    prefix = "txn-shared" if mode == "txn contended" else f"txn-{index}"
                    with db.transaction(token=f"bench-{index}-{n}-{time.time_ns()}") as tx:
                        for k in range(3):
                            if current is None:
                                tx.put(f"{prefix}-{k}", new, if_absent=first)
                            else:
                                tx.put(f"{prefix}-{k}", new, if_value=current)
                    counts["conflicts"] += tx.result.attempts - 1 if tx.result is not None else 0
                    current, first = new, False
                else:
                    if current is None:
                        got = db.get(key, consistency="serial")
                        current = got.values[0] if len(got.values) == 1 else None
                    new = b"%d-%d" % (index, n)
                    if current is None:
                        db.put(key, new, consistency="serial", if_absent=True)
                    else:
                        db.put(key, new, consistency="serial", if_value=current)
                    current = new
                counts["applied"] += 1
            except ConditionFailed as exc:
                counts["refused"] += 1
                current = exc.values[0] if len(exc.values) == 1 else None
                first = first and not exc.values
            except TxnConflict:
                counts["conflicts"] += 1
                current = None
            except OutcomeUnknown:
                counts["unknown"] += 1
                current = None
            except ZkvError as exc:
                counts["errors"] += 1
                codes[exc.code] = codes.get(exc.code, 0) + 1
                current = None
            latencies.append(time.perf_counter() - started)
    queue.put((counts, latencies, codes))


def _row(mode: str, addresses: list[str], processes: int, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [
        context.Process(target=_worker, args=(mode, i, addresses, seconds, queue)) for i in range(processes)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    counts = {k: sum(r[0][k] for r in results) for k in results[0][0]}
    codes: dict[str, int] = {}
    for r in results:
        for code, n in r[2].items():
            codes[code] = codes.get(code, 0) + n
    latencies = sorted(x for r in results for x in r[1])
    attempts = len(latencies)
    p99 = latencies[min(attempts - 1, int(attempts * 0.99))] if attempts else 0.0
    return {
        "mode": mode,
        "attempts_per_s": attempts / seconds,
        "applied_per_s": counts["applied"] / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": p99 * 1000,
        **counts,
        "codes": codes,
    }


ROWS = {
    "cas": ("quorum put", "cas uncontended", "cas contended"),
    "txn": ("quorum put", "cas uncontended", "txn 3 keys", "txn contended"),
}


def run_cas(args: argparse.Namespace, err: Console, out: Console, op: str = "cas") -> int:
    """Run the rows of ``op`` and print them; exit status 1 when a row met errors or made no progress."""
    processes = args.concurrency[0] if isinstance(args.concurrency, list) else args.concurrency
    workdir: Path | None = None
    cluster: LocalCluster | None = None
    try:
        if args.config:
            addresses = [n.address for n in load_config(args.config).nodes]
        else:
            workdir = Path(tempfile.mkdtemp(prefix="zkv-bench-cas-"))
            settings: dict[str, Any] = {"replication_factor": args.replication_factor, "fsync": args.fsync}
            if args.engine:
                settings["engine"] = args.engine
            cluster = LocalCluster(workdir, nodes=args.nodes, **settings)
            err.print(f"starting {args.nodes} nodes (N={args.replication_factor}) in {workdir}")
            cluster.start()
            addresses = list(cluster.addresses.values())
        rows = []
        for mode in ROWS[op]:
            err.print(f"{mode}: {processes} client processes for {args.duration}s")
            rows.append(_row(mode, addresses, processes, args.duration))
    finally:
        if cluster is not None:
            cluster.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    base = rows[0]["applied_per_s"] or 1.0
    table = Table(
        title=f"{'transactions' if op == 'txn' else 'serial CAS'} vs quorum put ({processes} client "
        "processes, one request each at a time)"
    )
    for column in (
        "row",
        "applied/s",
        "attempts/s",
        "p50 ms",
        "p99 ms",
        "refused",
        "unknown",
        "conflicts",
        "errors",
        "vs put",
    ):
        table.add_column(column, justify="left" if column == "row" else "right")
    for r in rows:
        table.add_row(
            r["mode"],
            f"{r['applied_per_s']:.0f}",
            f"{r['attempts_per_s']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["refused"]),
            str(r["unknown"]),
            str(r["conflicts"]),
            " ".join(f"{c}:{n}" for c, n in sorted(r["codes"].items())) or "0",
            f"{r['applied_per_s'] / base:.2f}x",
        )
    Console(width=max(out.width, 120)).print(table)
    stuck = any(r["applied"] == 0 for r in rows)
    return 1 if stuck or any(r["errors"] for r in rows) else 0
