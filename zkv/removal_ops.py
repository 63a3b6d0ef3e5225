"""``zkv-node removenode`` and ``zkv-node cleanup``: ring maintenance after a node is lost or added.

``removenode NAME`` asks a live node to remove ``NAME``, a member gone for good; the decision and the
re-replication are the core's (:mod:`zkv.core.removal`); this command waits until every live node has
pulled the ranges it gained, printing progress. Exit 0 done; 1 the cluster could not do it (no node
answers, not done within ``--timeout``); 2 bad input (an unknown name, a live node, the last node).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from zkv.config import load_config
from zkv.errors import InvalidRequest, UnknownNode, ZkvError
from zkv.operations import Fail, _client, _config_arg, _node_scope_args, _on_each_node, _run


def main_removenode(argv: list[str]) -> int:
    return _run("zkv-node removenode", _removenode, argv)


def _removenode(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node removenode",
        description="Remove NAME, a node gone for good (it must be down): the others take its ranges and "
        "copy them from the surviving replicas until every key is back at N copies. Waits for that "
        "unless --no-wait. A removed node that comes back is refused: it must join anew (--join).",
    )
    parser.add_argument("name", metavar="NAME", help="the member to remove")
    _config_arg(parser)
    parser.add_argument("--via", metavar="NODE", help="the live node to ask (default: the first answering)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    parser.add_argument("--no-wait", action="store_true", help="only ask; do not wait for re-replication")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    others = [n for n in config.node_names if n != args.name]
    if args.name in config.node_names and not others:
        raise Fail(2, f"{args.name} is the last node of the cluster: removing it would leave no replica")
    started = time.monotonic()
    with _client(args, 5.0) as client:
        asked = [args.via] if args.via else others
        reply: dict[str, Any] | None = None
        for name in asked:
            try:
                reply = client.removenode(config.node(name).address, args.name)
                break
            except (InvalidRequest, UnknownNode) as exc:
                raise Fail(2, str(exc).split("\n")[0]) from None
            except ZkvError:
                continue
        if reply is None:
            raise Fail(1, f"no node took the request ({', '.join(asked) or 'none configured'} unreachable)")
        if reply.get("already"):
            print(f"{args.name} was removed already (seen by {reply.get('node')})")
        else:
            print(
                f"{args.name} removed (decided by {reply.get('node')}); re-replicating its ranges", flush=True
            )
        if args.no_wait:
            return 0
        _wait_rereplicated(client, config, args.name, others, args.timeout)
    print(f"{args.name}'s ranges are back at full replication; done in {time.monotonic() - started:.1f}s")
    return 0


def _wait_rereplicated(client: Any, config: Any, removed: str, nodes: list[str], timeout: float) -> None:
    """Until every node has heard of the removal and pulled what it gained; progress lines meanwhile."""
    deadline = time.monotonic() + timeout
    pending = set(nodes)
    shown: dict[str, str] = {}
    while pending:
        for name in sorted(pending):
            address = config.node(name).address
            try:
                heard = {n.name: n.status for n in client.nodes(address)}.get(removed) == "removed"
                progress = client.status(address).transfer.removal.get(removed)
            except ZkvError:
                continue
            if not heard:
                line = "has not heard of the removal yet"
            elif progress is None or progress.get("done"):
                got = 0 if progress is None else progress.get("keys_received", 0)
                line = f"done: {got} keys pulled"
                pending.discard(name)
            else:
                line = (
                    f"{progress.get('sources_left')} sources left, {progress.get('keys_received')} keys "
                    f"pulled, {progress.get('keys_left')} keys left to scan"
                )
            if shown.get(name) != line:
                shown[name] = line
                print(f"{name}: {line}", flush=True)
        if pending and time.monotonic() >= deadline:
            raise Fail(
                1, f"re-replication not done after {timeout:.0f}s: {', '.join(sorted(pending))} still going"
            )
        if pending:
            time.sleep(0.3)


def main_cleanup(argv: list[str]) -> int:
    return _run("zkv-node cleanup", _cleanup, argv)


def _cleanup(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node cleanup",
        description="Drop the keys a node no longer replicates (after joins), each only once every one "
        "of its owners is known to hold it. Prints the keys and bytes freed per node; exit 1 when some "
        "keys had to stay (an owner did not answer): run it again.",
    )
    _config_arg(parser)
    _node_scope_args(parser)
    args = parser.parse_args(argv)
    kept = 0

    def progress(client: Any, address: str) -> tuple[str | None, bool]:
        nonlocal kept
        status = client.status(address)
        run = status.transfer.cleanup
        if run is None or not run.get("done"):
            return None, False
        kept += run["kept"]
        line = (
            f"{run['dropped']} keys dropped ({run['bytes_freed']} bytes), {run['kept']} kept "
            f"(an owner did not confirm them); {status.keys} keys left"
        )
        return line, True

    names, took = _on_each_node(args, "cleanup", lambda c, a: c.cleanup(a), progress)
    if kept:
        raise Fail(1, f"{kept} keys stayed: an owner did not confirm them (down or behind); run it again")
    print(f"cleanup of {len(names)} node(s) done in {took:.1f}s")
    return 0
