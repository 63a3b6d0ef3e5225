"""removenode on a real cluster: a SIGKILLed node removed for good, every key back on 3 live nodes,
no acknowledged key lost; the bad inputs refused with exit 2 and nothing changed; the removed node,
started again as it was, refused (docs/operations.md, "Remove a dead node")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from zkv.client import ReplicaState
from zkv.errors import ZkvError
from zkv.testing.localcluster import LocalCluster, wait_until

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]
LIVE = ("n1", "n2", "n3")


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*ZKV_NODE, *args], capture_output=True, text=True, timeout=timeout)


def statuses_seen_by(cluster: LocalCluster, node: str) -> dict[str, str]:
    with cluster.client(node) as client:
        return {n.name: n.status for n in client.nodes(cluster.addresses[node])}


def test_removenode_of_a_sigkilled_node_brings_every_key_back_on_three_live_nodes(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, nodes=4, engine="log") as cluster:
        cluster.start()
        acked: dict[str, str] = {}
        with cluster.client(timeout=5.0) as client:
            for i in range(400):
                key, value = f"rm-{i}", f"value-{i}"
                client.put(key, value, consistency="quorum")
                acked[key] = value
        cluster.kill("n4")
        wait_until(
            lambda: all(statuses_seen_by(cluster, n)["n4"] == "down" for n in LIVE), 30, "n4 seen down"
        )
        config = str(cluster.config_path)

        # bad input: one line on stderr, exit 2, nothing changed
        for name, says in (("n2", "is up"), ("n9", "no member named 'n9'")):
            bad = run("removenode", name, "--config", config)
            assert bad.returncode == 2, (bad.stdout, bad.stderr)
            assert says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        for node in LIVE:
            assert set(statuses_seen_by(cluster, node).values()) <= {"up", "down"}

        done = run("removenode", "n4", "--config", config, "--timeout", "150")
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "back at full replication" in done.stdout
        for node in LIVE:
            assert statuses_seen_by(cluster, node)["n4"] == "removed"

        with cluster.client(timeout=5.0) as client:

            def on_three_live(key: str) -> bool:
                held = client.replicas(key)
                return sorted(held) == list(LIVE) and all(
                    isinstance(r, ReplicaState) and r.values == [acked[key].encode()] for r in held.values()
                )

            client.ring(refresh=True)
            wait_until(lambda: all(on_three_live(k) for k in acked), 60, "every key on n1, n2 and n3")
            for key, value in acked.items():
                assert client.get(key, consistency="quorum").value == value.encode(), key
            status = client.status(cluster.addresses["n1"]).transfer.removal["n4"]
            assert status["done"] is True

        # the removed node, started again as it was (same name, same data dir): refused, not rejoined
        cluster.start("n4", wait=False)
        proc = cluster.procs["n4"]
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("a removed node started as it was kept running") from None
        assert code == 4, code
        assert "was removed from the cluster" in cluster.log("n4")
        for node in LIVE:
            assert statuses_seen_by(cluster, node)["n4"] == "removed"
        try:
            with cluster.client("n1") as client:
                assert "n4" not in client.ring(refresh=True).addresses
        except ZkvError as exc:  # pragma: no cover - the ring request itself must work
            raise AssertionError(exc) from None


def test_removenode_of_the_last_node_is_refused(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, nodes=1) as cluster:
        cluster.start()
        bad = run("removenode", "n1", "--config", str(cluster.config_path))
        assert bad.returncode == 2 and "last node" in bad.stderr, (bad.stdout, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1
        with cluster.client() as client:
            assert [n.status for n in client.nodes()] == ["up"]
