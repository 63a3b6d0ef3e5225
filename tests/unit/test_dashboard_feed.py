"""The dashboard feed's arithmetic (rates from two polls, restarts, hint ages) and the key inspector."""

from __future__ import annotations

from typing import Any

from zkv.client import ReplicaState, StoredVersion
from zkv.core.ring import Ring
from zkv.errors import NoNodeAvailable
from zkv.http.feed import HintAges, Poll, node_rates, ring_version, snapshot
from zkv.http.inspect import inspect


def status(
    uptime: float, requests: dict[str, int], errors: dict[str, int] | None = None, **extra: Any
) -> dict:
    return {
        "uptime_s": uptime,
        "requests": requests,
        "errors": errors or {},
        "latency": {"get": {"count": 10, "p50_ms": 1.0, "p99_ms": 4.0, "max_ms": 5.0}},
        "keys": 7,
        **extra,
    }


def test_rates_are_differences_over_the_time_between_polls() -> None:
    prev = status(10, {"get/quorum": 100, "put/one": 50, "status": 9})
    cur = status(12, {"get/quorum": 300, "put/one": 50, "status": 11}, {"timeout": 4})
    r = node_rates(cur, prev, 2.0)
    assert r["requests"] == {"get/quorum": 100.0}  # unchanged counters and admin requests are left out
    assert r["admin_requests"] == 1.0
    assert r["errors"] == {"timeout": 2.0}
    assert r["ops"] == 100.0
    assert r["p99_ms"] == 4.0


def test_a_restarted_node_counts_from_zero() -> None:
    prev = status(100, {"get/quorum": 5000})
    cur = status(1.5, {"get/quorum": 30})
    assert node_rates(cur, prev, 1.0)["requests"] == {"get/quorum": 30.0}


def test_first_poll_and_missing_nodes_have_no_rates() -> None:
    assert node_rates(status(1, {"get/one": 3}), None, 0.0)["requests"] == {}
    assert node_rates(None, status(1, {}), 1.0) == {"reached": False}


def test_hint_age_is_kept_while_the_queue_stays_non_empty() -> None:
    ages = HintAges()
    assert ages.observe("n1", {"n3": 4}, now=10.0) == {"n3": 0.0}
    assert ages.observe("n1", {"n3": 9}, now=15.0) == {"n3": 5.0}
    assert ages.observe("n1", {}, now=16.0) == {}
    assert ages.observe("n1", {"n3": 1}, now=20.0) == {"n3": 0.0}  # a new backlog starts a new age


def test_snapshot_sums_the_cluster_and_reports_healing() -> None:
    nodes = [
        {"name": "n1", "status": "up", "vnodes": 8, "keys": 3},
        {"name": "n2", "status": "down", "vnodes": 8, "keys": 3},
    ]
    hints = {"pending": {"n2": 12}, "delivered": 3, "dropped": 0}
    aae = {"exchanges": 4, "keys_sent": 1, "keys_received": 0, "last_differences": {"n2": 5}}
    p0 = Poll(0.0, 1000.0, "n1", nodes, {"n1": status(5, {"put/quorum": 10}, hints=hints, anti_entropy=aae)})
    aae1 = {**aae, "exchanges": 6}
    p1 = Poll(
        2.0,
        1002.0,
        "n1",
        nodes,
        {"n1": status(7, {"put/quorum": 30}, hints=hints, anti_entropy=aae1), "n2": None},
    )
    ages = HintAges()
    snapshot(p0, None, ages)
    snap = snapshot(p1, p0, ages)
    assert snap["cluster"]["requests"] == {"put/quorum": 10.0}
    assert [r["ops"] for r in snap["nodes"]] == [10.0, None]
    assert snap["nodes"][1]["keys"] == 3  # gossip's count when the node itself did not answer
    assert snap["healing"]["hints"] == [
        {"holder": "n1", "target": "n2", "count": 12, "age_s": 2.0, "exact": False}
    ]
    # a node that reports its oldest hint's age is believed over the gateway's "first seen"
    reported = {**hints, "oldest_age_s": {"n2": 42.25}}
    p2 = Poll(3.0, 1003.0, "n1", nodes, {"n1": status(8, {"put/quorum": 30}, hints=reported), "n2": None})
    assert snapshot(p2, p1, ages)["healing"]["hints"] == [
        {"holder": "n1", "target": "n2", "count": 12, "age_s": 42.2, "exact": True}
    ]
    assert snap["healing"]["anti_entropy"][0]["rounds_s"] == 1.0
    assert snap["healing"]["anti_entropy"][0]["differing"] == {"n2": 5}
    assert list(snap["per_node"]) == ["n1"]


def test_ring_version_changes_with_membership_only() -> None:
    a = [{"name": "n1", "vnodes": 8, "status": "up"}, {"name": "n2", "vnodes": 8, "status": "up"}]
    b = [{"name": "n1", "vnodes": 8, "status": "up"}, {"name": "n2", "vnodes": 8, "status": "down"}]
    c = [*a, {"name": "n3", "vnodes": 8, "status": "joining"}]
    assert ring_version(a) == ring_version(b)  # down is not a membership change
    assert ring_version(a) != ring_version(c)


def test_inspector_lines_up_replicas_and_explains_siblings() -> None:
    ring = Ring.from_nodes(["n1", "n2", "n3"], vnodes=8, replication_factor=3)
    left = StoredVersion(b"left", "n1~a", 2, 10.0)
    right = StoredVersion(b"right", "n2~b", 1, 11.0)
    old = StoredVersion(b"old", "n1~a", 1, 9.0)
    states = {
        "n1": ReplicaState([right, left], {"n1~a": 2, "n2~b": 1}),
        "n2": ReplicaState([old], {"n1~a": 1}),
        "n3": NoNodeAvailable("down"),
    }
    out = inspect(b"k", ring, {"n1", "n2"}, states)
    assert [v["dot"] for v in out["versions"]] == ["n2~b:1", "n1~a:2", "n1~a:1"]
    assert out["replicas"]["n1"]["cells"] == ["held", "held", "superseded"]
    assert out["replicas"]["n2"]["cells"] == ["missing", "missing", "held"]
    assert out["replicas"]["n3"] == {"error": "not answering"}
    assert out["diverged"] is True
    assert sorted(out["siblings"]) == ["n1~a:2", "n2~b:1"]  # the merge: "old" was superseded on n1
    lanes = {lane["actor"]: lane for lane in out["concurrency"]["lanes"]}
    assert lanes["n1~a"]["superseded"] == [1] and lanes["n1~a"]["siblings"] == [2]
    assert len(out["concurrency"]["pairs"]) == 1
    assert 0.0 <= out["position"] < 1.0
    assert [p["role"] for p in out["placements"]][:3] == ["primary"] * 3


def test_admin_actions_fail_closed_when_security_is_on() -> None:
    from types import SimpleNamespace

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from zkv.http.dashboard import ROLE, role
    from zkv.http.state import SETTINGS, GatewaySettings

    def request(curve: bool, set_role: str | None = None, tokens: str | None = None) -> web.Request:
        app = web.Application()
        config = SimpleNamespace(security=SimpleNamespace(curve=curve, http_tokens=tokens))
        app[SETTINGS] = GatewaySettings(config, "n1", "tcp://127.0.0.1:1")  # type: ignore[arg-type]
        req = make_mocked_request("POST", "/v1/dashboard/nodes/n2/decommission", app=app)
        if set_role is not None:
            req[ROLE] = set_role
        return req

    assert role(request(curve=False)) == "admin"  # no security: the operator's own machine
    assert role(request(curve=True)) == "client"  # security on and nobody vouched for the caller
    assert role(request(curve=False, tokens="tokens.txt")) == "client"  # bearer tokens on: the same
    assert role(request(curve=True, set_role="admin")) == "admin"
    assert role(request(curve=False, set_role="client")) == "client"


def test_rows_say_who_drops_a_nodes_traffic_and_its_own_fault_filter() -> None:
    nodes = [{"name": n, "status": "up" if n != "n3" else "down"} for n in ("n1", "n2", "n3")]
    cut = {"drop_in": {"n3": 1.0}, "drop_out": {}, "delay_in": {}}
    statuses = {"n1": status(5, {}, faults=cut), "n2": status(5, {}, faults=cut), "n3": None}
    snap = snapshot(Poll(1.0, 1001.0, "n1", nodes, statuses), None, HintAges())
    rows = {r["name"]: r for r in snap["nodes"]}
    assert rows["n3"]["dropped_by"] == ["n1", "n2"] and rows["n3"]["faults"] is None  # it did not answer
    assert rows["n1"]["faults"] == cut and rows["n1"]["dropped_by"] == []
