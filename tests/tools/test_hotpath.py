"""tools/hotpath.py: the in-process hot path answers every request it issues, for each op and engine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HOTPATH = Path(__file__).resolve().parents[2] / "tools" / "hotpath.py"


@pytest.mark.parametrize(
    ("op", "level", "engine"),
    [("put", "quorum", "memory"), ("get", "quorum", "log"), ("put", "one", "log"), ("get", "all", "memory")],
)
def test_hotpath_answers_every_request(op: str, level: str, engine: str) -> None:
    args = ["--op", op, "--consistency", level, "--engine", engine, "--requests", "500", "--keys", "200"]
    proc = subprocess.run([sys.executable, str(HOTPATH), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"([\d.]+) us of CPU per request .* (\d+) answered, (\d+) errors", proc.stdout)
    assert found, proc.stdout
    assert float(found[1]) > 0 and int(found[2]) == 500 and int(found[3]) == 0
