"""Per-interval latency quantiles from two polls of cumulative histograms (as histogram_quantile does)."""

from __future__ import annotations

import pytest

from zkv.core.stats import LATENCY_BUCKETS, Histogram
from zkv.http import quantiles
from zkv.http.feed import HintAges, Poll, node_rates, snapshot


def wire(samples: list[float]) -> dict:
    h = Histogram(LATENCY_BUCKETS)
    for s in samples:
        h.observe(s)
    return h.to_wire()


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    h = ((0.001, 0.002, 0.004), [0, 10, 0, 0])  # ten requests between 1 and 2 ms
    assert quantiles.quantile(h, 0.5) == pytest.approx(0.0015)
    assert quantiles.quantile(h, 0.99) == pytest.approx(0.001 + 0.001 * 0.99)
    assert quantiles.quantile(((0.001,), [0, 0]), 0.5) is None  # no request: no quantile
    assert quantiles.quantile(((0.001,), [0, 3]), 0.99) == 0.001  # all past the last bound: it is the answer


def test_the_delta_holds_only_the_requests_between_two_polls() -> None:
    before = {"get": wire([0.010] * 100)}  # a slow past
    after = {"get": wire([0.010] * 100 + [0.0012] * 50), "put": wire([0.0022] * 50), "status": wire([1.0])}
    interval = quantiles.delta(after, before, ("get", "put", "delete"))
    assert interval is not None and sum(interval[1]) == 100  # 50 gets and 50 puts; status is not data
    p50 = quantiles.quantile(interval, 0.5)
    assert p50 is not None and 0.001 <= p50 <= 0.0015  # the gets' bucket; the past's 10 ms do not count
    assert quantiles.delta(after, None, ("get",)) == quantiles.delta(after, {}, ("get",))  # since start


def test_a_counter_that_went_down_means_a_restart() -> None:
    before = {"get": wire([0.001] * 1000)}
    after = {"get": wire([0.004] * 10)}
    interval = quantiles.delta(after, before, ("get",))
    assert interval is not None and sum(interval[1]) == 10


def test_finer_buckets_put_the_quantile_within_a_few_percent() -> None:
    samples = [0.0008 + 0.0004 * (i / 999) for i in range(1000)]  # uniform over 0.8-1.2 ms
    got = quantiles.quantile(quantiles.delta({"get": wire(samples)}, None, ("get",)), 0.5)
    assert got == pytest.approx(0.001, rel=0.05)


def status(uptime: float, gets: int, samples: list[float]) -> dict:
    return {"uptime_s": uptime, "requests": {"get/quorum": gets}, "errors": {}, "latency": {}, "keys": 1,
            "histograms": {"latency": {"get": wire(samples)}}}  # fmt: skip


def test_the_feed_gives_per_second_quantiles_per_node_and_pooled_over_the_cluster() -> None:
    slow, fast = [0.020] * 100, [0.001] * 100
    prev = {"n1": status(10, 100, slow), "n2": status(10, 100, fast)}
    cur = {"n1": status(11, 200, slow + [0.0011] * 100), "n2": status(11, 200, fast + [0.0031] * 100)}
    r = node_rates(cur["n1"], prev["n1"], 1.0)
    assert r["p50_ms"] is not None and 1.0 <= r["p50_ms"] <= 1.5  # this second's, not the slow past's
    nodes = [{"name": "n1", "status": "up"}, {"name": "n2", "status": "up"}]
    snap = snapshot(Poll(11.0, 1011.0, "n1", nodes, cur), Poll(10.0, 1010.0, "n1", nodes, prev), HintAges())
    pooled = snap["cluster"]
    assert sum(pooled["latency_buckets"]["counts"]) == 200
    assert 1.0 <= pooled["p50_ms"] <= 3.1 and 3.0 <= pooled["p99_ms"] <= 4.0
    idle = node_rates(prev["n1"], prev["n1"], 1.0)
    assert idle["p50_ms"] is None and idle["p99_ms"] is None  # no request this second: no point
