"""``zkv-node``: run the nodes of a cluster.toml.

``zkv-node --config cluster.toml`` starts every node of the file as its own process and supervises them
(a child that dies is reported; Ctrl-C or SIGTERM stops them all). ``--node NAME`` runs just that node in
this process, which is how tests and operators run one node per process.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from zkv import __version__, compiled
from zkv.config import ClusterConfig, load_config
from zkv.errors import ConfigError
from zkv.scaffold import DEFAULT_PORT, busy_ports, write_cluster

STOP_GRACE_S = 5.0
RESTART_BACKOFF_S = 0.5  # the first restart of a crashed node waits this long; each quick crash doubles it
RESTART_BACKOFF_MAX_S = 30.0
RESTART_RESET_S = 60.0  # a node that ran this long before crashing starts the back-off over
DEFAULT_CONFIG = "cluster.toml"
# day-2 commands (zkv/operations.py, docs/operations.md): command -> function
OPERATIONS = {
    "snapshot": "main_snapshot",
    "verify": "main_verify",
    "restore": "main_restore",
    "rolling-restart": "main_rolling_restart",
    "repair": "main_repair",
    "removenode": "zkv.removal_ops:main_removenode",
    "cleanup": "zkv.removal_ops:main_cleanup",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zkv-node",
        description="Run zkv nodes: every node of the config (supervised), or one with --node.",
        epilog="Logs go to stderr, one line per event, prefixed with the node name. "
        "Exit status: 0 after a clean stop, 1 when a node failed, 2 for a bad config or bad arguments. "
        "'zkv-node leave --config FILE --node NAME' makes a running node hand its data over and leave; "
        "'zkv-node keygen --out DIR NAME' writes a CURVE key pair (see docs/security.md); "
        "'zkv-node init' writes a ready cluster.toml; 'zkv-node --dev' runs a one-machine cluster at once. "
        "Operations (docs/operations.md): snapshot, verify, restore, rolling-restart, repair (each: --help).",
    )
    _version(parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("ZKV_CONFIG", DEFAULT_CONFIG),
        help="cluster file (default: $ZKV_CONFIG or ./cluster.toml); see docs/configuration.md",
    )
    parser.add_argument(
        "--node",
        metavar="NAME",
        help="run only this node of the file, in this process (its http gateway runs apart: zkv-http)",
    )
    parser.add_argument(
        "--join",
        metavar="ADDRESS",
        nargs="?",
        const="",
        help="with --node: join a running cluster (through the node at ADDRESS, or the other nodes of the "
        "file): stream the ranges this node will own, then serve them",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help='supervising: restart a node that crashed, with back-off (as restart = "on-failure" in '
        "[cluster]); without it a crashed node stays down",
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="run a one-machine cluster with no config to write: uses (or first writes, as 'zkv-node init' "
        "does) DIR/cluster.toml, DIR from --dev-dir",
    )
    parser.add_argument("--dev-dir", metavar="DIR", default="zkv-dev", help="with --dev (default ./zkv-dev)")
    parser.add_argument("--nodes", type=int, default=3, help="with --dev: how many nodes (default 3)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"with --dev: first port ({DEFAULT_PORT})"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (default: info)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["leave"]:
        return _leave(argv[1:])
    if argv[:1] == ["keygen"]:
        return _keygen(argv[1:])
    if argv[:1] == ["init"]:
        return _init(argv[1:])
    if argv[:1] and argv[0] in OPERATIONS:
        import importlib

        module, _, function = OPERATIONS[argv[0]].rpartition(":")
        return getattr(importlib.import_module(module or "zkv.operations"), function)(argv[1:])
    args = build_parser().parse_args(argv)
    if args.dev:
        made = _dev_config(Path(args.dev_dir), args.nodes, args.port)
        if made is None:
            return 2
        args.config = str(made)
    if args.join is not None and not args.node:
        print("zkv-node: --join needs --node NAME (one node joins at a time)", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        if args.node:
            config.node(args.node)
    except ConfigError as exc:
        print(f"zkv-node: {exc}", file=sys.stderr)
        return 2
    if args.node:
        return _run_one(config, args.node, args.log_level, args.join)
    busy = busy_ports(config)
    if busy:
        print(f"zkv-node: {busy}", file=sys.stderr)
        return 1
    if args.dev:
        print(
            f"zkv-node: dev cluster of {len(config.nodes)} nodes from {args.config}; "
            f"connect with: zkv-shell --config {args.config}  (Ctrl-C stops it)",
            file=sys.stderr,
        )
    return _supervise(
        config, Path(args.config), args.log_level, args.restart or config.restart == "on-failure"
    )


def _version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"zkv {__version__}, {compiled.describe()}")


def _dev_config(directory: Path, nodes: int, port: int) -> Path | None:
    """The dev cluster's config: the one in ``directory``, or a fresh one written there."""
    path = directory / "cluster.toml"
    if path.exists():
        return path
    try:
        return write_cluster(directory, nodes, port)
    except (ValueError, OSError) as exc:
        print(f"zkv-node --dev: {exc}", file=sys.stderr)
        return None


def _init(argv: list[str]) -> int:
    """``zkv-node init``: write a ready cluster.toml (the wheel carries none)."""
    parser = argparse.ArgumentParser(
        prog="zkv-node init",
        description="Write DIR/cluster.toml: a cluster of N nodes on this machine (node i listens on "
        "PORT + 100*(i-1), its gossip one above; data in DIR/data). Then: zkv-node --config DIR/cluster.toml",
    )
    _version(parser)
    parser.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    parser.add_argument("--dir", default=".", help="folder to write cluster.toml into (default: here)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"first node's port ({DEFAULT_PORT})")
    parser.add_argument("--force", action="store_true", help="overwrite an existing cluster.toml")
    args = parser.parse_args(argv)
    try:
        path = write_cluster(Path(args.dir), args.nodes, args.port, args.force)
    except FileExistsError as exc:
        print(f"zkv-node init: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"zkv-node init: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.nodes} nodes). Start it: zkv-node --config {path}")
    print(f"then, in another terminal: zkv-shell --config {path}")
    return 0


def _setup_logging(prefix: str, level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format=f"%(asctime)s {prefix} %(levelname)s %(name)s: %(message)s",
    )


def _run_one(config: ClusterConfig, name: str, level: str, join: str | None = None) -> int:
    _setup_logging(name, level)
    from zkv.node.runtime import serve

    try:
        return serve(config, name, join)
    except OSError as exc:
        logging.getLogger("zkv").error("%s", exc)
        return 1


def _supervise(config: ClusterConfig, path: Path, level: str, restart: bool = False) -> int:
    """One child process per node; report deaths; stop all on Ctrl-C / SIGTERM.

    ``restart`` (``--restart`` or ``restart = "on-failure"``): a child that exits with a non-zero status
    is started again after a back-off that doubles with each quick failure (RESTART_BACKOFF_S up to
    RESTART_BACKOFF_MAX_S; a child that ran RESTART_RESET_S counts as healthy again). A node that exits 0
    (it left the cluster) is not restarted. One that exits with EXIT_RESTART asked for it (a rolling
    restart) and is started again at once, whatever the policy.
    """
    from zkv.node.admin import EXIT_REMOVED, EXIT_RESTART

    _setup_logging("supervisor", level)
    log = logging.getLogger("zkv.supervisor")
    commands: dict[str, list[str]] = {}
    for name in config.node_names:
        commands[name] = [sys.executable, "-m", "zkv.cli", "--config", str(path), "--node", name]
        commands[name] += ["--log-level", level]
    for spec in config.nodes:
        if spec.http is not None:  # the node's HTTP gateway (docs/http.md), supervised like the nodes
            cmd = [sys.executable, "-m", "zkv.http.server", "--config", str(path), "--node", spec.name]
            commands[f"{spec.name}-http"] = [*cmd, "--log-level", level]
    children: dict[str, subprocess.Popen] = {}
    started_at: dict[str, float] = {}
    failures: dict[str, int] = dict.fromkeys(commands, 0)
    pending: dict[str, float] = {}  # name -> when to restart it

    def launch(name: str) -> None:
        again = name in children
        children[name] = subprocess.Popen(commands[name])
        started_at[name] = time.monotonic()
        where = ""
        if name.endswith("-http") and name not in config.node_names:
            where = f" on http://{config.node(name[: -len('-http')]).http}/"
        log.log(
            logging.WARNING if again else logging.INFO,
            "%s %s%s (pid %d)",
            "restarted" if again else "started",
            name,
            where,
            children[name].pid,
        )

    for name in commands:
        launch(name)

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    failed = False
    running = dict(children)
    while (running or pending) and not stopping:
        now = time.monotonic()
        for name, proc in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[name]
            if code == EXIT_RESTART:  # it was asked to restart (zkv-node rolling-restart): at once
                pending[name] = now
                log.warning("%s (pid %d) stopped for a restart; starting it again", name, proc.pid)
                continue
            if restart and code not in (0, EXIT_REMOVED):  # a removed node must join anew: not again
                if now - started_at[name] >= RESTART_RESET_S:
                    failures[name] = 0
                delay = min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** failures[name])
                failures[name] += 1
                pending[name] = now + delay
                log.error(
                    "%s (pid %d) exited with status %d; restarting it in %.1fs (restart %d)",
                    name,
                    proc.pid,
                    code,
                    delay,
                    failures[name],
                )
                continue
            failed = failed or code != 0
            log.error("%s (pid %d) exited with status %d; the others keep serving", name, proc.pid, code)
        for name, when in list(pending.items()):
            if now >= when:
                del pending[name]
                launch(name)
                running[name] = children[name]
        time.sleep(0.2)
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for name, proc in running.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", name, STOP_GRACE_S)
            proc.kill()
            proc.wait()
    log.info("all nodes stopped")
    return 1 if failed and not stopping else 0


def _keygen(argv: list[str]) -> int:
    """``zkv-node keygen``: write a CURVE key pair for a node, a client or an admin."""
    parser = argparse.ArgumentParser(
        prog="zkv-node keygen",
        description="Write a CURVE key pair: DIR/NAME.key (public; copy it where the cluster allows keys) "
        "and DIR/NAME.key_secret (secret, mode 0600; keep it with its owner). The files are the ones "
        "zmq.auth.create_certificates makes.",
    )
    _version(parser)
    parser.add_argument("--out", metavar="DIR", required=True, help="folder to write the two files into")
    parser.add_argument("name", help="node name (n1), or a client or admin name (alice)")
    args = parser.parse_args(argv)
    from zkv.config import NAME_RE
    from zkv.security import keygen

    if not NAME_RE.fullmatch(args.name):
        print(f"zkv-node keygen: name {args.name!r} must be 1-64 of A-Z a-z 0-9 _ . -", file=sys.stderr)
        return 2
    target = Path(args.out) / f"{args.name}.key_secret"
    if target.exists():
        print(f"zkv-node keygen: {target} exists; not overwriting a secret key", file=sys.stderr)
        return 1
    try:
        public, secret = keygen(args.out, args.name)
    except OSError as exc:
        print(f"zkv-node keygen: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"public key: {public}\nsecret key: {secret} (mode 0600)")
    return 0


def _leave(argv: list[str]) -> int:
    """``zkv-node leave``: ask a node to hand its ranges over and leave; wait until it is removed."""
    parser = argparse.ArgumentParser(
        prog="zkv-node leave",
        description="Decommission a node: it streams every key it holds to the nodes that replicate the key "
        "without it, then stops. The cluster keeps serving throughout.",
    )
    _version(parser)
    parser.add_argument("--config", metavar="FILE", default=os.environ.get("ZKV_CONFIG", DEFAULT_CONFIG))
    parser.add_argument("--node", metavar="NAME", required=True, help="the node that leaves")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for it (default 600)")
    parser.add_argument("--key", metavar="FILE", help="with CURVE: an admin's secret key file")
    args = parser.parse_args(argv)
    from zkv.client import Client
    from zkv.errors import ZkvError

    try:
        config = load_config(args.config)
        address = config.node(args.node).address
    except ConfigError as exc:
        print(f"zkv-node: {exc}", file=sys.stderr)
        return 2
    others = [n.address for n in config.nodes if n.name != args.node]
    try:
        client = Client.from_config(args.config, key_file=args.key, timeout=5.0, pinned=True)
    except ConfigError as exc:
        print(f"zkv-node: {exc}", file=sys.stderr)
        return 2
    with client:
        try:
            reply = client.leave(address)
        except ZkvError as exc:
            print(f"zkv-node leave: {args.node} did not take the request: {exc}", file=sys.stderr)
            return 1
        print(f"{args.node} is {reply['status']}; handing its data over...", file=sys.stderr)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            for other in others:
                try:
                    view = {n.name: n.status for n in client.nodes(other)}
                except ZkvError:
                    continue
                if view.get(args.node) == "removed":
                    print(f"{args.node} left the cluster", file=sys.stderr)
                    return 0
            time.sleep(0.5)
    print(f"zkv-node leave: {args.node} had not left after {args.timeout:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
