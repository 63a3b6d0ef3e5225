"""``zkv-shell``: pick a node, connect, then run commands interactively, from ``-c``, or from piped stdin.

Exit status: 0 when every command succeeded, 1 when any failed, 2 when the shell could not start (bad
arguments, no cluster.toml, or — when scripting — the node is not answering).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zkv import __version__
from zkv.client import normalize_address
from zkv.config import load_config
from zkv.errors import BadAddress, ConfigError

from .connection import ClientOptions, client_options, probe_all
from .render import Renderer, make_console
from .results import Failure, Quit
from .session import Session

USAGE_ERROR = 2


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect first, and every node we know of before asking the cluster."""

    name: str | None
    address: str
    known: dict[str, str]
    options: ClientOptions = field(default_factory=dict)  # CURVE keys for every client the shell opens


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zkv-shell",
        description="The interactive shell of a zkv cluster: read, write and watch it.",
        epilog="With no option it reads ./cluster.toml (or $ZKV_CONFIG) and connects to its first node. "
        "Inside, type 'help'. Exit status: 0 ok, 1 a command failed, 2 could not start.",
    )
    parser.add_argument("--version", action="version", version=f"zkv-shell {__version__}")
    where = parser.add_argument_group("where to connect")
    where.add_argument("--config", metavar="FILE", help="the cluster.toml to read (default ./cluster.toml)")
    where.add_argument(
        "--connect", metavar="ADDRESS", help="a node's address: HOST:PORT or tcp://HOST:PORT (127.0.0.1:7101)"
    )
    where.add_argument("--node", metavar="NAME", help="the node of the config file to connect to")
    where.add_argument(
        "--key",
        metavar="FILE",
        default=os.environ.get("ZKV_KEY"),
        help="your CURVE secret key file, for a cluster with [security] curve = true (default: $ZKV_KEY)",
    )
    script = parser.add_argument_group("scripting")
    script.add_argument(
        "-c",
        "--command",
        metavar="CMD",
        action="append",
        default=[],
        help="run CMD and exit (repeatable); piped stdin is read the same way",
    )
    script.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default) or json: one JSON object per command",
    )
    return parser


def resolve_target(args: argparse.Namespace) -> Target:
    """The node to start on, from --connect, or --node / the first node of the config file."""
    config_path = args.config or os.environ.get("ZKV_CONFIG")
    if args.connect:
        args.connect = normalize_address(args.connect)  # BadAddress: one line, exit 2
    if args.connect and not config_path and not args.node:
        return Target(None, args.connect, {})
    path = Path(config_path or "cluster.toml")
    if not path.is_file():
        raise ConfigError(
            f"no cluster file at {path}: pass --config FILE or --connect HOST:PORT "
            "(start a local cluster with: zkv-node --config cluster.toml)"
        )
    config = load_config(path)
    options = client_options(config, args.key)
    known = {n.name: n.address for n in config.nodes}
    if args.connect:
        name = next((n for n, a in known.items() if a == args.connect), None)
        return Target(name, args.connect, known, options)
    spec = config.node(args.node) if args.node else config.nodes[0]
    return Target(spec.name, spec.address, known, options)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `zkv-shell -c nodes | head -1`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    scripted = bool(args.command) or not sys.stdin.isatty()
    out = make_console(sys.stdout)
    err = make_console(sys.stderr) if scripted else out
    renderer = Renderer(out, err, json_mode=args.output == "json")
    try:
        target = resolve_target(args)
    except (ConfigError, BadAddress) as exc:
        hint = "addresses look like 127.0.0.1:7101" if isinstance(exc, BadAddress) else ""
        renderer.render(Failure("connect", exc.code, exc.message, hint))
        return USAGE_ERROR
    try:
        session = Session.connect(target.address, target.name, target.known, options=target.options)
    except Exception as exc:  # a malformed address and the like: one line, never a traceback
        renderer.render(
            Failure(
                "connect",
                "bad_address",
                f"cannot connect to {target.address}: {exc}",
                "addresses look like tcp://127.0.0.1:7101",
            )
        )
        return USAGE_ERROR
    try:
        if not session.link.connected and not offer_others(session, renderer, interactive=not scripted):
            return USAGE_ERROR
        if scripted:
            lines = args.command if args.command else sys.stdin
            return run_script(session, renderer, lines)
        from .repl import Repl  # prompt-toolkit only when there is a terminal to drive

        out.print(
            f"connected to {session.node.name} ({session.node.address}); type 'help' for commands",
            style="dim",
        )
        return Repl(session, renderer).run()
    except KeyboardInterrupt:
        return 130
    finally:
        session.close()


def run_script(session: Session, renderer: Renderer, lines: Iterable[str]) -> int:
    """Run commands one after another (all of them, even after a failure); 1 if any failed."""
    failed = False
    for line in lines:
        result = session.run(line.rstrip("\n"))
        if result is None:
            continue
        renderer.render(result)
        failed |= not result.ok
        if isinstance(result, Quit):
            break
    return 1 if failed else 0


def offer_others(session: Session, renderer: Renderer, interactive: bool) -> bool:
    """The chosen node is down: say so and offer the nodes that answer; False when a script must stop."""
    node = session.node
    others = {n: a for n, a in session.known.items() if a != node.address}
    up = [n for n, alive in probe_all(others, session.client.options).items() if alive] if others else []
    label = node.address if node.name == node.address else f"{node.name} ({node.address})"
    if up:
        alternatives = f"up: {', '.join(up)}; use --node {up[0]}"
    elif others:
        alternatives = "no other node answers either"
    else:
        alternatives = "is the cluster running there? check the address (HOST:PORT of a node's ROUTER)"
    if not interactive:
        renderer.render(Failure("connect", "no_node_available", f"{label} is down", alternatives))
        return False
    renderer.out.print(f"{label} is down.", style="bold red")
    if not up:
        renderer.out.print(
            "No node of the cluster answers. Start it with: zkv-node --config cluster.toml — "
            f"the shell reconnects to {node.name} by itself when it is back.",
            style="yellow",
        )
        return True
    renderer.out.print(f"Nodes that answer: {', '.join(up)}")
    try:
        answer = input(f"Connect to {up[0]} instead? [Y/n/name] ").strip()
    except EOFError:
        answer = "n"
    choice = up[0] if answer.lower() in ("", "y", "yes") else answer if answer in up else None
    if choice is None:
        renderer.out.print(f"staying on {node.name}; the shell reconnects when it is back", style="dim")
        return True
    result = session.execute("switch", [choice])
    renderer.render(result)
    return True


if __name__ == "__main__":
    sys.exit(main())
