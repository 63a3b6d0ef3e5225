"""Errors as JSON: ``{"error": <wire code>, "message": ..., ...details}`` with a fitting HTTP status.

The codes are the wire codes of :mod:`zkv.errors`, so a script sees the same names as the Python client.
aiohttp's own refusals (unknown route, wrong method, body too large, headers too large) get the same
shape. Nothing here ever sends a traceback: an unexpected exception is logged and answered ``internal``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from zkv.errors import InvalidRequest, ZkvError

log = logging.getLogger("zkv.http")

#: HTTP status per wire code; codes not listed are 500 (a bug) or, for subclasses, their parent's
STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "protocol_error": 400,
    "context_too_large": 400,
    "unauthorized": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "too_many_siblings": 409,
    "too_large": 413,
    "key_too_large": 413,
    "value_too_large": 413,
    "message_too_large": 413,
    "headers_too_large": 431,
    "overloaded": 429,
    "too_many_requests": 429,
    "storage_full": 507,
    "storage_error": 503,
    "unavailable": 503,
    "no_node_available": 503,
    "not_ready": 503,
    "stopping": 503,  # every node tried was draining for a restart: nothing was done, try again
    "timeout": 504,
    "condition_failed": 412,  # If-Match / If-None-Match at serial: nothing was written
    "outcome_unknown": 504,  # the serial write may or may not have been applied: a serial GET tells
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(ZkvError):
    """An error the gateway itself raises, with its own code (``not_found``, ``method_not_allowed``...)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code  # type: ignore[misc]  # an instance code: these are not wire error classes


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


def error_response(
    code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None, **details: Any
) -> web.Response:
    body = {"error": code, "message": message, **{k: _jsonable(v) for k, v in details.items()}}
    return web.Response(
        status=status or status_for(code),
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def from_zkv_error(exc: ZkvError, headers: dict[str, str] | None = None) -> web.Response:
    status = status_for(exc.code)
    if status == 500 and isinstance(exc, InvalidRequest):
        status = 400  # a new kind of invalid request the table does not know yet is still the caller's
    return error_response(exc.code, exc.message, status, headers, **exc.details)


_AIOHTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "value_too_large",
    414: "key_too_large",
    431: "headers_too_large",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as JSON; the gateway keeps serving whatever a request did."""
    try:
        return await handler(request)
    except ZkvError as exc:
        return from_zkv_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _AIOHTTP_CODES.get(exc.status, "invalid_request" if exc.status < 500 else "internal")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return error_response(code, exc.reason or code, exc.status, headers)
    except Exception:
        log.exception("bug while answering %s %s; the gateway keeps serving", request.method, request.path)
        return error_response("internal", "the gateway met an unexpected error (logged)", 500)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
