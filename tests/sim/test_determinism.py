"""Same seed, same run, byte for byte: within a process and across processes with other hash seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from zkv.sim.run import run_seed

SEED = 7
PROBE = (
    "import json, sys; from zkv.sim.run import run_seed; r = run_seed(int(sys.argv[1])); "
    "print(json.dumps([r.trace, r.history, r.events, r.report.ops]))"
)


def test_a_seed_replays_identically_in_one_process(replay_seed: int | None) -> None:
    seed = SEED if replay_seed is None else replay_seed
    first, second = run_seed(seed), run_seed(seed)
    assert first.events > 1000 and first.report.ops > 50
    assert (first.trace, first.history, first.events) == (second.trace, second.history, second.events)


def test_different_seeds_differ() -> None:
    assert run_seed(SEED).trace != run_seed(SEED + 1).trace


def test_a_seed_replays_identically_across_processes_and_hash_seeds() -> None:
    """Set iteration order changes with PYTHONHASHSEED; nothing observable may depend on it."""
    here = run_seed(SEED)
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(SEED)], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [here.trace, here.history, here.events, here.report.ops]
