"""The chaos test on a real network: 5 nodes in network namespaces, partitions with nftables, kill -9.

Root and Linux only (skipped otherwise, saying why). One short schedule here (CI); long ones with
``python tools/chaos.py --netns``. See zkv/testing/netchaos.py for the lab and the fault shapes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zkv.testing.localcluster import wait_until
from zkv.testing.netchaos import SHAPES, NetnsLab, run_netns_schedule, supported

SECONDS = 40

pytestmark = pytest.mark.skipif(supported() is not None, reason=str(supported()))


def _connects(lab: NetnsLab, src: str, dst: str) -> bool:
    """A TCP connect from ``src``'s namespace to a listener in ``dst``'s, within a second."""
    probe = "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex((sys.argv[1], 9)))"
    ns = lab.client if src == "client" else lab.ns[src]
    return subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", probe, lab.ips[dst]]).returncode == 0


def test_the_lab_cuts_and_heals_real_links() -> None:
    with NetnsLab(3, tag="zkvlt") as lab:
        listen = "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 9)); s.listen(); time.sleep(60)"
        servers = [
            subprocess.Popen(["ip", "netns", "exec", lab.ns[n], "python3", "-c", listen]) for n in lab.names
        ]
        try:
            for dst in lab.names:  # every listener is up
                _wait_connects(lab, "client", dst)
            assert _connects(lab, "n1", "n2") and _connects(lab, "n2", "n3")
            lab.cut("n1", ["n2"])
            assert not _connects(lab, "n1", "n2") and not _connects(lab, "n2", "n1")  # both ways
            assert _connects(lab, "n1", "n3") and _connects(lab, "client", "n1")
            lab.heal()
            assert _connects(lab, "n1", "n2")
        finally:
            for server in servers:
                server.kill()
                server.wait()
        made = [lab.hub, lab.client, *lab.ns.values()]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed.split() for ns in made), "the lab's namespaces were not removed"


def _wait_connects(lab: NetnsLab, src: str, dst: str) -> bool:
    return wait_until(lambda: _connects(lab, src, dst), 5, "the listener to come up")  # no sleep


def test_no_lost_phantom_or_resurrected_writes_nor_stale_strict_quorum_reads_under_real_partitions(
    tmp_path: Path, record_property
) -> None:
    result = run_netns_schedule(tmp_path, seed=7, seconds=SECONDS, strict=True)
    figures = ("acknowledged", "quorum_reads", "stale_quorum_reads", "blind_quorum_reads")
    for key in (*figures, "stale_blind_quorum_reads", "blind_writes_acked", "converge_s", "hints_delivered"):
        record_property(key, result[key])
    assert result["acknowledged"] > 500, result
    assert set(result["faults"]) == set(SHAPES), result["faults"]  # every shape was played
    assert result["lost_count"] == result["phantom_count"] == result["resurrected_count"] == 0, result
    assert result["diverged"] == 0, result
    assert result["quorum_reads"] > 200 and result["stale_quorum_reads"] == 0, result
    assert result["blind_quorum_reads"] > 200 and result["stale_blind_quorum_reads"] == 0, result
