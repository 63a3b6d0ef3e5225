"""Break a running zkv cluster on purpose: partitions, lossy links, killed and paused nodes.

Link faults go through each node's fault filter (the ``faults`` admin request): a cut from A to B is
installed on B as "drop what arrives from A", which covers B's requests from A, A's replies to B and A's
heartbeats, so it needs no root and no firewall. Process faults use the node's pid, which every node
reports in ``status``; pids are remembered in ``.zkv-partition.json`` next to the config so that a
paused node (which cannot answer) can still be resumed.

    python tools/partition.py --config cluster.toml split n1,n2 / n3
    python tools/partition.py --config cluster.toml isolate n3
    python tools/partition.py --config cluster.toml oneway n1 n2
    python tools/partition.py --config cluster.toml drop n1 n2 20%
    python tools/partition.py --config cluster.toml delay n1 n2 50ms
    python tools/partition.py --config cluster.toml heal
    python tools/partition.py --config cluster.toml kill|pause|resume|restart n3
    python tools/partition.py --config cluster.toml show
    python tools/partition.py --config cluster.toml run scenario.toml
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from zkv.client import Client
from zkv.config import ClusterConfig, load_config
from zkv.errors import ConfigError, Unauthorized, ZkvError

USAGE_ERROR = 2


class Refused(Exception):
    """A command that cannot be carried out; nothing was changed."""


class Cluster:
    """The running cluster of a config file, as this tool sees and changes it."""

    def __init__(self, config: ClusterConfig, config_path: Path, key_file: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.names = list(config.node_names)
        self.addresses = {n.name: n.address for n in config.nodes}
        # with CURVE the fault filter takes an admin key (a file of the cluster's admin_keys)
        self.client = Client.from_config(config_path, key_file=key_file, timeout=2.0)
        self.state_path = config_path.parent / ".zkv-partition.json"

    def close(self) -> None:
        self.client.close()

    def check(self, *names: str) -> None:
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise Refused(f"no node named {', '.join(unknown)} (nodes: {', '.join(self.names)})")

    # ------------------------------------------------------------------------------------------ links

    def rules(self, name: str, kind: str = "drop_in") -> dict[str, float]:
        return dict(self.client.faults(self.addresses[name]).get(kind, {}))

    def set_rules(self, name: str, drop_in: dict[str, float], delay_in: dict[str, float]) -> None:
        self.client.faults(self.addresses[name], drop_in=drop_in, drop_out={}, delay_in=delay_in)

    def cut(
        self, senders: list[str], receivers: list[str], value: float = 1.0, kind: str = "drop_in"
    ) -> None:
        """Drop (or delay) what each sender sends to each receiver: installed on the receivers."""
        for receiver in receivers:
            rules = {k: self.rules(receiver, k) for k in ("drop_in", "delay_in")}
            for sender in senders:
                if sender != receiver:
                    rules[kind][sender] = value
            self.set_rules(receiver, rules["drop_in"], rules["delay_in"])

    def heal(self) -> None:
        for name in self.names:
            with contextlib.suppress(ZkvError):  # a node that is down has no faults to clear
                self.set_rules(name, {}, {})

    # ------------------------------------------------------------------------------------------ processes

    def _pids(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.state_path.read_text()).items()}
        except (OSError, ValueError):
            return {}

    def pid(self, name: str) -> int:
        """The node's pid: asked of the node, or remembered from an earlier command."""
        pids = self._pids()
        try:
            pids[name] = int(self.client.status(self.addresses[name]).pid)
            self.state_path.write_text(json.dumps(pids))
        except ZkvError:
            if name not in pids:
                raise Refused(f"{name} does not answer and its pid is not known") from None
        return pids[name]

    def signal(self, name: str, sig: signal.Signals) -> int:
        pid = self.pid(name)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            raise Refused(f"{name} (pid {pid}) is not running") from None
        return pid

    def start(self, name: str) -> int:
        """Start the node again as a process of its own (logs next to the config)."""
        log = open(self.config_path.parent / f"{name}.partition.log", "ab")  # noqa: SIM115 - the child keeps it
        cmd = [sys.executable, "-m", "zkv.cli", "--config", str(self.config_path), "--node", name]
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        pids = self._pids()
        pids[name] = proc.pid
        self.state_path.write_text(json.dumps(pids))
        return proc.pid

    def show(self) -> list[str]:
        lines = []
        for name in self.names:
            try:
                rules = self.rules(name)
            except Unauthorized:
                raise
            except ZkvError:
                lines.append(f"{name}: not answering")
                continue
            delays = self.rules(name, "delay_in")
            if not rules and not delays:
                lines.append(f"{name}: receives from everyone")
            if rules:
                cuts = ", ".join(f"{peer} {p:.0%}" if p < 1 else peer for peer, p in sorted(rules.items()))
                lines.append(f"{name}: drops what arrives from {cuts}")
            if delays:
                held = ", ".join(f"{peer} by {s * 1000:g} ms" for peer, s in sorted(delays.items()))
                lines.append(f"{name}: delays what arrives from {held}")
        return lines


def _names(text: str) -> list[str]:
    return [n for n in text.split(",") if n]


def _braces(names: list[str]) -> str:
    return "{" + ",".join(names) + "}"


def execute(cluster: Cluster, words: list[str]) -> str:
    """Carry out one command; returns what it did. Raises Refused for a bad command (nothing changed)."""
    if not words:
        raise Refused("no command given (try --help)")
    command, args = words[0], words[1:]
    if command == "split":
        if "/" not in args:
            raise Refused("split needs two groups: split n1,n2 / n3")
        cut = args.index("/")
        left = [n for a in args[:cut] for n in _names(a)]
        right = [n for a in args[cut + 1 :] for n in _names(a)]
        if not left or not right or set(left) & set(right):
            raise Refused("split needs two non-empty groups with no node in both")
        cluster.check(*left, *right)
        cluster.cut(left, right)
        cluster.cut(right, left)
        return f"cut {_braces(left)} off from {_braces(right)}"
    if command == "isolate":
        if len(args) != 1:
            raise Refused("isolate takes one node")
        cluster.check(args[0])
        rest = [n for n in cluster.names if n != args[0]]
        cluster.cut([args[0]], rest)
        cluster.cut(rest, [args[0]])
        return f"cut {{{args[0]}}} off from {_braces(rest)}"
    if command == "oneway":
        if len(args) != 2:
            raise Refused("oneway takes two nodes: oneway FROM TO")
        cluster.check(*args)
        cluster.cut([args[0]], [args[1]])
        return f"dropping everything {args[0]} sends to {args[1]}"
    if command == "drop":
        if len(args) != 3 or not args[2].endswith("%"):
            raise Refused("drop takes two nodes and a percentage: drop n1 n2 20%")
        cluster.check(args[0], args[1])
        try:
            percent = float(args[2][:-1])
        except ValueError:
            raise Refused(f"not a percentage: {args[2]}") from None
        if not 0 <= percent <= 100:
            raise Refused("a percentage is between 0% and 100%")
        cluster.cut([args[0]], [args[1]], percent / 100)
        return f"dropping {percent:g}% of what {args[0]} sends to {args[1]}"
    if command == "delay":
        if len(args) != 3 or not args[2].endswith("ms"):
            raise Refused("delay takes two nodes and milliseconds: delay n1 n2 50ms")
        cluster.check(args[0], args[1])
        try:
            ms = float(args[2][:-2])
        except ValueError:
            raise Refused(f"not a duration: {args[2]}") from None
        if not 0 <= ms <= 10_000:
            raise Refused("a delay is between 0ms and 10000ms")
        cluster.cut([args[0]], [args[1]], ms / 1000, kind="delay_in")
        return f"delaying what {args[0]} sends to {args[1]} by {ms:g} ms"
    if command == "heal":
        cluster.heal()
        return "healed: every link carries everything again"
    if command in ("kill", "pause", "resume", "restart"):
        if len(args) != 1:
            raise Refused(f"{command} takes one node")
        name = args[0]
        cluster.check(name)
        if command == "kill":
            return f"killed {name} (SIGKILL, pid {cluster.signal(name, signal.SIGKILL)})"
        if command == "pause":
            return f"paused {name} (SIGSTOP, pid {cluster.signal(name, signal.SIGSTOP)})"
        if command == "resume":
            return f"resumed {name} (SIGCONT, pid {cluster.signal(name, signal.SIGCONT)})"
        try:
            old = cluster.signal(name, signal.SIGKILL)
        except Refused:
            old = None
        pid = cluster.start(name)
        return f"restarted {name} (pid {old} killed, new pid {pid})" if old else f"started {name} (pid {pid})"
    if command == "show":
        return "\n".join(cluster.show())
    raise Refused(
        f"unknown command {command!r} (split, isolate, oneway, drop, heal, kill, pause, "
        "resume, restart, show, run)"
    )


def run_scenario(cluster: Cluster, path: Path) -> list[str]:
    """Play ``[[step]]`` tables ({at = SECONDS, do = "COMMAND ..."}) at their times from the start."""
    try:
        steps = tomllib.loads(path.read_text()).get("step", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise Refused(f"cannot read scenario {path}: {exc}") from None
    plan = []
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not isinstance(step.get("do"), str):
            raise Refused(f'{path}: [[step]] #{i} needs do = "COMMAND ..."')
        at = step.get("at", 0)
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            raise Refused(f"{path}: [[step]] #{i} at = {at!r} must be seconds >= 0")
        plan.append((float(at), step["do"].split()))
    started = time.monotonic()
    done = []
    for at, words in sorted(plan, key=lambda p: p[0]):
        delay = started + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        done.append(f"[{at:6.2f}s] {execute(cluster, words)}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="partition.py",
        description="Inject faults into a running zkv cluster. Commands: split A,B / C,D | isolate N | "
        "oneway FROM TO | drop FROM TO P% | delay FROM TO MSms | heal | kill N | pause N | resume N | "
        "restart N | show | "
        'run SCENARIO.toml (steps: [[step]] at = SECONDS, do = "COMMAND").',
        epilog="Exit status: 0 done, 1 the cluster refused or is unreachable, "
        "2 a bad command (nothing changed).",
    )
    parser.add_argument("--config", default=os.environ.get("ZKV_CONFIG", "cluster.toml"), metavar="FILE")
    parser.add_argument(
        "--key",
        metavar="FILE",
        default=os.environ.get("ZKV_KEY"),
        help="with CURVE: an admin's secret key file (its .key in the cluster's admin_keys)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        cluster = Cluster(config, Path(args.config).resolve(), args.key)
    except ConfigError as exc:
        print(f"partition.py: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        if args.command[:1] == ["run"]:
            if len(args.command) != 2:
                raise Refused("run takes one scenario file")
            print("\n".join(run_scenario(cluster, Path(args.command[1]))))
        else:
            print(execute(cluster, args.command))
    except Refused as exc:
        print(f"partition.py: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except Unauthorized as exc:
        print(f"partition.py: refused: {exc} (pass --key with an admin key)", file=sys.stderr)
        return 1
    except ZkvError as exc:
        print(f"partition.py: the cluster did not answer: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
