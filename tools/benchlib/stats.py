"""Turning client-process results into one row: throughput, exact percentiles, errors, CPU.

CPU comes from three places: each client process measures its own CPU time (``os.times``) around its load
loop; node and echo-server CPU is read from ``/proc/PID/stat`` (utime + stime) before and after the
run; the whole machine's busy time from ``/proc/stat``, so what neither we nor the nodes used (other work
on the machine: the numbers are noisy when it is large) shows up as ``other``.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchlib.workload import OPS

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process, or None when it cannot be read (gone, not local)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) * TICK_S  # fields 14 and 15 of proc(5)


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent not idle (summed over cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    values = [int(v) for v in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) * TICK_S  # guest time is already inside user


class CpuMeter:
    """CPU used by named processes and by the machine between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float | None] = {}
        self._machine: float | None = None
        self._t0 = 0.0

    def start(self, now: float) -> None:
        self._before = {name: proc_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_busy_seconds()
        self._t0 = now

    def stop(self, now: float) -> dict[str, Any]:
        wall = max(now - self._t0, 1e-9)
        per: dict[str, float] = {}
        for name, pid in self.pids.items():
            before, after = self._before.get(name), proc_cpu_seconds(pid)
            if before is not None and after is not None:
                per[name] = after - before
        machine_after = machine_busy_seconds()
        machine = None
        if machine_after is not None and self._machine is not None:
            machine = machine_after - self._machine
        return {
            "wall_s": wall,
            "per_process_s": per,
            "total_s": sum(per.values()) if per else None,
            "machine_s": machine,
        }


def percentile(sorted_ns: array, q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds."""
    if not sorted_ns:
        return 0.0
    rank = max(1, -(-int(q * len(sorted_ns) * 1000) // 1000))  # ceil(q * n), robust to float noise
    return sorted_ns[min(rank, len(sorted_ns)) - 1] / 1e6


@dataclass
class OpStats:
    ok: int = 0
    ops_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_ms": round(self.p50_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "p999_ms": round(self.p999_ms, 4),
            "mean_ms": round(self.mean_ms, 4),
            "max_ms": round(self.max_ms, 4),
            "errors": dict(self.errors),
        }


def combine(results: list[dict[str, Any]]) -> tuple[dict[str, OpStats], float, OpStats]:
    """Merge the client processes' results: per-op stats, the measured seconds, and all ops together."""
    measure_ns = min(r["measure_ns"] for r in results)
    last_ns = max(r["last_ns"] for r in results)
    elapsed = max((last_ns - measure_ns) / 1e9, 1e-9)
    per_op: dict[str, OpStats] = {}
    everything = array("q")
    all_errors: Counter[str] = Counter()
    for opc, name in enumerate(OPS):
        samples = array("q")
        errors: Counter[str] = Counter()
        for r in results:
            chunk = array("q")
            chunk.frombytes(r["samples"][opc])
            samples.extend(chunk)
            errors.update(r["errors"][opc])
        if not samples and not errors:
            continue
        per_op[name] = _summary(samples, errors, elapsed)
        everything.extend(samples)
        all_errors.update(errors)
    return per_op, elapsed, _summary(everything, all_errors, elapsed)


def _summary(samples: array, errors: Counter, elapsed: float) -> OpStats:
    ordered = array("q", sorted(samples))
    n = len(ordered)
    return OpStats(
        ok=n,
        ops_per_s=n / elapsed,
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        p999_ms=percentile(ordered, 0.999),
        mean_ms=(sum(ordered) / n / 1e6) if n else 0.0,
        max_ms=(ordered[-1] / 1e6) if n else 0.0,
        errors=dict(errors),
    )
