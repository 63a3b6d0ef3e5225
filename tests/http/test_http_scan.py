"""GET /v1/keys on a real cluster: pages in byte order with a cursor, prefixes, values, deletes hidden,
bad limits and cursors as named 400s, a node down at quorum and at all."""

from __future__ import annotations

import base64
from urllib.parse import quote

from conftest import Http

from zkv.testing.localcluster import LocalCluster


def test_pages_follow_the_cursor_and_hide_deleted_keys(web: Http) -> None:
    keys = [f"scan:{i:02d}" for i in range(25)]
    for k in keys:
        assert web.put(f"/v1/keys/{k}", k.encode()).status == 204
    assert web.delete("/v1/keys/scan:07").status == 204
    seen: list[str] = []
    cursor = None
    while True:
        query = "prefix=scan:&limit=10" + (f"&cursor={quote(cursor)}" if cursor else "")
        page = web.get(f"/v1/keys?{query}")
        assert page.status == 200, page.body
        body = page.json()
        assert len(body["keys"]) <= 10 and "values" not in body
        seen += body["keys"]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert seen == [k for k in keys if k != "scan:07"]
    with_values = web.get("/v1/keys?prefix=scan:1&limit=3&values=true&consistency=all").json()
    assert with_values["keys"] == ["scan:10", "scan:11", "scan:12"]
    assert [base64.b64decode(v[0]) for v in with_values["values"]] == [b"scan:10", b"scan:11", b"scan:12"]


def test_bad_scan_input_is_a_named_400(web: Http) -> None:
    for query, code in [
        ("limit=0", "bad_limit"),
        ("limit=-3", "bad_limit"),
        ("limit=10001", "bad_limit"),
        ("limit=lots", "bad_limit"),
        ("cursor=%21%21", "bad_cursor"),
        ("prefix=a&cursor=AWI", "bad_cursor"),  # a cursor of a scan of "b"
        ("consistency=most", "invalid_request"),
        ("values=maybe", "invalid_request"),
        ("limit=1&limit=2", "invalid_request"),
    ]:
        got = web.get(f"/v1/keys?{query}")
        assert (got.status, got.json()["error"]) == (400, code), (query, got.body)
    assert web.get("/v1/keys?limit=1").status == 200  # and it keeps serving


def test_a_node_down_quorum_scans_and_all_is_503(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(3, http=True)
    web = Http(cluster.url("n1"))
    for i in range(5):
        assert web.put(f"/v1/keys/d{i}?consistency=all", b"v").status == 204
    cluster.kill("n3")
    assert web.get("/v1/keys?consistency=quorum").json()["keys"] == [f"d{i}" for i in range(5)]
    down = web.get("/v1/keys?consistency=all")
    assert down.status == 503 and down.json()["error"] == "unavailable" and "n3" in down.json()["message"]
