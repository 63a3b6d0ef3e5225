"""The key routes on a real cluster: values, contexts, siblings, deletes, where and replicas."""

from __future__ import annotations

import base64
import time

from conftest import Http

from zkv.testing.localcluster import LocalCluster


def test_put_then_get_returns_the_value_and_a_context(web: Http) -> None:
    put = web.put("/v1/keys/user:42?consistency=quorum", b"alice")
    assert put.status == 204, put.body
    got = web.get("/v1/keys/user:42")
    assert got.status == 200
    assert got.body == b"alice"
    assert got.header("Content-Type") == "application/octet-stream"
    assert got.header("X-Zkv-Context")


def test_values_are_raw_bytes_and_keys_any_bytes(web: Http) -> None:
    value = bytes(range(256))
    assert web.put("/v1/keys/bin%2Fkey%FF%00?consistency=all", value).status == 204
    got = web.get("/v1/keys/bin%2Fkey%FF%00")
    assert got.status == 200 and got.body == value
    assert web.get("/v1/keys/bin%2Fkey%FF").status == 404  # a different key


def test_missing_key_is_404_json(web: Http) -> None:
    got = web.get("/v1/keys/never-written")
    assert got.status == 404
    assert got.json()["error"] == "not_found"
    # the context of a read that found nothing: a write with it supersedes nothing (create if absent)
    assert got.header("X-Zkv-Context")


def test_blind_put_put_get_and_put_delete_get(web: Http) -> None:
    """No context: a put replaces what its coordinator holds, a delete deletes (not a hidden sibling)."""
    assert web.put("/v1/keys/blind-k", b"x").status == 204
    assert web.put("/v1/keys/blind-k", b"y").status == 204
    got = web.get("/v1/keys/blind-k?consistency=all")
    assert got.status == 200 and got.body == b"y"
    assert web.delete("/v1/keys/blind-k").status == 204
    assert web.get("/v1/keys/blind-k?consistency=all").status == 404


def test_accept_json_gets_values_context_and_found(web: Http) -> None:
    web.put("/v1/keys/json-k", b"v1")
    got = web.get("/v1/keys/json-k", headers={"Accept": "application/json"})
    assert got.status == 200
    body = got.json()
    assert body["found"] is True
    assert [base64.b64decode(v) for v in body["values"]] == [b"v1"]
    assert body["context"] == got.header("X-Zkv-Context")
    missing = web.get("/v1/keys/json-missing", headers={"Accept": "application/json"}).json()
    assert missing["found"] is False and missing["values"] == []


def test_get_then_put_with_the_context_supersedes(web: Http) -> None:
    web.put("/v1/keys/ctx-k", b"old")
    token = web.get("/v1/keys/ctx-k").header("X-Zkv-Context")
    assert token
    assert web.put("/v1/keys/ctx-k", b"new", headers={"X-Zkv-Context": token}).status == 204
    got = web.get("/v1/keys/ctx-k?consistency=all")
    assert got.status == 200 and got.body == b"new"


def test_put_then_put_with_the_returned_context_supersedes(web: Http) -> None:
    """The PUT answer's X-Zkv-Context is the stored version's: a PUT with it replaces that version."""
    first = web.put("/v1/keys/put-ctx-k?consistency=all", b"v1")
    assert first.status == 204
    token = first.header("X-Zkv-Context")
    assert token
    again = web.put("/v1/keys/put-ctx-k?consistency=all", b"v2", headers={"X-Zkv-Context": token})
    assert again.status == 204 and again.header("X-Zkv-Context") not in (None, token)
    got = web.get("/v1/keys/put-ctx-k?consistency=all", headers={"Accept": "application/json"}).json()
    assert [base64.b64decode(v) for v in got["values"]] == [b"v2"]  # one value, no siblings
    deleted = web.delete(
        "/v1/keys/put-ctx-k?consistency=all", headers={"X-Zkv-Context": again.header("X-Zkv-Context") or ""}
    )
    assert deleted.status == 204 and deleted.header("X-Zkv-Context")
    assert web.get("/v1/keys/put-ctx-k?consistency=all").status == 404


def test_the_returned_context_does_not_cover_a_concurrent_write(web: Http) -> None:
    """It is the written version's context, not the key's: a sibling the writer never saw stays."""
    web.put("/v1/keys/put-ctx-sib?consistency=all", b"base")
    base = web.get("/v1/keys/put-ctx-sib?consistency=all").header("X-Zkv-Context")
    assert base
    mine = web.put("/v1/keys/put-ctx-sib?consistency=all", b"mine", headers={"X-Zkv-Context": base})
    theirs = web.put("/v1/keys/put-ctx-sib?consistency=all", b"theirs", headers={"X-Zkv-Context": base})
    assert mine.status == theirs.status == 204
    token = mine.header("X-Zkv-Context")
    assert token
    assert (
        web.put("/v1/keys/put-ctx-sib?consistency=all", b"mine2", headers={"X-Zkv-Context": token}).status
        == 204
    )
    got = web.get("/v1/keys/put-ctx-sib?consistency=all")
    assert got.status == 300, got.body
    assert sorted(base64.b64decode(v) for v in got.json()["siblings"]) == [b"mine2", b"theirs"]


def test_siblings_give_300_with_both_values_and_the_merged_context_resolves(web: Http) -> None:
    web.put("/v1/keys/sib-k", b"base")
    token = web.get("/v1/keys/sib-k").header("X-Zkv-Context")
    assert token
    for value in (b"left", b"right"):  # two writes from the same context: concurrent
        assert (
            web.put("/v1/keys/sib-k?consistency=all", value, headers={"X-Zkv-Context": token}).status == 204
        )
    got = web.get("/v1/keys/sib-k?consistency=all")
    assert got.status == 300, got.body
    body = got.json()
    assert sorted(base64.b64decode(v) for v in body["siblings"]) == [b"left", b"right"]
    assert body["context"] == got.header("X-Zkv-Context")
    assert (
        web.put(
            "/v1/keys/sib-k?consistency=all", b"merged", headers={"X-Zkv-Context": body["context"]}
        ).status
        == 204
    )
    resolved = web.get("/v1/keys/sib-k?consistency=all")
    assert resolved.status == 200 and resolved.body == b"merged"


def test_delete_with_context_leaves_a_tombstone_with_a_context(web: Http) -> None:
    web.put("/v1/keys/del-k", b"gone soon")
    token = web.get("/v1/keys/del-k").header("X-Zkv-Context")
    assert token
    assert web.delete("/v1/keys/del-k?consistency=all", headers={"X-Zkv-Context": token}).status == 204
    got = web.get("/v1/keys/del-k?consistency=all")
    assert got.status == 404
    assert got.header("X-Zkv-Context")  # the tombstone's context: a later write supersedes it


def test_where_lists_the_preference_list(web: Http, gateway_cluster: LocalCluster) -> None:
    got = web.get("/v1/keys/where-k/where")
    assert got.status == 200
    rows = got.json()["preference_list"]
    with gateway_cluster.client() as client:
        expected = list(client.ring().preference_list(b"where-k"))
    assert [r["node"] for r in rows if r["role"] == "primary"] == expected
    assert all(r["up"] for r in rows)


def test_replicas_shows_each_replicas_versions(web: Http) -> None:
    web.put("/v1/keys/rep-k?consistency=all", b"everywhere")
    got = web.get("/v1/keys/rep-k/replicas")
    assert got.status == 200
    replicas = got.json()["replicas"]
    assert sorted(replicas) == ["n1", "n2", "n3"]
    for state in replicas.values():
        assert [base64.b64decode(v["value"]) for v in state["versions"]] == [b"everywhere"]


def test_put_with_ttl_expires_and_bad_ttls_are_400(web: Http) -> None:
    from zkv.testing.localcluster import wait_until

    assert web.put("/v1/keys/ttl-k?ttl=1", b"soon gone").status == 204
    assert web.get("/v1/keys/ttl-k").body == b"soon gone"
    wait_until(lambda: web.get("/v1/keys/ttl-k?consistency=all").status == 404, 10, "the TTL")
    for bad in ("-1", "0", "soon", "1e12"):
        got = web.put(f"/v1/keys/ttl-bad?ttl={bad}", b"v")
        assert got.status == 400, (bad, got.body)
        assert got.json()["error"] == "invalid_request" and "ttl" in got.json()["message"]
    assert web.get("/v1/keys/ttl-bad").status == 404


def test_all_with_a_node_killed_is_503_within_the_request_timeout(make_cluster) -> None:
    """kill -9 one replica: a PUT, GET and DELETE at ``all`` through a gateway are 503 ``unavailable``
    within the cluster's request timeout (no waiting for failure detection), and ``quorum`` still works."""
    timeout_s = 1.0
    cluster = make_cluster(3, http=True, request_timeout_ms=int(timeout_s * 1000))
    web = Http(cluster.url("n1"))
    keys = [f"all-down-{i}" for i in range(6)]
    for key in keys:
        assert web.put(f"/v1/keys/{key}?consistency=all", b"v").status == 204
    cluster.kill("n3")
    for i, key in enumerate(keys):
        method = ("PUT", "GET", "DELETE")[i % 3]
        started = time.monotonic()
        got = web.request(method, f"/v1/keys/{key}?consistency=all", body=b"w" if method == "PUT" else None)
        elapsed = time.monotonic() - started
        assert got.status == 503 and got.json()["error"] == "unavailable", (method, got.status, got.body)
        assert elapsed <= timeout_s, f"{method} took {elapsed:.2f}s"
    assert web.put(f"/v1/keys/{keys[0]}?consistency=quorum", b"q").status == 204
    assert web.get(f"/v1/keys/{keys[0]}?consistency=quorum").body == b"q"
