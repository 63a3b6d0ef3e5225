"""What gossip costs per node, counted frame by frame in the simulator (issue #20).

A settled, idle cluster sends heartbeats and nothing else: one frame per monitoring peer per interval
(ceil(log3 N) of them past nine members, zkv.core.monitoring), each of the same small size whatever the
cluster's size, so the cost per node grows at most linearly with N (logarithmically, in fact; the old
design put the whole view in every heartbeat: bytes per node grew with N squared).
"""

from __future__ import annotations

import pytest

from zkv.core.monitoring import monitored_peers
from zkv.sim.membership import GossipCost, gossip_cost

INTERVAL = 0.5


@pytest.fixture(scope="module")
def costs() -> dict[int, GossipCost]:
    return {n: gossip_cost(n, seed=7, window=2.0, heartbeat_interval=INTERVAL) for n in (50, 150)}


@pytest.mark.parametrize("nodes", [50, 150])
def test_a_settled_cluster_sends_one_small_heartbeat_per_monitor_per_interval(
    costs: dict[int, GossipCost], nodes: int
) -> None:
    cost = costs[nodes]
    assert cost.converge_s is not None and cost.converge_s < 10.0
    names = [f"n{i}" for i in range(1, nodes + 1)]
    monitors = len(monitored_peers(names, "n1"))  # every member is monitored by as many
    assert monitors <= 5
    heartbeats = monitors / INTERVAL  # each node's heartbeat, one copy per subscriber (its monitors)
    assert heartbeats * 0.9 <= cost.messages_out <= heartbeats * 1.1
    assert cost.messages_in == pytest.approx(cost.messages_out)
    assert cost.bytes_out / cost.messages_out < 200  # O(1) per heartbeat: no view inside
    assert cost.pulls == 0  # equal digests: nothing to catch up on


def test_cost_per_node_grows_at_most_linearly(costs: dict[int, GossipCost]) -> None:
    small, large = costs[50], costs[150]
    ratio = (large.nodes - 1) / (small.nodes - 1)
    assert large.messages_out / small.messages_out <= ratio * 1.1
    assert large.bytes_out / small.bytes_out <= ratio * 1.1
