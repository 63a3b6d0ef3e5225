"""The rough edges a new user hit, each reproduced first: no tracebacks, no blaming the wrong node, no
doubled words, advice that fits the command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from shell_driver import SHELL, drive
from zkv_shell.commands import COMMANDS, UsageError, parse
from zkv_shell.health import HealthMonitor, Link
from zkv_shell.hints import explain
from zkv_shell.results import NodeRow, Nodes
from zkv_shell.session import Session

from zkv.client import NodeInfo
from zkv.errors import Timeout
from zkv.testing.localcluster import LocalCluster, free_ports, wait_until


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ZKV_CONFIG"}
    env["ZKV_HISTORY"] = str(cwd / "history")
    return subprocess.run(
        [str(SHELL), *args], capture_output=True, text=True, env=env, cwd=str(cwd), timeout=30, input=""
    )


def test_connect_to_an_address_where_nothing_listens_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    result = _run("--connect", f"tcp://127.0.0.1:{port}", "-c", "get a", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"no_node_available: tcp://127.0.0.1:{port} is down")


def test_connect_takes_host_port_and_rejects_nonsense(cluster3: LocalCluster, tmp_path: Path) -> None:
    bare = cluster3.addresses["n2"].removeprefix("tcp://")
    result = _run("--connect", bare, "-c", "put a 1", "-c", "get a", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["OK", "1"]
    bad = _run("--connect", "127.0.0.1:notaport", "-c", "get a", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("bad_address:") and "Traceback" not in bad.stderr


def test_decommission_of_a_dead_node_names_that_node(shell: Session, cluster3: LocalCluster) -> None:
    cluster3.kill("n3")
    run = drive(shell, "decommission n3\n")
    assert run.lines[0].startswith(f"node_down: n3 ({cluster3.addresses['n3']}) is not answering")
    assert "n1" not in run.lines[0].partition("—")[0]
    assert shell.link.connected  # the connected node was never the problem


def test_switch_to_a_silent_address_prints_it_once(shell: Session) -> None:
    (port,) = free_ports(1)
    run = drive(shell, f"switch tcp://127.0.0.1:{port}\nswitch 127.0.0.1:{port}\n")
    for line in run.lines:
        assert line.count(f"127.0.0.1:{port}") == 1, line
        assert line.startswith(f"node_down: tcp://127.0.0.1:{port} is not answering — staying on n1")


def test_usage_is_said_once_and_the_quoting_hint_only_where_a_value_was_typed() -> None:
    for line, hint in [("put a", COMMANDS["put"].usage), ("get", "get KEY [one|quorum|all]")]:
        try:
            parse(line)
        except UsageError as exc:
            assert exc.code == "usage" and exc.hint == hint
        else:
            raise AssertionError(f"{line!r} parsed")
    for line, quoting in [("consistency quorom", False), ("get a quorom", False), ("put a b quorom", True)]:
        try:
            parse(line)
        except UsageError as exc:
            assert exc.code == "bad_consistency" and ("quote" in exc.hint) is quoting, (line, exc.hint)
        else:
            raise AssertionError(f"{line!r} parsed")


def test_a_read_that_timed_out_does_not_speak_of_writes() -> None:
    read = explain("get", Timeout(required=2, acknowledged=1), "n1", "tcp://x:1", ["n2"])
    assert "write" not in read.hint and "read" in read.hint
    write = explain("put", Timeout(required=2, acknowledged=1), "n1", "tcp://x:1", ["n2"])
    assert "write may have landed" in write.hint


def test_a_removed_node_is_neither_up_nor_down() -> None:
    rows = (
        NodeRow("n1", "a1", "up", 0.1, 64, 1.0, 3),
        NodeRow("n2", "a2", "up", 0.1, 64, 1.0, 3),
        NodeRow("n3", "a3", "up", 0.1, 64, 1.0, 3),
        NodeRow("n4", "a4", "removed", None, 64, 0.0, 0),
    )
    data = Nodes("nodes", "n1", rows).to_dict()
    assert data["up"] == 3 and data["down"] == 0 and data["statuses"] == {"removed": 1, "up": 3}
    json.dumps(data)

    class Fake:
        def nodes(self, address: str) -> list[NodeInfo]:
            return [NodeInfo(r.name, r.address, r.status, 1, None, 0, 64, 0.0) for r in rows]

    link = Link()
    HealthMonitor(lambda: "a1", link).check(Fake())  # type: ignore[arg-type]
    assert (link.health.up, link.health.total) == (3, 3)  # the toolbar says 3/3 up, not 3/4


def test_nodes_in_json_after_a_node_left(cluster5: LocalCluster, tmp_path: Path) -> None:
    with cluster5.client() as client:
        client.leave("n5")
        wait_until(
            lambda: {n.name: n.status for n in client.nodes(cluster5.addresses["n1"])}.get("n5") == "removed",
            60,
            "n5 to leave",
        )
    result = _run("--config", str(cluster5.config_path), "-o", "json", "-c", "nodes", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert data["up"] == 4 and data["down"] == 0 and data["statuses"]["removed"] == 1
