"""``GET /v1/keys?prefix=&limit=&cursor=&consistency=&values=``: a page of keys in byte order.

The scan itself is the client's (:meth:`zkv.client.Client.scan`, decisions in :mod:`zkv.core.scan`);
this route only reads the query, runs it on a pooled client and writes JSON: ``{"keys": [...],
"cursor": token or null}``, with ``values=true`` also ``"values"``: per key its values, base64. A key is
a string when it is UTF-8, else ``{"base64": ...}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from zkv.core.scan import DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT, ScanPage
from zkv.errors import BadLimit
from zkv.http.errors import HttpError
from zkv.http.keys import consistency_of
from zkv.http.state import POOL
from zkv.http.wire import b64, json_safe


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/v1/keys", scan)


def _one(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise HttpError("invalid_request", f"give {name} at most once")
    return values[0] if values else None


def limit_of(request: web.Request) -> int:
    text = _one(request, "limit")
    if text is None:
        return DEFAULT_SCAN_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_SCAN_LIMIT:
        raise BadLimit(
            f"limit must be a whole number from 1 to {MAX_SCAN_LIMIT}, not {text!r}", max=MAX_SCAN_LIMIT
        )
    return int(text)


def values_of(request: web.Request) -> bool:
    text = _one(request, "values")
    if text is None or text in ("false", "0"):
        return False
    if text in ("true", "1"):
        return True
    raise HttpError("invalid_request", f"values must be true or false, not {text!r}")


def page_json(page: ScanPage, values: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"keys": [json_safe(k) for k in page.keys], "cursor": page.cursor}
    if values:
        out["values"] = [[b64(v) for v in e.values] for e in page.entries]
    return out


async def scan(request: web.Request) -> web.Response:
    if request.body_exists or (request.content_length or 0) > 0:
        raise HttpError("invalid_request", "GET takes no body")
    prefix = (_one(request, "prefix") or "").encode()
    limit, cursor, values = limit_of(request), _one(request, "cursor"), values_of(request)
    consistency = consistency_of(request)
    page = await request.app[POOL].run(lambda c: c.scan(prefix, limit, cursor, consistency, values))
    return web.json_response(page_json(page, values))
