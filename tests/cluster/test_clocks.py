"""Wrong wall clocks on real processes (Debian's ``faketime``, libfaketime): warned of, never fatal.

A node run an hour fast, then restarted with its clock corrected and an empty data dir, starts under a
generation below the one its peers remember; it must still be up everywhere within seconds.
"""

from __future__ import annotations

import glob
import shutil
import time
from collections.abc import Callable

import pytest

from zkv.testing.localcluster import LocalCluster, wait_until

REJOIN_S = 5.0
# libfaketime through the environment, as the faketime command sets it, but with no wrapper process in
# between: a kill -9 must reach the node itself
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)


def _up_everywhere(cluster: LocalCluster, node: str, above: int) -> bool:
    """Every node (``node`` included) shows ``node`` up under a generation above ``above``."""
    with cluster.client(timeout=1.0) as client:
        for observer in cluster.names:
            rows = {n.name: n for n in client.nodes(cluster.addresses[observer])}
            row = rows.get(node)
            if row is None or row.status != "up" or row.generation <= above:
                return False
    return True


@pytest.mark.skipif(LIBFAKETIME is None, reason="needs Debian's faketime (apt install faketime)")
def test_a_node_whose_clock_was_ahead_rejoins_at_once_after_the_fix(
    make_cluster: Callable[..., LocalCluster], record_property
) -> None:
    cluster = make_cluster(3, start=False, engine="log")
    cluster.wrappers["n3"] = ["env", f"LD_PRELOAD={LIBFAKETIME}", "FAKETIME=+1h"]
    cluster.start()
    with cluster.client(timeout=2.0) as client:
        # the skew is seen on both sides, and n3 knows the odd clock is its own
        def warned() -> bool:
            return "n3" in client.status("n1").clock.off_peers and client.status("n3").clock.suspect_self

        wait_until(warned, 5, "the clock skew to show in status")
        offset = client.status("n1").clock.peer_offsets_s["n3"]
        assert 3500 < offset < 3700, offset
        record_property("measured_offset_s", round(offset, 1))
        old_generation = client.status("n3").generation
        client.put(b"k", b"v", consistency="all")
    assert "wall clock is +3" in cluster.log("n1")  # the warning names the peer and the offset
    # n3's clock is fixed; it comes back with an empty data dir (a replaced disk)
    cluster.kill("n3")
    del cluster.wrappers["n3"]
    shutil.rmtree(cluster.workdir / "data" / "n3")
    started = time.monotonic()
    cluster.start("n3", wait=False)
    wait_until(lambda: _up_everywhere(cluster, "n3", old_generation), REJOIN_S, "n3 up on every node")
    rejoin = time.monotonic() - started
    record_property("rejoin_s", round(rejoin, 2))
    with cluster.client(timeout=2.0) as client:
        status = client.status("n3")
        assert status.generation > old_generation  # above what the peers remembered
        assert status.clock is not None
        assert not status.clock.off_peers and not status.clock.suspect_self
        client.put(b"k2", b"v2", consistency="all")  # `all` works again
        assert client.get(b"k", consistency="all").values == [b"v"]
    # the raised generation was saved: a plain restart goes above it again
    cluster.kill("n3")
    cluster.start("n3")
    with cluster.client(timeout=2.0) as client:
        assert client.status("n3").generation > status.generation
