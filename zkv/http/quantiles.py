"""Latency quantiles of the last second, from two polls of the nodes' cumulative latency histograms.

Every node counts its requests' latencies in fixed buckets since it started (``status`` →
``histograms.latency``, exported as ``zkv_request_duration_seconds`` in /metrics). The difference of two
polls is the histogram of the requests in between; its quantiles are computed as Prometheus'
``histogram_quantile`` does (linear within the bucket the rank falls in), so the dashboard's per-second
p50/p99 are what a Prometheus user gets from ``histogram_quantile(0.99, rate(..._bucket[1s]))``.

Pure: plain dicts in, numbers out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Buckets = tuple[tuple[float, ...], list[int]]  # upper bounds (the +Inf bucket is implied), counts per bucket


def _buckets(h: Any) -> Buckets | None:
    if not isinstance(h, Mapping):
        return None
    bounds, counts = h.get("bounds"), h.get("counts")
    if not isinstance(bounds, list) or not isinstance(counts, list) or len(counts) != len(bounds) + 1:
        return None
    return tuple(float(b) for b in bounds), [int(c) for c in counts]


def delta(cur: Mapping[str, Any], prev: Mapping[str, Any] | None, ops: Iterable[str]) -> Buckets | None:
    """The histogram of ``ops``' requests between two polls' ``histograms.latency`` (``prev`` None: since
    the node started, as after a restart). None when there is no histogram to take it from."""
    out: Buckets | None = None
    for op in ops:
        now = _buckets(cur.get(op))
        if now is None:
            continue
        before = _buckets((prev or {}).get(op))
        counts = now[1]
        if before is not None and before[0] == now[0]:
            moved = [c - b for c, b in zip(counts, before[1], strict=True)]
            if min(moved) >= 0:  # else the node restarted in between: all it counted is since then
                counts = moved
        out = add(out, (now[0], counts))
    return out


def add(a: Buckets | None, b: Buckets | None) -> Buckets | None:
    """Sum two histograms with the same bounds (a node of another version with others is left out)."""
    if a is None:
        return b
    if b is None or a[0] != b[0]:
        return a
    return a[0], [x + y for x, y in zip(a[1], b[1], strict=True)]


def quantile(h: Buckets | None, q: float) -> float | None:
    """The ``q`` quantile in seconds, interpolated as Prometheus does; None when the histogram is empty.
    A rank in the +Inf bucket answers the highest finite bound (nothing better is known)."""
    if h is None:
        return None
    bounds, counts = h
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i == len(bounds):
                return bounds[-1] if bounds else None
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1] if bounds else None


def to_wire(h: Buckets | None) -> dict[str, Sequence[float]] | None:
    return None if h is None else {"bounds": list(h[0]), "counts": list(h[1])}
