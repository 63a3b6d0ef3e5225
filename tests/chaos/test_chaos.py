"""A bounded set of randomized fault schedules on real 5-node clusters; tools/chaos.py runs longer soaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkv.testing.chaos import describe_failure, run_schedule

SECONDS = 20


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_no_acknowledged_write_is_lost_under_random_faults(tmp_path: Path, seed: int) -> None:
    result = run_schedule(tmp_path, seed, SECONDS)
    assert result.report.acknowledged > 100, "the workload barely ran"
    assert sum(result.faults.values()) >= 3, "the schedule injected almost nothing"
    failure = describe_failure(result)
    assert result.report.ok, f"replay with: python tools/chaos.py --seed {seed} --schedules 1\n{failure}"
    assert result.diverged == 0, failure
