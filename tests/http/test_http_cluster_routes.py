"""Cluster routes, health and the static root on a real cluster."""

from __future__ import annotations

from conftest import Http

from zkv.testing.localcluster import LocalCluster, wait_until


def test_nodes_lists_every_node_up(web: Http) -> None:
    got = web.get("/v1/cluster/nodes")
    assert got.status == 200
    rows = got.json()["nodes"]
    assert sorted(r["name"] for r in rows) == ["n1", "n2", "n3"]
    assert {r["status"] for r in rows} == {"up"}


def test_ring_gives_members_tokens_and_levels(web: Http) -> None:
    ring = web.get("/v1/cluster/ring").json()
    assert ring["replication_factor"] == 3
    assert [m["name"] for m in ring["members"]] == ["n1", "n2", "n3"]
    assert all(m["tokens"] == ring["vnodes"] for m in ring["members"])


def test_views_has_each_nodes_view(web: Http) -> None:
    views = web.get("/v1/cluster/views").json()["views"]
    assert sorted(views) == ["n1", "n2", "n3"]
    for view in views.values():
        assert sorted(view) == ["n1", "n2", "n3"]


def test_node_status_by_name_and_unknown_name(web: Http, gateway_cluster: LocalCluster) -> None:
    status = web.get("/v1/nodes/n2/status")
    assert status.status == 200
    assert status.json()["node"] == "n2"
    assert status.json()["pid"] == gateway_cluster.pid("n2")
    missing = web.get("/v1/nodes/nope/status")
    assert missing.status == 404 and missing.json()["error"] == "not_found"


def test_health_names_the_gateways_node(gateway_cluster: LocalCluster) -> None:
    for name in gateway_cluster.names:
        got = Http(gateway_cluster.url(name)).get("/health")
        assert got.status == 200 and got.json()["node"] == name


def test_root_serves_the_dashboard_and_unknown_paths_are_json_404(web: Http) -> None:
    root = web.get("/")
    assert root.status == 200 and b"<html" in root.body
    missing = web.get("/no/such/thing")
    assert missing.status == 404 and missing.json()["error"] == "not_found"
    escape = web.get("/..%2F..%2Fpyproject.toml")
    assert escape.status == 404


def test_leave_decommissions_the_node_and_its_keys_stay_readable(make_cluster) -> None:
    """``POST /v1/nodes/{name}/leave`` is 202; the node hands its data over and stops (removed); every key
    still reads at ``all`` through a gateway; an unknown name is 404."""
    cluster: LocalCluster = make_cluster(4, http=True)
    web = Http(cluster.url("n1"))
    keys = [f"leave-{i}" for i in range(40)]
    for key in keys:
        assert web.put(f"/v1/keys/{key}?consistency=all", key.encode()).status == 204
    assert web.request("POST", "/v1/nodes/nope/leave").status == 404
    got = web.request("POST", "/v1/nodes/n4/leave")
    assert got.status == 202, got.body
    wait_until(lambda: cluster.procs["n4"].poll() is not None, 60, "n4 to hand over and stop")
    assert cluster.procs["n4"].returncode == 0
    statuses = {n["name"]: n["status"] for n in web.get("/v1/cluster/nodes").json()["nodes"]}
    assert statuses["n4"] == "removed" and {statuses[n] for n in ("n1", "n2", "n3")} == {"up"}
    for key in keys:
        got = web.get(f"/v1/keys/{key}?consistency=all")
        assert got.status == 200 and got.body == key.encode(), (key, got.status, got.body)
