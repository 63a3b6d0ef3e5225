"""With [security] on, the HTTP API needs bearer tokens mapped to client/admin; it can serve TLS (curl)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Http

from zkv.testing.localcluster import LocalCluster


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(Path(tmp_path_factory.mktemp("secured")), nodes=3, curve=True, http=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def test_no_token_or_an_unknown_one_is_401(secured: LocalCluster) -> None:
    for token in (None, "not-a-token"):
        got = Http(secured.url("n1"), token).get("/v1/keys/k")
        assert got.status == 401, got.body
        assert got.json()["error"] == "unauthorized"
        assert (got.header("WWW-Authenticate") or "").startswith("Bearer")
    basic = Http(secured.url("n1")).get("/v1/keys/k", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert basic.status == 401
    assert Http(secured.url("n1")).get("/metrics").status == 401
    assert Http(secured.url("n1")).get("/v1/cluster/nodes").status == 401


def test_probes_and_the_schema_need_no_token(secured: LocalCluster) -> None:
    web = Http(secured.url("n2"))
    assert web.get("/health").status == 200
    assert web.get("/ready").status == 200
    assert web.get("/openapi.json").status == 200


def test_a_client_token_reads_and_writes_but_cannot_use_admin_routes(secured: LocalCluster) -> None:
    alice = Http(secured.url("n1"), secured.tokens["alice"])
    assert alice.put("/v1/keys/secure-k", b"v").status == 204
    assert alice.get("/v1/keys/secure-k").body == b"v"  # through CURVE to the nodes
    assert alice.get("/v1/cluster/nodes").status == 200
    assert alice.get("/metrics").status == 200
    for method, path in (("GET", "/v1/nodes/n1/faults"), ("POST", "/v1/nodes/n3/leave")):
        got = alice.request(method, path)
        assert got.status == 403, got.body
        assert got.json()["error"] == "unauthorized" and "admin" in got.json()["message"]
    assert {n["name"] for n in alice.get("/v1/cluster/nodes").json()["nodes"]} == {"n1", "n2", "n3"}


def test_an_admin_token_can_use_admin_routes(secured: LocalCluster) -> None:
    admin = Http(secured.url("n1"), secured.tokens["admin"])
    got = admin.get("/v1/nodes/n2/faults")
    assert got.status == 200, got.body
    assert got.json()["node"] == "n2"
    assert admin.get("/v1/keys/secure-k").status in (200, 404)


def test_tls_with_curl(tmp_path: Path) -> None:
    """The issue's curl session, over HTTPS (self-signed, so -k)."""
    with LocalCluster(tmp_path, nodes=3, http=True, http_tls=True) as cluster:
        cluster.start()
        url = cluster.url("n1")
        assert url.startswith("https://")

        def curl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["curl", "-sk", *args], capture_output=True, text=True, timeout=30)

        put = curl(
            "-X",
            "PUT",
            "--data-binary",
            "alice",
            "-w",
            "%{http_code}",
            f"{url}/v1/keys/user:42?consistency=quorum",
        )
        assert put.stdout == "204", put
        got = curl("-i", f"{url}/v1/keys/user:42")
        assert got.stdout.startswith("HTTP/1.1 200")
        assert "x-zkv-context:" in got.stdout.lower()
        assert got.stdout.endswith("alice")
        metrics = curl(f"{url}/metrics")
        assert "zkv_requests_total" in metrics.stdout
        assert curl("-w", "%{http_code}", "-o", "/dev/null", f"{url}/ready").stdout == "200"
        plain = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{cluster.http['n1']}/health"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert plain.stdout != "200"  # no plaintext door next to the TLS one
