"""The chaos test on a real network: nodes in network namespaces, partitions made with nftables.

:mod:`zkv.testing.chaos` cuts links with the nodes' own fault filter; here the kernel does it, as in a real
deployment: TCP connections hang instead of closing, gossip and requests are lost alike, and nothing in
zkv knows that a test is running. Linux and root only.

The lab (:class:`NetnsLab`): a hub namespace holding a bridge, one namespace per node and one for the
clients, each joined to the bridge by a veth pair and given an address in 10.213.0.0/24. Nothing is
created in the host's own namespace, so no packet can leave the lab; :meth:`NetnsLab.destroy` ends every
process left in it (by PID) and deletes the namespaces, which takes the links and rules with them.

Each node namespace has an nftables table ``zkvchaos`` with a set ``cut`` of peer addresses it drops both
ways. The fault shapes (Jepsen's): **isolate** one node; **halves** (2 | 3); **bridge** (two halves that
only one node sees both of); **ring** of majorities (each node sees its two neighbours: every node sees a
majority, no two the same one); and **kill** -9 with a restart.

The run itself (:func:`run_netns_schedule`) happens inside the client namespace (a child process started
with ``ip netns exec``): the cluster, the client workloads of :mod:`zkv.testing.workload`, the faults,
the heal, convergence, the final read and the checks of :mod:`zkv.testing.history`, plus the
**stale-read** check (:func:`zkv.testing.workload.stale_reads`): a quorum read that misses an element
whose quorum write was acknowledged before the read began.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from zkv.client import Client
from zkv.errors import ZkvError
from zkv.testing.chaos import _converge, performer
from zkv.testing.history import Op, Report
from zkv.testing.localcluster import LocalCluster, wait_until
from zkv.testing.workload import check_final, client_steps, drive, stale_reads, workload_keys

SUBNET = "10.213.0"
CLIENT_IP = f"{SUBNET}.2"
SHAPES = ("isolate", "halves", "bridge", "ring", "kill")
TABLE = """
table inet zkvchaos {
    set cut { type ipv4_addr; }
    chain input { type filter hook input priority 0; policy accept; ip saddr @cut drop; }
    chain output { type filter hook output priority 0; policy accept; ip daddr @cut drop; }
}
"""


def supported() -> str | None:
    """Why the lab cannot run here (None when it can)."""
    if sys.platform != "linux":
        return "needs Linux network namespaces"
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"needs {tool} (apt install {'iproute2' if tool == 'ip' else 'nftables'})"
    return None


def _run(*cmd: str, stdin: str | None = None) -> None:
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")


class NetnsLab:
    """Namespaces, bridge, veths and nft tables for ``nodes`` nodes and one client namespace."""

    def __init__(self, nodes: int, tag: str | None = None) -> None:
        tag = tag or f"zkv{os.getpid() % 100000}"
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.hub = f"{tag}hub"
        self.client = f"{tag}c"
        self.ns = {name: f"{tag}{name}" for name in self.names}
        self.ips = {name: f"{SUBNET}.{10 + i}" for i, name in enumerate(self.names)}
        self._made: list[str] = []

    def create(self) -> NetnsLab:
        try:
            self._add(self.hub)
            _run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
            _run("ip", "-n", self.hub, "link", "set", "br0", "up")
            hosts = [(self.client, CLIENT_IP)] + [(self.ns[n], self.ips[n]) for n in self.names]
            for i, (ns, ip) in enumerate(hosts):
                self._add(ns)
                port = f"p{i}"  # the hub's end; the namespace's end is its eth0
                _run("ip", "-n", self.hub, "link", "add", port, "type", "veth", "peer", "eth0", "netns", ns)
                _run("ip", "-n", self.hub, "link", "set", port, "master", "br0", "up")
                _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
                _run("ip", "-n", ns, "link", "set", "eth0", "up")
            for name in self.names:
                _run("ip", "netns", "exec", self.ns[name], "nft", "-f", "-", stdin=TABLE)
        except BaseException:
            self.destroy()
            raise
        return self

    def _add(self, ns: str) -> None:
        _run("ip", "netns", "add", ns)
        self._made.append(ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")

    def wrapper(self, name: str) -> list[str]:
        """The command prefix that runs a process in ``name``'s namespace (exec, so its PID is kept)."""
        return ["ip", "netns", "exec", self.ns[name]]

    def cut(self, node: str, peers: list[str]) -> None:
        """``node`` drops everything from and to ``peers`` (replacing what it dropped before)."""
        cmds = "flush set inet zkvchaos cut\n"
        if peers:
            cmds += f"add element inet zkvchaos cut {{ {', '.join(self.ips[p] for p in peers)} }}\n"
        _run("ip", "netns", "exec", self.ns[node], "nft", "-f", "-", stdin=cmds)

    def partition(self, sees: dict[str, set[str]]) -> None:
        """Each node keeps only the links to the peers it ``sees`` (made symmetric by the caller)."""
        for node in self.names:
            self.cut(node, [p for p in self.names if p != node and p not in sees.get(node, set())])

    def heal(self) -> None:
        for node in self.names:
            self.cut(node, [])

    def destroy(self) -> None:
        """End every process still in the lab (by PID), then delete its namespaces."""
        for ns in reversed(self._made):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()

    def __enter__(self) -> NetnsLab:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def shape(kind: str, names: list[str], rng: random.Random) -> dict[str, set[str]]:
    """Who sees whom under a partition of ``kind`` (each node sees itself implicitly)."""
    order = rng.sample(names, len(names))
    everyone = set(names)
    if kind == "isolate":
        alone = order[0]
        return {n: (set() if n == alone else everyone - {alone}) for n in names}
    if kind == "halves":
        left = set(order[: len(names) // 2])
        return {n: (left if n in left else everyone - left) for n in names}
    if kind == "bridge":
        bridge, rest = order[0], order[1:]
        left, right = set(rest[: len(rest) // 2]), set(rest[len(rest) // 2 :])
        sees = {n: left | {bridge} for n in left} | {n: right | {bridge} for n in right}
        sees[bridge] = everyone
        return sees
    if kind == "ring":
        count = len(order)
        return {n: {order[(i - 1) % count], order[(i + 1) % count]} for i, n in enumerate(order)}
    raise ValueError(f"unknown partition shape {kind!r}")


class NetFaultPlayer:
    """Seeded faults on the lab: a partition shape or a kill -9, then the heal (and the restart)."""

    def __init__(self, lab: NetnsLab, cluster: LocalCluster, rng: random.Random) -> None:
        self.lab, self.cluster, self.rng = lab, cluster, rng
        self.counts: Counter = Counter()
        self._killed: list[str] = []

    def inject(self, kind: str | None = None) -> str:
        kind = kind or self.rng.choice(SHAPES)
        if kind == "kill":
            node = self.rng.choice(self.lab.names)
            self.cluster.kill(node)
            self._killed.append(node)
        else:
            self.lab.partition(shape(kind, self.lab.names, self.rng))
        self.counts[kind] += 1
        return kind

    def heal(self) -> None:
        self.lab.heal()
        for node in self._killed:
            self.cluster.start(node, wait=False)
        self._killed.clear()


def pinned_worker(task: tuple[str, str, float, int]) -> list[Op]:
    """One client process bound to one node, as Jepsen's clients are: every request goes to that node,
    which coordinates it or forwards it, so reads and writes of a key are coordinated from all sides of a
    partition (a client that always reaches the key's first replica reads through the node that wrote)."""
    name, address, seconds, seed = task
    ops: list[Op] = []
    with Client([address], timeout=2.5, pinned=True) as client:
        end = time.monotonic() + seconds
        steps = client_steps(name, random.Random(seed), time.monotonic, lambda: time.monotonic() < end, ops)
        drive(steps, performer(client))
    return ops


def counter_worker(task: tuple[str, str, list[str], float]) -> tuple[list[tuple], list[tuple]]:
    """Quorum writes of increasing numbers to this worker's own key (after a read at ``one``), each
    followed by a quorum read of another worker's key, through one node.

    The set workload reads at its write's consistency first, so a quorum write happens only where a quorum
    read could: where W primaries are reachable, and a sloppy quorum never needs a fallback. A writer
    that does not read at quorum first is what meets a partition with only fallbacks to count. Returns
    ``(writes, reads)``: ``(key, n, invoked, completed, ok)`` and ``(key, invoked, highest n seen)``.
    """
    me, address, others, seconds = task
    writes: list[tuple] = []
    reads: list[tuple] = []
    with Client([address], timeout=2.5, pinned=True) as client:
        end, n, turn = time.monotonic() + seconds, 0, 0
        while time.monotonic() < end:
            n += 1
            started = time.monotonic()
            try:
                # the context of a read at `one` (which any live replica can serve) keeps the key to one
                # value; the quorum write then needs W nodes, fallbacks included when quorums are sloppy
                mine = client.get(me, consistency="one")
                client.put(me, str(n), consistency="quorum", context=mine)
                writes.append((me, n, started, time.monotonic(), True))
            except ZkvError as exc:
                writes.append((me, n, started, time.monotonic(), False, exc.code))
            key = others[turn % len(others)]
            turn += 1
            started = time.monotonic()
            try:
                got = client.get(key, consistency="quorum")
            except ZkvError:
                continue
            reads.append((key, started, max((int(v) for v in got.values), default=0)))
    return writes, reads


def stale_counter_reads(writes: list[tuple], reads: list[tuple]) -> tuple[int, int]:
    """(reads, stale reads): a read is stale when it saw less than a number acknowledged before it began."""
    acked: dict[str, list[tuple[float, int]]] = {}
    for key, n, _, completed, ok, *_ in writes:
        if ok:
            acked.setdefault(key, []).append((completed, n))
    stale = 0
    for key, invoked, seen in reads:
        before = [n for completed, n in acked.get(key, []) if completed < invoked]
        if before and seen < max(before):
            stale += 1
    return len(reads), stale


def _inside(args: argparse.Namespace) -> dict[str, Any]:
    """The run, inside the client namespace (the lab is made by the caller; see the module doc)."""
    lab = NetnsLab(args.nodes, args.tag)
    rng = random.Random(args.seed)
    cluster = LocalCluster(
        Path(args.workdir),
        args.nodes,
        hosts=lab.ips,
        engine="log",
        anti_entropy_interval_ms=2000,  # handoff and anti-entropy near their defaults: hints take a while
        request_timeout_ms=1000,
        heartbeat_interval_ms=100,
        failure_timeout_ms=1500,
        **({"sloppy_quorum": False} if args.strict else {}),
    )
    for name in lab.names:
        cluster.wrappers[name] = lab.wrapper(name)
    report = Report()
    result: dict[str, Any] = {"seed": args.seed, "strict": args.strict}
    try:
        cluster.start()
        addresses = [cluster.addresses[n] for n in lab.names]
        tasks = [
            (f"c{i}", addresses[i % len(addresses)], args.seconds, args.seed * 1000 + i)
            for i in range(args.clients)
        ]
        counters = [f"count-{n}" for n in lab.names[-3:]]  # three blind writers, bound to the last nodes
        counter_tasks = [
            (key, cluster.addresses[n], [k for k in counters if k != key], args.seconds)
            for key, n in zip(counters, lab.names[-3:], strict=True)
        ]
        with multiprocessing.get_context("spawn").Pool(args.clients + len(counter_tasks)) as pool:
            pending = pool.map_async(pinned_worker, tasks)
            counting = pool.map_async(counter_worker, counter_tasks)
            player = NetFaultPlayer(lab, cluster, rng)
            end = time.monotonic() + args.seconds
            kinds = list(SHAPES)  # every shape at least once, then at random
            rng.shuffle(kinds)
            while time.monotonic() < end - 1.5:
                player.inject(kinds.pop() if kinds else None)
                time.sleep(rng.uniform(1.5, 4.0))  # past failure detection (1.5 s): fallbacks take writes
                player.heal()
                time.sleep(rng.uniform(0.3, 1.0))
            histories = pending.get(timeout=args.seconds + 120)
            counted = counting.get(timeout=120)
        player.heal()
        cluster.wait_ready()
        ops = [op for history in histories for op in history]
        keys = workload_keys(f"c{i}" for i in range(args.clients))
        converge_s, diverged = _converge(cluster, keys)
        with cluster.client(timeout=3.0) as c:
            # connections that hung through a partition may take a moment: each key gets a few tries
            def read_all(key: str) -> list[Any]:
                return [c.get(key, consistency="all")]

            final = {
                key: wait_until(functools.partial(read_all, key), 20, f"{key} at all")[0].values
                for key in keys
            }
            statuses = [c.status(name) for name in cluster.names]
        hints = sum(s.hints.delivered if s.hints is not None else 0 for s in statuses)
        report.merge(check_final(ops, final))
        checked, stale = stale_reads(ops, "quorum")
        blind_reads, blind_stale = stale_counter_reads(
            [w for ws, _ in counted for w in ws], [r for _, rs in counted for r in rs]
        )
        result.update(
            ops=report.ops,
            acknowledged=report.acknowledged,
            lost=report.lost[:10],
            phantom=report.phantom[:10],
            resurrected=report.resurrected[:10],
            lost_count=len(report.lost),
            phantom_count=len(report.phantom),
            resurrected_count=len(report.resurrected),
            converge_s=round(converge_s, 2),
            diverged=diverged,
            quorum_reads=checked,
            stale_quorum_reads=len(stale),
            stale_examples=stale[:5],
            blind_writes_acked=sum(1 for ws, _ in counted for w in ws if w[4]),
            blind_write_errors=dict(Counter(w[5] for ws, _ in counted for w in ws if not w[4])),
            blind_quorum_reads=blind_reads,
            stale_blind_quorum_reads=blind_stale,
            faults=dict(player.counts),
            hints_delivered=hints,  # writes a fallback (or the coordinator) kept for a primary it missed
        )
    finally:
        cluster.close()
    return result


def run_netns_schedule(
    workdir: Path, seed: int, seconds: float, strict: bool = True, clients: int = 4, nodes: int = 5
) -> dict[str, Any]:
    """Make the lab, run one schedule inside it, tear the lab down; the run's figures (a dict)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with NetnsLab(nodes) as lab:
        tag = lab.hub[: -len("hub")]
        cmd = [*["ip", "netns", "exec", lab.client], sys.executable, "-m", "zkv.testing.netchaos", "--inside"]
        cmd += ["--workdir", str(workdir), "--seed", str(seed), "--seconds", str(seconds)]
        cmd += ["--clients", str(clients), "--nodes", str(nodes), "--tag", tag]
        cmd += ["--strict"] if strict else []
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 240)
        if done.returncode != 0:
            raise RuntimeError(f"the run inside the lab failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one netns chaos schedule (run by run_netns_schedule)")
    parser.add_argument("--inside", action="store_true", help="run inside the client namespace")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--strict", action="store_true", help="sloppy_quorum = false")
    args = parser.parse_args(argv)
    if args.inside:
        print(json.dumps(_inside(args)))
    else:
        print(json.dumps(run_netns_schedule(Path(args.workdir), args.seed, args.seconds, args.strict)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
