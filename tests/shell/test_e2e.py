"""The installed ``zkv-shell`` end to end: in a pseudo-terminal (pexpect), and as a scripting tool."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pexpect
import pytest
from shell_driver import SHELL

from zkv.testing.localcluster import LocalCluster

ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


def prompt(node: str, level: str = "quorum") -> str:
    """The prompt ``zkv NODE [LEVEL]>`` as prompt-toolkit draws it (with colour codes between the parts)."""
    return f"zkv {ANSI}{node}{ANSI} \\[{level}\\]{ANSI}>"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ZKV_CONFIG"}
    env.update(ZKV_HISTORY=str(tmp_path / "history"), TERM="xterm", **extra)
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # pexpect does not answer cursor-position requests
    return env


def _spawn(cluster: LocalCluster, tmp_path: Path, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        str(SHELL),
        ["--config", str(cluster.config_path), *args],
        env=_env(tmp_path),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=10,
        dimensions=(40, 140),
    )
    return child


def _run(cluster: LocalCluster | None, tmp_path: Path, *args: str, stdin: str | None = None, **env: str):
    config = ["--config", str(cluster.config_path)] if cluster is not None else []
    return subprocess.run(
        [str(SHELL), *config, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        cwd=str(tmp_path),
        timeout=30,
    )


def test_interactive_session_in_a_terminal(cluster3: LocalCluster, tmp_path: Path) -> None:
    child = _spawn(cluster3, tmp_path)
    try:
        child.expect(f"connected to n1 \\({re.escape(cluster3.addresses['n1'])}\\)")
        child.expect(prompt("n1"))
        child.sendline("put greeting hello-there")
        child.expect("OK")
        child.expect(prompt("n1"))
        child.sendline("get greeting")
        child.expect("hello-there")
        child.expect(prompt("n1"))
        child.send("swi\t")  # Tab completes the command
        child.expect("switch")
        child.sendline(" n2")
        child.expect(f"now connected to n2 \\({re.escape(cluster3.addresses['n2'])}\\)")
        child.expect(prompt("n2"))
        child.sendline("get greeting")
        child.expect("hello-there")
        child.expect(prompt("n2"))
        child.sendline("nodes")
        child.expect("cluster as n2 sees it")
        child.expect("3 up, 0 down")
        child.expect(prompt("n2"))
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    history = (tmp_path / "history").read_text()
    assert "put greeting hello-there" in history and "switch n2" in history


def test_starting_on_a_down_node_offers_the_others(cluster3: LocalCluster, tmp_path: Path) -> None:
    cluster3.kill("n1")
    child = _spawn(cluster3, tmp_path)
    try:
        child.expect(f"n1 \\({re.escape(cluster3.addresses['n1'])}\\) is down")
        child.expect("Nodes that answer: n2, n3")
        child.expect(r"Connect to n2 instead\? \[Y/n/name\]")
        child.sendline("n3")
        child.expect("now connected to n3")
        child.expect(prompt("n3"))
        child.sendcontrol("d")  # Ctrl-D leaves too
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0

    scripted = _run(cluster3, tmp_path, "-c", "get a")
    assert scripted.returncode == 2
    assert "no_node_available: n1" in scripted.stderr and "up: n2, n3; use --node n2" in scripted.stderr


def test_commands_from_c_flags_run_then_exit(cluster3: LocalCluster, tmp_path: Path) -> None:
    ok = _run(cluster3, tmp_path, "-c", "put a 1", "-c", "get a", "-c", "nodes")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[:2] == ["OK", "1"] and "3 up, 0 down" in ok.stdout
    assert "\x1b[" not in ok.stdout and ok.stderr == ""  # plain text when not a terminal

    failed = _run(cluster3, tmp_path, "-c", "gte a", "-c", "get a", "--node", "n2")
    assert failed.returncode == 1
    assert failed.stdout == "1\n"  # later commands still run
    assert failed.stderr.startswith("unknown_command: unknown command 'gte' — did you mean 'get'?")


def test_piped_stdin_and_json_output(cluster3: LocalCluster, tmp_path: Path) -> None:
    piped = _run(cluster3, tmp_path, stdin="put p 'two words'\n\n# comment\nget p\nquit\nget never\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "OK\ntwo words\n"

    js = _run(cluster3, tmp_path, "-o", "json", stdin="put j 1\nget j all\nbogus\n")
    assert js.returncode == 1
    put, get, bad = (json.loads(line) for line in js.stdout.splitlines())
    assert put == {"command": "put", "ok": True, "key": "j", "consistency": "quorum", "coordinator": "n1",
                   "context": False, "resolved": 0, "quorum": "sloppy", "hinted": 0}  # fmt: skip
    assert get["values"] == ["1"] and get["consistency"] == "all" and get["siblings"] == 1
    assert bad["ok"] is False and bad["error"] == "unknown_command"

    nodes = _run(cluster3, tmp_path, "-o", "json", "-c", "nodes")
    assert nodes.returncode == 0 and json.loads(nodes.stdout)["up"] == 3


def test_where_to_connect(cluster3: LocalCluster, tmp_path: Path) -> None:
    by_address = _run(None, tmp_path, "--connect", cluster3.addresses["n3"], "-o", "json", "-c", "put x 1")
    assert by_address.returncode == 0 and json.loads(by_address.stdout)["coordinator"] == "n3"

    (tmp_path / "elsewhere").mkdir()
    by_env = _run(None, tmp_path / "elsewhere", "-c", "get x", ZKV_CONFIG=str(cluster3.config_path))
    assert (by_env.returncode, by_env.stdout) == (0, "1\n")

    named = _run(cluster3, tmp_path, "--node", "n2", "-o", "json", "-c", "put y 1")
    assert json.loads(named.stdout)["coordinator"] == "n2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "config_error: no cluster file at cluster.toml: pass --config FILE or --connect"),
        (("--config", "nope.toml"), "config_error: no cluster file at nope.toml"),
    ],
)
def test_cannot_start_without_a_cluster_file(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(None, tmp_path, *args, "-c", "nodes")
    assert result.returncode == 2 and result.stderr.startswith(message)
    assert "Traceback" not in result.stderr


def test_unknown_node_in_the_config(cluster3: LocalCluster, tmp_path: Path) -> None:
    result = _run(cluster3, tmp_path, "--node", "n9", "-c", "nodes")
    assert (
        result.returncode == 2 and "no node named 'n9'" in result.stderr and "Traceback" not in result.stderr
    )
