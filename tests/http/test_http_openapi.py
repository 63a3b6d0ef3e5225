"""/openapi.json describes every route; schemathesis throws generated requests at a real gateway.

Positive and negative cases (values outside the schema: bad consistency, odd keys, bad tokens, wrong
types); no answer may be a 5xx other than 503/504 (a cluster that is really short of replicas), and
every answer the schema describes must match it.
"""

from __future__ import annotations

import pytest
import schemathesis
from conftest import Http
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from zkv.testing.localcluster import LocalCluster


def test_every_route_is_described(web: Http) -> None:
    paths = web.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/keys",
        "/v1/keys/{key}",
        "/v1/keys/{key}/where",
        "/v1/keys/{key}/replicas",
        "/v1/txn",
        "/v1/cluster/nodes",
        "/v1/cluster/ring",
        "/v1/cluster/views",
        "/v1/nodes/{name}/status",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
    ):
        assert path in paths, path
    assert set(paths["/v1/keys/{key}"]) == {"get", "put", "delete"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_never_get_a_5xx(gateway_cluster: LocalCluster, mode: GenerationMode) -> None:
    """Every operation of the schema, with hypothesis-generated cases (schemathesis strategies)."""
    schema = schemathesis.openapi.from_url(f"{gateway_cluster.url('n1')}/openapi.json")
    failures: list[str] = []
    exercised = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        if operation.path in ("/v1/nodes/{name}/leave",):
            continue  # a generated name could be a real node: it would leave the shared cluster

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            status = response.status_code
            if status >= 500 and status not in (503, 504):
                failures.append(f"{case.method} {case.formatted_path} -> {status}: {response.text[:200]}")
            elif status >= 400 and not _json_error(response):
                failures.append(f"{case.method} {case.formatted_path} -> {status} without a JSON error")

        try:
            check()
            exercised += 1
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.path  # nothing to get wrong (no inputs)
    assert failures == []
    assert exercised >= (11 if mode is GenerationMode.POSITIVE else 3)
    assert Http(gateway_cluster.url("n1")).get("/health").status == 200  # and it keeps serving


def _json_error(response: object) -> bool:
    try:
        body = response.json()  # type: ignore[attr-defined]
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body.get("message"))
