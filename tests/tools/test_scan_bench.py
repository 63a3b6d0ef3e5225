"""Smoke test of tools/scan_bench.py: a short real run (3 nodes, 300 keys, pages of 50) and its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "scan_bench.py"


def test_scan_bench_sees_every_key_and_reports_memory(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    args = ["--keys", "300", "--page", "50", "--engine", "memory", "--json", str(out)]
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert [row["keys"] for row in report["scans"]] == [300, 300]
    assert all(row["pages"] >= 6 and row["keys_per_s"] > 0 for row in report["scans"])
    assert set(report["memory_kib"]) == {"n1", "n2", "n3"}
    assert "keys only" in proc.stdout and "peak RSS" in proc.stdout
