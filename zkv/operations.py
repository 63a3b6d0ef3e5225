"""Day-2 commands of ``zkv-node``: ``snapshot``, ``verify``, ``restore`` (docs/operations.md).

Each is ``main_NAME(argv) -> exit status``: 0 done, 1 the cluster failed the request (a node down...),
2 bad input (arguments, a non-empty or read-only folder, a damaged snapshot), with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zkv.config import ClusterConfig, load_config
from zkv.errors import ConfigError, InvalidRequest, ZkvError
from zkv.storage.records import write_atomic
from zkv.storage.snapshot import (
    CLUSTER_MANIFEST,
    MANIFEST,
    SnapshotError,
    already_restored,
    check_target,
    restore_files,
    verify,
)

if TYPE_CHECKING:
    from zkv.client import Client  # the commands import it lazily: they start fast

DEFAULT_CONFIG = "cluster.toml"
SNAPSHOT_TIMEOUT_S = 120.0


class Fail(Exception):
    """Stop the command: ``status`` and one line for stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _run(prog: str, body: Any, argv: list[str]) -> int:
    try:
        return body(argv)
    except Fail as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.status
    except (ConfigError, SnapshotError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=os.environ.get("ZKV_CONFIG", DEFAULT_CONFIG))
    parser.add_argument("--key", metavar="FILE", help="with CURVE: an admin's secret key file")


def _client(args: argparse.Namespace, timeout: float) -> Any:
    from zkv.client import Client

    return Client.from_config(args.config, key_file=args.key, timeout=timeout, pinned=True)


# ---------------------------------------------------------------------------------------------- snapshot


def main_snapshot(argv: list[str]) -> int:
    return _run("zkv-node snapshot", _snapshot, argv)


def _snapshot(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node snapshot",
        description="Snapshot running nodes without stopping them: each seals its active segment and "
        "hard-links its segments into the folder, with a manifest (keys, bytes, CRC32s, Merkle root). "
        "Without --node: every node of the file, into OUT/NODE, plus OUT/cluster.json. The nodes must "
        "run on this machine (the folder is theirs to write).",
    )
    _config_arg(parser)
    parser.add_argument("--node", metavar="NAME", help="only this node (its snapshot goes into OUT itself)")
    parser.add_argument("--out", metavar="DIR", required=True, help="a new or empty folder")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    names = [config.node(args.node).name] if args.node else list(config.node_names)
    out = Path(os.path.abspath(args.out))
    check_target(out)
    started = time.monotonic()
    manifests: dict[str, dict[str, Any]] = {}
    with _client(args, SNAPSHOT_TIMEOUT_S) as client:
        for name in names:
            folder = out if args.node else out / name
            try:
                manifests[name] = client.snapshot(config.node(name).address, str(folder))
            except InvalidRequest as exc:
                raise Fail(2, f"{name}: {exc}") from None
            except ZkvError as exc:
                raise Fail(1, f"{name} did not take the snapshot: {exc}") from None
            m = manifests[name]
            print(f"{name}: {m['keys']} keys, {m['bytes']} bytes, merkle root {m['merkle_root']} -> {folder}")
    if not args.node:
        cluster = {
            "format": "zkv-cluster-snapshot-1",
            "cluster": config.name,
            "replication_factor": config.replication_factor,
            "taken_at": time.time(),
            "nodes": {
                name: {k: m[k] for k in ("keys", "bytes", "merkle_root", "taken_at")}
                for name, m in manifests.items()
            },
        }
        write_atomic(out / CLUSTER_MANIFEST, json.dumps(cluster, indent=1).encode() + b"\n")
    print(f"snapshot of {len(names)} node(s) in {time.monotonic() - started:.2f}s")
    return 0


# ---------------------------------------------------------------------------------------------- verify


def main_verify(argv: list[str]) -> int:
    return _run("zkv-node verify", _verify, argv)


def _node_folders(folder: Path) -> dict[str, Path]:
    """The node snapshots in ``folder``: itself (a node snapshot) or the nodes of a cluster snapshot."""
    if (folder / MANIFEST).exists():
        return {str(json.loads((folder / MANIFEST).read_text()).get("node", "?")): folder}
    path = folder / CLUSTER_MANIFEST
    try:
        cluster = json.loads(path.read_text())
        return {str(name): folder / str(name) for name in cluster["nodes"]}
    except FileNotFoundError:
        raise SnapshotError(f"{folder} holds neither {MANIFEST} nor {CLUSTER_MANIFEST}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{path} is unreadable or damaged: {exc}") from None


def _verify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node verify",
        description="Check a snapshot against its manifest: every file's size and CRC32, then the key "
        "count, bytes and Merkle root recomputed from the records. Exit 2 on the first problem.",
    )
    parser.add_argument("dir", metavar="DIR", help="a node snapshot, or a cluster snapshot's folder")
    args = parser.parse_args(argv)
    for name, folder in _node_folders(Path(args.dir)).items():
        started = time.monotonic()
        m = verify(folder)
        took = time.monotonic() - started
        print(
            f"{name}: ok, {m['keys']} keys, {m['bytes']} bytes, merkle root {m['merkle_root']} ({took:.2f}s)"
        )
    return 0


# ---------------------------------------------------------------------------------------------- restore


def main_restore(argv: list[str]) -> int:
    return _run("zkv-node restore", _restore, argv)


def _restore(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node restore",
        description="Restore a snapshot into stopped nodes whose data_dir is empty or absent: each "
        "node's snapshot is verified, copied beside its data_dir and renamed into place (an interrupted "
        "restore leaves the data_dir as it was; run it again). A cluster snapshot restores every node "
        "it names (or --node). Start the nodes afterwards.",
    )
    _config_arg(parser)
    parser.add_argument("--from", dest="source", metavar="DIR", required=True, help="the snapshot folder")
    parser.add_argument("--node", metavar="NAME", help="only this node")
    parser.add_argument(
        "--live",
        action="store_true",
        help="restore into the running cluster instead: every key's state is merged into its replicas "
        "like a repair, so versions written since the snapshot win and nothing newer is overwritten "
        "(safe to run again after an interruption)",
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    folders = _node_folders(Path(args.source))
    if args.live:
        return _restore_live(args, config, folders)
    if args.node:
        config.node(args.node)
        if args.node in folders:
            folders = {args.node: folders[args.node]}
        elif len(folders) == 1:  # a node snapshot restored into another node of the same name set
            folders = {args.node: next(iter(folders.values()))}
        else:
            raise Fail(2, f"{args.source} holds no snapshot of {args.node} (it has {', '.join(folders)})")
    for name in [n for n, folder in folders.items() if already_restored(folder, config.node(n).data_dir)]:
        # a restore run again after an interruption: this node's copy was complete and is untouched
        print(f"{name}: restored already from this snapshot ({config.node(name).data_dir})")
        del folders[name]
    _check_targets(config, folders)
    for name, folder in folders.items():
        started = time.monotonic()
        copied = restore_files(folder, config.node(name).data_dir)
        took = time.monotonic() - started
        print(f"{name}: restored {copied} bytes into {config.node(name).data_dir} ({took:.2f}s)")
    return 0


LIVE_BATCH_ITEMS = 500
LIVE_BATCH_BYTES = 1 << 20


def _restore_live(args: argparse.Namespace, config: ClusterConfig, folders: dict[str, Path]) -> int:
    """Merge every state of the snapshots into the running cluster, in batches, through its nodes."""
    from zkv.core.versions import merge, state_to_wire, wire_size
    from zkv.storage.snapshot import read_states

    if args.node:
        folders = {n: f for n, f in folders.items() if n == args.node} or folders
    for folder in folders.values():
        verify(folder)
    states: dict[bytes, Any] = {}
    for folder in folders.values():  # one state per key: the replicas' snapshots merged
        for key, state in read_states(folder):
            old = states.get(key)
            states[key] = state if old is None else merge(old, state)
    started = time.monotonic()
    addresses = [spec.address for spec in config.nodes]
    sent, turn = 0, 0
    with _client(args, 10.0) as client:
        batch: list[list[Any]] = []
        size = 0
        items = iter(states.items())
        while True:
            item = next(items, None)
            if item is not None:
                batch.append([item[0], state_to_wire(item[1])])
                size += wire_size(item[1]) + len(item[0])
            if batch and (item is None or len(batch) >= LIVE_BATCH_ITEMS or size >= LIVE_BATCH_BYTES):
                for attempt in range(len(addresses)):
                    address = addresses[(turn + attempt) % len(addresses)]
                    try:
                        client.merge_states(address, batch)
                        break
                    except ZkvError as exc:
                        error = exc
                else:
                    raise Fail(1, f"no node took the states ({error}); {sent} of {len(states)} merged so far")
                turn += 1
                sent += len(batch)
                batch, size = [], 0
                if sent % 10_000 < LIVE_BATCH_ITEMS or item is None:
                    print(f"{sent}/{len(states)} keys merged", flush=True)
            if item is None:
                break
    print(f"live restore of {sent} keys in {time.monotonic() - started:.1f}s (newer versions kept)")
    return 0


def _check_targets(config: ClusterConfig, folders: dict[str, Path]) -> None:
    """Every node to restore is in the file and has an empty data_dir (so it is not running)."""
    for name in folders:
        data_dir = config.node(name).data_dir
        if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
            raise Fail(2, f"{name}'s data_dir {data_dir} is not empty: stop the node and move it away first")


# ---------------------------------------------------------------------------------------------- restarts


def main_rolling_restart(argv: list[str]) -> int:
    return _run("zkv-node rolling-restart", _rolling_restart, argv)


SETTLE_S = 1.5  # how long every node must keep seeing every peer up before the next node restarts


def _wait(predicate: Any, timeout: float, interval: float = 0.2, hold: float = SETTLE_S) -> bool:
    """Poll ``predicate`` until it has held for ``hold`` seconds (True) or ``timeout`` passes (False).

    Held, not just seen once: a node that restarted a moment ago has a failure detector with a few
    samples, and a peer it counts up now may look suspect a heartbeat later; with one node already
    down, that would be the one too many for a quorum."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while True:
        now = time.monotonic()
        if predicate():
            since = now if since is None else since
            if now - since >= hold:
                return True
        else:
            since = None
        if now >= deadline:
            return False
        time.sleep(interval)


def _views_agree_up(client: Client, config: ClusterConfig, name: str | None = None, old_gen: int = 0) -> bool:
    """Every node answers, sees every node up (and ``name`` in a generation after ``old_gen``), and its
    failure detector and connections count every peer alive (what a coordinator decides with)."""
    for spec in config.nodes:
        try:
            view = {n.name: n for n in client.nodes(spec.address)}
        except ZkvError:
            return False
        if any(view.get(n) is None or view[n].status != "up" for n in config.node_names):
            return False
        if name is not None and view[name].generation <= old_gen:
            return False
        try:
            status = client.status(spec.address)
        except ZkvError:
            return False
        if status.peers_up != status.peers:  # what its coordinator counts as alive
            return False
    return True


def _rolling_restart(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node rolling-restart",
        description="Restart every node of the file, one at a time: each drains (new requests go to other "
        "nodes, its own finish), stops and is started again by its supervisor (zkv-node, or systemd "
        "with Restart=on-failure: it exits with status 3); the next goes once every node sees it up "
        "again. With N >= 3 and quorum requests, no request fails.",
    )
    _config_arg(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for each node to come back (default 120)",
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    started = time.monotonic()
    with _client(args, 2.0) as client:
        for name in config.node_names:
            if not _wait(lambda: _views_agree_up(client, config), args.timeout):
                raise Fail(1, f"not every node is up (seen by all) after {args.timeout:.0f}s; stopping")
            address = config.node(name).address
            old_gen = {n.name: n.generation for n in client.nodes(address)}[name]
            t0 = time.monotonic()
            try:
                client.restart(address)
            except ZkvError as exc:
                raise Fail(1, f"{name} did not take the restart request: {exc}") from None
            print(f"{name}: draining and restarting...", flush=True)
            if not _wait(lambda n=name, g=old_gen: _views_agree_up(client, config, n, g), args.timeout):
                raise Fail(
                    1,
                    f"{name} was not back after {args.timeout:.0f}s: is it run by zkv-node's supervisor "
                    "(or a service manager that restarts it on exit status 3)?",
                )
            print(f"{name}: back and seen up by every node in {time.monotonic() - t0:.1f}s", flush=True)
    print(f"rolling restart of {len(config.node_names)} nodes in {time.monotonic() - started:.1f}s")
    return 0


# ---------------------------------------------------------------------------------------------- repair


def main_repair(argv: list[str]) -> int:
    return _run("zkv-node repair", _repair, argv)


def _repair(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zkv-node repair",
        description="A full anti-entropy pass now: the node (or every node) compares its Merkle trees "
        "with each peer in turn, exchanging differing keys, until every peer agrees on every key they "
        "share. Prints progress; exit 1 if a peer stays unreachable past --timeout.",
    )
    _config_arg(parser)
    _node_scope_args(parser)
    args = parser.parse_args(argv)

    def progress(client: Client, address: str) -> tuple[str, bool]:
        aae = client.status(address).anti_entropy
        done = aae.full_pass
        line = (
            f"{done.done}/{done.peers} peers agree; "
            f"{aae.keys_sent} keys sent, {aae.keys_received} received so far"
        )
        return line, not done.remaining

    names, took = _on_each_node(args, "repair", lambda c, a: c.repair_now(a), progress)
    print(f"repair of {len(names)} node(s) done in {took:.1f}s")
    return 0


# ------------------------------------------------------------------------------- commands on each node


def _node_scope_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", metavar="NAME", help="only this node (default: every node)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")


def _on_each_node(
    args: argparse.Namespace,
    what: str,
    start: Callable[[Client, str], object],
    progress: Callable[[Client, str], tuple[str | None, bool]],
) -> tuple[list[str], float]:
    """Ask every node in scope (``--node`` or all) to ``start`` a background job, then poll each one's
    ``progress`` (a line to print when it changes, and whether it is done) until all are done.

    A node that does not take the request fails the command (exit 1) before any is polled; a node
    that does not answer a poll is asked again on the next round; ``--timeout`` bounds the whole wait.
    Returns the names and the seconds it took.
    """
    config = load_config(args.config)
    names = [config.node(args.node).name] if args.node else list(config.node_names)
    started = time.monotonic()
    with _client(args, 5.0) as client:
        for name in names:
            try:
                start(client, config.node(name).address)
            except ZkvError as exc:
                raise Fail(1, f"{name} did not take the {what} request: {exc}") from None
        pending = set(names)
        shown: dict[str, str] = {}
        deadline = time.monotonic() + args.timeout
        while pending:
            for name in sorted(pending):
                try:
                    line, done = progress(client, config.node(name).address)
                except ZkvError:
                    continue
                if line is not None and shown.get(name) != line:
                    shown[name] = line
                    print(f"{name}: {line}", flush=True)
                if done:
                    pending.discard(name)
            if pending and time.monotonic() >= deadline:
                raise Fail(
                    1,
                    f"{what} not finished after {args.timeout:.0f}s: "
                    f"{', '.join(sorted(pending))} still going",
                )
            if pending:
                time.sleep(0.3)
    return names, time.monotonic() - started
