"""Failure detection on real processes: crashes, pauses, restarts."""

from __future__ import annotations

import time

from zkv.core.status import NodeStatus
from zkv.errors import ZkvError
from zkv.testing.localcluster import LocalCluster, wait_until

# LocalCluster runs heartbeats every 100 ms with failure_timeout_ms = 2000
DETECTION_BOUND_S = 2.0


def statuses(cluster: LocalCluster, observer: str) -> dict[str, str]:
    with cluster.client(timeout=1.0) as c:
        return {n.name: n.status for n in c.nodes(cluster.addresses[observer])}


def generation(cluster: LocalCluster, observer: str, name: str) -> int:
    with cluster.client(timeout=1.0) as c:
        return next(n.generation for n in c.nodes(cluster.addresses[observer]) if n.name == name)


def wait_status(cluster: LocalCluster, observers: list[str], name: str, status: str, bound: float) -> float:
    started = time.monotonic()
    for observer in observers:
        wait_until(
            lambda o=observer: statuses(cluster, o)[name] == status,
            bound,
            f"{observer} to see {name} {status}",
        )
    return time.monotonic() - started


def test_sigkill_is_detected_and_a_restart_comes_back_with_a_higher_generation(
    cluster3: LocalCluster,
) -> None:
    before = generation(cluster3, "n1", "n3")
    cluster3.kill("n3")
    took = wait_status(cluster3, ["n1", "n2"], "n3", "down", DETECTION_BOUND_S)
    assert took < DETECTION_BOUND_S
    cluster3.start("n3")
    wait_status(cluster3, ["n1", "n2"], "n3", "up", 10)
    for observer in ("n1", "n2"):
        wait_until(
            lambda o=observer: generation(cluster3, o, "n3") > before,
            5,
            f"{observer} to see n3's new generation",
        )
    assert statuses(cluster3, "n3") == {"n1": "up", "n2": "up", "n3": "up"}


def test_a_paused_node_is_suspected_by_phi_and_recovers(cluster3: LocalCluster) -> None:
    cluster3.pause("n2")  # SIGSTOP: its connections stay open, only its heartbeats stop
    try:
        took = wait_status(cluster3, ["n1", "n3"], "n2", "down", DETECTION_BOUND_S)
        assert took < DETECTION_BOUND_S
        with cluster3.client("n1", "n3") as c:
            c.put("while-paused", "v", consistency="quorum")
    finally:
        cluster3.resume("n2")
    wait_status(cluster3, ["n1", "n3"], "n2", "up", 10)


def test_every_view_side_by_side(cluster3: LocalCluster) -> None:
    cluster3.kill("n1")
    with cluster3.client("n2", "n3") as c:
        wait_until(lambda: c.views()["n2"]["n1"].status == "down", 5, "n2 to see n1 down")
        wait_until(lambda: c.views()["n3"]["n1"].status == "down", 5, "n3 to see n1 down")
        views = c.views()
    assert set(views) == {"n1", "n2", "n3"}
    assert not isinstance(views["n1"], dict)  # n1 is dead: its entry is the error met asking it
    assert {n: v.status for n, v in views["n2"].items()} == {"n1": "down", "n2": "up", "n3": "up"}


def test_shell_views_shows_every_node_side_by_side(cluster3: LocalCluster) -> None:
    import subprocess
    import sys

    cluster3.kill("n3")
    with cluster3.client("n1", "n2") as c:
        wait_until(
            lambda: all(v["n3"].status == "down" for v in [c.views()["n1"], c.views()["n2"]]), 5, "n3 down"
        )
    shell = [sys.executable, "-m", "zkv_shell.main", "--config", str(cluster3.config_path), "-c", "views"]
    out = subprocess.run(shell, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[1:] if line.strip()}
    assert rows["n3"][:2] == ["down", "down"]  # as n1 and n2 see it
    assert "(no" in rows["n1"][2]  # n3 itself cannot answer


def test_statuses_are_typed_and_a_dead_node_is_its_error(cluster3: LocalCluster) -> None:
    cluster3.kill("n3")
    with cluster3.client("n1", "n2") as c:
        addresses = [cluster3.addresses[n] for n in ("n1", "n2", "n3")]
        replies = c.statuses(addresses, timeout=0.5)
    first, second, dead = replies
    assert isinstance(first, NodeStatus) and isinstance(second, NodeStatus)
    assert (first.node, second.node) == ("n1", "n2") and first.uptime_s > 0
    assert isinstance(dead, ZkvError)
