"""With security on (CURVE between nodes, bearer tokens on the gateway), the page asks for a token, and
admin-only actions are shown to admin tokens only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_browser import Page
from dashboard_cluster import gateway_cluster

from zkv.testing.localcluster import LocalCluster, wait_until

FORCED_DECOMMISSION = """async () => (await fetch("/v1/dashboard/nodes/n3/decommission", {method: "POST",
    headers: {Authorization: `Bearer ${sessionStorage.getItem("zkv-token")}`}})).status"""
FORCED_ACTION = """async (action) => (await fetch(`/v1/dashboard/nodes/n3/${action}`, {method: "POST",
    headers: {Authorization: `Bearer ${sessionStorage.getItem("zkv-token")}`}})).status"""
REFUSED = "the server responded with a status of 401"  # the browser logs every refused request


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with gateway_cluster(tmp_path_factory, "dashboard-secured", curve=True) as cluster:
        yield cluster


def sign_in(page: Page, token: str) -> None:
    page.wait_for_selector("#login[open]", timeout=10_000)
    page.fill("#token-input", token)
    page.press("#token-input", "Enter")


def expected_refusals_only(page: Page) -> None:
    """The 401s the test provoked are the only console errors; nothing else went wrong."""
    others = [e for e in page.errors if REFUSED not in e]
    assert others == []
    page.errors.clear()


def test_the_page_asks_for_a_token_and_hides_admin_actions_from_clients(
    page: Page, secured: LocalCluster
) -> None:
    page.goto(f"{secured.url('n1')}/#cluster")
    sign_in(page, "not-a-token")
    page.wait_for_selector("#login[open]", timeout=10_000)  # refused: asked again
    assert page.locator("#node-rows tr[data-node]").count() == 0  # and nothing shown
    sign_in(page, secured.tokens["alice"])
    page.wait_for_selector("#live[data-state=live]", timeout=10_000)
    wait_until(lambda: page.locator("#node-rows tr[data-node][data-status=up]").count() == 3, 10, "3 up")
    assert page.locator("#node-rows button.decommission").count() == 0  # a client token: no admin action
    assert page.locator("#node-rows button.action").count() == 0  # no repair, isolate, heal, restart
    assert page.locator("#view-cluster th.admin-only[hidden]").count() == 1
    status = page.evaluate(FORCED_DECOMMISSION)  # and the gateway refuses the action itself too
    assert status == 403
    for action in ("repair", "isolate", "heal", "restart"):
        assert page.evaluate(FORCED_ACTION, action) == 403, action
    page.errors[:] = [e for e in page.errors if "status of 403" not in e]
    expected_refusals_only(page)


def test_an_admin_token_sees_admin_actions(page: Page, secured: LocalCluster) -> None:
    page.goto(f"{secured.url('n1')}/#cluster")
    sign_in(page, secured.tokens["admin"])
    page.wait_for_selector("#live[data-state=live]", timeout=10_000)
    wait_until(lambda: page.locator("#node-rows button.decommission").count() == 2, 10, "admin actions")
    for action in ("repair", "isolate", "restart"):
        assert page.locator(f"#node-rows button.action.{action}").count() == 3, action
    # an admin token may act (CURVE between the gateway and the nodes: the gateway's admin key)
    page.click('#node-rows button.repair[data-node="n2"]')
    page.wait_for_selector("#cluster-note[data-action=repair]", timeout=10_000)
    expected_refusals_only(page)
