"""``POST /v1/txn``: a multi-key transaction over HTTP (docs/transactions.md section 7, docs/http.md).

The body is JSON::

    {"token": "order-991",
     "checks":  [{"key": "stock", "value": "9"}, {"key": "seat", "absent": true}],
     "puts":    [{"key": "stock", "value": "8"}, {"key": "order:991", "value": "paid", "if_absent": true}],
     "deletes": [{"key": "cart:alice", "if_value": "book"}]}

Keys and values are UTF-8 strings, or ``{"base64": "..."}`` for any bytes. The answer is one of:

* ``200 {"applied": true, "token", "retry"}`` — every write took effect at one commit point (``retry``:
  an earlier request with the token had applied it; a token applies at most once within 10 minutes);
* ``412 condition_failed`` — a check or condition did not hold, nothing was written; ``key`` names it,
  ``values`` (base64) and ``context`` are what it holds (as a serial GET would show);
* ``409 txn_conflict`` — another transaction holds a key (the gateway's client retried with back-off
  for a while); nothing was written: send it again with the same token;
* ``504 outcome_unknown`` — the commit point was proposed but not seen decided: send it again with the
  same token, which tells (and applies it at most once);
* ``413 txn_too_many_keys`` (more than 100 keys) / ``txn_too_large`` (more than 4 MiB of keys and
  values), ``400 invalid_request`` for a body that is not such an object.

The body may be larger than the gateway's limit for a PUT (a transaction carries up to 4 MiB of values,
and JSON strings grow them), so this route reads it itself, up to :data:`MAX_BODY_BYTES`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from zkv.client.txn import Transaction, TxnResult
from zkv.core.txn import MAX_TXN_BYTES, MAX_TXN_KEYS
from zkv.errors import ConditionFailed, InvalidRequest, TxnTooLarge, TxnTooManyKeys
from zkv.http.errors import STATUS_BY_CODE, error_response
from zkv.http.state import POOL
from zkv.http.wire import b64, encode_token, json_safe

PATH = "/v1/txn"
#: 4 MiB of values as base64 JSON strings (4/3) with room for keys, field names and escapes
MAX_BODY_BYTES = 2 * MAX_TXN_BYTES + 64 * 1024
STATUSES = {"txn_conflict": 409, "txn_too_many_keys": 413, "txn_too_large": 413}
_FIELDS = {"token", "checks", "puts", "deletes"}


def setup(app: web.Application) -> None:
    STATUS_BY_CODE.update(STATUSES)
    app.router.add_post(PATH, post_txn)


async def post_txn(request: web.Request) -> web.Response:
    body = await _read_body(request)
    token, ops = parse_body(body)

    def run(client: Any) -> TxnResult:
        tx = Transaction(client, token)
        tx.ops = ops
        return tx.commit()

    try:
        result = await request.app[POOL].run(run)
    except ConditionFailed as exc:
        key = exc.details.get("key")
        return error_response(
            "condition_failed",
            exc.message,
            key=json_safe(key) if isinstance(key, bytes) else None,
            values=[b64(v) for v in exc.values],
            context=encode_token(exc.context),
        )
    return web.json_response({"applied": True, "token": result.token, "retry": result.retry})


async def _read_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large(request.content_length)
    raw = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large(len(raw))
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body must be a JSON object (see docs/http.md, POST /v1/txn)") from None


def _too_large(size: int) -> TxnTooLarge:
    return TxnTooLarge(
        f"a {size}-byte body; a transaction carries at most {MAX_TXN_BYTES} bytes of keys and values",
        limit=MAX_TXN_BYTES,
    )


def parse_body(body: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """The token and the client's transaction ops of a request body (``invalid_request`` if malformed;
    the node checks the rest: reserved keys, the sizes, one check and one write per key)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object with checks, puts and deletes")
    unknown = set(body) - _FIELDS
    if unknown:
        raise InvalidRequest(f"unknown fields {sorted(unknown)}: give token, checks, puts, deletes")
    token = body.get("token")
    if token is not None and (not isinstance(token, str) or not token):
        raise InvalidRequest("token must be a non-empty string")
    ops: list[dict[str, Any]] = []
    for field, kind in (("checks", "check"), ("puts", "put"), ("deletes", "delete")):
        items = body.get(field, [])
        if not isinstance(items, list):
            raise InvalidRequest(f"{field} must be a list")
        ops += [_op(kind, item, f"{field}[{i}]") for i, item in enumerate(items)]
    if not ops:
        raise InvalidRequest("a transaction needs at least one check, put or delete")
    if len(ops) > 2 * MAX_TXN_KEYS:
        raise TxnTooManyKeys(f"{len(ops)} operations; at most {MAX_TXN_KEYS} keys", limit=MAX_TXN_KEYS)
    return token, ops


def _op(kind: str, item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object with a key")
    allowed = {"check": {"key", "value", "absent"}, "put": {"key", "value", "if_value", "if_absent"}}
    known = allowed.get(kind, {"key", "if_value"})
    if set(item) - known:
        raise InvalidRequest(
            f"{where}: unknown fields {sorted(set(item) - known)} (it takes {sorted(known)})"
        )
    op: dict[str, Any] = {"op": kind, "key": _bytes(item.get("key"), f"{where}.key")}
    absent = item.get("absent" if kind == "check" else "if_absent", False)
    if not isinstance(absent, bool):
        raise InvalidRequest(f"{where}: absent / if_absent must be true or false")
    expected = item.get("value" if kind == "check" else "if_value")
    if kind == "put":
        op["value"] = _bytes(item.get("value"), f"{where}.value")
    if absent and expected is not None:
        raise InvalidRequest(f"{where}: give a value to compare or absent, not both")
    if kind == "check" and not absent and expected is None:
        raise InvalidRequest(f"{where}: a check needs a value or absent: true")
    if absent:
        op["if_absent"] = True
    if expected is not None:
        op["if_value"] = _bytes(expected, f"{where}.{'value' if kind == 'check' else 'if_value'}")
    return op


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"{where}: not valid base64") from None
    raise InvalidRequest(f'{where} must be a string or {{"base64": "..."}}')
