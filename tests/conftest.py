"""Shared fixtures: real clusters of zkv-node processes on free loopback ports, always cleaned up."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zkv.testing.localcluster import LocalCluster


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """``make_cluster(nodes=3, **cluster_settings)`` starts a cluster; every one is closed at teardown."""
    clusters: list[LocalCluster] = []

    def make(nodes: int = 3, start: bool = True, **settings: Any) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(clusters)}", nodes=nodes, **settings)
        clusters.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    leaked = []
    for cluster in clusters:
        leaked += cluster.close()
    assert not leaked, f"nodes that ignored SIGTERM and had to be killed: {leaked}"


@pytest.fixture
def cluster3(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    return make_cluster(3)


@pytest.fixture
def cluster5(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    return make_cluster(5)


@pytest.fixture(scope="session")
def needs_redis() -> str:
    """The path of redis-server, which the redis engine's tests run. Without it they skip, saying so,
    except in CI (``CI=true``), where ``.ci/run`` installs it: there a missing binary fails them."""
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but redis-server is not installed (.ci/run installs it with apt-get)")
        pytest.skip("redis-server is not installed (apt-get install redis-server): redis engine untested")
    return path
