"""Smoke test of tools/scale.py: a real 10-node cluster measured end to end, its JSON row checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from zkv.core.monitoring import monitored_peers

SCALE = Path(__file__).resolve().parents[2] / "tools" / "scale.py"


def test_scale_smoke_at_10_nodes(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--nodes", "10", "--idle", "3", "--settle", "1", "--ops", "50", "--timeout", "120"]
    proc = subprocess.run(
        [sys.executable, str(SCALE), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"scale.py failed:\n{proc.stdout}\n{proc.stderr}"
    [row] = json.loads(out.read_text())
    assert row["nodes"] == 10
    assert 0 < row["converge_s"] < 60
    assert 0 < row["idle_cpu_total_pct"] < 200  # 10 idle nodes: a few percent on a quiet machine
    # past nine members a node hears only the peers it monitors (3 of 9 at 10 nodes), twice a second;
    # heartbeats are O(1): well under 300 bytes each
    monitors = len(monitored_peers([f"n{i}" for i in range(1, 11)], "n1"))
    assert monitors == 3
    assert monitors <= row["gossip_received_per_s"] <= 4 * monitors
    assert row["gossip_received_bytes_per_s"] < 300 * row["gossip_received_per_s"]
    assert row["rss_mib_per_node"] > 1
    assert 0 < row["kill_seen_down_s"] < 30 and 0 < row["restart_seen_up_s"] < 60
    assert row["quorum_puts_per_s"] > 0 and row["quorum_gets_per_s"] > 0
    assert row["through_each_node_failed"] == []
    assert "| 10 |" in proc.stdout  # the Markdown table
