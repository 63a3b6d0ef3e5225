"""What a bench run records beside its table: each row's share of the echo ceiling, and the JSON file
(``--json``) that says which code ran where, so two runs can be compared later."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any


def attach_ceiling(row: dict[str, Any], ceiling: dict[str, Any]) -> None:
    """Add the row's fractions of the echo ceiling: requests/s, and the p50 ratio."""
    total, echo = row["total"], ceiling["total"]
    row["ceiling"] = {
        "ops_per_s": echo["ops_per_s"],
        "p50_ms": echo["p50_ms"],
        "ops_ratio": round(total["ops_per_s"] / echo["ops_per_s"], 4) if echo["ops_per_s"] else None,
        "p50_ratio": round(total["p50_ms"] / echo["p50_ms"], 4) if echo["p50_ms"] and total["ok"] else None,
    }


def bench_json(bench: Any, targets: list[dict[str, Any]], argv: list[str]) -> dict[str, Any]:
    """The run as ``--json`` writes it: command, machine, which zkv ran, settings, every row, targets."""
    a = bench.args
    return {
        "tool": "zkv tools/bench.py",
        "format": 1,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": ["tools/bench.py", *argv],
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "zkv": zkv_source(),
        "cluster": bench.cluster_info,
        "settings": {
            "op": a.op,
            "read_ratio": a.read_ratio,
            "consistency": a.consistency,
            "value_size": a.value_size,
            "keys": a.keys,
            "distribution": a.distribution,
            "concurrency": a.concurrency,
            "duration": None if a.ops is not None else a.duration,
            "ops": a.ops,
            "warmup": a.warmup,
            "processes": a.processes,
            "matrix": a.matrix,
            "timeout": a.timeout,
            "seed": a.seed,
        },
        "ceilings": {str(c): row for c, row in bench.ceilings.items()},
        "ceiling_runs": {str(c): rows for c, rows in bench.ceiling_runs.items()},
        "results": [r for r in bench.rows if r["op"] != "echo"],
        "targets": targets,
        "notes": bench.notes,
    }


def zkv_source() -> dict[str, Any]:
    """Which zkv code ran: its folder and, when that is a git checkout, the commit and whether it is dirty."""
    import subprocess

    import zkv

    folder = Path(zkv.__file__).resolve().parent
    out: dict[str, Any] = {"path": str(folder)}

    def git(*words: str) -> str | None:
        try:
            cmd = ["git", "-C", str(folder), *words]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit:
        out.update(commit=commit, dirty=bool(git("status", "--porcelain", "--", ".")))
    return out
