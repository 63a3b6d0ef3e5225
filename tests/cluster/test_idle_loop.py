"""An idle node's loop sleeps until it has something to do, and a stop request still ends it at once
(issue #20: it used to wake every 200 ms only to look for a stop request).

With 5-second heartbeats an idle node has nothing to wake for for seconds; SIGTERM must stop it well
before that, which only the signal's wake-up descriptor in its poll can do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from zkv.testing.localcluster import LocalCluster

SLOW = {"heartbeat_interval_ms": 5000, "failure_timeout_ms": 30000}


def test_sigterm_stops_a_node_that_has_nothing_to_wake_for(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(3, **SLOW)
    with cluster.client(timeout=2.0) as client:
        client.put("k", "v", consistency="all")
    proc = cluster.procs["n1"]
    started = time.monotonic()
    assert cluster.stop("n1") == 0
    took = time.monotonic() - started
    assert proc.returncode == 0
    assert took < 2.5, f"an idle node took {took:.1f}s to stop (its next heartbeat: up to 5s away)"


def test_an_idle_node_wakes_for_heartbeats_only(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(3, **SLOW)
    with cluster.client(timeout=2.0) as client:
        first = client.status("n1")
        time.sleep(3.0)  # measuring an idle node: nothing to poll for, by design
        last = client.status("n1")
    turns = last.extra["wakeups"]["turns"] - first.extra["wakeups"]["turns"]
    seconds = last.uptime_s - first.uptime_s
    # in 3 s: its own heartbeat and its peers' (taken together) once or twice, a status request; the
    # old loop's 200 ms floor alone woke it 15 times
    assert turns <= 3 + seconds, (turns, seconds, last.extra["wakeups"])
