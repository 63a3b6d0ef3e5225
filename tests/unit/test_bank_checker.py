"""The bank checker (zkv.testing.bank) on hand-made histories: what it must pass and what it must catch."""

from __future__ import annotations

from collections.abc import Sequence

from zkv.testing.bank import APPLIED, NOT_WRITTEN, REFUSED, UNKNOWN, Audit, Read, Txn, check_bank

OPEN = Txn("open", {"a": "100:open", "b": "100:open"}, {"a": None, "b": None}, (APPLIED,), 0.0, 0.1)
T1 = Txn("t1", {"a": "90:t1", "b": "110:t1"}, {"a": "100:open", "b": "100:open"}, (APPLIED,), 1.0, 1.1)
FINAL = {"a": "90:t1", "b": "110:t1"}


def problems(
    txns: Sequence[Txn],
    reads: Sequence[Read] = (),
    audits: Sequence[Audit] = (),
    final: dict[str, str | None] | None = None,
) -> list[str]:
    final = dict(FINAL) if final is None else final
    return check_bank(list(txns), list(reads), list(audits), final, 200).problems


def test_a_correct_history_passes() -> None:
    reads = [
        Read("c0", "a", "100:open", 0.5, 0.6, serial=False),
        Read("c0", "a", "90:t1", 1.2, 1.3, serial=True),
        Read("c1", "b", "110:t1", 1.4, 1.5, serial=False),
        Read("c1", "b", "100:open", 0.9, 1.05, serial=False),  # concurrent with t1: either is fine
    ]
    audit = Audit({"a": "90:t1", "b": "110:t1"}, 2.0, 2.1)
    refused = Txn("t2", {"a": "80:t2", "b": "120:t2"}, {"a": "100:open", "b": "100:open"}, (REFUSED,), 2, 3)
    unknown = Txn("t3", {"a": "85:t3", "b": "115:t3"}, {"a": "90:t1", "b": "110:t1"}, (UNKNOWN,), 3, 4)
    report = check_bank([OPEN, T1, refused, unknown], reads, [audit], dict(FINAL), 200)
    assert report.ok, report.problems
    assert (report.committed, report.acknowledged) == (2, 2)


def test_an_unknown_transfer_may_have_taken_effect() -> None:
    unknown = Txn("t3", {"a": "85:t3", "b": "115:t3"}, {"a": "90:t1", "b": "110:t1"}, (UNKNOWN,), 3, 4)
    assert not problems([OPEN, T1, unknown], final={"a": "85:t3", "b": "115:t3"})


def test_half_a_transaction_is_caught() -> None:
    found = problems([OPEN, T1], final={"a": "90:t1", "b": "100:open"})
    assert any("fractured commit: t1 took effect on ['a'] but not on ['b']" in p for p in found), found
    assert any("the total changed" in p for p in found), found


def test_a_lost_acknowledged_transfer_is_caught() -> None:
    found = problems([OPEN, T1], final={"a": "100:open", "b": "100:open"})
    assert any("lost: t1" in p for p in found), found


def test_a_refused_or_unwritten_transfer_that_took_effect_is_caught() -> None:
    for answers in ((REFUSED,), (NOT_WRITTEN, NOT_WRITTEN)):
        t1 = Txn("t1", T1.writes, T1.prev, answers, 1.0, 1.1)
        found = problems([OPEN, t1])
        assert any("t1 was answered" in p and "yet it took effect" in p for p in found), found


def test_one_token_answered_applied_and_refused_is_caught() -> None:
    t1 = Txn("t1", T1.writes, T1.prev, (APPLIED, NOT_WRITTEN, REFUSED), 1.0, 1.1)
    assert any("answered both applied and refused" in p for p in problems([OPEN, t1]))


def test_a_dirty_read_is_caught() -> None:
    aborted = Txn("t2", {"a": "80:t2", "b": "120:t2"}, {"a": "90:t1", "b": "110:t1"}, (REFUSED,), 2, 3)
    found = problems([OPEN, T1, aborted], [Read("c0", "a", "80:t2", 2.5, 2.6, serial=False)])
    assert any("dirty read" in p for p in found), found


def test_a_fractured_read_is_caught() -> None:
    reads = [
        Read("c0", "a", "90:t1", 1.2, 1.3, serial=False),
        Read("c1", "b", "100:open", 1.4, 1.5, serial=False),  # started after t1 was seen on a
    ]
    found = problems([OPEN, T1], reads)
    assert any("fractured read: c1 read '100:open' on b" in p for p in found), found


def test_a_read_after_an_acknowledged_transfer_must_see_it() -> None:
    found = problems([OPEN, T1], [Read("c1", "b", "100:open", 1.2, 1.3, serial=True)])
    assert any("after t1 acknowledged" in p for p in found), found


def test_a_serial_read_going_back_is_caught() -> None:
    unacked = Txn("t1", T1.writes, T1.prev, (UNKNOWN,), 1.0, 9.0)
    reads = [
        Read("c0", "a", "90:t1", 1.2, 1.3, serial=True),
        Read("c1", "a", "100:open", 1.4, 1.5, serial=True),
    ]
    found = problems([OPEN, unacked], reads)
    assert any("fractured read: c1 read '100:open' on a" in p for p in found), found


def test_a_fractured_audit_is_caught() -> None:
    found = problems([OPEN, T1], audits=[Audit({"a": "90:t1", "b": "100:open"}, 2.0, 2.1)])
    assert any("fractured audit" in p for p in found), found
    assert any("an applied audit saw the total" in p for p in found), found


def test_siblings_on_an_account_are_caught() -> None:
    assert any("siblings" in p for p in problems([OPEN, T1], [Read("c0", "a", "<siblings>", 2, 3, True)]))
