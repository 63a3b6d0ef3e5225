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
