#!/usr/bin/env python3
"""What a cluster of K real zkv nodes costs on this machine, for each K of a list (issue #20).

For each K it starts K ``zkv-node`` processes with the shipped gossip and failure-detection settings
(500 ms heartbeats, 3 s hard bound: not the tests' fast ones), then reports:

- converge: seconds from the last node's start until every node sees all K up;
- idle CPU of every node together and per node (percent of one core), over ``--idle`` seconds with no
  client load and nobody asking the nodes anything;
- gossip bytes/s and messages/s each node sends and receives (the nodes count them: ``gossip_traffic``
  in their status), and the resident memory per node;
- kill: seconds from SIGKILL of one node until every other node sees it down;
- restart: seconds from its restart until every node sees it up again;
- sequential quorum puts/s and gets/s through one client, and one put and get through each node.

  tools/scale.py --nodes 10,40            # the table of docs/scale.md, shorter
  tools/scale.py --nodes 10,40,80,150 --json scale.json

A 150-node run takes the whole of a 2-core machine for minutes: run it alone. Method and numbers:
docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from zkv.client import Client
from zkv.client.transport import Job
from zkv.core.status import NodeStatus
from zkv.errors import ZkvError
from zkv.testing.localcluster import LocalCluster

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
SHIPPED = {"heartbeat_interval_ms": 500, "failure_timeout_ms": 3000}  # zkv.config's defaults


def raise_open_files(nodes: int) -> int:
    """Lift this process's open-file limit (inherited by the nodes, which hold ~4 sockets per peer)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 4096 + 8 * nodes * 4)) if hard != resource.RLIM_INFINITY else 65536
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def machine_busy() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) * TICK_S


class Views:
    """Asks many nodes at once what they see (one client, requests in parallel)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.client = cluster.client(timeout=2.0)

    def statuses(self, names: list[str]) -> dict[str, dict[str, str]]:
        """name -> {member: status} as each named node sees it (nodes that did not answer are absent)."""
        out: dict[str, dict[str, str]] = {}
        for offset in range(0, len(names), 50):
            batch = names[offset : offset + 50]
            addresses = [self.cluster.addresses[n] for n in batch]
            replies = self.client.transport.run_jobs([Job({"op": "nodes"}, [a]) for a in addresses])
            for name, reply in zip(batch, replies, strict=True):
                if isinstance(reply, dict):
                    out[name] = {row["name"]: row["status"] for row in reply["nodes"]}
        return out

    def wait(self, names: list[str], holds: Any, timeout: float, what: str) -> float:
        """Poll until ``holds(view)`` is true of every named node's view; seconds it took."""
        started = time.monotonic()
        pending = list(names)
        while pending:
            views = self.statuses(pending)
            pending = [n for n in pending if n not in views or not holds(views[n])]
            if not pending:
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"after {timeout:.0f}s {len(pending)} nodes still wait for {what}")
            time.sleep(0.1)
        return time.monotonic() - started

    def close(self) -> None:
        self.client.close()


def traffic(client: Client, cluster: LocalCluster, names: list[str]) -> dict[str, dict[str, float]]:
    """name -> the gossip counters the node keeps (``gossip_traffic`` in its status), its poller's
    (``sockets``: registered, polls, sockets checked) and its uptime: rates are counted over the node's
    own clock, since the status requests of a round answer seconds apart on a loaded machine."""
    replies = client.statuses([cluster.addresses[n] for n in names], timeout=5.0)
    return {
        n: {
            **(r.extra.get("gossip_traffic") or {}),
            **(r.extra.get("sockets") or {}),
            **{f"wake_{k}": v for k, v in (r.extra.get("wakeups") or {}).items()},
            "uptime_s": r.uptime_s,
        }
        for n, r in zip(names, replies, strict=True)
        if isinstance(r, NodeStatus)
    }


def measure(k: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """One row of the table: start K nodes, measure, stop them all."""
    row: dict[str, Any] = {"nodes": k}
    settings = {**SHIPPED, "engine": "memory", "replication_factor": 3}
    cluster = LocalCluster(root / f"k{k}", nodes=k, base_port=args.base_port, **settings)
    say = (lambda text: print(f"  [{k}] {text}", file=sys.stderr, flush=True)) if not args.quiet else None
    views: Views | None = None
    try:
        t0 = time.monotonic()
        cluster.start(wait=False)
        last_start = time.monotonic()
        row["start_s"] = round(last_start - t0, 1)
        views = Views(cluster)
        names = cluster.names
        everyone = set(names)

        def all_up(view: dict[str, str]) -> bool:
            return all(view.get(n) == "up" for n in everyone)

        row["converge_s"] = round(views.wait(names, all_up, args.timeout, f"all {k} up"), 2)
        say and say(f"converged {row['converge_s']} s after the last start ({row['start_s']} s of starts)")
        time.sleep(args.settle)

        pids = {n: cluster.pid(n) for n in names}
        with cluster.client(timeout=5.0) as client:
            before_traffic = traffic(client, cluster, names)
            cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
            busy0, w0 = machine_busy(), time.monotonic()
            time.sleep(args.idle)
            cpu1 = {n: cpu_seconds(p) for n, p in pids.items()}
            busy1, wall = machine_busy(), time.monotonic() - w0
            after_traffic = traffic(client, cluster, names)
        used = [cpu1[n] - cpu0[n] for n in names if cpu0[n] is not None and cpu1[n] is not None]
        row["idle_cpu_total_pct"] = round(100 * sum(used) / wall, 1)
        row["idle_cpu_per_node_pct"] = round(100 * sum(used) / wall / max(1, len(used)), 2)
        row["machine_busy_pct"] = round(100 * (busy1 - busy0) / wall, 1)
        rates: dict[str, list[float]] = {"sent_bytes": [], "received_bytes": [], "sent": [], "received": []}
        spans = {}  # node -> seconds between its two answers, by its own uptime
        for n in names:
            a, b = before_traffic.get(n), after_traffic.get(n)
            if a and b and b["uptime_s"] > a["uptime_s"]:
                spans[n] = b["uptime_s"] - a["uptime_s"]
                for key, values in rates.items():
                    values.append((b.get(key, 0) - a.get(key, 0)) / spans[n])
        for key, values in rates.items():
            row[f"gossip_{key}_per_s"] = round(sum(values) / len(values), 1) if values else None
        common = list(spans)
        polls = [after_traffic[n].get("polls", 0) - before_traffic[n].get("polls", 0) for n in common]
        checked = [after_traffic[n].get("checked", 0) - before_traffic[n].get("checked", 0) for n in common]
        registered = [after_traffic[n].get("registered", 0) for n in common]
        if sum(polls):
            row["polls_per_s_per_node"] = round(sum(polls) / sum(spans.values()), 1)
            row["sockets_checked_per_poll"] = round(sum(checked) / sum(polls), 1)
            row["sockets_per_node"] = max(registered)
        # what woke the loops (``wakeups`` in status: timer, signal, or the kind of socket ready), per node
        kinds = sorted({k for n in common for k in after_traffic[n] if k.startswith("wake_")})
        if kinds and spans:
            row["wakeups_per_s"] = {
                k[len("wake_") :]: round(
                    sum(after_traffic[n].get(k, 0) - before_traffic[n].get(k, 0) for n in common)
                    / sum(spans.values()),
                    2,
                )
                for k in kinds
            }
        rss = [r for r in (rss_bytes(p) for p in pids.values()) if r is not None]
        row["rss_mib_per_node"] = round(sum(rss) / len(rss) / 2**20, 1) if rss else None
        say and say(
            f"idle {row['idle_cpu_total_pct']}% of a core ({row['idle_cpu_per_node_pct']}% per node), "
            f"gossip out {row['gossip_sent_bytes_per_s']} B/s, in {row['gossip_received_bytes_per_s']} "
            f"B/s per node, RSS {row['rss_mib_per_node']} MiB; wake-ups/s per node by cause "
            f"{row.get('wakeups_per_s')}"
        )

        victim = names[len(names) // 2]
        others = [n for n in names if n != victim]
        os.kill(cluster.pid(victim), signal.SIGKILL)
        cluster.procs[victim].wait(timeout=10)
        row["kill_seen_down_s"] = round(
            views.wait(others, lambda v: v.get(victim) == "down", args.timeout, f"{victim} down"), 2
        )
        cluster.start(victim, wait=False)
        row["restart_seen_up_s"] = round(
            views.wait(names, lambda v: v.get(victim) == "up", args.timeout, f"{victim} up"), 2
        )
        say and say(f"kill seen down in {row['kill_seen_down_s']} s, back up in {row['restart_seen_up_s']} s")

        with cluster.client(timeout=5.0) as client:
            client.put("warm", b"x", consistency="quorum")
            t = time.monotonic()
            for i in range(args.ops):
                client.put(f"k{i}", b"v" * 100, consistency="quorum")
            row["quorum_puts_per_s"] = round(args.ops / (time.monotonic() - t))
            t = time.monotonic()
            for i in range(args.ops):
                got = client.get(f"k{i}", consistency="quorum")
                if got.value != b"v" * 100:
                    raise AssertionError(f"k{i} read back {got.value!r}")
            row["quorum_gets_per_s"] = round(args.ops / (time.monotonic() - t))
        failures = []
        for n in names:  # through each node: a client that knows only that one
            try:
                with Client([cluster.addresses[n]], timeout=5.0) as one:
                    one.put(f"via-{n}", n.encode(), consistency="quorum")
                    if one.get(f"via-{n}", consistency="quorum").value != n.encode():
                        failures.append(n)
            except ZkvError as exc:
                failures.append(f"{n} ({exc})")
        row["through_each_node_failed"] = failures
        say and say(
            f"{row['quorum_puts_per_s']} puts/s, {row['quorum_gets_per_s']} gets/s; "
            f"through each node: {failures or 'ok'}"
        )
        return row
    finally:
        if views is not None:
            views.close()
        killed = cluster.close()
        if killed:
            print(f"  [{k}] had to SIGKILL: {killed}", file=sys.stderr)


TABLE = [
    ("nodes", "nodes", "{}"),
    ("converge_s", "all up after (s)", "{}"),
    ("idle_cpu_total_pct", "idle CPU, all (% of a core)", "{}"),
    ("idle_cpu_per_node_pct", "per node (%)", "{}"),
    ("gossip_sent_bytes_per_s", "gossip out B/s/node", "{:.0f}"),
    ("gossip_received_bytes_per_s", "gossip in B/s/node", "{:.0f}"),
    ("gossip_received_per_s", "msgs in/s/node", "{:.0f}"),
    ("rss_mib_per_node", "RSS/node (MiB)", "{}"),
    ("sockets_per_node", "sockets/node", "{}"),
    ("sockets_checked_per_poll", "checked/poll", "{}"),
    ("polls_per_s_per_node", "polls/s/node", "{}"),
    ("kill_seen_down_s", "kill seen down (s)", "{}"),
    ("restart_seen_up_s", "restart seen up (s)", "{}"),
    ("quorum_puts_per_s", "quorum puts/s", "{}"),
    ("quorum_gets_per_s", "quorum gets/s", "{}"),
]


def render(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (docs/scale.md)."""
    lines = ["| " + " | ".join(title for _, title, _ in TABLE) + " |", "|" + "---|" * len(TABLE)]
    for row in rows:
        cells = []
        for key, _, fmt in TABLE:
            value = row.get(key)
            cells.append("?" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="10,40", help="comma-separated cluster sizes (default 10,40)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after converging")
    parser.add_argument("--ops", type=int, default=300, help="sequential puts (then gets) per size")
    parser.add_argument("--timeout", type=float, default=180.0, help="bound on each wait (s)")
    parser.add_argument("--base-port", type=int, help="ports from here up, 3 per node (default: free ones)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep the clusters' files here (default: a temp dir)")
    parser.add_argument("--quiet", action="store_true", help="only the table")
    args = parser.parse_args(argv)
    try:
        sizes = [int(x) for x in args.nodes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--nodes wants numbers like 10,40,80: got {args.nodes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--nodes wants sizes of at least 1")
    limit = raise_open_files(max(sizes))
    if not args.quiet:
        load = os.getloadavg()[0]
        print(f"open-file limit {limit}; {os.cpu_count()} CPUs; load {load:.2f}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="zkv-scale-") as tmp:
        root = args.workdir or Path(tmp)
        for k in sizes:
            try:
                rows.append(measure(k, args, root))
            except (TimeoutError, AssertionError, RuntimeError, ZkvError) as exc:
                print(f"{k} nodes: {exc}", file=sys.stderr)
                rows.append({"nodes": k, "error": str(exc)})
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
