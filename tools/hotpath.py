#!/usr/bin/env python3
"""The Python work of one request, without ZeroMQ: three node cores in one process.

tools/bench.py measures a real cluster, where the machine's other work and the ZeroMQ wake-ups move
the numbers by up to 2x from run to run. This tool measures only what the nodes' Python does per
request, repeatably: three ``NodeCore`` objects (with real stores) exchange their messages through
msgpack and the node-message schema check as the runtime does, a loop turn per node at a time, with
``--batch`` client requests per round (what a node sees at that many requests in flight). It prints
the CPU time per request over all three nodes, the best of five slices.

Under ``valgrind --tool=callgrind`` the instruction count is exact and the same on every run, which
is how docs/performance.md compares two versions of the hot path (see "Measuring the Python work").
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import random
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.turnplan import plan_turn
from zkv.node.runtime import PEER_MESSAGE_OPS
from zkv.protocol import check_node_message, pack, unpack_frame
from zkv.storage import open_store
from zkv.storage.hints import open_hints

NOW = 1000.0  # time stands still: no deadline or timer fires while the requests run
CLIENT = b"client"


class Cluster:
    """Three cores wired together in memory; :meth:`run` carries every message to its destination."""

    def __init__(self, engine: str, data_dir: str) -> None:
        members = {f"n{i}": (f"tcp://127.0.0.1:{7000 + i}", f"tcp://127.0.0.1:{8000 + i}") for i in (1, 2, 3)}
        self.cores: dict[str, NodeCore] = {}
        for name in members:
            store = open_store(engine, f"{data_dir}/{name}", "never", 100)
            hints = open_hints(engine, f"{data_dir}/{name}", "never", 100)
            settings = NodeSettings(name=name, actor=f"{name}~1", members=members)
            self.cores[name] = NodeCore(settings, store, NOW, hints=hints, rng=random.Random(1))
        for core in self.cores.values():  # every node hears every other: all up
            heartbeat = unpack_frame(pack(core.membership.make_heartbeat(NOW, 0)))[0]
            for other in self.cores.values():
                if other is not core:
                    other.on_connection(core.name, True, NOW)
                    other.on_heartbeat(heartbeat, NOW)
        for core in self.cores.values():
            core.take_effects()
        self.ring = self.cores["n1"].ring
        self.peer_routes = {name.encode(): name for name in members}
        self.answers = 0
        self.errors = 0

    def run(self, requests: list[dict[str, Any]]) -> None:
        """Hand each request to its key's first replica and run turns until every node is idle."""
        inbox: dict[str, list[tuple[bool, Any, bytes]]] = defaultdict(list)
        for msg in requests:
            coordinator = self.ring.preference_list(msg["key"])[0]
            inbox[coordinator].append((True, CLIENT, pack(msg)))
        while inbox:
            inbox = self._turn(inbox)

    def _turn(self, inbox: dict[str, list[tuple[bool, Any, bytes]]]) -> dict[str, list]:
        out: dict[str, list[tuple[bool, Any, bytes]]] = defaultdict(list)
        for name, frames in inbox.items():
            core = self.cores[name]
            for from_client, sender, payload in frames:
                for msg in unpack_frame(payload):
                    if from_client:
                        core.on_client(sender, msg, NOW)
                    else:
                        check_node_message(msg, PEER_MESSAGE_OPS)
                        core.on_peer(sender, msg, NOW)
            core.on_tick(NOW)
            plan = plan_turn(core.take_effects(), core.store.needs_flush(), self.peer_routes)
            for peer, msgs in plan.before.items():
                out[peer].append((False, name, pack(msgs if len(msgs) > 1 else msgs[0])))
            core.store.flush()
            for route, msgs in [*plan.early.items(), *plan.after.items()]:
                payload = pack(msgs if len(msgs) > 1 else msgs[0])
                if route == CLIENT:
                    for reply in unpack_frame(payload):
                        self.answers += 1
                        self.errors += not reply.get("ok")
                else:
                    out[route.decode()].append((False, name, payload))
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--op", choices=("put", "get"), default="put")
    parser.add_argument("--consistency", choices=("one", "quorum", "all"), default="quorum")
    parser.add_argument("--engine", choices=("memory", "log"), default="memory")
    parser.add_argument("--requests", type=int, default=20000, help="measured requests (default: 20000)")
    parser.add_argument("--keys", type=int, default=10000, help="distinct keys, each written once first")
    parser.add_argument("--batch", type=int, default=64, help="client requests per round (default: 64)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the measured requests")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="zkv-hotpath-") as data_dir:
        cluster = Cluster(args.engine, data_dir)
        keys = [f"key{i:08d}".encode() for i in range(args.keys)]
        ids = itertools.count(1)
        value = b"x" * 100

        def request(key: bytes) -> dict[str, Any]:
            msg = {"op": args.op, "id": next(ids), "key": key, "level": args.consistency}
            if args.op == "put":
                # the context of the key's last write, as a client that reads first sends: one version
                state = cluster.cores[cluster.ring.preference_list(key)[0]].store.get(key)
                msg["value"] = value
                if state is not None:
                    msg["ctx"] = state.context()
            return msg

        def run(count: int) -> None:
            for start in range(0, count, args.batch):
                cluster.run(
                    [request(keys[(start + i) % len(keys)]) for i in range(min(args.batch, count - start))]
                )

        load = [{"op": "put", "id": next(ids), "key": k, "value": value, "level": "all"} for k in keys]
        for start in range(0, len(load), args.batch):
            cluster.run(load[start : start + args.batch])
        cluster.answers = cluster.errors = 0
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(run, args.requests)
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
            return 0
        slices = [args.requests // 5] * 5
        best = float("inf")
        for count in slices:
            started = time.process_time()
            run(count)
            best = min(best, (time.process_time() - started) / count)
        print(
            f"{args.op} {args.consistency} engine={args.engine}: {best * 1e6:.1f} us of CPU per request "
            f"(3 nodes, no ZeroMQ; best of 5 slices of {slices[0]}), {cluster.answers} answered, "
            f"{cluster.errors} errors"
        )
        return 1 if cluster.errors or cluster.answers != sum(slices) else 0


if __name__ == "__main__":
    sys.exit(main())
