"""A real cluster with a gateway per node for one dashboard test module (started once, closed after)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zkv.testing.localcluster import LocalCluster


@contextlib.contextmanager
def gateway_cluster(
    tmp_path_factory: pytest.TempPathFactory, name: str, **settings: Any
) -> Iterator[LocalCluster]:
    """3 nodes (unless ``nodes=``), each with its gateway; every process must stop on SIGTERM."""
    settings.setdefault("nodes", 3)
    cluster = LocalCluster(Path(tmp_path_factory.mktemp(name)), http=True, **settings)
    try:
        cluster.start()
        yield cluster
    finally:
        leaked = cluster.close()
    assert not leaked, f"processes that ignored SIGTERM: {leaked}"
