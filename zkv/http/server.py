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
import ssl
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from zkv.client import Client, curve_options
from zkv.config import NAME_RE, ClusterConfig, load_config, split_listen, valid_listen
from zkv.errors import ConfigError
from zkv.http.app import make_app
from zkv.http.auth import ROLES, load_tokens, new_token
from zkv.http.health import loop_name
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        return _token(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format=f"%(asctime)s {args.node or 'http'}-http %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        listen, settings = _settings(config, args.node, args.listen)
        key = args.key or (str(config.security.http_key) if config.security.http_key else None)
        make_client = _client_factory(config, settings, key)
        ssl_context = _tls(config)
    except ConfigError as exc:
        print(f"zkv-http: {exc}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print("zkv-http: --threads must be at least 1", file=sys.stderr)
        return 2
    app = make_app(settings, make_client, threads=args.threads)
    try:
        run(_serve(app, listen, config, ssl_context))
    except OSError as exc:
        print(f"zkv-http: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop (a seventh fewer instructions per request than asyncio's loop, measured:
    docs/http.md), or on asyncio's own loop where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _settings(config: ClusterConfig, node: str | None, listen: str | None) -> tuple[str, GatewaySettings]:
    spec = config.node(node) if node else None
    if listen is None and spec is not None:
        listen = spec.http
    if listen is None:
        what = f"[[node]] {node} has no http key" if node else "give --node NAME or --listen HOST:PORT"
        raise ConfigError(f"nowhere to listen: {what}")
    if not valid_listen(listen):
        raise ConfigError(f"--listen {listen!r} is not of the form HOST:PORT (port 1-65535)")
    security = config.security
    tokens = load_tokens(security.http_tokens) if security.http_tokens is not None else None
    if security.curve and tokens is None:
        raise ConfigError(
            "[security] curve = true, so the HTTP gateway needs bearer tokens: set [security] http_tokens "
            "(make one: zkv-http token --config FILE --role admin NAME)"
        )
    return listen, GatewaySettings(config, node, spec.address if spec else None, tokens)


def _tls(config: ClusterConfig) -> ssl.SSLContext | None:
    security = config.security
    if security.http_tls_cert is None or security.http_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(security.http_tls_cert, security.http_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load http_tls_cert / http_tls_key: {exc}") from None
    return context


def _token(argv: list[str]) -> int:
    """``zkv-http token``: make a bearer token, store its hash in the http_tokens file, print it once."""
    parser = argparse.ArgumentParser(
        prog="zkv-http token",
        description="Make a bearer token for the HTTP API: its hash goes into the file [security] "
        "http_tokens names (or --file), the token itself is printed once; keep it with its owner.",
    )
    parser.add_argument("--config", metavar="FILE", default=os.environ.get("ZKV_CONFIG", "cluster.toml"))
    parser.add_argument("--file", metavar="FILE", help="the tokens file (default: the config's http_tokens)")
    parser.add_argument("--role", choices=ROLES, default="client", help="client (default) or admin")
    parser.add_argument("name", help="who the token is for (shown in logs and 403 messages)")
    args = parser.parse_args(argv)
    path = Path(args.file) if args.file else None
    if path is None:
        try:
            path = load_config(args.config).security.http_tokens
        except ConfigError as exc:
            print(f"zkv-http: {exc}", file=sys.stderr)
            return 2
        if path is None:
            print(f"zkv-http: {args.config} has no [security] http_tokens; give --file", file=sys.stderr)
            return 2
    if not NAME_RE.fullmatch(args.name):
        print(f"zkv-http token: name {args.name!r} must be 1-64 of A-Z a-z 0-9 _ . -", file=sys.stderr)
        return 2
    try:
        token = new_token(path, args.role, args.name)
    except OSError as exc:
        print(f"zkv-http token: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


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


async def _serve(
    app: web.Application, listen: str, config: ClusterConfig, ssl_context: ssl.SSLContext | None
) -> None:
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
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        where = config.path.name if config.path else "the cluster"
        scheme = "https" if ssl_context is not None else "http"
        print(f"zkv-http: serving {scheme}://{listen}/ for {where} ({loop_name()} loop)", flush=True)
        log.info("serving %s://%s/ on the %s loop", scheme, listen, loop_name())
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
