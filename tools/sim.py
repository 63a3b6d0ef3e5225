#!/usr/bin/env python3
"""Soak the deterministic simulator: many seeds, a summary line, and the seeds that failed.

    python tools/sim.py --seeds 5000 --start 1          # a long soak (both CPUs)
    python tools/sim.py --seed 1234 -v                   # replay one seed and show what went wrong
    python tools/sim.py --seeds 200 --variant w_minus_1  # how fast a deliberately broken core is caught

Every run is a pure function of its seed: a failing seed replays exactly, here or with
``pytest tests/sim --seed N``.
"""

from __future__ import annotations

import argparse
import sys
import time

from zkv.sim.run import SimConfig, Summary, run_many, run_seed
from zkv.sim.variants import VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=500, help="how many seeds (default 500)")
    parser.add_argument("--start", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="run only this seed")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument("--seconds", type=float, default=None, help="simulated workload seconds per seed")
    parser.add_argument("--nodes", type=int, default=None, help="nodes per cluster")
    parser.add_argument("--clients", type=int, default=None, help="clients per cluster")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help="a deliberately broken core")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per seed")
    args = parser.parse_args(argv)
    overrides = {k: v for k in ("seconds", "nodes", "clients") if (v := getattr(args, k)) is not None}
    config = SimConfig(**overrides)
    if args.seed is not None:
        result = run_seed(args.seed, config, args.variant)
        print(result.describe())
        for problem in result.problems():
            print(f"  {problem}")
        return 0 if result.ok else 1
    seeds = range(args.start, args.start + args.seeds)
    summary = Summary()
    started = time.perf_counter()
    for result in run_many(seeds, config, args.variant, args.workers):
        summary.add(result)
        if args.verbose or not result.ok:
            print(result.describe(), flush=True)
        if not result.ok:
            for problem in result.problems()[:5]:
                print(f"  {problem}", flush=True)
            print(f"  replay with: pytest tests/sim --seed {result.seed}", flush=True)
    print(f"{summary.line()} wall={time.perf_counter() - started:.1f}s")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
