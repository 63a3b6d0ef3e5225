"""Request statistics of one node: counts by op and consistency level, errors by code, latency percentiles.

Latencies live in a fixed-size window per op (the most recent samples), so memory is bounded and the
percentiles describe the node as it is now, not since boot. Pure: durations are computed by the caller.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass

WINDOW = 4096
#: upper bounds (seconds) of the request latency and flush histograms (Prometheus-style, plus +Inf);
#: dense where requests are (0.1-10 ms), so quantiles interpolated from them (the dashboard's per-second
#: p50/p99, Prometheus' histogram_quantile) are within a few percent
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
#: upper bounds of the siblings-per-read histogram (values a read returned)
SIBLING_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 100.0)


class Histogram:
    """Counts per bucket since start (not a window), their sum and count: what /metrics exports."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def to_wire(self) -> dict[str, object]:
        counts = list(self.counts)
        return {"bounds": list(self.bounds), "counts": counts, "sum": self.sum, "count": self.count}


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
        self.latency_histograms: dict[str, Histogram] = {}  # by op
        self.siblings = Histogram(SIBLING_BUCKETS)  # values per successful read
        self.flushes = Histogram(LATENCY_BUCKETS)  # group commits (write + fsync), timed by the runtime

    def record(self, op: str, consistency: str | None, seconds: float, error: str | None = None) -> None:
        label = self._labels.get((op, consistency))
        if label is None:
            label = self._labels[(op, consistency)] = f"{op}/{consistency}" if consistency else op
        self.requests[label] += 1
        if error:
            self.errors[error] += 1
        window = self._latency.get(op)
        if window is None:
            window = self._latency[op] = deque(maxlen=WINDOW)
            self.latency_histograms[op] = Histogram(LATENCY_BUCKETS)
        window.append(seconds)
        self.latency_histograms[op].observe(seconds)

    def histograms(self) -> dict[str, object]:
        return {
            "latency": {op: h.to_wire() for op, h in self.latency_histograms.items()},
            "siblings": self.siblings.to_wire(),
            "flush": self.flushes.to_wire(),
        }

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
