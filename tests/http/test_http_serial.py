"""Conditional HTTP requests with serial semantics: If-None-Match: * and If-Match on real nodes."""

from __future__ import annotations

import base64

from conftest import Http


def test_if_none_match_star_creates_once(web: Http) -> None:
    assert web.put("/v1/keys/seat-1", b"alice", headers={"If-None-Match": "*"}).status == 204
    again = web.put("/v1/keys/seat-1", b"bob", headers={"If-None-Match": "*"})
    assert again.status == 412, again.body
    body = again.json()
    assert body["error"] == "condition_failed"
    assert [base64.b64decode(v) for v in body["values"]] == [b"alice"] and body["context"]
    assert web.get("/v1/keys/seat-1?consistency=serial").body == b"alice"


def test_if_match_is_a_compare_and_set_on_the_etag(web: Http) -> None:
    assert web.put("/v1/keys/stock", b"10", headers={"If-None-Match": "*"}).status == 204
    got = web.get("/v1/keys/stock?consistency=serial")
    tag = got.header("ETag")
    assert got.status == 200 and tag and tag.startswith('"')
    assert web.put("/v1/keys/stock", b"9", headers={"If-Match": tag}).status == 204
    stale = web.put("/v1/keys/stock", b"8", headers={"If-Match": tag})  # the tag of "10": refused
    assert stale.status == 412 and [base64.b64decode(v) for v in stale.json()["values"]] == [b"9"]
    assert web.get("/v1/keys/stock").body == b"9"
    assert web.delete("/v1/keys/stock", headers={"If-Match": "*"}).status == 204
    assert web.get("/v1/keys/stock?consistency=serial").status == 404


def test_conditions_need_serial(web: Http) -> None:
    bad = web.put("/v1/keys/x?consistency=quorum", b"v", headers={"If-None-Match": "*"})
    assert bad.status == 400 and "serial" in bad.json()["message"]
    assert web.put("/v1/keys/x", b"v", headers={"If-None-Match": '"abc"'}).status == 400
