"""CURVE security of a node's sockets: its key pair, every allowed public key, and who a connection is.

Loading only; who may do what is the access policy's (:class:`zkv.security.AccessPolicy`) and the
core's admission rule (:mod:`zkv.core.admission`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import zmq

from zkv.config import ClusterConfig
from zkv.security import ADMIN, CLIENT, NODE, AccessPolicy, KeyPair, load_key, load_key_dir


class CurveKeys(NamedTuple):
    keys: KeyPair  # this node's own pair
    node_keys: dict[str, bytes]  # node name -> CURVE public key
    policy: AccessPolicy  # public key -> role and name, for ZAP


def load_curve(config: ClusterConfig, name: str) -> CurveKeys:
    """This node's key pair and every allowed public key; an OSError that names the problem."""
    spec = config.node(name)
    if spec.secret_key is None:
        raise OSError(f"{name}: [security] curve = true but the node has no secret_key")
    try:
        keys = load_key(spec.secret_key)
        if keys.secret is None:
            raise ValueError(f"{spec.secret_key} holds no secret key")
        node_keys: dict[str, bytes] = {}
        if config.security.node_keys is not None:
            for key, node in load_key_dir(config.security.node_keys).items():
                node_keys[node] = key
        for member in config.nodes:
            if member.public_key is not None:
                node_keys[member.name] = load_key(member.public_key).public
        policy = AccessPolicy()
        policy.add({key: node for node, key in node_keys.items()}, NODE)
        for folder, role in ((config.security.admin_keys, ADMIN), (config.security.client_keys, CLIENT)):
            if folder is not None:
                policy.add(load_key_dir(folder), role)
    except ValueError as exc:
        raise OSError(f"{name}: {exc}") from None
    return CurveKeys(keys, node_keys, policy)


def connection_user(frame: Any) -> str:
    """``role:name`` that ZAP gave the connection a message came on (role node, admin or client)."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return "client:?"
    return user if isinstance(user, str) else "client:?"
