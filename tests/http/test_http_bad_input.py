"""Bad input gets the right 4xx as JSON, and the gateway and its node keep serving."""

from __future__ import annotations

import itertools
import socket
import time

import pytest
from conftest import Http

from zkv.testing.localcluster import LocalCluster

_checks = itertools.count()


def _still_serving(web: Http) -> None:
    key = f"/v1/keys/alive-check-{next(_checks)}"
    assert web.put(key, b"yes").status == 204
    assert web.get(key).body == b"yes"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("GET", "/v1/keys/k?consistency=most", None, {}, 400, "invalid_request"),
        ("PUT", "/v1/keys/k?consistency=", b"v", {}, 400, "invalid_request"),
        ("GET", "/v1/keys/k?consistency=one&consistency=all", None, {}, 400, "invalid_request"),
        ("PUT", "/v1/keys/k", b"v", {"X-Zkv-Context": "not base64!"}, 400, "invalid_request"),
        ("PUT", "/v1/keys/k", b"v", {"X-Zkv-Context": "AAAA"}, 400, "invalid_request"),
        ("DELETE", "/v1/keys/k", None, {"X-Zkv-Context": "%%%"}, 400, "invalid_request"),
        ("GET", "/v1/keys/k%2", None, {}, 400, "invalid_request"),
        ("GET", "/v1/keys/k%G1", None, {}, 400, "invalid_request"),
        ("GET", "/v1/keys/k", b"a body", {}, 400, "invalid_request"),
        ("DELETE", "/v1/keys/k", b"a body", {}, 400, "invalid_request"),
        ("POST", "/v1/keys/k", b"v", {}, 405, "method_not_allowed"),
        ("GET", "/v1/nowhere", None, {}, 404, "not_found"),
    ],
)
def test_bad_requests_get_a_json_4xx(
    web: Http, method: str, path: str, body: bytes | None, headers: dict[str, str], status: int, code: str
) -> None:
    got = web.request(method, path, body=body, headers=headers)
    assert got.status == status, got.body
    assert got.json()["error"] == code
    assert got.json()["message"]


def test_oversize_key_and_value_are_413(web: Http) -> None:
    key = web.put("/v1/keys/" + "k" * 2000, b"v")
    assert key.status == 413 and key.json()["error"] == "key_too_large"
    value = web.put("/v1/keys/big", b"x" * 65537)  # the cluster's max_value_bytes is 65536
    assert value.status == 413 and value.json()["error"] == "value_too_large"
    huge = web.put("/v1/keys/huge", b"x" * (1 << 20))  # past the gateway's body limit too
    assert huge.status == 413 and huge.json()["error"] == "value_too_large"
    assert web.put("/v1/keys/big", b"x" * 65536).status == 204
    _still_serving(web)


def test_huge_headers_are_refused(web: Http) -> None:
    got = web.get("/v1/keys/k", headers={"X-Filler": "y" * 100_000})
    assert got.status in (400, 431)
    _still_serving(web)


def test_a_slow_client_does_not_stop_the_others(web: Http, gateway_cluster: LocalCluster) -> None:
    host, port = web.host, web.port
    slow = socket.create_connection((host, port))
    try:
        slow.sendall(b"PUT /v1/keys/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly part")
        started = time.monotonic()
        _still_serving(web)  # while the slow body is still coming
        assert time.monotonic() - started < 5
    finally:
        slow.close()
    _still_serving(web)
