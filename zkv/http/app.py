"""The aiohttp application: routes, JSON errors, limits, and the pool of zkv clients behind them.

Route modules each have a ``setup(app)``; :data:`ROUTE_MODULES` lists them in order, and
``make_app(..., extra_routes=[...])`` adds more (the dashboard's live-updates module plugs in there).
The static files of ``zkv/http/static/`` (the dashboard) are served at ``/`` after every other route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import web

from zkv.client import Client
from zkv.http import actions, auth, cluster, dashboard, health, keys, metrics, openapi, scan, txn
from zkv.http.errors import HttpError, json_errors
from zkv.http.loopclient import LoopClient
from zkv.http.pool import DEFAULT_THREADS, ClientPool
from zkv.http.state import LOOP, POOL, SETTINGS, GatewaySettings

STATIC_DIR = Path(__file__).parent / "static"
BODY_SLACK = 64 * 1024  # a value at max_value_bytes passes aiohttp, so the node names the limit

RouteSetup = Callable[[web.Application], None]

#: every route module, in the order their routes are added; add new ones here (or pass extra_routes)
ROUTE_MODULES: list[RouteSetup] = [
    health.setup,
    metrics.setup,
    openapi.setup,
    scan.setup,
    keys.setup,
    txn.setup,
    cluster.setup,
    dashboard.setup,
    actions.setup,
]


def make_app(
    settings: GatewaySettings,
    make_client: Callable[[], Client],
    threads: int = DEFAULT_THREADS,
    extra_routes: Iterable[RouteSetup] = (),
) -> web.Application:
    """The gateway app; ``make_client`` builds one zkv client per pool thread."""
    max_value = settings.config.max_value_bytes if settings.config is not None else 1048576
    app = web.Application(middlewares=[json_errors], client_max_size=max_value + BODY_SLACK)
    app[SETTINGS] = settings
    pool = app[POOL] = ClientPool(make_client, threads)
    template = make_client()  # settings only (seeds, CURVE keys): the loop client owns its sockets
    app[LOOP] = LoopClient(template, lambda: pool.run(lambda c: c.ring(refresh=True)))
    if settings.tokens is not None:
        app.middlewares.insert(0, auth.middleware(settings.tokens))
    for setup in [*ROUTE_MODULES, *extra_routes]:
        setup(app)
    app.router.add_get("/", index)
    app.router.add_get("/{path:.+}", static_file)  # last: every other route matched first
    app.on_cleanup.append(_close_pool)
    return app


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def static_file(request: web.Request) -> web.FileResponse:
    """A file of ``zkv/http/static/``; anything else (or outside it) is a JSON ``not_found``."""
    root = STATIC_DIR.resolve()
    path = (root / request.match_info["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HttpError("not_found", f"no route or file at {request.path}")
    return web.FileResponse(path)


async def _close_pool(app: web.Application) -> None:
    app[LOOP].close()
    app[POOL].close()
