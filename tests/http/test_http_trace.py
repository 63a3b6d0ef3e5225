"""X-Zkv-Trace: the gateway returns the coordinator's consistency receipt (X-Zkv-Receipt, and in a JSON
GET's body): coordinator, replicas and their times, strict or sloppy quorum, hints, read repairs."""

from __future__ import annotations

import json

from conftest import Http

from zkv.testing.localcluster import LocalCluster, wait_until


def receipt_of(reply) -> dict:
    text = reply.header("X-Zkv-Receipt")
    assert text, reply.headers
    trace = json.loads(text)
    assert trace["latency_ms"] > 0
    return trace["receipt"]


def test_a_traced_put_get_delete_carry_the_receipt_and_untraced_ones_do_not(web: Http) -> None:
    put = web.put("/v1/keys/tr1?consistency=quorum", b"a", headers={"X-Zkv-Trace": "1"})
    assert put.status == 204 and put.header("X-Zkv-Context")  # the stored version's context still comes
    receipt = receipt_of(put)
    assert receipt["op"] == "put" and receipt["blind"] is True and receipt["quorum"] in ("strict", "sloppy")
    assert receipt["coordinator"] in receipt["replicas"] and len(receipt["replicas"]) >= 2
    got = web.get("/v1/keys/tr1", headers={"X-Zkv-Trace": "1", "Accept": "application/json"})
    body = got.json()
    assert got.status == 200 and body["values"] and body["trace"]["receipt"] == receipt_of(got)
    assert {"read_repairs", "siblings_merged"} <= set(body["trace"]["receipt"])
    plain = web.get("/v1/keys/tr1", headers={"X-Zkv-Trace": "1"})
    assert plain.body == b"a" and receipt_of(plain)["op"] == "get"
    gone = web.delete("/v1/keys/tr1", headers={"X-Zkv-Trace": "true"})
    assert gone.status == 204 and receipt_of(gone)["op"] == "delete"
    assert web.get("/v1/keys/tr1").status == 404
    assert web.put("/v1/keys/tr2", b"x").header("X-Zkv-Receipt") is None
    assert web.put("/v1/keys/tr2", b"x", headers={"X-Zkv-Trace": "0"}).header("X-Zkv-Receipt") is None
    bad = web.get("/v1/keys/tr2", headers={"X-Zkv-Trace": "maybe"})
    assert bad.status == 400 and bad.json()["error"] == "invalid_request"


def test_a_traced_quorum_put_with_a_replica_down_shows_the_sloppy_quorum_and_its_hint(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(5, http=True)
    with cluster.client() as client:
        ring = client.ring()
        key = next(
            f"k{i}"
            for i in range(10000)
            if ring.preference_list(f"k{i}")[0] == "n1" and "n3" in ring.preference_list(f"k{i}")
        )
        cluster.kill("n3")
        wait_until(
            lambda: {n.name: n.status for n in client.nodes(cluster.addresses["n1"])}["n3"] == "down",
            20,
            "n1 to see n3 down",
        )
    web = Http(cluster.url("n1"))
    put = web.put(f"/v1/keys/{key}?consistency=quorum", b"v", headers={"X-Zkv-Trace": "1"})
    assert put.status == 204, put.body
    receipt = receipt_of(put)
    assert receipt["coordinator"] == "n1" and receipt["quorum"] == "sloppy"
    assert receipt["hints"] >= 1 and list(receipt["fallbacks"].values()) == ["n3"]
    assert "n3" not in receipt["replicas"] and len(receipt["replicas"]) >= 2
