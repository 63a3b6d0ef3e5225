"""The checker has teeth: deliberately broken cores are caught within the CI seeds."""

from __future__ import annotations

import pytest

from zkv.sim.run import CI_SEEDS, run_seed


@pytest.mark.parametrize("variant", ["w_minus_1", "no_siblings", "blind_overreach"])
def test_a_broken_core_is_caught_within_the_ci_seeds(variant: str) -> None:
    for seed in range(1, CI_SEEDS + 1):
        result = run_seed(seed, variant=variant)
        if not result.ok:
            print(f"\n{variant} caught by seed {seed}: {result.problems()[0][:200]}")
            assert run_seed(seed).ok, f"seed {seed} fails with the real core too"
            return
    pytest.fail(f"{variant} survived all {CI_SEEDS} CI seeds: the checker has no teeth for it")


def test_a_serial_read_that_skips_in_progress_proposals_is_caught() -> None:
    """CASSANDRA-12126 as a broken core: the linearizability checker must catch it within the CI seeds."""
    from zkv.sim.serial import run_serial_seed

    for seed in range(1, CI_SEEDS + 1):
        result = run_serial_seed(seed, variant="serial_read_skips_in_progress")
        if not result.ok:
            print(f"\nserial_read_skips_in_progress caught by seed {seed}: {result.problems()[0][:300]}")
            assert run_serial_seed(seed).ok, f"seed {seed} fails with the real core too"
            return
    pytest.fail(
        f"serial_read_skips_in_progress survived all {CI_SEEDS} seeds: the checker has no teeth for it"
    )
