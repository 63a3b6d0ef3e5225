"""The serial sweep: seeded simulations of serial reads, writes and compare-and-set under faults, every
key's history judged by the linearizability checker (zkv.sim.serial)."""

from __future__ import annotations

import time

from zkv.sim.serial import run_many_serial, run_serial_seed


def test_serial_histories_are_linearizable(sim_seeds: list[int], sim_workers: int | None) -> None:
    started = time.perf_counter()
    failures, ops, applied, refused_or_read, unknown = [], 0, 0, 0, 0
    faults: dict[str, int] = {}
    for result in run_many_serial(sim_seeds, workers=sim_workers):
        ops += result.ops
        applied += result.applied
        unknown += result.unknown
        for kind, count in result.faults.items():
            faults[kind] = faults.get(kind, 0) + count
        if not result.ok:
            problems = "\n    ".join(p[:600] for p in result.problems()[:4])
            failures.append(f"seed {result.seed}:\n    {problems}\n  replay: run_serial_seed({result.seed})")
    refused_or_read = ops - applied - unknown
    print(
        f"\nserial seeds={len(sim_seeds)} ops={ops} applied={applied} unknown={unknown} "
        f"faults={dict(sorted(faults.items()))} wall={time.perf_counter() - started:.1f}s"
    )
    assert not failures, f"{len(failures)} of {len(sim_seeds)} seeds failed:\n" + "\n".join(failures)
    if len(sim_seeds) >= 100:  # the sweep exercised something
        assert applied > 10 * len(sim_seeds) and refused_or_read > 10 * len(sim_seeds)
        assert (
            sum(faults.get(k, 0) for k in ("crash", "torn_crash", "split", "isolate")) > len(sim_seeds) // 2
        )


def test_a_serial_seed_replays_exactly() -> None:
    first, second = run_serial_seed(7), run_serial_seed(7)
    assert (first.ops, first.applied, first.unknown, first.events) == (
        second.ops,
        second.applied,
        second.unknown,
        second.events,
    )
