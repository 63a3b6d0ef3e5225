"""Serial commands in the shell on a real cluster: conditional puts and compare-and-set."""

from __future__ import annotations

from zkv_shell.session import Session


def test_cas_and_conditional_puts_in_the_shell(shell: Session) -> None:
    """`put K V serial --if-absent`, `cas K EXPECTED NEW`: applied, or a readable refusal."""
    first = shell.run("put seat alice serial --if-absent")
    assert first.ok, first
    refused = shell.run("put seat bob serial --if-absent")
    assert not refused.ok and refused.code == "condition_failed" and "'alice'" in refused.message
    assert shell.run("cas seat alice carol").ok
    stale = shell.run("cas seat alice dave")
    assert not stale.ok and stale.code == "condition_failed" and "'carol'" in stale.message
    assert shell.run("get seat serial").values == (b"carol",)
    bad = shell.run("put seat x quorum --if-absent")
    assert not bad.ok and "serial" in bad.message
