"""The dashboard in a real browser against a real 3-node cluster with a real gateway per node.

The tests of this module share one cluster and run in order; each leaves it with every node up. They
also write the screenshots of docs/dashboard.md (docs/dashboard-img/), taken when the view shows what it
is there for: a node down, hints waiting, siblings, a load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from dashboard_browser import Page
from dashboard_cluster import gateway_cluster
from dashboard_metrics import data_latency_buckets, data_requests, histogram_quantile

from zkv.testing.localcluster import LocalCluster, wait_until

DOWN_WITHIN_S = 10.0
SIBLINGS_KEY = "cart:alice"
POINTS_BETWEEN = (
    "([a, b]) => window.zkvDashboard.history.filter((h) => h.t > a && h.t <= b).map((h) => h.cluster.ops)"
)
LATENCY_BETWEEN = (
    "([a, b]) => window.zkvDashboard.history.filter((h) => h.t > a && h.t <= b).map((h) => ({"
    "p50: h.cluster.p50_ms, p99: h.cluster.p99_ms, bounds: h.cluster.latency_buckets.bounds, "
    "counts: h.cluster.latency_buckets.counts}))"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with gateway_cluster(tmp_path_factory, "dashboard") as cluster:
        yield cluster


def open_view(page: Page, cluster: LocalCluster, view: str) -> None:
    page.goto(f"{cluster.url('n1')}/#{view}")
    page.wait_for_selector("#live[data-state=live]", timeout=10_000)
    page.wait_for_selector(f"#view-{view}[data-ready=true]", timeout=10_000)


def next_tick(page: Page) -> float:
    """Wait for the feed's next point and return its time (the wall time the gateway polled the nodes)."""
    last = page.evaluate("window.zkvDashboard.latest.t")
    page.wait_for_function(f"window.zkvDashboard.latest.t > {last}", timeout=10_000)
    return float(page.evaluate("window.zkvDashboard.latest.t"))


def rows_with(page: Page, status: str) -> int:
    return page.evaluate(
        f"document.querySelectorAll('#node-rows tr[data-node][data-status={status}]').length"
    )


class Load:
    """Puts and gets (quorum, and one) from a thread until stopped (bounded: at most ``limit_s``)."""

    def __init__(self, cluster: LocalCluster, limit_s: float = 60.0, pause_s: float = 0.002) -> None:
        self.cluster, self.limit_s, self.pause_s = cluster, limit_s, pause_s
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.going, self.idle = threading.Event(), threading.Event()
        self.going.set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def pause(self) -> None:
        """Stop sending and wait until the requests in flight are answered."""
        self.idle.clear()
        self.going.clear()
        wait_until(self.idle.is_set, 10, "the load to pause")

    def resume(self) -> None:
        self.going.set()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        with self.cluster.client(timeout=2.0) as client:
            i = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                if not self.going.is_set():
                    self.idle.set()  # every request sent so far has been answered
                    self.going.wait(0.1)
                    continue
                try:
                    client.put(f"load:{i % 500}", f"value {i}", consistency="quorum")
                    client.get(f"load:{(i * 7) % 500}", consistency="quorum")
                    client.get(f"load:{(i * 3) % 500}", consistency="one")
                except Exception as exc:  # noqa: BLE001 - counted, and the load goes on (a node may be down)
                    self.errors.append(repr(exc))
                i += 1
                time.sleep(self.pause_s)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_every_node_shows_up(page: Page, cluster: LocalCluster) -> None:
    open_view(page, cluster, "cluster")
    wait_until(lambda: rows_with(page, "up") == 3, 10, "3 rows up")
    assert page.locator("#node-rows tr[data-node]").count() == 3
    assert page.inner_text("#node-footer").startswith("3 up, 0 down")
    assert page.inner_text("#summary") == "3 up, 0 down"


def test_a_killed_node_goes_down_and_comes_back_without_a_reload(page: Page, cluster: LocalCluster) -> None:
    open_view(page, cluster, "cluster")
    wait_until(lambda: rows_with(page, "up") == 3, 10, "3 rows up")
    page.evaluate("window.__sameDocument = true")
    cluster.kill("n3")
    killed = time.monotonic()
    page.wait_for_selector('#node-rows tr[data-node="n3"][data-status="down"]', timeout=DOWN_WITHIN_S * 1000)
    took = time.monotonic() - killed
    assert took < DOWN_WITHIN_S
    assert page.inner_text("#node-footer").startswith("2 up, 1 down")
    with Load(cluster, limit_s=30) as load:
        # writes while n3 is down: their coordinators keep hints for it, which the healing view lists
        wait_until(
            lambda: len(load.errors) == 0 and page.evaluate("window.zkvDashboard.latest.cluster.ops") > 0,
            10,
            "the load to show in the feed",
        )
        page.screenshot_view("cluster")
        page.goto(f"{cluster.url('n1')}/#healing")
        page.wait_for_selector('#hint-rows tr[data-target="n3"]', timeout=10_000)
        page.wait_for_function(
            "window.zkvDashboard.latest.healing.hints.every((h) => h.exact && h.age_s >= 3)", timeout=10_000
        )
        page.screenshot_view("healing")
        page.goto(f"{cluster.url('n1')}/#views")
        page.wait_for_selector("#view-views[data-ready=true]", timeout=10_000)
        page.screenshot_view("views")
        page.goto(f"{cluster.url('n1')}/#cluster")
        page.evaluate("window.__sameDocument = true")
    assert not load.errors, load.errors[:3]  # quorum holds with one node of three down
    cluster.restart("n3")
    page.wait_for_selector('#node-rows tr[data-node="n3"][data-status="up"]', timeout=DOWN_WITHIN_S * 1000)
    assert page.evaluate("window.__sameDocument") is True  # the same document all along: no reload
    # n3 is back: the hints kept for it are delivered and leave the healing view
    page.goto(f"{cluster.url('n1')}/#healing")
    page.wait_for_selector("#view-healing[data-ready=true]")
    wait_until(
        lambda: page.locator('#hint-rows tr[data-target="n3"]').count() == 0, 20, "hints delivered to n3"
    )
    delivered = page.evaluate(
        "window.zkvDashboard.latest.healing.repairs.reduce((sum, r) => sum + r.hints_delivered, 0)"
    )
    assert delivered > 0


def make_siblings(cluster: LocalCluster, key: str) -> None:
    with cluster.client() as client:
        client.put(key, "base")
        seen = client.get(key)
        client.put(key, "two books", context=seen)  # both writes carry the same context:
        client.put(key, "one lamp", context=seen)  # neither saw the other, so both survive
        assert sorted(client.get(key).values) == [b"one lamp", b"two books"]


def test_the_inspector_shows_every_replica_and_both_siblings(page: Page, cluster: LocalCluster) -> None:
    make_siblings(cluster, SIBLINGS_KEY)
    open_view(page, cluster, "inspector")
    page.fill("#key-input", SIBLINGS_KEY)
    page.press("#key-input", "Enter")
    page.wait_for_selector("[data-replica]")
    replicas = page.locator("[data-replica]")
    assert replicas.count() == 3
    assert sorted(replicas.nth(i).get_attribute("data-replica") for i in range(3)) == ["n1", "n2", "n3"]
    siblings = page.locator(".sibling[data-sibling]")
    assert siblings.count() == 2
    assert sorted(siblings.nth(i).locator(".value").inner_text() for i in range(2)) == [
        "one lamp",
        "two books",
    ]
    for i in range(3):  # every replica holds both siblings and has seen (superseded) the base value
        assert replicas.nth(i).locator(".version.held").count() == 2
    assert page.locator("svg.lanes circle").count() >= 3  # the base write and the two siblings' dots
    assert "had not seen" in page.inner_text("#key-result")
    page.screenshot_view("inspector")
    # the same key on the ring: its three primaries are marked
    page.click("#key-on-ring")
    page.wait_for_selector("#ring-overlay circle[data-placement]")
    assert page.locator("#ring-overlay circle[data-role=primary]").count() == 3
    assert page.locator("#ring-legend tr[data-node]").count() == 3
    page.screenshot_view("ring")


def test_the_inspector_shows_a_replica_that_missed_a_write(page: Page, cluster: LocalCluster) -> None:
    key = "diverge:1"
    with cluster.client("n1", pinned=True) as client:
        client.faults("n3", drop_in={"n1": 1.0, "n2": 1.0})  # n3 hears nothing from its peers
        try:
            client.put(key, "only on two", consistency="quorum")  # n1 coordinates: n1 and n2 take it
            open_view(page, cluster, "inspector")
            page.fill("#key-input", key)
            page.press("#key-input", "Enter")
            page.wait_for_selector("[data-replica]")
            assert page.get_attribute("#key-result .banner", "data-diverged") == "true"
            assert page.locator('[data-replica="n3"] .version.missing').count() == 1
            assert page.locator('[data-replica="n3"].diverges').count() == 1
            for name in ("n1", "n2"):
                assert page.locator(f'[data-replica="{name}"] .version.held').count() == 1
        finally:
            client.faults("n3", drop_in={})

    def repaired() -> bool:  # anti-entropy brings n3 the write; inspecting again shows it
        page.press("#key-input", "Enter")  # the answer replaces the cards when it arrives
        return page.locator('[data-replica="n3"] .version.held').count() == 1

    wait_until(repaired, 20, "anti-entropy to repair n3", interval=0.5)
    assert page.get_attribute("#key-result .banner", "data-diverged") == "false"


def test_the_rates_chart_moves_under_load_and_agrees_with_metrics(page: Page, cluster: LocalCluster) -> None:
    open_view(page, cluster, "rates")
    with Load(cluster, limit_s=60) as load:
        wait_until(lambda: float(page.get_attribute("#rates", "data-ops") or 0) > 0, 10, "the chart to move")
        page.wait_for_function("window.zkvDashboard.history.filter((h) => h.cluster.ops > 0).length >= 3")
        # the same window on both sides: a point at wall time t is the rate over the second before t (the
        # gateway's clock is this machine's), so the points after t0 + 1 up to t1 cover (t0, t1]
        before, t0 = data_requests(cluster), time.time()
        wait_until(lambda: time.time() - t0 > 8, 10, "eight seconds of load")
        after, t1 = data_requests(cluster), time.time()
        page.wait_for_function(f"window.zkvDashboard.latest.t > {t1 + 1}", timeout=10_000)
        points = page.evaluate(POINTS_BETWEEN, [t0 + 1, t1 + 0.5])
        page.screenshot_view("rates")
        # latency: the chart draws each second's p50/p99 from the difference of two polls' histograms. To
        # compare it with /metrics over exactly the same requests, the window's edges are quiet: the load
        # pauses, the feed polls once after the pause (the second tick after it: polls do not overlap),
        # /metrics is scraped, the load resumes; and the same at the end
        l0, t_start = quiet_scrape(page, cluster, load)
        wait_until(lambda: time.time() - t_start > 8, 10, "eight seconds of load")
        l1, t_end = quiet_scrape(page, cluster, load)
        latency = page.evaluate(LATENCY_BETWEEN, [t_start, t_end])
    measured = (after - before) / (t1 - t0)
    shown = sum(points) / len(points)
    print(f"\nrates: chart {shown:.1f} ops/s over {len(points)} points, /metrics {measured:.1f} ops/s")
    assert measured > 10, f"the load is too light to compare ({measured:.1f} ops/s)"
    assert abs(shown - measured) <= 0.10 * measured, f"chart {shown:.1f} ops/s, /metrics {measured:.1f} ops/s"
    assert page.locator("#legend-requests [data-series='put/quorum']").count() == 1
    assert page.locator("#chart-requests polyline").count() >= 2
    busy = [p for p in latency if p["counts"] is not None and sum(p["counts"])]
    assert len(busy) >= 5, latency  # the seconds with requests each got a p50 and a p99 point
    assert all(p["p50"] is not None and p["p99"] is not None for p in busy)
    pooled = [sum(c) for c in zip(*(p["counts"] for p in busy), strict=True)]
    chart_buckets = {b: float(sum(pooled[: i + 1])) for i, b in enumerate([*busy[0]["bounds"], float("inf")])}
    counted, scraped = sum(pooled), l1[float("inf")] - l0[float("inf")]
    print(f"latency window: {counted} requests in the chart's histograms, {scraped:.0f} in /metrics")
    assert abs(counted - scraped) <= 0.10 * scraped
    for q in (0.5, 0.99):
        chart = histogram_quantile(q, {}, chart_buckets) * 1000
        metric = histogram_quantile(q, l0, l1) * 1000
        print(f"latency p{q * 100:g}: chart {chart:.3f} ms, /metrics {metric:.3f} ms")
        assert abs(chart - metric) <= 0.10 * metric, (
            f"p{q * 100:g}: chart {chart:.3f} ms, /metrics {metric:.3f} ms"
        )
    # each second's p50 is its own: they spread around the window's, which lies within their range
    p50s = sorted(p["p50"] for p in busy)
    window_p50 = histogram_quantile(0.5, l0, l1) * 1000
    print(f"latency: per-second p50s {[round(v, 3) for v in p50s]} ms")
    assert p50s[0] <= window_p50 * 1.10 and p50s[-1] >= window_p50 * 0.90
    assert page.locator("#chart-latency polyline[data-series=p50]").count() == 1


def quiet_scrape(page: Page, cluster: LocalCluster, load: Load) -> tuple[dict[float, float], float]:
    """Pause the load, let the feed poll once after the pause, scrape the latency buckets, resume:
    returns the buckets and the time of that poll's point."""
    load.pause()
    paused = time.time()
    page.wait_for_function(f"window.zkvDashboard.latest.t > {paused}", timeout=10_000)
    t = next_tick(page)  # this poll started after the one above ended, so after the pause
    buckets = data_latency_buckets(cluster)
    load.resume()
    return buckets, t


def test_no_view_logs_an_error(page: Page, cluster: LocalCluster) -> None:
    for view in ("cluster", "ring", "rates", "healing", "inspector", "views"):
        open_view(page, cluster, view)
        tick = page.evaluate("window.zkvDashboard.latest.t")
        page.wait_for_function(f"window.zkvDashboard.latest.t > {tick}", timeout=10_000)  # a tick drawn on it
    assert page.errors == []


def test_the_page_follows_the_cluster_when_the_gateways_own_node_dies(
    page: Page, cluster: LocalCluster
) -> None:
    open_view(page, cluster, "cluster")
    wait_until(lambda: rows_with(page, "up") == 3, 10, "3 rows up")
    assert page.inner_text("#seen-by") == "as n1 sees it"
    cluster.kill("n1")  # its gateway lives on and asks another node
    page.wait_for_selector('#node-rows tr[data-node="n1"][data-status="down"]', timeout=DOWN_WITHIN_S * 1000)
    assert page.inner_text("#seen-by") in ("as n2 sees it", "as n3 sees it")
    cluster.restart("n1")
    page.wait_for_selector('#node-rows tr[data-node="n1"][data-status="up"]', timeout=DOWN_WITHIN_S * 1000)
    wait_until(
        lambda: page.inner_text("#seen-by") == "as n1 sees it", 10, "the gateway's node to be asked again"
    )


def test_an_admin_decommissions_a_node_from_the_page(page: Page, cluster: LocalCluster) -> None:
    """Last in the module: n3 leaves the cluster for good. Without security the page is admin."""
    open_view(page, cluster, "cluster")
    wait_until(lambda: rows_with(page, "up") == 3, 10, "3 rows up")
    assert page.locator("#node-rows button.decommission").count() == 2  # not for the gateway's own node
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('#node-rows button.decommission[data-node="n3"]')
    page.wait_for_selector('#node-rows tr[data-node="n3"][data-status="removed"]', timeout=30_000)
    assert "n3 is leaving" in page.inner_text("#cluster-note")
    assert page.inner_text("#node-footer").startswith("2 up, 0 down, 1 removed")
