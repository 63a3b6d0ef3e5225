"""CURVE: only allowed keys get in, only nodes act as nodes, only admins change a node's state."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth

from zkv.client import Client
from zkv.errors import ConfigError, NoNodeAvailable, Unauthorized, ZkvError
from zkv.security import keygen, load_key, make_curve_client
from zkv.testing.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("curve"), 3, curve=True)
    try:
        cluster.start()
        yield cluster
    finally:
        assert not cluster.close()


def _server_keys(cluster: LocalCluster) -> dict[str, bytes]:
    return {cluster.addresses[n]: load_key(cluster.keys / f"{n}.key").public for n in cluster.names}


def _refused(client: Client) -> None:
    with pytest.raises((NoNodeAvailable, ZkvError)):
        client.get("k")


def test_an_allowed_client_is_served(secure: LocalCluster) -> None:
    with Client.from_config(secure.config_path, key_file=secure.keys / "clients" / "alice.key_secret") as c:
        c.put("k", "v", consistency="all")
        assert c.get("k", consistency="all").values == [b"v"]
        assert {n.status for n in c.nodes()} == {"up"}


def test_an_unknown_key_is_refused(secure: LocalCluster, tmp_path: Path) -> None:
    keygen(tmp_path, "mallory")
    mallory = load_key(tmp_path / "mallory.key_secret")
    addresses = list(secure.addresses.values())
    with Client(addresses, timeout=1.0, curve_key=mallory, server_keys=_server_keys(secure)) as c:
        _refused(c)


def test_a_plaintext_client_is_refused(secure: LocalCluster) -> None:
    with Client(list(secure.addresses.values()), timeout=1.0) as c:
        _refused(c)


def test_a_client_with_the_wrong_server_key_is_refused(secure: LocalCluster) -> None:
    alice = load_key(secure.keys / "clients" / "alice.key_secret")
    wrong = {a: load_key(secure.keys / "n2.key").public for a in secure.addresses.values()}
    with Client([secure.addresses["n1"]], timeout=1.0, curve_key=alice, server_keys=wrong) as c:
        _refused(c)


def _gossip_received(secure: LocalCluster, keys: tuple[bytes, bytes] | None) -> bool:
    ctx = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        if keys is not None:
            sub.curve_secretkey, sub.curve_publickey = keys
            sub.curve_serverkey = load_key(secure.keys / "n1.key").public
        sub.connect(secure.gossip["n1"])
        return bool(sub.poll(1500))  # heartbeats go out every 100 ms
    finally:
        ctx.destroy(linger=0)


def test_gossip_reaches_nodes_only(secure: LocalCluster) -> None:
    n2 = load_key(secure.keys / "n2.key_secret")
    alice = load_key(secure.keys / "clients" / "alice.key_secret")
    assert _gossip_received(secure, (n2.secret, n2.public)), "a node's key hears gossip (the test works)"
    assert not _gossip_received(secure, None), "a plaintext SUB hears nothing"
    assert not _gossip_received(secure, (alice.secret, alice.public)), "a client key hears nothing"


def _raw(secure: LocalCluster, key: Path, identity: bytes | None = None) -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity)
    make_curve_client(sock, load_key(key), load_key(secure.keys / "n1.key").public)
    sock.connect(secure.addresses["n1"])
    return ctx, sock


def test_a_client_cannot_send_node_messages(secure: LocalCluster) -> None:
    alice = secure.keys / "clients" / "alice.key_secret"
    ctx, sock = _raw(secure, alice)
    try:
        state = [[["n9~x", 1, 0.0, b"evil"]], [["n9~x", 1]]]
        sock.send(msgpack.packb({"op": "rput", "id": 1, "key": b"k", "state": state}))
        assert sock.poll(3000)
        reply = msgpack.unpackb(sock.recv(), raw=False)
        assert reply["error"] == "protocol_error" and "nodes only" in reply["message"]
    finally:
        ctx.destroy(linger=0)
    # a client key posing as node n2 (its routing identity) can neither take n2's connection over (no
    # handover under CURVE) nor speak for n2 or for a joining node: such messages are dropped
    for identity in (b"n2", b"join~n2", b"join~n9"):
        ctx, sock = _raw(secure, alice, identity=identity)
        try:
            sock.send(msgpack.packb({"op": "rput", "id": 2, "key": b"k", "state": state}))
            sock.send(msgpack.packb({"op": "join", "id": 3, "node": "n9"}))
            assert not sock.poll(1000), identity
        finally:
            ctx.destroy(linger=0)
    with secure.client(key="alice", timeout=2.0) as c:
        assert b"evil" not in c.get("k", consistency="all").values
        assert {n.status for n in c.nodes(secure.addresses["n1"])} == {"up"}, "n2 untouched"


def test_admin_requests_need_an_admin_key(secure: LocalCluster) -> None:
    with secure.client(key="alice", timeout=2.0) as c:
        with pytest.raises(Unauthorized):
            c.faults("n1", drop_in={"n2": 1.0})
        with pytest.raises(Unauthorized):
            c.leave("n3")
        assert c.status("n1").errors.get("unauthorized", 0) >= 1
        assert c.status("n3").errors.get("unauthorized", 0) >= 1
    with secure.client(key="admin", timeout=2.0) as c:
        assert c.faults("n1", drop_in={})["ok"]
        assert {n.status for n in c.nodes(secure.addresses["n3"])} == {"up"}, "leave was refused"


def test_partition_tool_uses_an_admin_key(secure: LocalCluster) -> None:
    tool = [sys.executable, str(REPO / "tools" / "partition.py"), "--config", str(secure.config_path)]
    admin = str(secure.keys / "admins" / "admin.key_secret")
    alice = str(secure.keys / "clients" / "alice.key_secret")
    denied = subprocess.run([*tool, "--key", alice, "show"], capture_output=True, text=True, timeout=60)
    shown = subprocess.run([*tool, "--key", admin, "show"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert denied.returncode != 0 and "admin" in denied.stderr


def test_from_config_needs_a_key_when_curve_is_on(secure: LocalCluster) -> None:
    with pytest.raises(ConfigError, match="key"):
        Client.from_config(secure.config_path)


def test_shell_connects_with_a_key(secure: LocalCluster) -> None:
    shell = [sys.executable, "-m", "zkv_shell.main", "--config", str(secure.config_path)]
    alice = str(secure.keys / "clients" / "alice.key_secret")
    commands = ["--key", alice, "-c", "put sk sv", "-c", "get sk"]
    ok = subprocess.run([*shell, *commands], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "sv" in ok.stdout
    missing = subprocess.run([*shell, "-c", "get sk"], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "--key" in (missing.stdout + missing.stderr)


def test_keygen_writes_zmq_certificates(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "zkv.cli", "keygen", "--out", str(tmp_path / "keys"), "bob"]
    made = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    public, secret = tmp_path / "keys" / "bob.key", tmp_path / "keys" / "bob.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    pub, sec = zmq.auth.load_certificate(str(secret))
    assert zmq.auth.load_certificate(str(public)) == (pub, None) and sec is not None
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert zmq.auth.load_certificate(str(secret)) == (pub, sec), "the existing key is untouched"
