"""What the client returns, as JSON: the one place that knows the shapes (status, nodes, ring, replicas).

Kept apart so a change in the client's types (a typed ``NodeStatus`` for ``status``) is adapted here
once, for the JSON routes and the metrics alike.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from typing import Any

from zkv.client import GetResult, NodeInfo, ReplicaState, RingInfo
from zkv.errors import InvalidRequest, ZkvError


def encode_token(data: bytes | None) -> str | None:
    """A context as the ``X-Zkv-Context`` token: URL-safe base64 without padding (header- and URL-safe)."""
    if data is None:
        return None
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_token(token: str | None) -> bytes | None:
    """The context a token stands for; ``invalid_request`` for anything a GET could not have returned."""
    if token is None or token == "":
        return None
    try:
        raw = token.encode("ascii")
        if raw.strip(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="):
            raise ValueError
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, ValueError, binascii.Error):
        raise InvalidRequest(
            "bad context token: X-Zkv-Context must be the token a GET returned (URL-safe base64)"
        ) from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def json_safe(value: Any) -> Any:
    """Plain JSON: bytes as UTF-8 text (base64 when not UTF-8), dataclasses as objects, inf as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_wire = getattr(value, "to_wire", None)
        return json_safe(to_wire() if callable(to_wire) else dataclasses.asdict(value))
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": b64(value)}
    if isinstance(value, dict):
        return {str(json_safe(k)) if not isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def status_json(status: Any) -> dict[str, Any]:
    """A node's ``status`` (today a dict; a ``NodeStatus`` with ``to_wire()`` later) as JSON."""
    out = json_safe(status)
    assert isinstance(out, dict)
    out.pop("id", None)
    out.pop("ok", None)
    return out


def node_json(info: NodeInfo) -> dict[str, Any]:
    return json_safe(dataclasses.asdict(info))


def ring_json(info: RingInfo) -> dict[str, Any]:
    ownership = info.ring.ownership()
    tokens = info.ring.tokens()
    return {
        "replication_factor": info.replication_factor,
        "vnodes": info.vnodes,
        "read_consistency": info.read_consistency,
        "write_consistency": info.write_consistency,
        "request_timeout": info.request_timeout,
        "members": [
            {
                "name": name,
                "address": info.addresses.get(name),
                "tokens": len(tokens.get(name, ())),
                "ownership": ownership.get(name, 0.0),
            }
            for name in sorted(info.addresses)
        ],
    }


def error_json(exc: ZkvError) -> dict[str, Any]:
    return {"error": exc.code, "message": exc.message}


def views_json(views: dict[str, dict[str, NodeInfo] | ZkvError]) -> dict[str, Any]:
    return {
        name: error_json(view)
        if isinstance(view, ZkvError)
        else {peer: node_json(info) for peer, info in view.items()}
        for name, view in views.items()
    }


def get_json(result: GetResult) -> dict[str, Any]:
    return {
        "found": result.found,
        "values": [b64(v) for v in result.values],
        "context": encode_token(result.context),
        "timestamps": result.timestamps,
    }


def replicas_json(states: dict[str, ReplicaState | ZkvError]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, state in states.items():
        if isinstance(state, ZkvError):
            out[name] = error_json(state)
            continue
        out[name] = {
            "versions": [
                {
                    "value": None if v.value is None else b64(v.value),
                    "tombstone": v.is_tombstone,
                    "actor": v.actor,
                    "counter": v.counter,
                    "timestamp": v.timestamp,
                }
                for v in state.versions
            ],
            "clock": dict(state.clock),
        }
    return out
