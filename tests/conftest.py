"""Shared fixtures: real clusters of zkv-node processes on free loopback ports, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zkv.localcluster import LocalCluster


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
