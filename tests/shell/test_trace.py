"""``trace on``: each command is followed by its latency and the coordinator's consistency receipt."""

from __future__ import annotations

import json

from shell_driver import drive
from zkv_shell.session import Session

from zkv.testing.localcluster import LocalCluster, wait_until


def test_trace_on_shows_latency_coordinator_replicas_and_what_a_write_replaced(shell: Session) -> None:
    run = drive(shell, "trace\ntrace on\nput t1 a\nput t1 b\nget t1\ntrace off\nget t1\n")
    lines = run.lines
    assert lines[0] == "tracing is off" and lines[1].startswith("tracing is on")
    assert lines[2] == "OK" and lines[3].startswith("trace: ") and "coordinator n1" in lines[3]
    assert "quorum, sloppy quorum" in lines[3]  # the cluster default (sloppy_quorum = true)
    assert lines[4].startswith("  replicas answered: n1 0.00 ms, n")
    assert "blind, replaced 0 version(s)" in lines[5]
    assert "blind, replaced 1 version(s), 1 now" in lines[9]  # the second put superseded the first
    assert lines[10] == "b" and "siblings merged" in lines[13] and "read repairs" in lines[13]
    assert lines[14] == "tracing is off" and lines[15:] == ["b"]


def test_trace_in_json_and_a_sloppy_quorum_with_a_replica_down(cluster5: LocalCluster) -> None:
    session = Session.connect(cluster5.addresses["n1"], known=cluster5.addresses)
    try:
        info = session.client.ring(refresh=True)
        key = next(
            f"k{i}"
            for i in range(10000)
            if info.preference_list(f"k{i}")[0] == "n1" and "n3" in info.preference_list(f"k{i}")
        )
        cluster5.kill("n3")
        with cluster5.client() as client:
            wait_until(
                lambda: {n.name: n.status for n in client.nodes(cluster5.addresses["n1"])}["n3"] == "down",
                20,
                "n1 to see n3 down",
            )
        run = drive(session, f"trace on\nput {key} v quorum\nget {key}\n", json_mode=True)
        _, put, get = run.json()
        receipt = put["trace"]["receipt"]
        assert receipt["coordinator"] == "n1" and receipt["quorum"] == "sloppy"
        assert receipt["hints"] >= 1 and list(receipt["fallbacks"].values()) == ["n3"]
        assert "n3" not in receipt["replicas"] and len(receipt["replicas"]) >= 2
        assert put["trace"]["latency_ms"] > 0
        assert get["trace"]["receipt"]["op"] == "get" and get["values"] == ["v"]
        json.dumps(put)
    finally:
        session.close()
