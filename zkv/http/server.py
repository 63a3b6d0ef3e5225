"""``zkv-http``: run one HTTP gateway (``--config F --node NAME``, or ``--listen HOST:PORT``).

``zkv-node --config F`` starts one for every ``[[node]]`` with an ``http`` key and supervises it; this
command runs one by hand. The gateway's clients send to its node first and route by the ring from there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from zkv.client import Client, curve_options
from zkv.config import ClusterConfig, load_config, split_listen, valid_listen
from zkv.errors import ConfigError
from zkv.http.app import make_app
from zkv.http.pool import DEFAULT_THREADS
from zkv.http.state import GatewaySettings

log = logging.getLogger("zkv.http")

MAX_LINE_BYTES = 16 * 1024  # request line (a key of max_key_bytes percent-encoded fits, three times over)
MAX_HEADER_BYTES = 16 * 1024  # one header; aiohttp answers 431 past these
KEEPALIVE_S = 75.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zkv-http",
        description="Serve zkv's HTTP/JSON API, Prometheus metrics and readiness (docs/http.md).",
        epilog="Exit status: 0 after a clean stop (SIGTERM, Ctrl-C), 1 when it cannot listen, 2 for a bad "
        "config or bad arguments.",
    )
    parser.add_argument(
        "--config", metavar="FILE", default=os.environ.get("ZKV_CONFIG", "cluster.toml"), help="cluster file"
    )
    parser.add_argument(
        "--node", metavar="NAME", help="the node this gateway fronts (listens on its http key)"
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="where to listen (default: the node's http key)"
    )
    parser.add_argument("--key", metavar="FILE", help="with CURVE: the gateway's secret key file")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"zkv clients in the pool (default {DEFAULT_THREADS})",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format=f"%(asctime)s {args.node or 'http'}-http %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        listen, settings = _settings(config, args.node, args.listen)
        make_client = _client_factory(config, settings, args.key)
    except ConfigError as exc:
        print(f"zkv-http: {exc}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print("zkv-http: --threads must be at least 1", file=sys.stderr)
        return 2
    app = make_app(settings, make_client, threads=args.threads)
    try:
        asyncio.run(_serve(app, listen, config))
    except OSError as exc:
        print(f"zkv-http: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _settings(config: ClusterConfig, node: str | None, listen: str | None) -> tuple[str, GatewaySettings]:
    spec = config.node(node) if node else None
    if listen is None and spec is not None:
        listen = spec.http
    if listen is None:
        what = f"[[node]] {node} has no http key" if node else "give --node NAME or --listen HOST:PORT"
        raise ConfigError(f"nowhere to listen: {what}")
    if not valid_listen(listen):
        raise ConfigError(f"--listen {listen!r} is not of the form HOST:PORT (port 1-65535)")
    return listen, GatewaySettings(config, node, spec.address if spec else None)


def _client_factory(
    config: ClusterConfig, settings: GatewaySettings, key_file: str | None
) -> Callable[[], Client]:
    seeds = [n.address for n in config.nodes]
    if settings.node_address is not None:
        seeds.remove(settings.node_address)
        seeds.insert(0, settings.node_address)  # its own node first: /health asks it, and it is near
    options = curve_options(config, key_file)

    def make() -> Client:
        return Client(seeds, **options)

    return make


async def _serve(app: web.Application, listen: str, config: ClusterConfig) -> None:
    host, port = split_listen(listen)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        keepalive_timeout=KEEPALIVE_S,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        where = config.path.name if config.path else "the cluster"
        print(f"zkv-http: serving http://{listen}/ for {where}", flush=True)
        log.info("serving http://%s/", listen)
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
