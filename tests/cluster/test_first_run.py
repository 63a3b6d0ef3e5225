"""What a new user meets first: --version, init, --dev, a port in use, HOST:PORT, quiet start-up logs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from zkv import Client
from zkv.config import load_config
from zkv.errors import UnknownNode
from zkv.scaffold import node_ports, ports_in_use
from zkv.testing.localcluster import LocalCluster, free_ports, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ZKV_NODE = [sys.executable, "-m", "zkv.cli"]


def run(*args: str, timeout: float = 30, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ZKV_NODE, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def free_layout(nodes: int) -> int:
    """A first port whose whole init layout (port + 100 i, +1) is free right now."""
    for candidate in free_ports(20):
        ports = [p for pair in node_ports(nodes, candidate) for p in pair]
        if max(ports) < 65536 and not ports_in_use(ports):
            return candidate
    raise AssertionError("no free port layout found")


@pytest.mark.parametrize(
    "command",
    [[*ZKV_NODE], [*ZKV_NODE, "init"], [*ZKV_NODE, "leave"], [*ZKV_NODE, "keygen"], [str(BIN / "zkv-shell")]],
)
def test_every_command_tells_its_version(command: list[str]) -> None:
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\b\d+\.\d+\.\d+\b", result.stdout), result.stdout
    if command == ZKV_NODE:  # which build of the hot path runs (zkv/compiled.py)
        assert re.search(r", (compiled \(mypyc\)|pure Python \(.+\))$", result.stdout.strip()), result.stdout


def test_init_writes_a_ready_cluster_toml_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = run("init", "--nodes", "5", "--dir", str(tmp_path / "c"), "--port", "9101")
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "c" / "cluster.toml")
    assert config.node_names == ("n1", "n2", "n3", "n4", "n5")
    assert [n.address for n in config.nodes][:2] == ["tcp://127.0.0.1:9101", "tcp://127.0.0.1:9201"]
    assert config.nodes[0].data_dir == (tmp_path / "c" / "data" / "n1").resolve()
    again = run("init", "--dir", str(tmp_path / "c"))
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    one = run("init", "--nodes", "1", "--dir", str(tmp_path / "one"))
    assert one.returncode == 0 and load_config(tmp_path / "one" / "cluster.toml").replication_factor == 1
    bad = run("init", "--nodes", "0", "--dir", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--nodes" in bad.stderr


def test_dev_runs_a_one_machine_cluster_without_a_config(tmp_path: Path) -> None:
    port = free_layout(3)
    log = open(tmp_path / "dev.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*ZKV_NODE, "--dev", "--port", str(port)], cwd=tmp_path, stderr=log, start_new_session=True
    )
    try:
        config_path = tmp_path / "zkv-dev" / "cluster.toml"
        wait_until(config_path.exists, 20, "the dev config")
        with Client.from_config(config_path, timeout=1.0) as client:
            wait_until(lambda: all(n.status == "up" for n in client.nodes()), 30, "the dev cluster")
            client.put("hello", "world")
            assert client.get("hello").values == [b"world"]
        shell = subprocess.run(
            [str(BIN / "zkv-shell"), "--config", str(config_path), "-c", "get hello"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shell.stdout.strip() == "world", shell.stderr
        assert "zkv-shell --config" in (tmp_path / "dev.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode == 0


def test_a_supervisor_on_ports_in_use_says_so_and_exits_non_zero(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(3)
    result = run("--config", str(cluster.config_path), timeout=30)
    assert result.returncode == 1
    assert "port in use" in result.stderr and cluster.addresses["n1"] in result.stderr


def test_make_run_in_a_second_clone_does_not_attach_to_the_first_clusters_nodes(make_cluster) -> None:
    """The first clone's cluster holds the ports: the second's run_local must fail loudly, not open a shell
    on someone else's nodes."""
    cluster = make_cluster(3)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_local.py"), "--config", str(cluster.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "port in use" in result.stderr
    assert "nodes up" not in result.stdout
    with cluster.client() as client:  # the first cluster is untouched
        assert all(n.status == "up" for n in client.nodes())


def test_host_port_addresses_and_unknown_node_names(cluster3: LocalCluster) -> None:
    bare = cluster3.addresses["n1"].removeprefix("tcp://")
    with Client([bare]) as client:
        client.put("a", "1")
        assert client.get("a").values == [b"1"]
        assert client.status(cluster3.addresses["n2"].removeprefix("tcp://")).node == "n2"
        with pytest.raises(UnknownNode) as err:
            client.status("n9")
        assert err.value.code == "unknown_node" and "n1, n2, n3" in err.value.message


def test_start_up_logs_no_lost_connection_that_never_was(cluster3: LocalCluster) -> None:
    for name in ("n1", "n2", "n3"):
        log = cluster3.log(name)
        assert "connection to" in log and " up" in log  # the real events are logged
        assert "lost" not in log, log[-2000:]
