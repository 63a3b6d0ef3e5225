"""The shell's ``removenode``: a live node and an unknown name refused (readable lines, nothing changed),
a killed node removed, and ``status`` showing the re-replication."""

from __future__ import annotations

from zkv_shell.results import Failure, Message
from zkv_shell.session import Session

from zkv.testing.localcluster import LocalCluster, wait_until


def test_removenode_in_the_shell(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(4)
    session = Session.connect(cluster.addresses["n1"], known=cluster.addresses)
    try:
        for line in ("removenode n2", "removenode n9"):
            refused = session.run(line)
            assert isinstance(refused, Failure) and refused.code == "invalid_request", refused
        assert "is up (seen by n1)" in session.run("removenode n2").message
        assert "n9" in session.run("removenode n9").message
        assert {n.status for n in session.client.nodes()} == {"up"}
        cluster.kill("n4")
        wait_until(
            lambda: {n.name: n.status for n in session.client.nodes()}["n4"] == "down", 30, "n4 seen down"
        )
        removed = session.run("removenode n4")
        assert isinstance(removed, Message) and "n4 removed (decided by n1)" in removed.text, removed
        assert {n.name: n.status for n in session.client.nodes()}["n4"] == "removed"
        wait_until(lambda: session.client.status().transfer.removal["n4"]["done"], 30, "n1 pulled its ranges")
        again = session.run("removenode n4")
        assert isinstance(again, Message) and "removed already" in again.text
    finally:
        session.close()
