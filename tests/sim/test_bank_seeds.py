"""The bank sweep: seeded simulations of transfers between accounts (two- and three-key transactions,
audits, plain and serial reads) under faults and ring changes, judged by the bank checker
(zkv.sim.bank, zkv.testing.bank)."""

from __future__ import annotations

import time

from zkv.sim.bank import run_bank_seed, run_many_bank


def test_bank_histories_keep_the_total_and_are_read_atomic(
    sim_seeds: list[int], sim_workers: int | None
) -> None:
    started = time.perf_counter()
    failures, committed, acknowledged, unknown, ops = [], 0, 0, 0, 0
    faults: dict[str, int] = {}
    for result in run_many_bank(sim_seeds, workers=sim_workers):
        committed += result.report.committed
        acknowledged += result.report.acknowledged
        unknown += result.unknown
        ops += result.ops
        for kind, count in result.faults.items():
            faults[kind] = faults.get(kind, 0) + count
        if not result.ok:
            problems = "\n    ".join(p[:600] for p in result.problems()[:4])
            failures.append(f"seed {result.seed}:\n    {problems}\n  replay: run_bank_seed({result.seed})")
    print(
        f"\nbank seeds={len(sim_seeds)} ops={ops} committed={committed} acknowledged={acknowledged} "
        f"unknown={unknown} faults={dict(sorted(faults.items()))} wall={time.perf_counter() - started:.1f}s"
    )
    assert not failures, f"{len(failures)} of {len(sim_seeds)} seeds failed:\n" + "\n".join(failures)
    if len(sim_seeds) >= 100:  # the sweep exercised something
        assert committed > 3 * len(sim_seeds) and acknowledged > 2 * len(sim_seeds)
        assert faults.get("join", 0) > len(sim_seeds) // 10 and faults.get("torn_crash", 0) > 10


def test_a_bank_seed_replays_exactly() -> None:
    first, second = run_bank_seed(7), run_bank_seed(7)
    assert (first.ops, first.report.committed, first.unknown, first.report.problems) == (
        second.ops,
        second.report.committed,
        second.unknown,
        second.report.problems,
    )
