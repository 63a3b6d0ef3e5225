"""The checker has teeth: deliberately broken cores are caught within the CI seeds."""

from __future__ import annotations

import pytest

from zkv.sim.run import CI_SEEDS, run_seed


@pytest.mark.parametrize(
    "variant", ["w_minus_1", "no_siblings", "blind_overreach", "purge_on_timer", "ttl_ignored"]
)
def test_a_broken_core_is_caught_within_the_ci_seeds(variant: str) -> None:
    for seed in range(1, CI_SEEDS + 1):
        result = run_seed(seed, variant=variant)
        if not result.ok:
            print(f"\n{variant} caught by seed {seed}: {result.problems()[0][:200]}")
            assert run_seed(seed).ok, f"seed {seed} fails with the real core too"
            return
    pytest.fail(f"{variant} survived all {CI_SEEDS} CI seeds: the checker has no teeth for it")


@pytest.mark.parametrize(
    "variant",
    [
        "serial_skips_in_progress",
        "serial_read_skips_in_progress",
        "serial_ignores_ring",
        "serial_reads_copies",
    ],
)
def test_a_broken_serial_core_is_caught(variant: str) -> None:
    """CASSANDRA-12126 as broken cores (in-progress proposals skipped by every request, or by reads only),
    acceptors that ignore the proposer's view of the ring, and acceptors that answer with their ordinary
    copies (unordered plain versions seen by serial reads), caught by the linearizability checker within
    the CI seeds (joins and leaves included), each on a seed the real core passes."""
    from zkv.sim.serial import SERIAL_CONFIG, run_serial_seed

    config = SERIAL_CONFIG
    for seed in range(1, CI_SEEDS + 1):
        result = run_serial_seed(seed, config, variant=variant)
        if not result.ok:
            print(f"\n{variant} caught by seed {seed}: {result.problems()[0][:300]}")
            assert run_serial_seed(seed, config).ok, f"seed {seed} fails with the real core too"
            return
    pytest.fail(f"{variant} survived all {CI_SEEDS} seeds: the checker has no teeth for it")


@pytest.mark.parametrize("variant", ["txn_resolve_without_record", "txn_plain_read_skips_record"])
def test_a_broken_transaction_core_is_caught(variant: str) -> None:
    """Intents resolved as committed without their record (half a refused transfer applied), and plain
    reads that answer an intent's old value (a fractured read), caught by the bank checker within the CI
    seeds, each on a seed the real core passes."""
    from zkv.sim.bank import run_bank_seed

    for seed in range(1, CI_SEEDS + 1):
        result = run_bank_seed(seed, variant=variant)
        if not result.ok:
            print(f"\n{variant} caught by seed {seed}: {result.problems()[0][:300]}")
            assert run_bank_seed(seed).ok, f"seed {seed} fails with the real core too"
            return
    pytest.fail(f"{variant} survived all {CI_SEEDS} seeds: the checker has no teeth for it")
