"""The dashboard's admin actions in a real browser against a real cluster: repair now, fault injection
(isolate a node, heal it) and drain-and-restart, each from its button in the cluster view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_browser import Page
from dashboard_cluster import gateway_cluster

from zkv.testing.localcluster import LocalCluster, wait_until

WITHIN_S = 10.0  # failure detection and recovery as the other dashboard tests allow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with gateway_cluster(tmp_path_factory, "dashboard-actions") as cluster:
        yield cluster


def open_cluster(page: Page, cluster: LocalCluster) -> None:
    page.goto(f"{cluster.url('n1')}/#cluster")
    page.wait_for_selector("#live[data-state=live]", timeout=10_000)
    wait_until(
        lambda: page.locator("#node-rows tr[data-node][data-status=up]").count() == 3, WITHIN_S, "3 rows up"
    )


def row(node: str, status: str) -> str:
    return f'#node-rows tr[data-node="{node}"][data-status="{status}"]'


def test_every_up_node_offers_the_admin_actions(page: Page, cluster: LocalCluster) -> None:
    open_cluster(page, cluster)
    for action in ("repair", "isolate", "restart"):
        assert page.locator(f"#node-rows button.action.{action}").count() == 3, action
    assert page.locator("#node-rows button.action.heal").count() == 0  # nothing to heal


def test_isolating_a_node_makes_it_down_and_healing_brings_it_back(page: Page, cluster: LocalCluster) -> None:
    open_cluster(page, cluster)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('#node-rows button.isolate[data-node="n3"]')
    page.wait_for_selector("#cluster-note[data-action=isolate]", timeout=10_000)
    assert "n3 is cut off from n1, n2" in page.inner_text("#cluster-note")
    page.wait_for_selector(row("n3", "down"), timeout=WITHIN_S * 1000)  # its heartbeats are dropped
    # the page tells an isolated node from a crashed one: the others' filters drop what it sends
    page.wait_for_selector(f"{row('n3', 'down')} .status .faults", timeout=10_000)
    assert "dropped by n1, n2" in (page.get_attribute(f"{row('n3', 'down')} .status", "title") or "")
    with cluster.client("n1", "n2") as c:
        assert c.faults("n3")["drop_in"] == {"n1": 1.0, "n2": 1.0}
        assert c.put("isolated-write", "v", consistency="quorum")  # n1 and n2 still make a quorum
    page.click('#node-rows button.heal[data-node="n3"]')  # offered although n3 looks down
    page.wait_for_selector("#cluster-note[data-action=heal]", timeout=10_000)
    page.wait_for_selector(row("n3", "up"), timeout=WITHIN_S * 1000)
    wait_until(lambda: page.locator("#node-rows .status .faults").count() == 0, 10, "the faults mark to go")
    wait_until(lambda: page.locator("#node-rows button.action.isolate").count() == 3, 10, "isolate offered")
    with cluster.client() as c:
        assert all(not rules for rules in c.faults("n3").values() if isinstance(rules, dict))
        assert "n3" not in c.faults("n1")["drop_in"] and "n3" not in c.faults("n2")["drop_in"]
        # the write n3 missed reaches it (hints, anti-entropy)
        wait_until(
            lambda: c.replicas("isolated-write")["n3"].values == [b"v"],  # type: ignore[union-attr]
            30,
            "n3 to get the write it missed",
        )


def test_repair_starts_a_full_pass_shown_in_the_healing_view(page: Page, cluster: LocalCluster) -> None:
    open_cluster(page, cluster)
    with cluster.client() as c:
        before = c.status("n2").anti_entropy.full_pass.passes
    page.click('#node-rows button.repair[data-node="n2"]')
    page.wait_for_selector("#cluster-note[data-action=repair]", timeout=10_000)
    assert "full anti-entropy pass started with 2 peers" in page.inner_text("#cluster-note")
    page.goto(f"{cluster.url('n1')}/#healing")
    page.wait_for_selector("#view-healing[data-ready=true]", timeout=10_000)
    page.wait_for_function(
        "(n) => { const e = document.querySelector('#aae-rows tr[data-node=n2] .full-pass');"
        " return e !== null && Number(e.dataset.passes) > n && e.dataset.remaining === '0'; }",
        arg=before,
        timeout=30_000,
    )
    with cluster.client() as c:
        assert c.status("n2").anti_entropy.full_pass.passes == before + 1


def test_restart_drains_and_stops_the_node_for_its_supervisor(page: Page, cluster: LocalCluster) -> None:
    """Last in the module: n3 exits asking to be started again (the test harness is its supervisor)."""
    open_cluster(page, cluster)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('#node-rows button.restart[data-node="n3"]')
    page.wait_for_selector("#cluster-note[data-action=restart]", timeout=10_000)
    assert cluster.procs["n3"].wait(timeout=30) == 3  # EXIT_RESTART: "start me again"
    page.wait_for_selector(row("n3", "down"), timeout=WITHIN_S * 1000)
    cluster.start("n3")
    page.wait_for_selector(row("n3", "up"), timeout=WITHIN_S * 1000)
