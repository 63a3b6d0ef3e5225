"""What a caller hands the client, checked before anything is sent: addresses, consistency, contexts, keys.

A bad argument is a :class:`~zkv.errors.BadArgument` (or a subclass) raised here, at the call, with a
next step in its message: an error from deep inside pyzmq or msgpack helps no one.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from zkv.client.results import GetResult, WriteResult
from zkv.config import ClusterConfig
from zkv.errors import BadAddress, BadArgument, BadType, ConfigError
from zkv.protocol import LEVELS
from zkv.security import load_key

_SCHEMES = ("tcp://", "ipc://", "inproc://")

#: the context of a get that saw nothing: a write with it supersedes nothing (``put(..., concurrent=True)``)
EMPTY_CONTEXT = b"\x90"  # msgpack of an empty list: the encoding of the empty clock


def normalize_address(address: object) -> str:
    """A node address as ZeroMQ wants it: ``HOST:PORT`` gets ``tcp://``; anything unusable is
    :class:`~zkv.errors.BadAddress` (a ZMQError from deep inside a connect helps no one)."""
    if not isinstance(address, str) or not address.strip():
        raise BadAddress(f"a node address is a string like 127.0.0.1:7101, not {address!r}")
    address = address.strip()
    if "://" not in address:
        address = "tcp://" + address
    if not address.startswith(_SCHEMES):
        raise BadAddress(f"{address!r}: addresses look like 127.0.0.1:7101 or tcp://127.0.0.1:7101")
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://") :].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadAddress(f"{address!r}: a tcp address needs HOST:PORT with a port of 1-65535")
    return address


def check_consistency(consistency: object) -> str | None:
    """A consistency the cluster knows (one, quorum, all), or None (the cluster's default)."""
    if consistency is None or consistency in LEVELS:
        return consistency
    raise BadArgument(
        f"unknown consistency {consistency!r}; use one, quorum or all", consistency=str(consistency)
    )


check_level = check_consistency  # the name before the client said "consistency" everywhere


def context_bytes(context: Any) -> bytes | None:
    """A context as the wire carries it: bytes, a :class:`GetResult`'s or :class:`WriteResult`'s, or the
    base64 text that ``zkv-shell -o json`` prints (so a script can hand it back)."""
    if context is None or isinstance(context, bytes):
        return context
    if isinstance(context, GetResult | WriteResult):
        return context.context
    if isinstance(context, str):
        try:  # standard base64 (zkv-shell -o json), or the URL-safe unpadded token of the HTTP API
            text = context.strip().encode("ascii")
            altchars = b"-_" if b"-" in text or b"_" in text else None
            return base64.b64decode(text + b"=" * (-len(text) % 4), altchars=altchars, validate=True)
        except (ValueError, UnicodeEncodeError):
            raise BadArgument("the context is not base64 text from zkv-shell -o json or a get") from None
    raise BadType(
        f"a context is bytes, base64 text, a GetResult or a WriteResult, not {type(context).__name__}"
    )


def write_context(context: Any, concurrent: bool) -> Any:
    """The context a put sends: the caller's, or the empty one (supersede nothing) when ``concurrent``."""
    if concurrent:
        if context is not None:
            raise BadArgument(
                "a put with a context supersedes what it saw; concurrent=True supersedes nothing"
            )
        return EMPTY_CONTEXT
    return context


def curve_options(config: ClusterConfig, key_file: str | Path | None) -> dict[str, Any]:
    """The ``Client`` arguments a cluster's ``[security]`` asks for: ``{}`` without CURVE, else this
    client's key pair (from ``key_file``) and every node's public key by address."""
    if not config.security.curve:
        return {}
    where = config.path.name if config.path is not None else "cluster.toml"
    if key_file is None:
        raise ConfigError(
            f"{where} turns CURVE on: give your secret key file (--key FILE, or key_file=), made by "
            "zkv-node keygen --out keys NAME; its .key must be in the cluster's client_keys or admin_keys"
        )
    try:
        key = load_key(key_file)
        servers = {n.address: load_key(n.public_key).public for n in config.nodes if n.public_key}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if key.secret is None:
        raise ConfigError(f"{key_file} holds no secret key: pass the .key_secret file")
    return {"curve_key": key, "server_keys": servers}
