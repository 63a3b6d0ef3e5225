"""Smoke test of tools/bench.py: a short real run (3 nodes, echo ceiling, 300 puts) and its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tools" / "bench.py"

sys.path.insert(0, str(ROOT / "tools"))

from benchlib.stats import percentile  # noqa: E402
from benchlib.workload import Frames, split  # noqa: E402


def test_bench_smoke_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--ops", "300", "--concurrency", "8", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(out.read_text())
    assert report["cluster"]["nodes"] == 3
    assert report["cluster"]["engine"]
    ceiling = report["ceilings"]["8"]
    assert ceiling["op"] == "echo"
    assert ceiling["total"]["ops_per_s"] > 0
    assert ceiling["total"]["p50_ms"] > 0
    [row] = report["results"]
    assert row["op"] == "put" and row["consistency"] == "quorum" and row["concurrency"] == 8
    assert row["total"]["ok"] == 300
    assert row["total"]["ops_per_s"] > 0
    assert row["errors"] == {}
    for field in ("p50_ms", "p99_ms", "p999_ms"):
        assert row["total"][field] > 0
    assert row["total"]["p50_ms"] <= row["total"]["p99_ms"] <= row["total"]["p999_ms"]
    assert row["ceiling"]["ops_ratio"] > 0
    assert row["cpu"]["clients_s"] >= 0 and row["cpu"]["server_s"] is not None
    assert set(row["cpu"]["per_node_pct"]) == {"n1", "n2", "n3"}
    # the table went to stdout (plain, as it is not a terminal), one line per row
    assert "echo" in proc.stdout and "quorum" in proc.stdout


def test_prepacked_frames_equal_msgpack_of_the_request() -> None:
    frames = Frames("quorum", b"v" * 100)
    key = b"bench:x:00000042"
    put = msgpack.unpackb(frames.frame(0, msgpack.packb(key), 7))
    get = msgpack.unpackb(frames.frame(1, msgpack.packb(key), 2**40))
    assert put == {"op": "put", "cl": "quorum", "value": b"v" * 100, "key": key, "id": 7}
    assert get == {"op": "get", "cl": "quorum", "key": key, "id": 2**40}
    chained = msgpack.unpackb(frames.put_with_context(msgpack.packb(key), b"\x91\x92\xa2n1\x03", 9))
    assert chained == {
        "op": "put",
        "cl": "quorum",
        "value": b"v" * 100,
        "ctx": b"\x91\x92\xa2n1\x03",
        "key": key,
        "id": 9,
    }


def test_split_and_percentile() -> None:
    assert split(64, 2) == [32, 32]
    assert split(5, 3) == [2, 2, 1]
    from array import array

    samples = array("q", [i * 1_000_000 for i in range(1, 101)])  # 1..100 ms
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile(samples, 0.999) == 100.0
