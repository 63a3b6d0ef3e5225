"""``/v1/keys/{key}``: PUT, GET, DELETE, and the key's ``where`` and ``replicas``.

The key is the path segment after ``/v1/keys/``, percent-decoded to bytes (so a key may be any bytes,
``/`` included as ``%2F``). Values are raw bytes both ways. The causal context travels in the
``X-Zkv-Context`` header as an opaque token (see :mod:`zkv.http.wire`). ``X-Zkv-Trace: 1`` on a PUT, GET
or DELETE returns the coordinator's consistency receipt in ``X-Zkv-Receipt`` (and in a JSON GET's body).

Conditional requests have serial semantics (docs/transactions.md): ``If-None-Match: *`` on a PUT writes
only if the key has no value; ``If-Match: "ETAG"`` (or ``*``) on a PUT or DELETE writes only if the key's
one current value has that ETag (any value, for ``*``): the gateway reads the key at ``serial`` and
sends a compare-and-set on the value it found, so nothing can slip in between. A GET answers an
``ETag`` (a hash of the value) whenever the key has exactly one value. A refused condition is
``412 condition_failed`` (with the current values and context), an unknown outcome
``504 outcome_unknown``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from zkv.client import Client, GetResult
from zkv.client.results import get_result
from zkv.errors import ConditionFailed
from zkv.http.errors import HttpError, error_response
from zkv.http.state import LOOP, POOL
from zkv.http.wire import b64, decode_token, encode_token, get_json, json_safe, replicas_json
from zkv.protocol import LEVELS

CONTEXT_HEADER = "X-Zkv-Context"
TRACE_HEADER = "X-Zkv-Trace"  # a request header: 1 (or true) asks for the coordinator's receipt
RECEIPT_HEADER = "X-Zkv-Receipt"  # the response header carrying it: compact JSON
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PREFIX = "/v1/keys/"


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/v1/keys/{key}", get_key)
    app.router.add_route("PUT", "/v1/keys/{key}", put_key)
    app.router.add_route("DELETE", "/v1/keys/{key}", delete_key)
    app.router.add_route("GET", "/v1/keys/{key}/where", where)
    app.router.add_route("GET", "/v1/keys/{key}/replicas", replicas)


def key_of(request: web.Request) -> bytes:
    """The key as bytes, from the raw (still percent-encoded) path, so ``%2F`` and non-UTF-8 survive."""
    raw = request.raw_path.split("?", 1)[0].split("#", 1)[0]
    segment = raw[len(_PREFIX) :].split("/", 1)[0].encode("latin-1", "replace")
    if b"%" not in segment:
        key = segment  # the usual key: nothing to decode
    elif _BAD_ESCAPE.search(segment):
        raise HttpError(
            "invalid_request", "bad percent-encoding in the key (a % must be followed by two hex digits)"
        )
    else:
        key = unquote_to_bytes(segment)
    if not key:
        raise HttpError("invalid_request", "the key is empty")
    return key


def consistency_of(request: web.Request) -> str | None:
    if not request.query_string:
        return None  # no query: the cluster's default (and no query dict built)
    values = request.query.getall("consistency", [])
    if not values:
        return None
    if len(values) > 1 or values[0] not in LEVELS:
        raise HttpError(
            "invalid_request",
            f"unknown consistency {values[-1]!r}: use one of {', '.join(LEVELS)}",
            allowed=list(LEVELS),
        )
    return values[0]


def context_of(request: web.Request) -> bytes | None:
    if CONTEXT_HEADER not in request.headers:
        return None  # the usual blind write: no list built
    values = request.headers.getall(CONTEXT_HEADER, [])
    if len(values) > 1:
        raise HttpError("invalid_request", f"give {CONTEXT_HEADER} at most once")
    return decode_token(values[0] if values else None)


def _no_body(request: web.Request) -> None:
    if request.body_exists or (request.content_length or 0) > 0:  # (body_exists: also chunked bodies)
        raise HttpError("invalid_request", f"{request.method} takes no body")


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "application/octet-stream" not in accept


def etag(value: bytes) -> str:
    """A value's entity tag: a quoted hash (a tag names a value, so a CAS can name what it replaces)."""
    return '"' + base64.urlsafe_b64encode(hashlib.sha256(value).digest()[:15]).decode() + '"'


async def condition_of(request: web.Request, key: bytes, level: str | None) -> dict[str, Any] | None:
    """``If-None-Match: *`` / ``If-Match`` as a serial condition (None: an unconditional request)."""
    none_match, match = request.headers.get("If-None-Match"), request.headers.get("If-Match")
    if none_match is None and match is None:
        return None
    if level not in (None, "serial"):
        raise HttpError("invalid_request", "If-Match and If-None-Match need consistency=serial (or none)")
    if none_match is not None:
        if none_match.strip() != "*" or match is not None or request.method != "PUT":
            raise HttpError("invalid_request", "only 'If-None-Match: *' on a PUT is supported")
        return {"if_absent": True}
    assert match is not None
    current: GetResult = await request.app[LOOP].get(key, "serial")
    tags = [t.strip() for t in match.split(",")]
    if len(current.values) == 1 and ("*" in tags or etag(current.values[0]) in tags):
        return {"if_value": current.values[0]}
    raise ConditionFailed("If-Match does not name the key's current value", current.values, current.context)


def refused(exc: ConditionFailed) -> web.Response:
    """412 with the key's current values (base64) and context token, as a serial GET would show them."""
    return error_response(
        "condition_failed",
        exc.message,
        values=[b64(v) for v in exc.values],
        context=encode_token(exc.context),
    )


def _context_headers(context: bytes | None) -> dict[str, str]:
    token = encode_token(context)
    return {CONTEXT_HEADER: token} if token else {}


def _written_headers(reply: dict[str, Any]) -> dict[str, str]:
    """A write's reply carries the stored version's context: a PUT with it supersedes that version."""
    ctx = reply.get("ctx")
    return _context_headers(ctx) if isinstance(ctx, bytes) else {}


def traced(request: web.Request) -> bool:
    """Does the request ask for a consistency receipt (``X-Zkv-Trace: 1``)?"""
    if TRACE_HEADER not in request.headers:
        return False  # the hot path: one lookup
    values = [v.strip().lower() for v in request.headers.getall(TRACE_HEADER, [])]
    if len(values) > 1 or (values and values[0] not in ("1", "true", "on", "0", "false", "off")):
        raise HttpError("invalid_request", f"{TRACE_HEADER} is 1 or 0 (given once), not {values!r}")
    return bool(values) and values[0] in ("1", "true", "on")


async def _traced_call(request: web.Request, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``msg`` asking for the receipt: the reply, and ``{"latency_ms", "receipt"}``.

    Traced requests are few (a person looking), so they take the pooled client, whose requests carry
    ``trace``, and the hot path stays as it is."""
    started = time.perf_counter()
    reply = await request.app[POOL].run(lambda c: c.transport.call_keyed({**msg, "trace": True}))
    latency = round((time.perf_counter() - started) * 1000, 3)
    return reply, {"latency_ms": latency, "receipt": reply.get("receipt") or {}}


def _receipt_headers(trace: dict[str, Any] | None) -> dict[str, str]:
    if trace is None:
        return {}
    return {RECEIPT_HEADER: json.dumps(json_safe(trace), separators=(",", ":"), ensure_ascii=True)}


async def get_key(request: web.Request) -> web.Response:
    key, consistency = key_of(request), consistency_of(request)
    _no_body(request)
    trace: dict[str, Any] | None = None
    result: GetResult
    if traced(request):
        reply, trace = await _traced_call(request, {"op": "get", "key": key, "cl": consistency})
        result = get_result(key, reply)
    else:
        result = await request.app[LOOP].get(key, consistency)
    headers = {**_context_headers(result.context), **_receipt_headers(trace)}
    if len(result.values) == 1:
        headers["ETag"] = etag(result.values[0])
    if _wants_json(request):
        body = get_json(result)
        if trace is not None:
            body["trace"] = json_safe(trace)
        return web.json_response(body, headers=headers)
    if not result.values:
        return error_response("not_found", "no value for this key", headers=headers)
    if len(result.values) > 1:
        body = {"siblings": [b64(v) for v in result.values], "context": encode_token(result.context)}
        return web.Response(
            status=300, text=json.dumps(body), content_type="application/json", headers=headers
        )
    headers["Content-Type"] = "application/octet-stream"  # as a header: no content-type parsing
    return web.Response(body=result.values[0], headers=headers)


def ttl_of(request: web.Request) -> float | None:
    """``?ttl=SECONDS`` of a PUT (the node checks the range: more than 0, at most 10 years)."""
    values = request.query.getall("ttl", [])
    if not values:
        return None
    try:
        if len(values) > 1:
            raise ValueError
        return float(values[0])
    except ValueError:
        raise HttpError("invalid_request", f"ttl must be one number of seconds, not {values!r}") from None


async def put_key(request: web.Request) -> web.Response:
    key, consistency, context = key_of(request), consistency_of(request), context_of(request)
    ttl = ttl_of(request)
    value = await request.read()
    try:
        condition = await condition_of(request, key, consistency)
        if condition is not None:
            consistency, context = "serial", None
        if traced(request):
            msg: dict[str, Any] = {
                "op": "put",
                "key": key,
                "cl": consistency,
                "value": value,
                **(condition or {}),
            }
            if context is not None:
                msg["ctx"] = context
            if ttl is not None:
                msg["ttl"] = ttl
            reply, trace = await _traced_call(request, msg)
            return web.Response(status=204, headers={**_written_headers(reply), **_receipt_headers(trace)})
        reply = await request.app[LOOP].put(key, value, consistency, context, ttl, condition)
    except ConditionFailed as exc:
        return refused(exc)
    return web.Response(status=204, headers=_written_headers(reply))


async def delete_key(request: web.Request) -> web.Response:
    key, consistency, context = key_of(request), consistency_of(request), context_of(request)
    _no_body(request)
    try:
        condition = await condition_of(request, key, consistency)
        if condition is not None:
            consistency, context = "serial", None
        if traced(request):
            msg = {"op": "delete", "key": key, "cl": consistency, **({"ctx": context} if context else {})}
            msg.update(condition or {})
            reply, trace = await _traced_call(request, msg)
            return web.Response(status=204, headers={**_written_headers(reply), **_receipt_headers(trace)})
        reply = await request.app[LOOP].delete(key, consistency, context, condition)
    except ConditionFailed as exc:
        return refused(exc)
    return web.Response(status=204, headers=_written_headers(reply))


async def where(request: web.Request) -> web.Response:
    key = key_of(request)
    _no_body(request)

    def look(client: Client) -> dict[str, Any]:
        info = client.ring(refresh=True)
        up = {n.name for n in client.nodes() if n.status == "up"}
        preference = info.preference_list(key)
        out = [
            {"node": n, "address": info.addresses.get(n), "role": "primary", "up": n in up}
            for n in preference
        ]
        out += [
            {"node": p.node, "address": info.addresses.get(p.node), "role": "fallback", "up": True}
            for p in info.ring.placements(key, lambda n: n in up)
            if p.role == "fallback"
        ]
        return {"key": key.decode("utf-8", "replace"), "preference_list": out}

    return web.json_response(await request.app[POOL].run(look))


async def replicas(request: web.Request) -> web.Response:
    key = key_of(request)
    _no_body(request)
    states = await request.app[POOL].run(lambda c: c.replicas(key))
    return web.json_response({"key": key.decode("utf-8", "replace"), "replicas": replicas_json(states)})
