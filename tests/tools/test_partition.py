"""tools/partition.py against real clusters: link faults through the fault filter, process faults by pid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zkv import Client, Unavailable
from zkv.testing.localcluster import LocalCluster, wait_until

TOOL = Path(__file__).resolve().parents[2] / "tools" / "partition.py"


def partition(cluster: LocalCluster, *words: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(TOOL), "--config", str(cluster.config_path), *words]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def sees(cluster: LocalCluster, observer: str, name: str, status: str) -> bool:
    with Client([cluster.addresses[observer]], timeout=1.0) as c:
        return {n.name: n.status for n in c.nodes(cluster.addresses[observer])}[name] == status


def test_isolate_and_heal(cluster3: LocalCluster) -> None:
    out = partition(cluster3, "isolate", "n3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cut {n3} off from {n1,n2}"
    wait_until(lambda: sees(cluster3, "n1", "n3", "down"), 5, "n1 to lose n3")
    wait_until(lambda: sees(cluster3, "n3", "n1", "down"), 5, "n3 to lose n1")
    wait_until(lambda: sees(cluster3, "n3", "n2", "down"), 5, "n3 to lose n2")
    with Client([cluster3.addresses["n1"]], pinned=True) as n1:

        def majority_writes() -> bool:
            n1.put("k", "v", consistency="quorum")  # a Timeout under a loaded machine is retried
            return True

        wait_until(majority_writes, 10, "a quorum write on the majority side")
    with Client([cluster3.addresses["n3"]], pinned=True) as n3, pytest.raises(Unavailable):
        n3.put("k", "w", consistency="quorum")
    shown = partition(cluster3, "show").stdout
    assert "n3: drops what arrives from n1, n2" in shown
    assert partition(cluster3, "heal").returncode == 0
    wait_until(lambda: sees(cluster3, "n1", "n3", "up") and sees(cluster3, "n3", "n1", "up"), 5, "heal")
    assert partition(cluster3, "show").stdout.count("receives from everyone") == 3


def test_bad_commands_change_nothing(cluster3: LocalCluster) -> None:
    for words in (["isolate", "n9"], ["split", "n1", "n2"], ["drop", "n1", "n2", "x%"], ["frobnicate"]):
        out = partition(cluster3, *words)
        assert out.returncode == 2, words
        assert out.stderr.startswith("partition.py: ")
    assert partition(cluster3, "show").stdout.count("receives from everyone") == 3


def test_oneway_drop_pause_resume_and_a_scenario(cluster3: LocalCluster, tmp_path: Path) -> None:
    assert partition(cluster3, "oneway", "n1", "n2").stdout.strip() == "dropping everything n1 sends to n2"
    assert "n2: drops what arrives from n1" in partition(cluster3, "show").stdout
    assert partition(cluster3, "drop", "n3", "n2", "20%").returncode == 0
    assert "n3 20%" in partition(cluster3, "show").stdout
    out = partition(cluster3, "pause", "n2")
    assert out.returncode == 0 and f"pid {cluster3.pid('n2')}" in out.stdout
    wait_until(lambda: sees(cluster3, "n1", "n2", "down"), 5, "n1 to suspect the paused n2")
    assert partition(cluster3, "resume", "n2").returncode == 0  # n2 cannot answer: the pid is remembered
    wait_until(lambda: sees(cluster3, "n1", "n2", "up"), 5, "n2 back")
    scenario = tmp_path / "scenario.toml"
    scenario.write_text('[[step]]\nat = 0\ndo = "isolate n1"\n\n[[step]]\nat = 0.5\ndo = "heal"\n')
    out = partition(cluster3, "run", str(scenario))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "[  0.00s] cut {n1} off from {n2,n3}",
        "[  0.50s] healed: every link carries everything again",
    ]


def test_delay_slows_one_direction(cluster3: LocalCluster) -> None:
    import time

    out = partition(cluster3, "delay", "n2", "n1", "300ms")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "delaying what n2 sends to n1 by 300 ms"
    assert "n1: delays what arrives from n2 by 300 ms" in partition(cluster3, "show").stdout
    with Client([cluster3.addresses["n1"]], pinned=True) as n1:
        key = next(f"k{i}" for i in range(100) if n1.ring().preference_list(f"k{i}")[0] == "n1")
        started = time.monotonic()
        n1.put(key, "v", consistency="all")  # n2's acknowledgement reaches n1 300 ms late
        assert time.monotonic() - started >= 0.3
    assert partition(cluster3, "heal").returncode == 0
    assert partition(cluster3, "show").stdout.count("receives from everyone") == 3
