"""Load and validate cluster.toml: the one file every node and client agrees on.

Every node reads the same file, so a mistake in it shows up as a cluster that disagrees with itself
(different rings, different quorums). We therefore refuse anything doubtful up front: unknown keys,
wrong types and impossible combinations each raise :class:`~zkv.errors.ConfigError` with one line that
names the file, the key and the problem, so ``zkv-node`` can print it and exit instead of limping on.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zkv.core.quorum import required
from zkv.core.versions import MAX_CONTEXT_BYTES
from zkv.errors import ConfigError

LEVELS = ("one", "quorum", "all")
ENGINES = ("memory", "log", "redis")
FSYNC_POLICIES = ("always", "interval", "never")

MAX_VNODES = 4096
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TCP_RE = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")
_IPC_RE = re.compile(r"^ipc://\S+$")
_HTTP_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")

_SECURITY_KEYS = (
    "curve",
    "client_keys",
    "admin_keys",
    "node_keys",
    "http_tokens",
    "http_key",
    "http_tls_cert",
    "http_tls_key",
)

_Fail = Callable[[str], ConfigError]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One ``[[node]]``: where a node listens and where it keeps its data."""

    name: str
    address: str  # "tcp://HOST:PORT" — ROUTER for clients and peers
    gossip: str  # "tcp://HOST:PORT" — PUB for heartbeats/gossip
    data_dir: Path  # absolute; relative paths in the file are resolved against the file's folder
    public_key: Path | None = None  # CURVE public key file (absolute), with [security] curve = true
    secret_key: Path | None = None  # CURVE secret key file; only the node itself needs to read it
    http: str | None = None  # "HOST:PORT" of this node's HTTP gateway (zkv-http); None: no gateway
    redis: str | None = None  # engine = "redis": "unix:/ABS/PATH" or a redis:// URL; None: its own server


@dataclass(frozen=True, slots=True)
class SecuritySpec:
    """``[security]``: CURVE on or off and the folders of allowed public keys (absolute paths)."""

    curve: bool = False
    client_keys: Path | None = None  # clients: reads and writes
    admin_keys: Path | None = None  # operators: also the fault filter and leave
    node_keys: Path | None = None  # nodes not listed in the file (they join later)
    http_tokens: Path | None = None  # the HTTP gateway's bearer tokens, hashed (zkv-http token)
    http_key: Path | None = None  # with CURVE: the secret key the gateways reach the nodes with
    http_tls_cert: Path | None = None  # the gateways serve HTTPS with this certificate (PEM)...
    http_tls_key: Path | None = None  # ...and its private key


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The whole validated cluster.toml; immutable so every component sees the same settings."""

    name: str
    nodes: tuple[NodeSpec, ...]
    replication_factor: int = 3
    vnodes: int = 64
    read_consistency: str = "quorum"
    write_consistency: str = "quorum"
    request_timeout_ms: int = 2000
    heartbeat_interval_ms: int = 500
    failure_timeout_ms: int = 3000  # a peer not heard from for this long is considered down
    engine: str = "log"
    fsync: str = "always"
    fsync_interval_ms: int = 100
    max_key_bytes: int = 1024
    max_value_bytes: int = 1048576
    max_siblings: int = 100
    phi_threshold: int = 8  # phi-accrual suspicion level past which a silent peer is down
    handoff_interval_ms: int = 1000  # how often hints are offered to their owners
    max_hints: int = 100000  # hints kept per node, over all targets
    max_hint_bytes: int = 268435456  # bytes of hints kept per node
    max_hint_window_s: int = 10800  # no hints for a node down longer than this; its hints are dropped
    anti_entropy_interval_ms: int = 10000  # how often a node compares Merkle trees with one peer
    cache_bytes: int = 33554432  # log engine: hot values kept in memory
    segment_bytes: int = 67108864  # log engine: a segment file is closed at this size
    compaction_threshold: float = 0.5  # log engine: compact a segment once this share of it is dead
    read_repair_chance: float = 0.1  # share of reads that ask every replica, to repair the ones behind
    speculative_retry_ms: int = 20  # a read whose asked replicas are silent this long asks the others
    max_context_bytes: int = 8192  # a causal context larger than this is refused (context_too_large)
    max_message_bytes: int = 134217728  # ZMQ_MAXMSGSIZE: a larger message drops the connection
    max_in_flight_per_client: int = 1000  # unanswered requests per client connection (too_many_requests)
    handshake_interval_ms: int = 5000  # ZMQ_HANDSHAKE_IVL: a connection must finish its handshake by then
    high_water_mark: int = 20000  # ZMQ SNDHWM/RCVHWM: messages queued per connection
    restart: str = "no"  # zkv-node's supervisor: "on-failure" restarts a node that crashed (with back-off)
    max_clock_skew_s: int = 60  # a peer whose wall clock is further off than this is warned of (status)
    sloppy_quorum: bool = True  # hinted writes on fallbacks count toward W (false: only primaries count)
    tombstone_grace_s: int = 86400  # a tombstone is purged no sooner than this after the delete or expiry
    security: SecuritySpec = SecuritySpec()
    path: Path | None = None  # the file it was loaded from

    def node(self, name: str) -> NodeSpec:
        """The spec for ``name``; a ConfigError (not KeyError) because the name usually comes from --node."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        where = self.path.name if self.path is not None else "cluster.toml"
        raise ConfigError(f"no node named {name!r} in {where} (nodes: {', '.join(self.node_names)})")

    @property
    def node_names(self) -> tuple[str, ...]:
        """Node names in file order."""
        return tuple(spec.name for spec in self.nodes)


RESTART_POLICIES = ("no", "on-failure")

# [cluster] keys by kind; defaults come from the ClusterConfig fields. "name" is checked against NAME_RE.
_INT_KEYS = (
    "replication_factor",
    "vnodes",
    "request_timeout_ms",
    "heartbeat_interval_ms",
    "failure_timeout_ms",
    "fsync_interval_ms",
    "max_key_bytes",
    "max_value_bytes",
    "max_siblings",
    "phi_threshold",
    "handoff_interval_ms",
    "max_hints",
    "max_hint_bytes",
    "max_hint_window_s",
    "anti_entropy_interval_ms",
    "cache_bytes",
    "segment_bytes",
    "max_context_bytes",
    "max_message_bytes",
    "max_in_flight_per_client",
    "handshake_interval_ms",
    "high_water_mark",
    "speculative_retry_ms",
    "max_clock_skew_s",
    "tombstone_grace_s",
)
_CHOICE_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "read_consistency": (LEVELS, "a consistency level"),
    "write_consistency": (LEVELS, "a consistency level"),
    "engine": (ENGINES, "a storage engine"),
    "fsync": (FSYNC_POLICIES, "an fsync policy"),
    "restart": (RESTART_POLICIES, "a restart policy"),
}
_CLUSTER_KEYS = (
    "name",
    *_INT_KEYS,
    *_CHOICE_KEYS,
    "compaction_threshold",
    "read_repair_chance",
    "sloppy_quorum",
)
_NODE_KEYS = ("name", "address", "gossip", "data_dir", "public_key", "secret_key", "http", "redis")
_NODE_REQUIRED = ("name", "address", "gossip")


def quorum_size(level: str, n: int) -> int:
    """How many of ``n`` replicas must answer for ``level``; one shared rule so R + W > N holds everywhere."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"replica count must be a positive integer, got {n!r}")
    if level not in LEVELS:
        raise ValueError(f"{level!r} is not a consistency level ({', '.join(LEVELS)})")
    return required(level, n)


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate ``path``; every failure (I/O, syntax, semantics) is one ConfigError line."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid TOML: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    absolute = Path(os.path.abspath(path))
    return _parse(data, absolute.parent, source, absolute)


def parse_config(data: dict, base_dir: Path, source: str = "cluster.toml") -> ClusterConfig:
    """Validate already-parsed TOML; split from load_config so tests and tools can skip the file."""
    return _parse(data, Path(base_dir), source, None)


def _parse(data: dict[str, Any], base_dir: Path, source: str, path: Path | None) -> ClusterConfig:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail("the file must be a TOML document of tables")
    known_tables = ("cluster", "node", "security")
    for key in data:
        if key not in known_tables:
            raise fail(f"unknown table [{key}]{_suggest(key, known_tables, '[', ']')}")

    cluster = data.get("cluster", {})
    if not isinstance(cluster, dict):
        raise fail("cluster must be a table ([cluster])")
    settings = _parse_cluster(cluster, fail)
    base = Path(os.path.abspath(base_dir))
    security = _parse_security(data.get("security", {}), base, fail)

    raw_nodes = data.get("node")
    if raw_nodes is None or raw_nodes == []:
        raise fail("no [[node]] tables: define at least one node")
    if not isinstance(raw_nodes, list):
        raise fail("node must be an array of tables ([[node]], not [node])")
    nodes = tuple(_parse_node(i, raw, base, fail) for i, raw in enumerate(raw_nodes, start=1))
    _check_unique(nodes, fail)
    for index, spec in enumerate(nodes, start=1):
        if spec.redis is not None and settings["engine"] != "redis":
            raise fail(
                f"[[node]] #{index} ({spec.name}) redis = {spec.redis!r} is used only with "
                f'[cluster] engine = "redis" (engine is {settings["engine"]!r})'
            )
    if security.curve:
        for index, spec in enumerate(nodes, start=1):
            if spec.public_key is None:
                raise fail(
                    f"[[node]] #{index} ({spec.name}) has no public_key, and [security] curve = true "
                    f"(make one: zkv-node keygen --out keys {spec.name})"
                )

    n = settings["replication_factor"]
    if n > len(nodes):
        raise fail(f"[cluster] replication_factor = {n} but only {_plural(len(nodes), 'node')} defined")
    if settings["heartbeat_interval_ms"] >= settings["failure_timeout_ms"]:
        raise fail(
            f"[cluster] heartbeat_interval_ms = {settings['heartbeat_interval_ms']} must be less than "
            f"failure_timeout_ms = {settings['failure_timeout_ms']}"
        )
    if settings["tombstone_grace_s"] < settings["max_hint_window_s"]:
        raise fail(
            f"[cluster] tombstone_grace_s = {settings['tombstone_grace_s']} must be at least "
            f"max_hint_window_s = {settings['max_hint_window_s']} (a hint of an older write, delivered "
            "after the tombstone that superseded it was purged, would bring the deleted data back)"
        )
    if settings["max_context_bytes"] > MAX_CONTEXT_BYTES:
        value = settings["max_context_bytes"]
        raise fail(f"[cluster] max_context_bytes = {value} must be at most {MAX_CONTEXT_BYTES}")
    # a replica state of max_siblings largest values must fit in one message, with its key and context
    floor = settings["max_siblings"] * (settings["max_value_bytes"] + 64)
    floor += settings["max_key_bytes"] + settings["max_context_bytes"] + 4096
    if settings["max_message_bytes"] < floor:
        raise fail(
            f"[cluster] max_message_bytes = {settings['max_message_bytes']} must be at least {floor} "
            "(max_siblings x (max_value_bytes + 64) + max_key_bytes + max_context_bytes + 4096), "
            "or a key at its limits could not be replicated"
        )
    return ClusterConfig(nodes=nodes, path=path, security=security, **settings)


def _parse_security(raw: Any, base: Path, fail: _Fail) -> SecuritySpec:
    if not isinstance(raw, dict):
        raise fail("security must be a table ([security])")
    for key in raw:
        if key not in _SECURITY_KEYS:
            raise fail(f"[security] {key} is not a known key{_suggest(key, _SECURITY_KEYS)}")
    curve = raw.get("curve", False)
    if not isinstance(curve, bool):
        raise fail(f"[security] curve = {_show(curve)} must be true or false")
    folders: dict[str, Path | None] = {}
    for key in (
        "client_keys",
        "admin_keys",
        "node_keys",
        "http_tokens",
        "http_key",
        "http_tls_cert",
        "http_tls_key",
    ):
        value = raw.get(key)
        folders[key] = None if value is None else _path(f"[security] {key}", value, base, fail)
    if (folders["http_tls_cert"] is None) != (folders["http_tls_key"] is None):
        raise fail("[security] http_tls_cert and http_tls_key go together: give both or neither")
    return SecuritySpec(curve=curve, **folders)


def _path(label: str, value: Any, base: Path, fail: _Fail) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{label} = {_show(value)} must be a non-empty path string")
    return Path(os.path.abspath(base / Path(value).expanduser()))


def _parse_cluster(cluster: dict[str, Any], fail: _Fail) -> dict[str, Any]:
    for key in cluster:
        if key not in _CLUSTER_KEYS:
            raise fail(f"[cluster] {key} is not a known key{_suggest(key, _CLUSTER_KEYS)}")
    settings: dict[str, Any] = {}

    name = cluster.get("name", "zkv")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise fail(f"[cluster] name = {_show(name)} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    settings["name"] = name

    for key in _INT_KEYS:
        value = cluster.get(key, ClusterConfig.__dataclass_fields__[key].default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"[cluster] {key} = {_show(value)} is not an integer")
        if value < 1:
            raise fail(f"[cluster] {key} = {value} must be positive")
        settings[key] = value
    if settings["vnodes"] > MAX_VNODES:
        raise fail(f"[cluster] vnodes = {settings['vnodes']} is out of range (1..{MAX_VNODES})")

    threshold = cluster.get(
        "compaction_threshold", ClusterConfig.__dataclass_fields__["compaction_threshold"].default
    )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise fail(f"[cluster] compaction_threshold = {_show(threshold)} must be a number in (0, 1]")
    settings["compaction_threshold"] = float(threshold)
    chance = cluster.get(
        "read_repair_chance", ClusterConfig.__dataclass_fields__["read_repair_chance"].default
    )
    if isinstance(chance, bool) or not isinstance(chance, int | float) or not 0 <= chance <= 1:
        raise fail(f"[cluster] read_repair_chance = {_show(chance)} must be a number in [0, 1]")
    settings["read_repair_chance"] = float(chance)
    sloppy = cluster.get("sloppy_quorum", True)
    if not isinstance(sloppy, bool):
        raise fail(f"[cluster] sloppy_quorum = {_show(sloppy)} must be true or false")
    settings["sloppy_quorum"] = sloppy
    if settings["segment_bytes"] < 4096:
        raise fail(f"[cluster] segment_bytes = {settings['segment_bytes']} must be at least 4096")

    for key, (choices, what) in _CHOICE_KEYS.items():
        value = cluster.get(key, ClusterConfig.__dataclass_fields__[key].default)
        if not isinstance(value, str) or value not in choices:
            raise fail(f"[cluster] {key} = {_show(value)} is not {what} ({', '.join(choices)})")
        settings[key] = value
    return settings


def _parse_node(index: int, raw: Any, base: Path, fail: _Fail) -> NodeSpec:
    label = f"[[node]] #{index}"
    if not isinstance(raw, dict):
        raise fail(f"{label} must be a table")
    name = raw.get("name")
    if isinstance(name, str) and NAME_RE.fullmatch(name):
        label = f"{label} ({name})"
    for key in raw:
        if key not in _NODE_KEYS:
            raise fail(f"{label} {key} is not a known key{_suggest(key, _NODE_KEYS)}")
    for key in _NODE_REQUIRED:
        if key not in raw:
            raise fail(f"{label} is missing {key}")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise fail(f"{label} name = {_show(name)} must be 1-64 characters of A-Z a-z 0-9 _ . -")

    endpoints = {}
    for key in ("address", "gossip"):
        value = raw[key]
        if not isinstance(value, str) or not _valid_endpoint(value):
            raise fail(
                f"{label} {key} = {_show(value)} is not of the form tcp://HOST:PORT (port 1-65535) or ipc://PATH"
            )
        endpoints[key] = value

    data_dir = raw.get("data_dir", f"data/{name}")
    if not isinstance(data_dir, str) or not data_dir.strip():
        raise fail(f"{label} data_dir = {_show(data_dir)} must be a non-empty path string")
    resolved = Path(os.path.abspath(base / Path(data_dir).expanduser()))
    keys: dict[str, Any] = {
        k: _path(f"{label} {k}", raw[k], base, fail) for k in ("public_key", "secret_key") if k in raw
    }
    if "redis" in raw:
        keys["redis"] = _redis_url(f"{label} redis", raw["redis"], base, fail)
    http = raw.get("http")
    if http is not None and not valid_listen(http):
        raise fail(f"{label} http = {_show(http)} is not of the form HOST:PORT (port 1-65535)")
    return NodeSpec(
        name=name,
        address=endpoints["address"],
        gossip=endpoints["gossip"],
        data_dir=resolved,
        http=http,
        **keys,
    )


def _redis_url(label: str, value: Any, base: Path, fail: _Fail) -> str:
    """``unix:PATH`` (relative to the file's folder) or ``redis[s]://HOST[:PORT][/DB]``, normalised."""
    if isinstance(value, str) and value.startswith("unix:"):
        path = value.removeprefix("unix:").removeprefix("//")
        if path.strip():
            return "unix:" + os.path.abspath(base / Path(path).expanduser())
    elif isinstance(value, str) and value.startswith(("redis://", "rediss://")):
        try:
            parsed = urlsplit(value)
            parsed.port  # noqa: B018 - raises on a port that is no number or out of range
        except ValueError:
            parsed = None
        if parsed is not None and parsed.hostname:
            return value
    raise fail(f"{label} = {_show(value)} must be unix:PATH (a socket) or a redis://HOST:PORT URL")


def _check_unique(nodes: tuple[NodeSpec, ...], fail: _Fail) -> None:
    """Two nodes sharing a name, socket or data folder would silently fight, so reject it here."""
    names: dict[str, int] = {}
    endpoints: dict[str, str] = {}
    dirs: dict[Path, str] = {}
    for index, spec in enumerate(nodes, start=1):
        label = f"[[node]] #{index} ({spec.name})"
        if spec.name in names:
            raise fail(f"{label} name = {spec.name!r} is already used by [[node]] #{names[spec.name]}")
        names[spec.name] = index
        for key in ("address", "gossip"):
            endpoint = getattr(spec, key)
            if endpoint in endpoints:
                raise fail(f"{label} {key} = {endpoint!r} is already used as {endpoints[endpoint]}")
            endpoints[endpoint] = f"the {key} of [[node]] #{index} ({spec.name})"
        if spec.http is not None:
            if spec.http in endpoints:
                raise fail(f"{label} http = {spec.http!r} is already used as {endpoints[spec.http]}")
            endpoints[spec.http] = f"the http of [[node]] #{index} ({spec.name})"
        if spec.data_dir in dirs:
            raise fail(f"{label} data_dir = '{spec.data_dir}' is already used by {dirs[spec.data_dir]}")
        dirs[spec.data_dir] = f"[[node]] #{index} ({spec.name})"


def valid_listen(value: object) -> bool:
    """Is ``value`` a ``HOST:PORT`` an HTTP gateway can listen on (the ``http`` key, ``--listen``)?"""
    if not isinstance(value, str):
        return False
    match = _HTTP_RE.fullmatch(value)
    return match is not None and 1 <= int(match["port"]) <= 65535


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:7181"`` -> ``("127.0.0.1", 7181)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _valid_endpoint(value: str) -> bool:
    if _IPC_RE.fullmatch(value):
        return True
    match = _TCP_RE.fullmatch(value)
    return match is not None and 1 <= int(match["port"]) <= 65535


def _suggest(key: str, known: tuple[str, ...], left: str = "", right: str = "") -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f" (did you mean {left}{close[0]}{right}?)"
    return f" (known: {', '.join(left + k + right for k in known)})"


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML, so the message can be matched against the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(missing)"
    return repr(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun} is" if count == 1 else f"{count} {noun}s are"
