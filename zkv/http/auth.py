"""Bearer tokens: with ``[security]`` on, every API request names a token, mapped to client or admin.

The roles are those of the CURVE key allow-list (docs/security.md): a **client** reads and writes keys and
looks at the cluster; an **admin** may also change a node's state (its fault filter, ``leave``). Tokens
live in the file ``[security] http_tokens`` names, one per line, as ``ROLE NAME SHA256-HEX``: only the
hash is stored, so the file does not give the tokens away. ``zkv-http token`` makes one.

Open without a token: ``/health`` and ``/ready`` (probes, they show no data), ``/openapi.json`` and the
dashboard's static files (code, no data); the dashboard's data routes need a token like the rest.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from zkv.errors import ConfigError
from zkv.http.errors import error_response

CLIENT, ADMIN = "client", "admin"
ROLES = (CLIENT, ADMIN)
OPEN_ROUTES = frozenset({"/health", "/ready", "/openapi.json", "/", "/{path}"})
ADMIN_ROUTES = frozenset(
    {"/v1/nodes/{name}/faults", "/v1/nodes/{name}/leave", "/v1/dashboard/nodes/{name}/decommission"}
    | {f"/v1/dashboard/nodes/{{name}}/{action}" for action in ("repair", "isolate", "heal", "restart")}
)


@dataclass(frozen=True, slots=True)
class Identity:
    role: str
    name: str


def token_hash(token: str) -> str:
    """SHA-256 of the token: tokens are 32 random bytes, so a plain hash will do (no key stretching)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens(path: Path) -> dict[str, Identity]:
    """The token file: hash -> identity; ConfigError naming the line for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the http_tokens file {path}: {exc.strerror or exc}") from None
    out: dict[str, Identity] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        valid_hash = (
            len(parts) == 3 and len(parts[2]) == 64 and all(c in "0123456789abcdef" for c in parts[2])
        )
        if not valid_hash or parts[0] not in ROLES:
            raise ConfigError(
                f"{path}:{number}: expected 'client|admin NAME SHA256-HEX' (made by zkv-http token)"
            )
        out[parts[2]] = Identity(parts[0], parts[1])
    return out


def new_token(path: Path, role: str, name: str) -> str:
    """Make a token for ``name`` with ``role``, append its hash to ``path``, and return the token."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{role} {name} {token_hash(token)}\n")
    return token


def middleware(tokens: dict[str, Identity]) -> Callable:
    """The check: 401 without a known token, 403 when a client token asks for an admin route; the
    token's role is left on the request for the dashboard's own checks (``dashboard.ROLE``)."""
    from zkv.http.dashboard import ROLE  # here, not at the top: dashboard imports the app's state

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        if route in OPEN_ROUTES:
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        identity = tokens.get(token_hash(token.strip())) if scheme.lower() == "bearer" and token else None
        if identity is None:
            return error_response(
                "unauthorized",
                "this gateway needs 'Authorization: Bearer <token>' with a token of its http_tokens file",
                401,
                headers={"WWW-Authenticate": 'Bearer realm="zkv"'},
            )
        if route in ADMIN_ROUTES and identity.role != ADMIN:
            return error_response(
                "unauthorized", f"{route} needs an admin token; {identity.name}'s is a client's", 403
            )
        request[ROLE] = identity.role
        return await handler(request)

    return check
