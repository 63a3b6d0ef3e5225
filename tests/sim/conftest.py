"""Options of the simulation tests: ``--seed N`` replays one seed, ``--seeds K`` sets the sweep's size."""

from __future__ import annotations

import pytest

from zkv.sim.run import CI_SEEDS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zkv simulation")
    group.addoption("--seed", type=int, default=None, help="run only this simulation seed (replay a failure)")
    group.addoption("--seeds", type=int, default=CI_SEEDS, help=f"seeds the sweep runs (default {CI_SEEDS})")
    group.addoption("--seed-start", type=int, default=1, help="first seed of the sweep (default 1)")
    group.addoption("--sim-workers", type=int, default=None, help="processes for the sweep (default: CPUs)")


@pytest.fixture
def sim_seeds(request: pytest.FixtureRequest) -> list[int]:
    """The seeds to run: just ``--seed`` when given, else ``--seeds`` from ``--seed-start``."""
    only = request.config.getoption("--seed", default=None)
    if only is not None:
        return [only]
    start = request.config.getoption("--seed-start", default=1)
    return list(range(start, start + request.config.getoption("--seeds", default=CI_SEEDS)))


@pytest.fixture
def sim_workers(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--sim-workers", default=None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--seed``, run only what replays that seed (the sweep and the determinism check)."""
    if config.getoption("--seed", default=None) is None:
        return
    replaying = ("test_seeds.py", "test_determinism.py")
    skip = pytest.mark.skip(reason="replaying one seed (--seed): only the sweep and determinism run")
    for item in items:
        if item.path.name not in replaying and item.path.parent.name == "sim":
            item.add_marker(skip)


@pytest.fixture
def replay_seed(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--seed", default=None)
