"""``/openapi.json``: every route of the gateway described in OpenAPI 3.0 (schemathesis tests run on it).

Written out by hand, as data, next to the routes: the shapes are those of :mod:`zkv.http.wire` and the
statuses those of :mod:`zkv.http.errors`. docs/http.md is the prose version.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from zkv.protocol import LEVELS


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "the key, percent-encoded (any bytes)",
    "schema": {"type": "string", "minLength": 1},
}
_LEVEL = {
    "name": "consistency",
    "in": "query",
    "required": False,
    "description": "one, quorum or all (default: the cluster's read_consistency / write_consistency)",
    "schema": {"type": "string", "enum": list(LEVELS)},
}
_CONTEXT = {
    "name": "X-Zkv-Context",
    "in": "header",
    "required": False,
    "description": "the context token of an earlier GET (URL-safe base64)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*={0,2}$"},
}
_TRACE = {
    "name": "X-Zkv-Trace",
    "in": "header",
    "required": False,
    "description": "1: return the coordinator's consistency receipt in X-Zkv-Receipt (docs/http.md)",
    "schema": {"type": "string", "enum": ["1", "0", "true", "false"]},
}
_CONTEXT_OUT = {"X-Zkv-Context": {"description": "the key's context token", "schema": {"type": "string"}}}
_COMMON_ERRORS = {
    "400": _error("invalid_request: a bad consistency, context token, percent-encoding, or a body on GET"),
    "401": _error("unauthorized: no or an unknown bearer token (with [security])"),
    "403": _error("unauthorized: the token's role may not use this route"),
    "429": _error("overloaded / too_many_requests"),
    "503": _error("unavailable / no_node_available: not enough replicas reachable"),
    "504": _error("timeout: not enough replicas answered in time"),
}
_NODE_LIST = {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}


def _op(
    summary: str, responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None, **extra: Any
) -> dict:
    out: dict[str, Any] = {"summary": summary, "responses": {**responses, **_COMMON_ERRORS}}
    if parameters:
        out["parameters"] = parameters
    out.update(extra)
    return out


_TXN_KEY = {"type": "string", "minLength": 1}
_TXN_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "minLength": 1, "description": "applies at most once (10 minutes)"},
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key"],
                "additionalProperties": False,
                "properties": {"key": _TXN_KEY, "value": {"type": "string"}, "absent": {"type": "boolean"}},
            },
        },
        "puts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "value"],
                "additionalProperties": False,
                "properties": {
                    "key": _TXN_KEY,
                    "value": {"type": "string"},
                    "if_value": {"type": "string"},
                    "if_absent": {"type": "boolean"},
                },
            },
        },
        "deletes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key"],
                "additionalProperties": False,
                "properties": {"key": _TXN_KEY, "if_value": {"type": "string"}},
            },
        },
    },
}
_TXN = {
    "post": _op(
        "A multi-key transaction: every write at one commit point, or none (docs/transactions.md)",
        {
            "200": _json(
                "applied (retry: an earlier request with the token had applied it)",
                {
                    "type": "object",
                    "required": ["applied", "token", "retry"],
                    "properties": {
                        "applied": {"type": "boolean"},
                        "token": {"type": "string"},
                        "retry": {"type": "boolean"},
                    },
                },
            ),
            "409": _error("txn_conflict: another transaction holds a key; nothing was written"),
            "412": _error("condition_failed: with key, values (base64) and context; nothing was written"),
            "413": _error("txn_too_many_keys (over 100 keys) / txn_too_large (over 4 MiB)"),
        },
        requestBody={"required": True, "content": {"application/json": {"schema": _TXN_BODY}}},
    )
}


def spec() -> dict[str, Any]:
    """The OpenAPI document."""
    bytes_body = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "zkv HTTP API",
            "version": "1",
            "description": "zkv's gateway: keys, cluster views, metrics and readiness (docs/http.md).",
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "Values": {
                    "type": "object",
                    "required": ["found", "values", "context"],
                    "properties": {
                        "found": {"type": "boolean"},
                        "values": {"type": "array", "items": {"type": "string", "format": "byte"}},
                        "context": {"type": "string", "nullable": True},
                        "timestamps": {"type": "array", "items": {"type": "number"}},
                    },
                },
                "Siblings": {
                    "type": "object",
                    "required": ["siblings", "context"],
                    "properties": {
                        "siblings": {"type": "array", "items": {"type": "string", "format": "byte"}},
                        "context": {"type": "string", "nullable": True},
                    },
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/keys/{key}": {
                "get": _op(
                    "Read a key",
                    {
                        "200": {
                            "description": "one value (raw bytes); with Accept: application/json, JSON",
                            "headers": _CONTEXT_OUT,
                            "content": {
                                **bytes_body,
                                "application/json": {"schema": {"$ref": "#/components/schemas/Values"}},
                            },
                        },
                        "300": {
                            "description": "siblings: concurrent values, and the context that resolves them",
                            "headers": _CONTEXT_OUT,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Siblings"}}
                            },
                        },
                        "404": _error("not_found: no value (X-Zkv-Context still set over a tombstone)"),
                    },
                    [_KEY, _LEVEL, _TRACE],
                ),
                "put": _op(
                    "Write a value",
                    {
                        "204": {
                            "description": "written at the consistency asked for; X-Zkv-Context: the context "
                            "of the stored version (a PUT with it supersedes it)",
                            "headers": _CONTEXT_OUT,
                        },
                        "409": _error("too_many_siblings"),
                        "413": _error("key_too_large / value_too_large"),
                    },
                    [_KEY, _LEVEL, _CONTEXT, _TRACE],
                    requestBody={"required": False, "content": bytes_body},
                ),
                "delete": _op(
                    "Delete a key (a tombstone)",
                    {
                        "204": {"description": "deleted", "headers": _CONTEXT_OUT},
                        "413": _error("key_too_large"),
                    },
                    [_KEY, _LEVEL, _CONTEXT, _TRACE],
                ),
            },
            "/v1/keys": {
                "get": _op(
                    "A page of keys in byte order (a scan), with the cursor of the next page",
                    {
                        "200": _json(
                            "keys, cursor (null at the end), values with values=true",
                            {
                                "type": "object",
                                "required": ["keys", "cursor"],
                                "properties": {
                                    "keys": {"type": "array", "items": {}},
                                    "cursor": {"type": "string", "nullable": True},
                                    "values": {"type": "array", "items": {"type": "array"}},
                                },
                            },
                        ),
                    },
                    [
                        {"name": "prefix", "in": "query", "required": False, "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "keys per page, 1-10000 (default 1000); else bad_limit",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "description": "the previous page's cursor (same scan); else bad_cursor",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "values",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["true", "false"]},
                        },
                        _LEVEL,
                    ],
                )
            },
            "/v1/txn": _TXN,
            "/v1/keys/{key}/where": {
                "get": _op("The key's preference list", {"200": _json("primaries, then fallbacks")}, [_KEY])
            },
            "/v1/keys/{key}/replicas": {
                "get": _op("Each replica's stored versions (no repair)", {"200": _json("by node")}, [_KEY])
            },
            "/v1/cluster/nodes": {
                "get": _op("Every node as the gateway's node sees it", {"200": _json("nodes")})
            },
            "/v1/cluster/ring": {"get": _op("The ring: members, tokens, ownership", {"200": _json("ring")})},
            "/v1/cluster/views": {"get": _op("Every node's view of every node", {"200": _json("views")})},
            "/v1/nodes/{name}/status": {
                "get": _op(
                    "A node's statistics",
                    {"200": _json("status"), "404": _error("not_found: no such node")},
                    [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                )
            },
            "/health": {"get": _op("The gateway and its node answer", {"200": _json("ok")})},
            "/ready": {
                "get": _op(
                    "200 once the node can serve quorum for every range it holds",
                    {"200": _json("ready"), "503": _error("not_ready, with the reason")},
                )
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format)",
                    "responses": {
                        "200": {
                            "description": "metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json("OpenAPI")}}},
        },
    }
