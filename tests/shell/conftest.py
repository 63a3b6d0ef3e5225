"""Fixtures for the shell's tests: a session connected to a real three-node cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zkv_shell.session import Session

from zkv.testing.localcluster import LocalCluster


@pytest.fixture
def shell(cluster3: LocalCluster) -> Iterator[Session]:
    """A session connected to n1 of a fresh three-node cluster."""
    session = Session.connect(cluster3.addresses["n1"], known=cluster3.addresses)
    yield session
    session.close()
