"""150 nodes converge to one view after joins, a crash, a restart and a silent failure, within bounds."""

from __future__ import annotations

from zkv.sim.membership import run_membership

# Measured (simulated seconds; seeds 1 and 2 agree within 0.1 s, see docs/simulation.md): start 0.2,
# 10 joins 3.7 (of which 1.0 is their stagger and 2.5 the five heartbeats a joiner waits before it
# streams), crash 0.1 (the dropped connection tells at once), restart 0.5, silent failure 2.9 (phi-accrual,
# bounded by failure_timeout = 3 s), heal 0.5. The bounds leave margin; the run is deterministic, so a
# miss is a regression in gossip, detection or joining, not a flake.
BOUNDS_S = {
    "start_s": 1.0,
    "join_s": 5.5,
    "failure_s": 0.5,
    "restart_s": 1.0,
    "silent_s": 4.0,
    "heal_s": 1.0,
}


def test_150_nodes_converge_to_one_view() -> None:
    result = run_membership(1, initial=140, joins=10)
    print(f"\n{result}")
    assert result.nodes == 150
    assert not result.bugs, result.bugs
    for phase, bound in BOUNDS_S.items():
        took = getattr(result, phase)
        assert took is not None and took <= bound, f"{phase}: {took} s, bound {bound} s"
