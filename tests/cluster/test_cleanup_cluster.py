"""cleanup on a real cluster: 3 nodes, keys written, a 4th joins; after the rebalance ``zkv-node cleanup``
drops the keys the old owners no longer replicate, and every key still reads at quorum with its value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from zkv.testing.localcluster import LocalCluster, wait_until

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]
OLD = ("n1", "n2", "n3")


def test_cleanup_after_a_join_frees_the_old_owners_keys_and_loses_none(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, nodes=4, initial=3, engine="log") as cluster:
        cluster.start()
        acked: dict[str, str] = {}
        with cluster.client(*OLD, timeout=5.0) as client:
            for i in range(600):
                key, value = f"cl-{i}", f"value-{i}"
                client.put(key, value, consistency="quorum")
                acked[key] = value
            before = {n: client.status(cluster.addresses[n]).keys for n in OLD}
        assert all(count == len(acked) for count in before.values()), before  # N=3: each holds all
        cluster.start("n4")

        def joined() -> bool:
            with cluster.client(*OLD) as c:
                return all(
                    {m.name: m.status for m in c.nodes(cluster.addresses[n])}.get("n4") == "up" for n in OLD
                )

        wait_until(joined, 60, "n4 normal and up in every old node's view")
        done = subprocess.run(
            [*ZKV_NODE, "cleanup", "--config", str(cluster.config_path), "--timeout", "120"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "cleanup of 4 node(s) done" in done.stdout
        with cluster.client(timeout=5.0) as client:
            client.ring(refresh=True)
            after = {n: client.status(cluster.addresses[n]).keys for n in OLD}
            ring = client.ring()
            for name in OLD:
                owned = sum(1 for k in acked if name in ring.preference_list(k.encode()))
                assert after[name] == owned < before[name], (name, after, owned)
                run = client.status(cluster.addresses[name]).transfer.cleanup
                assert run is not None and run["dropped"] == before[name] - owned and run["kept"] == 0
                assert run["bytes_freed"] > 0
            for key, value in acked.items():
                assert client.get(key, consistency="quorum").value == value.encode(), key
            for key in list(acked)[:100]:
                assert sorted(client.replicas(key)) == sorted(ring.preference_list(key.encode()))
