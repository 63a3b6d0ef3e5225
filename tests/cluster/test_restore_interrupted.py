"""A restore SIGKILLed part way (issue #21, "Bad input and faults"): whenever the kill lands, each data
dir is either as it was (absent) or completely restored, never half; the same command run again
completes (skipping the nodes it had finished) and every key written before the snapshot is back with
its value."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from zkv.testing.localcluster import LocalCluster, wait_until

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]


def test_a_restore_killed_at_any_point_restarts_cleanly(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, engine="log", segment_bytes=65536) as cluster:
        cluster.start()
        written = {f"r{i}": f"value-{i}" * 8 for i in range(3000)}
        with cluster.client(timeout=10.0) as client:
            items = list(written.items())
            for start in range(0, len(items), 500):
                assert not any(client.put_many(items[start : start + 500]))
        out = tmp_path / "snap"
        config = str(cluster.config_path)
        taken = subprocess.run(
            [*ZKV_NODE, "snapshot", "--config", config, "--out", str(out)], capture_output=True
        )
        assert taken.returncode == 0, taken.stderr
        for name in cluster.names:
            cluster.stop(name)
        data = tmp_path / "data"
        restore = [*ZKV_NODE, "restore", "--config", config, "--from", str(out)]
        # kill it ever later: before, during and after the copies of the three node snapshots
        for delay in (0.3, 0.8, 1.5, 2.5):
            for name in cluster.names:
                shutil.rmtree(data / name, ignore_errors=True)
            proc = subprocess.Popen(restore, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)  # where the kill lands, not synchronisation: every outcome is checked below
            proc.kill()
            proc.wait(timeout=10)
            finished = set()
            for name in cluster.names:
                target = data / name
                if target.exists():  # renamed into place only once complete: every segment of the snapshot
                    manifest = json.loads((out / name / "manifest.json").read_text())
                    wanted = {f["name"] for f in manifest["files"] if f["name"].endswith((".log", ".idx"))}
                    assert wanted <= {p.name for p in target.iterdir()}, name
                    finished.add(name)
            # the same whole-cluster command run again completes: the nodes it finished are skipped, the
            # others restored from the start, with no leftover in the way
            done = subprocess.run(restore, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            for name in cluster.names:
                assert (f"{name}: restored already" in done.stdout) == (name in finished), done.stdout
                assert (data / name).exists(), name
            assert not list(data.glob("*.restoring")), list(data.iterdir())
        cluster.start()
        with cluster.client(timeout=10.0) as client:
            wait_until(lambda: client.get("r0", consistency="all").value is not None, 30, "all nodes serving")
            for key, value in written.items():
                assert client.get(key, consistency="all").value == value.encode(), key
