"""Request statistics of one node: counts by op and level, errors by code, latency percentiles.

Latencies live in a fixed-size window per op (the most recent samples), so memory is bounded and the
percentiles describe the node as it is now, not since boot. Pure: durations are computed by the caller.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

WINDOW = 4096


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_samples: list[float], q: float) -> float:
    if not sorted_samples:
        return 0.0
    index = min(len(sorted_samples) - 1, max(0, round(q * (len(sorted_samples) - 1))))
    return sorted_samples[index]


class RequestStats:
    """Counters the coordinator updates as requests finish."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # "put/quorum", "get/one", "nodes", ...
        self.errors: Counter[str] = Counter()  # by wire code
        self.forwarded = 0
        self.read_repairs = 0
        self.hints_received = 0
        self.keys_streamed_in = 0
        self.bad_messages = 0
        self._latency: dict[str, deque[float]] = {}
        self._labels: dict[tuple[str, str | None], str] = {}

    def record(self, op: str, level: str | None, seconds: float, error: str | None = None) -> None:
        label = self._labels.get((op, level))
        if label is None:
            label = self._labels[(op, level)] = f"{op}/{level}" if level else op
        self.requests[label] += 1
        if error:
            self.errors[error] += 1
        window = self._latency.get(op)
        if window is None:
            window = self._latency[op] = deque(maxlen=WINDOW)
        window.append(seconds)

    def latency(self) -> dict[str, LatencySummary]:
        out = {}
        for op, window in self._latency.items():
            samples = sorted(window)
            out[op] = LatencySummary(
                count=len(samples),
                p50_ms=percentile(samples, 0.50) * 1000,
                p99_ms=percentile(samples, 0.99) * 1000,
                max_ms=samples[-1] * 1000 if samples else 0.0,
            )
        return out
