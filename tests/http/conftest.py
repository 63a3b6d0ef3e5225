"""Real clusters with real gateways (``zkv-http`` processes), and a small HTTP client to drive them."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from zkv.testing.localcluster import LocalCluster


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Http:
    """Plain HTTP/1.1 requests to one gateway (a new connection each, so a test sees exactly its own)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.tls = parts.scheme == "https"
        self.token = token

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        if self.tls:  # the tests' self-signed certificate: encrypted, not verified
            context = ssl._create_unverified_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=30, context=context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            sent = dict(headers or {})
            if self.token is not None:
                sent.setdefault("Authorization", f"Bearer {self.token}")
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: bytes, **kw: Any) -> Reply:
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="module")
def gateway_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One 3-node cluster with a gateway per node, shared by a module's tests (they use distinct keys)."""
    cluster = LocalCluster(Path(tmp_path_factory.mktemp("http")), nodes=3, http=True, max_value_bytes=65536)
    try:
        cluster.start()
        yield cluster
    finally:
        leaked = cluster.close()
    assert not leaked, f"processes that ignored SIGTERM: {leaked}"


@pytest.fixture
def web(gateway_cluster: LocalCluster) -> Http:
    return Http(gateway_cluster.url("n1"))
