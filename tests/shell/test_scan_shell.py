"""The shell's scan: pages in the REPL (scan --next), -o json with the cursor across zkv-shell runs,
values, bad limits and cursors as one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from shell_driver import SHELL, drive
from zkv_shell.session import Session

from zkv.testing.localcluster import LocalCluster


def test_scan_pages_through_the_keys_in_the_repl(shell: Session, cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        assert client.put_many([(f"user:{i:02d}", f"v{i}") for i in range(12)]) == [None] * 12
        client.put("other", "x")
        client.delete("user:05")
    run = drive(shell, "scan user: 5\nscan --next\nscan --next\nscan --next\nscan us 2 --values\n")
    lines = run.lines
    shown = [line for line in lines if line.startswith("user:")]
    expected = [f"user:{i:02d}" for i in range(12) if i != 5]
    assert [line.split()[0] for line in shown[:11]] == expected  # deleted user:05 hidden
    assert lines[5].startswith("5 keys · quorum; more: scan --next (or --cursor ")
    assert "1 key · quorum (end)" in lines, "\n".join(lines)  # pages are topped up past the tombstone
    assert "scan --next" in run.output and "no_scan: there is no scan to continue" in run.output
    assert shown[11:] == ["user:00  v0", "user:01  v1"]


def test_scan_json_carries_a_cursor_another_run_continues(cluster3: LocalCluster, tmp_path: Path) -> None:
    with cluster3.client() as client:
        assert client.put_many([(f"k{i}", "v") for i in range(7)]) == [None] * 7
    env = {k: v for k, v in os.environ.items() if k != "ZKV_CONFIG"}
    env["ZKV_HISTORY"] = str(tmp_path / "history")

    def shell(*commands: str) -> list[dict]:
        args = [str(SHELL), "--config", str(cluster3.config_path), "-o", "json"]
        for command in commands:
            args += ["-c", command]
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, input="")
        return [json.loads(line) for line in out.stdout.splitlines()]

    (first,) = shell("scan k 4 all")
    assert first["keys"] == ["k0", "k1", "k2", "k3"] and first["consistency"] == "all" and first["cursor"]
    (rest,) = shell(f"scan k 4 --cursor {first['cursor']}")
    assert rest["keys"] == ["k4", "k5", "k6"] and rest["cursor"] is None
    bad_limit, bad_cursor, bad_consistency = shell("scan k 0", "scan k 3 --cursor nope!", "scan k 3 most")
    assert (bad_limit["error"], bad_cursor["error"], bad_consistency["error"]) == (
        "bad_limit",
        "bad_cursor",
        "bad_consistency",
    )
    assert "1 to 10000" in bad_limit["message"]
