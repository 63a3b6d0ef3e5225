"""CURVE keys and the access policy a node enforces with them.

With ``[security] curve = true`` every socket of a node is CURVE-encrypted and a ZAP handler (pyzmq's
authenticator) decides who may connect. The policy has three roles, told apart by public key alone:

* **node** — the ``public_key`` of every ``[[node]]`` in cluster.toml, and the keys in ``node_keys`` (for
  nodes that join later; the file name is the node name). Only nodes may subscribe to gossip. The ZAP
  handler cannot see the routing identity a peer claims (libzmq hands it the server's own), so the node
  checks every message on the ROUTER: one whose routing identity names a node (``n1``, ``join~n1``) must
  come with that node's key, or it is dropped (see ``NodeRuntime._drain_router``).
* **admin** — keys in ``admin_keys``: operators' tools (tools/partition.py, ``zkv-node leave``). They may
  also change a node's state (fault filter, leave).
* **client** — keys in ``client_keys``: reads and writes.

A key not in any of these is refused during the handshake. Without CURVE, pyzmq/libzmq would accept any
key pair when no ZAP handler runs, which is why the handler is always installed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from zkv.core.admission import ADMIN as ADMIN  # the roles, re-exported: the policy assigns them
from zkv.core.admission import CLIENT as CLIENT
from zkv.core.admission import NODE

log = logging.getLogger(__name__)

REQUEST_DOMAIN = "zkv"  # the ROUTER: clients, admins and peers
GOSSIP_DOMAIN = "zkv-gossip"  # the PUB: nodes only


def keygen(out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (secret, mode 0600) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(out), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CURVE key pair in z85 (``secret`` None for a public-key-only file)."""

    public: bytes
    secret: bytes | None


def load_key(path: str | Path) -> KeyPair:
    """Read a key file written by :func:`keygen` (or ``zmq.auth.create_certificates``)."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read CURVE key {path}: {exc}") from None
    if public is None:
        raise ValueError(f"{path} holds no public-key line")
    return KeyPair(public, secret)


def load_key_dir(folder: str | Path) -> dict[bytes, str]:
    """The public keys of every ``*.key`` file in ``folder``, mapped to the file's stem."""
    keys: dict[bytes, str] = {}
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"key folder {folder} does not exist")
    for file in sorted(path.glob("*.key")):
        keys[load_key(file).public] = file.stem
    return keys


@dataclass(slots=True)
class AccessPolicy:
    """Who a public key is: role and name; and whether a connection may be made with it."""

    roles: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # z85 public key -> (role, name)
    node_names: set[str] = field(default_factory=set)

    def add(self, keys: dict[bytes, str], role: str) -> None:
        for key, name in keys.items():
            self.roles.setdefault(key, (role, name))  # a key listed as a node stays a node
            if role == NODE:
                self.node_names.add(name)

    def user_id(self, key: bytes) -> str:
        role, name = self.roles[key]
        return f"{role}:{name}"

    def allows(self, domain: str, key: bytes) -> bool:
        """Pure decision for one handshake: a known key, with the right role for the domain."""
        who = self.roles.get(key)
        if who is None:
            return False
        return who[0] == NODE if domain == GOSSIP_DOMAIN else True

    def claimed_node(self, route: bytes) -> str | None:
        """The node a routing identity claims to be (``n1`` or ``join~n1``), or None for a client's."""
        text = route.decode("utf-8", "replace")
        name = text.removeprefix("join~")
        return name if name in self.node_names or text.startswith("join~") else None

    def impostor(self, route: bytes, user: str) -> str | None:
        """The node a message's routing identity names when its connection is not that node's (``user``
        is ``role:name`` from ZAP); None for an honest message."""
        claimed = self.claimed_node(route)
        return None if claimed is None or user == f"{NODE}:{claimed}" else claimed


class ZkvAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread with the zkv policy; the User-Id of a connection is ``role:name``."""

    def __init__(self, context: zmq.Context, policy: AccessPolicy) -> None:
        super().__init__(context, log=logging.getLogger("zkv.auth"))
        self.policy = policy
        outer = self

        class _Provider:
            def callback(self, domain: str, key: bytes) -> bool:
                allowed = outer.policy.allows(domain, key)
                if not allowed:
                    log.warning("refused a CURVE connection (domain %s, key %s)", domain, key.decode())
                return allowed

        self._provider = _Provider()

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.policy.user_id(z85.encode(client_public_key))

    def begin(self) -> None:
        self.start()
        for domain in (REQUEST_DOMAIN, GOSSIP_DOMAIN):
            self.configure_curve_callback(domain, credentials_provider=self._provider)


def make_curve_server(sock: zmq.Socket, keys: KeyPair, domain: str) -> None:
    """Make ``sock`` (ROUTER or PUB) a CURVE server: it must be called before bind()."""
    assert keys.secret is not None
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())


def make_curve_client(sock: zmq.Socket, keys: KeyPair, server_public: bytes) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is ``server_public``: before connect()."""
    assert keys.secret is not None
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = server_public
