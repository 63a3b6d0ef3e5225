"""The gateway's loop client routes as the Python client does: a silent coordinator makes a read go to the
next replica and a write time out (504: it may have landed); a draining one (``stopping``) passes the
request on at once, a write too, so a rolling restart costs HTTP clients nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

from conftest import Http

from zkv.testing.localcluster import LocalCluster, wait_until


def keys_led_by(cluster: LocalCluster, node: str, count: int) -> list[str]:
    """Keys whose preference list starts with ``node`` (the gateway sends to it first)."""
    with cluster.client() as c:
        ring = c.ring()
        out = [k for k in (f"route-{i}" for i in range(2000)) if ring.preference_list(k.encode())[0] == node]
    assert len(out) >= count
    return out[:count]


def test_a_silent_coordinator_reads_from_the_next_and_a_write_times_out(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(3, http=True, request_timeout_ms=500)
    web = Http(cluster.url("n2"))
    key = keys_led_by(cluster, "n1", 1)[0]
    assert web.put(f"/v1/keys/{key}?consistency=all", b"v").status == 204
    cluster.pause("n1")  # alive to its sockets, silent: only the timeout tells
    try:
        started = time.monotonic()
        got = web.get(f"/v1/keys/{key}?consistency=one")
        assert got.status == 200 and got.body == b"v"  # re-sent to the next replica after the timeout
        assert time.monotonic() - started >= 0.5
        put = web.put(f"/v1/keys/{key}?consistency=one", b"w")
        assert put.status == 504, put.body  # not re-sent: it could land twice
        assert put.json()["error"] == "timeout"
    finally:
        cluster.resume("n1")


def test_a_draining_node_passes_every_request_on(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(3, http=True)
    web = Http(cluster.url("n2"))
    keys = keys_led_by(cluster, "n1", 20)
    with cluster.client("n1") as c:
        c.restart("n1")  # drains for a request timeout, answering new reads and writes "stopping"
    statuses = []
    for key in keys:  # well inside the drain: each is answered "stopping" by n1 and goes to the next node
        statuses.append(web.put(f"/v1/keys/{key}?consistency=quorum", b"during the drain").status)
        statuses.append(web.get(f"/v1/keys/{key}?consistency=quorum").status)
    assert statuses == [204, 200] * len(keys)
    assert cluster.procs["n1"].wait(timeout=30) == 3  # it asked to be started again
    cluster.start("n1")
    wait_until(lambda: web.get(f"/v1/keys/{keys[0]}?consistency=all").status == 200, 20, "n1 to serve")


def test_a_node_cut_off_from_its_peers_passes_requests_on(make_cluster: Callable[..., LocalCluster]) -> None:
    """n1 cut off from n2 and n3 answers ``unavailable`` at once for every quorum request it coordinates
    (nothing attempted); the client and n1's own gateway take such an answer to the next node of the
    key's preference list, a write too, so quorum reads and writes of keys n1 leads keep working."""
    cluster = make_cluster(3, http=True, failure_timeout_ms=1000)
    keys = keys_led_by(cluster, "n1", 6)
    with cluster.client() as c:
        for key in keys:
            c.put(key, b"before", "all")
        peers = {"n2": 1.0, "n3": 1.0}
        c.faults("n1", drop_in=peers, drop_out=peers)
        for other in ("n2", "n3"):
            c.faults(other, drop_in={"n1": 1.0}, drop_out={"n1": 1.0})
        try:
            wait_until(
                lambda: all(n.status == "down" for n in c.nodes(cluster.addresses["n1"]) if n.name != "n1"),
                20,
                "n1 to see n2 and n3 down",
            )
            refused = c.status("n1").errors.get("unavailable", 0)
            with cluster.client() as fresh:  # routes by the ring: n1 first for these keys
                assert fresh.get(keys[0], "quorum").values == [b"before"]
                fresh.put(keys[1], b"through the client", "quorum")
                assert fresh.get(keys[1], "quorum").values == [b"through the client"]
            web = Http(cluster.url("n1"))
            got = web.get(f"/v1/keys/{keys[2]}?consistency=quorum")
            assert got.status == 200 and got.body == b"before", got.body
            assert web.put(f"/v1/keys/{keys[3]}?consistency=quorum", b"through n1's gateway").status == 204
            got = web.get(f"/v1/keys/{keys[3]}?consistency=quorum")
            assert got.status == 200 and got.body == b"through n1's gateway"
            # every one of those went to n1 first and was refused there before anything was sent
            assert c.status("n1").errors.get("unavailable", 0) >= refused + 6
            # all needs n1 too: every replica refuses it, and the answer is n1's own 503, quickly
            started = time.monotonic()
            denied = web.put(f"/v1/keys/{keys[4]}?consistency=all", b"x")
            assert denied.status == 503 and denied.json()["error"] == "unavailable"
            assert time.monotonic() - started < 2.0
        finally:
            for node in cluster.names:
                c.faults(node, drop_in={}, drop_out={})
    with cluster.client() as c:
        wait_until(
            lambda: c.get(keys[3], "all").values == [b"through n1's gateway"], 20, "the write to reach n1"
        )
