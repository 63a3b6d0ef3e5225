"""150 nodes converge to one view after joins, a crash and a restart, within bounds measured here."""

from __future__ import annotations

from zkv.sim.membership import run_membership

# Measured on seed 1 (simulated seconds; docs/simulation.md): start 0.2, joins 3.7, crash 0.1, restart 0.5.
# The bounds leave about 50% of margin; a regression in gossip or detection shows as a miss, not a flake
# (the run is deterministic).
BOUNDS_S = {"start_s": 1.0, "join_s": 6.0, "failure_s": 1.0, "restart_s": 1.5}


def test_150_nodes_converge_to_one_view() -> None:
    result = run_membership(1, initial=140, joins=10)
    print(f"\n{result}")
    assert not result.bugs, result.bugs
    for phase, bound in BOUNDS_S.items():
        took = getattr(result, phase)
        assert took is not None and took <= bound, f"{phase}: {took} s, bound {bound} s"
