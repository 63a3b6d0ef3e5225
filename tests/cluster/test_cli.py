"""zkv-node as a user runs it: help, bad configs, the supervisor, a taken port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from zkv import Client
from zkv.testing.localcluster import LocalCluster, wait_until

ZKV_NODE = [sys.executable, "-m", "zkv.cli"]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*ZKV_NODE, *args], capture_output=True, text=True, timeout=timeout)


def test_help_documents_every_flag() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--config", "--node", "--log-level"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("cluster_text", "named"),
    [
        ('[cluster]\nread_consistency = "most"\n', "read_consistency"),
        ("[cluster]\nreplication_factor = 5\n", "replication_factor"),
        ("[cluster\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, cluster_text: str, named: str) -> None:
    nodes = "".join(
        f'\n[[node]]\nname = "n{i}"\naddress = "tcp://127.0.0.1:{7000 + i}"\n'
        f'gossip = "tcp://127.0.0.1:{7100 + i}"\n'
        for i in range(3)
    )
    path = tmp_path / "cluster.toml"
    path.write_text(cluster_text + nodes)
    result = run("--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]


def test_unknown_node_name_exits_2(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=3)
    result = run("--config", str(cluster.config_path), "--node", "n9")
    assert result.returncode == 2
    assert "no node named 'n9'" in result.stderr


def test_taken_port_is_a_readable_error(make_cluster) -> None:
    cluster = make_cluster(3)
    result = run("--config", str(cluster.config_path), "--node", "n1")  # n1 already runs there
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr


def test_supervisor_runs_every_node_reports_a_crash_and_stops_all(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=3)  # only for its config file: the supervisor starts the nodes
    log_path = tmp_path / "supervisor.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*ZKV_NODE, "--config", str(cluster.config_path)],
        stderr=log,
        start_new_session=True,
    )
    pids: dict[str, int] = {}
    try:
        with Client(list(cluster.addresses.values()), timeout=1.0) as client:
            for address in cluster.addresses.values():

                def all_up(a: str = address) -> bool:
                    return all(n.status == "up" for n in client.nodes(a))

                wait_until(all_up, 20, f"{address} to see every node up")
            for name, address in cluster.addresses.items():
                pids[name] = client.status(address).pid
            client.put("k", "v", consistency="all")
            os.kill(pids["n2"], signal.SIGKILL)
            assert client.get("k", consistency="quorum").values == [b"v"]
            report = f"n2 (pid {pids['n2']}) exited with status -9"
            wait_until(lambda: report in log_path.read_text(), 10, "the supervisor to report n2's death")
            assert client.get("k", consistency="quorum").values == [b"v"]  # the others kept serving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "all nodes stopped" in log_path.read_text()
        for name, pid in pids.items():
            wait_until(lambda pid=pid: not _alive(pid), 10, f"{name} to stop")
    finally:
        log.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of an exited supervisor counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
