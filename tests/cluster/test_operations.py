"""Day-2 operations on real clusters: snapshot under load and restore, bad input, supervisor restarts,
a rolling restart under a quorum load with zero failed requests (docs/operations.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from zkv.client import Client
from zkv.errors import ZkvError
from zkv.testing.localcluster import LocalCluster, wait_until

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*ZKV_NODE, *args], capture_output=True, text=True, timeout=timeout)


class Load:
    """Threads writing distinct keys at quorum (and reading each back), noting what was acknowledged."""

    def __init__(self, client_of: object, threads: int = 3, read: bool = False) -> None:
        self.client_of = client_of
        self.stop = threading.Event()
        self.acked: dict[str, str] = {}
        self.failures: list[str] = []
        self.ops = 0
        self.lock = threading.Lock()
        self.read = read
        self.threads = [threading.Thread(target=self._run, args=(t,)) for t in range(threads)]

    def _run(self, t: int) -> None:
        with self.client_of() as client:  # type: ignore[operator]
            i = 0
            while not self.stop.is_set():
                key, value = f"load{t}-{i}", f"value-{t}-{i}"
                try:
                    client.put(key, value, consistency="quorum")
                    with self.lock:
                        self.acked[key] = value
                        self.ops += 1
                    if self.read:
                        got = client.get(key, consistency="quorum")
                        assert got.value == value.encode(), (key, got.values)
                        with self.lock:
                            self.ops += 1
                except (ZkvError, AssertionError) as exc:
                    with self.lock:
                        self.failures.append(f"{key}: {exc!r}")
                i += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.acked)


def test_snapshot_under_load_then_wipe_and_restore_brings_back_every_acked_key(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, engine="log", segment_bytes=65536) as cluster:
        cluster.start()
        out = tmp_path / "snap"
        with Load(lambda: cluster.client(timeout=5.0)) as load:
            wait_until(lambda: len(load.snapshot()) >= 300, 60, "300 acknowledged writes")
            before = load.snapshot()  # acknowledged before the snapshot began: every one must come back
            result = run("snapshot", "--config", str(cluster.config_path), "--out", str(out))
            assert result.returncode == 0, result.stderr
            wait_until(lambda: len(load.snapshot()) >= len(before) + 100, 60, "writes after the snapshot")
        assert not load.failures, load.failures[:5]
        cluster_manifest = json.loads((out / "cluster.json").read_text())
        assert sorted(cluster_manifest["nodes"]) == ["n1", "n2", "n3"]
        for name in cluster.names:
            manifest = json.loads((out / name / "manifest.json").read_text())
            assert manifest["keys"] >= len(before)  # N = 3 on 3 nodes: every node holds every key
            assert manifest["files"] and manifest["merkle_root"]
        verified = run("verify", str(out))
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.count(": ok,") == 3
        for name in cluster.names:
            cluster.stop(name)
        for name in cluster.names:
            shutil.rmtree(tmp_path / "data" / name)
        restored = run("restore", "--config", str(cluster.config_path), "--from", str(out))
        assert restored.returncode == 0, restored.stderr
        cluster.start()
        with cluster.client(timeout=5.0) as client:
            for key, value in before.items():
                assert client.get(key, consistency="all").value == value.encode(), key


def test_bad_snapshot_and_restore_input_exit_2_with_one_line(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, engine="log") as cluster:
        cluster.start()
        with cluster.client() as client:
            for i in range(50):
                client.put(f"k{i}", f"v{i}")
        config = str(cluster.config_path)
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "something").write_text("x")
        result = run("snapshot", "--config", config, "--node", "n1", "--out", str(busy))
        assert result.returncode == 2 and "not empty" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        read_only = "/proc/zkv-snapshot" if os.geteuid() == 0 else str(tmp_path / "ro")
        if os.geteuid() != 0:
            (tmp_path / "ro").mkdir(mode=0o500)
        result = run("snapshot", "--config", config, "--node", "n1", "--out", read_only)
        assert result.returncode == 2 and "not writable" in result.stderr
        snap = tmp_path / "snap"
        assert run("snapshot", "--config", config, "--node", "n1", "--out", str(snap)).returncode == 0
        # the node kept serving through all of it
        with cluster.client() as client:
            assert client.get("k1").value == b"v1"
        # restore into a data_dir that is not empty (a running node's)
        result = run("restore", "--config", config, "--node", "n1", "--from", str(snap))
        assert result.returncode == 2 and "not empty" in result.stderr
        # damage: a flipped byte, then a cut file (copies: the snapshot's files are hard links)
        segment = sorted(snap.glob("*.log"))[0]
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0xFF
        segment.unlink()
        segment.write_bytes(bytes(data))
        result = run("verify", str(snap))
        assert result.returncode == 2 and "CRC32" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        segment.write_bytes(bytes(data[:-7]))
        result = run("verify", str(snap))
        assert result.returncode == 2 and "truncated" in result.stderr
        cluster.stop("n1")
        shutil.rmtree(tmp_path / "data" / "n1")
        result = run("restore", "--config", config, "--node", "n1", "--from", str(snap))
        assert result.returncode == 2 and "truncated" in result.stderr
        assert not (tmp_path / "data" / "n1").exists()  # nothing half-restored


class Supervisor:
    """``zkv-node --config FILE [args]`` supervising the nodes of a LocalCluster's file."""

    def __init__(self, cluster: LocalCluster, *args: str) -> None:
        self.log_path = cluster.workdir / "supervisor.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*ZKV_NODE, "--config", str(cluster.config_path), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=cluster.workdir,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


def _pids(client: Client, cluster: LocalCluster) -> dict[str, int]:
    return {name: client.status(cluster.addresses[name]).pid for name in cluster.names}


def test_supervisor_restarts_a_crashed_node_and_rolling_restart_fails_no_request(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, engine="log", restart="on-failure")
    supervisor = Supervisor(cluster)
    try:
        with cluster.client(timeout=2.0) as client:
            pids = wait_until(lambda: _pids(client, cluster), 30, "every node serving")
            os.kill(pids["n2"], signal.SIGKILL)
            wait_until(lambda: client.status(cluster.addresses["n2"]).pid != pids["n2"], 30, "n2 restarted")
            assert f"n2 (pid {pids['n2']}) exited with status -9; restarting it in" in supervisor.text()
            assert supervisor.proc.poll() is None
            with Load(lambda: cluster.client(timeout=2.0), threads=3, read=True) as load:
                wait_until(lambda: load.ops >= 200, 60, "load running")
                result = run("rolling-restart", "--config", str(cluster.config_path), timeout=300)
                assert result.returncode == 0, result.stderr
                done = load.ops
                wait_until(lambda: load.ops >= done + 100, 60, "load after the restart")
            assert not load.failures, load.failures[:5]
            assert result.stdout.count("back and seen up by every node") == 3
            before = pids
            after = wait_until(lambda: _pids(client, cluster), 30, "every node serving")
            assert all(after[n] != before[n] for n in cluster.names)
            for key, value in load.snapshot().items():
                assert client.get(key, consistency="all").value == value.encode(), key
    finally:
        assert supervisor.stop() == 0, supervisor.text()[-3000:]
    assert supervisor.text().count("stopped for a restart; starting it again") == 3


@pytest.mark.parametrize("policy", ["no"])
def test_without_the_policy_a_crashed_node_stays_down(tmp_path: Path, policy: str) -> None:
    cluster = LocalCluster(tmp_path, engine="memory", restart=policy)
    supervisor = Supervisor(cluster)
    try:
        with cluster.client(timeout=1.0) as client:
            pids = wait_until(lambda: _pids(client, cluster), 30, "every node serving")
            os.kill(pids["n3"], signal.SIGKILL)
            wait_until(
                lambda: "n3 (pid" in supervisor.text() and "the others keep serving" in supervisor.text(),
                30,
                "the supervisor to report n3",
            )
            assert "restarting it" not in supervisor.text()
    finally:
        supervisor.stop()


def test_live_restore_keeps_newer_writes_and_deletes(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, engine="log") as cluster:
        cluster.start()
        config = str(cluster.config_path)
        with cluster.client(timeout=5.0) as client:
            for i in range(100):
                client.put(f"k{i}", f"old{i}", consistency="all")
            assert run("snapshot", "--config", config, "--out", str(tmp_path / "snap")).returncode == 0
            for i in range(50):
                client.put(f"k{i}", f"newer{i}", context=client.get(f"k{i}", consistency="all").context)
            for i in range(60, 70):
                client.delete(f"k{i}", context=client.get(f"k{i}", consistency="all").context)
            result = run("restore", "--config", config, "--from", str(tmp_path / "snap"), "--live")
            assert result.returncode == 0, result.stderr
            assert "100/100 keys merged" in result.stdout
            for i in range(100):
                got = client.get(f"k{i}", consistency="all")
                if i < 50:
                    assert got.values == [f"newer{i}".encode()], (i, got.values)
                elif 60 <= i < 70:
                    assert got.values == [], (i, got.values)
                else:
                    assert got.values == [f"old{i}".encode()], (i, got.values)


def test_repair_fills_a_wiped_replica_from_every_peer(tmp_path: Path) -> None:
    # four nodes, so the wiped node shares keys with each peer differently; periodic anti-entropy is
    # all but off (one exchange a minute after the start), so the full pass is what fills it
    with LocalCluster(tmp_path, nodes=4, engine="memory", anti_entropy_interval_ms=600_000) as cluster:
        cluster.start()
        with cluster.client(timeout=5.0) as client:
            keys = [f"r{i}" for i in range(400)]
            assert not any(client.put_many([(k, "v") for k in keys], consistency="all"))
            cluster.restart("n3")  # the memory engine: n3 comes back empty
            cluster.wait_ready()
            result = run("repair", "--config", str(cluster.config_path), "--node", "n3", timeout=300)
            assert result.returncode == 0, result.stderr
            assert "n3: 3/3 peers agree" in result.stdout
            ring = client.ring(refresh=True)
            for key in keys:
                if "n3" in ring.preference_list(key.encode()):
                    versions = client.replicas(key)["n3"].versions
                    assert [v.value for v in versions] == [b"v"], key
