"""The CI sweep: hundreds of seeded whole-cluster simulations, each judged by the fault test's checker."""

from __future__ import annotations

import time

from zkv.sim.run import SimResult, Summary, run_many


def failure_text(result: SimResult) -> str:
    problems = "\n    ".join(result.problems()[:8])
    return f"{result.describe()}\n    {problems}\n  replay with: pytest tests/sim --seed {result.seed}"


def test_seeds_lose_nothing_and_converge(sim_seeds: list[int], sim_workers: int | None) -> None:
    started = time.perf_counter()
    summary = Summary()
    failures = []
    for result in run_many(sim_seeds, workers=sim_workers):
        summary.add(result)
        if not result.ok:
            failures.append(failure_text(result))
    wall = time.perf_counter() - started
    print(f"\n{summary.line()} wall={wall:.1f}s")
    assert summary.seeds == len(sim_seeds)
    assert not failures, f"{len(failures)} of {summary.seeds} seeds failed:\n" + "\n".join(failures)
    if len(sim_seeds) >= 100:  # the sweep really exercised something
        assert summary.acknowledged > 50 * summary.seeds
        crashes = sum(v for k, v in summary.faults.items() if k in ("crash", "torn_crash", "wipe"))
        assert crashes > summary.seeds // 2
