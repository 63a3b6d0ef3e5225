"""POST /v1/txn on real nodes through a real gateway: applied (at most once per token), rejected with the
key's current values, the limits with their own codes, and bad bodies answered as JSON errors."""

from __future__ import annotations

import base64
import json
from typing import Any

from conftest import Http


def post(web: Http, body: Any, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    return web.request("POST", "/v1/txn", body=data, headers={"Content-Type": "application/json"})


def test_a_transaction_applies_every_write_once(web: Http) -> None:
    assert web.put("/v1/keys/tx-stock", b"9", headers={"If-None-Match": "*"}).status == 204
    assert web.put("/v1/keys/tx-cart", b"book", headers={"If-None-Match": "*"}).status == 204
    body = {
        "token": "order-991",
        "checks": [{"key": "tx-stock", "value": "9"}, {"key": "tx-order", "absent": True}],
        "puts": [{"key": "tx-stock", "value": "8"}, {"key": "tx-order", "value": "paid"}],
        "deletes": [{"key": "tx-cart"}],
    }
    reply = post(web, body)
    assert reply.status == 200, reply.body
    assert reply.json() == {"applied": True, "token": "order-991", "retry": False}
    assert web.get("/v1/keys/tx-stock?consistency=serial").body == b"8"
    assert web.get("/v1/keys/tx-order").body == b"paid"
    assert web.get("/v1/keys/tx-cart?consistency=serial").status == 404
    again = post(web, body)  # the same token: applied at most once, and told so
    assert again.status == 200 and again.json()["retry"] is True, again.body
    assert web.get("/v1/keys/tx-stock?consistency=serial").body == b"8"


def test_a_failed_check_is_412_with_the_current_value_and_writes_nothing(web: Http) -> None:
    assert web.put("/v1/keys/tx-a", b"1", headers={"If-None-Match": "*"}).status == 204
    reply = post(web, {"checks": [{"key": "tx-a", "value": "2"}], "puts": [{"key": "tx-b", "value": "x"}]})
    assert reply.status == 412, reply.body
    body = reply.json()
    assert body["error"] == "condition_failed" and body["key"] == "tx-a" and body["message"]
    assert [base64.b64decode(v) for v in body["values"]] == [b"1"] and body["context"]
    assert web.get("/v1/keys/tx-b?consistency=serial").status == 404
    cond = post(web, {"puts": [{"key": "tx-a", "value": "3", "if_value": "2"}]})
    assert cond.status == 412 and cond.json()["key"] == "tx-a"


def test_keys_and_values_may_be_any_bytes(web: Http) -> None:
    key, value = (
        {"base64": base64.b64encode(b"tx-\xff").decode()},
        {"base64": base64.b64encode(b"\x01\xfe").decode()},
    )
    reply = post(web, {"puts": [{"key": key, "value": value}]})
    assert reply.status == 200, reply.body
    assert web.get("/v1/keys/tx-%FF?consistency=serial").body == b"\x01\xfe"


def test_the_limits_have_their_own_codes(web: Http) -> None:
    many = post(web, {"puts": [{"key": f"tx-many-{i}", "value": "v"} for i in range(101)]})
    assert many.status == 413 and many.json()["error"] == "txn_too_many_keys", many.body
    # 70 values of 60 kB: each under the cluster's value limit, together over 4 MiB
    large = post(web, {"puts": [{"key": f"tx-large-{i}", "value": "x" * 60_000} for i in range(70)]})
    assert large.status == 413 and large.json()["error"] == "txn_too_large", large.body
    huge = post(web, None, raw=b'{"puts": [{"key": "k", "value": "' + b"x" * (9 * 1024 * 1024) + b'"}]}')
    assert huge.status == 413 and huge.json()["error"] == "txn_too_large", huge.body
    assert web.get("/v1/keys/tx-many-0?consistency=serial").status == 404  # nothing written
    assert web.get("/v1/keys/tx-large-0?consistency=serial").status == 404


def test_bad_bodies_are_400_json_errors_and_the_gateway_keeps_serving(web: Http) -> None:
    for body, raw in (
        (None, b"not json"),
        ([1, 2], None),
        ({}, None),
        ({"puts": [{"key": "k", "value": "v"}], "extra": 1}, None),
        ({"checks": [{"key": "k"}]}, None),
        ({"checks": [{"key": "k", "value": "v", "absent": True}]}, None),
        ({"puts": [{"key": "k"}]}, None),
        ({"puts": "k"}, None),
        ({"puts": [{"key": {"base64": "!!"}, "value": "v"}]}, None),
        ({"puts": [{"key": "k", "value": "v"}], "token": ""}, None),
        ({"puts": [{"key": "\u0000zkv:txn:x", "value": "v"}]}, None),  # reserved: zkv's own keys
        ({"puts": [{"key": "k", "value": "v"}, {"key": "k", "value": "w"}]}, None),  # one write per key
    ):
        reply = post(web, body, raw)
        assert reply.status == 400, (body, raw, reply.status, reply.body)
        error = reply.json()
        assert error["error"] == "invalid_request" and error["message"], error
    assert web.get("/health").status == 200
