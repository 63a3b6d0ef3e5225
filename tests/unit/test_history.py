"""The fault-test checker has teeth: each kind of violation in a crafted history is caught."""

from __future__ import annotations

from zkv.testing.history import FAIL, OK, UNKNOWN, Op, check_blind, check_registers, check_sets


def op(seq: int, kind: str, key: str, value: str | None, outcome: str = OK, saw: tuple[str, ...] = ()) -> Op:
    return Op("c1", seq, kind, key, value, outcome, float(seq), float(seq) + 0.1, saw)


def test_sets_clean_history_passes() -> None:
    ops = [op(1, "add", "s", "a"), op(2, "add", "s", "b"), op(3, "add", "s", "c", UNKNOWN)]
    report = check_sets(ops, {"s": {"a", "b"}})
    assert report.ok and report.acknowledged == 2


def test_sets_lost_and_phantom_elements_are_caught() -> None:
    ops = [op(1, "add", "s", "a"), op(2, "add", "s", "b"), op(3, "add", "s", "x", FAIL)]
    report = check_sets(ops, {"s": {"a", "zz"}})
    assert report.lost == ["s: acknowledged element b is gone"]
    assert report.phantom == ["s: element zz was never added"]


def test_registers_clean_history_with_siblings_of_unseen_values_passes() -> None:
    ops = [
        op(1, "write", "r", "v1"),
        op(2, "write", "r", "v2", saw=("v1",)),
        op(3, "write", "r", "v3"),  # a read that missed v2 (sloppy quorum): v2 may stay as a sibling
    ]
    assert check_registers(ops, {"r": {"v2", "v3"}}).ok


def test_registers_lost_write_is_caught() -> None:
    ops = [op(1, "write", "r", "v1"), op(2, "write", "r", "v2", saw=("v1",))]
    report = check_registers(ops, {"r": {"v1"}})
    assert report.lost and "v2" in report.lost[0]
    assert report.resurrected == ["r: v1 came back after an acknowledged operation replaced it"]


def test_registers_resurrection_after_delete_is_caught() -> None:
    ops = [op(1, "write", "r", "v1"), op(2, "delete", "r", None, saw=("v1",))]
    assert check_registers(ops, {"r": set()}).ok
    assert check_registers(ops, {"r": {"v1"}}).resurrected


def test_registers_unknown_later_op_excuses_a_missing_value() -> None:
    ops = [op(1, "write", "r", "v1"), op(2, "delete", "r", None, UNKNOWN, saw=("v1",))]
    assert check_registers(ops, {"r": set()}).ok  # the delete may have landed
    assert check_registers(ops, {"r": {"v1"}}).ok  # or not


def test_registers_phantom_is_caught() -> None:
    ops = [op(1, "write", "r", "v1"), op(2, "write", "r", "v9", FAIL)]
    assert check_registers(ops, {"r": {"v1", "v9"}}).phantom == ["r: value v9 was never written"]


def test_sets_dominated_sibling_is_caught() -> None:
    ops = [op(1, "add", "s", "a"), op(2, "add", "s", "b", saw=('["a"]',))]
    final = {"s": {"a", "b"}}
    assert check_sets(ops, final, {"s": {'["a", "b"]'}}).ok
    report = check_sets(ops, final, {"s": {'["a"]', '["a", "b"]'}})
    assert report.resurrected == ['s: sibling ["a"] was replaced by an acknowledged write']


def test_stale_reads_are_reads_that_miss_an_element_acknowledged_before_they_began() -> None:
    import json

    from zkv.testing.history import OK, UNKNOWN, Op
    from zkv.testing.workload import stale_reads

    def add(client: str, seq: int, value: str, saw: list[str], invoked: float, completed: float, **kw):
        outcome = kw.get("outcome", OK)
        consistency = kw.get("consistency", "quorum")
        return Op(
            client, seq, "add", "set0", value, outcome, invoked, completed, (json.dumps(saw),), consistency
        )

    ops = [
        add("a", 1, "a-1", [], 0.0, 1.0),
        add("b", 1, "b-1", ["a-1", "d-1"], 2.0, 3.0),  # saw both acknowledged before it: fine
        add("c", 1, "c-1", [], 2.5, 3.5),  # began after a-1 was acknowledged, missed it: stale
        add("d", 1, "d-1", [], 0.5, 1.5),  # began before a-1's ack: concurrent, fine
        add("e", 1, "e-1", [], 5.0, 6.0, outcome=UNKNOWN),  # missed b-1, a-1 and c-1: stale
        add("f", 1, "f-1", [], 9.0, 9.5, consistency="one"),  # a read at one promises nothing
    ]
    checked, stale = stale_reads(ops, "quorum")
    assert checked == 5 and len(stale) == 2
    assert "by c" in stale[0] and "a-1" in stale[0] and "by e" in stale[1]


# ---------------------------------------------------------------------------------------------- blind writes


def _b(client: str, seq: int, kind: str, value: str | None, t0: float, t1: float, **kw) -> Op:
    return Op(client, seq, kind, "blind0", value, kw.pop("outcome", OK), t0, t1, **kw)


def test_a_blind_write_may_supersede_what_its_clock_covers() -> None:
    ops = [
        _b("a", 1, "cput", "a-1", 0.0, 1.0, dot=("n1", 1)),
        _b("b", 1, "bput", "b-1", 2.0, 3.0, dot=("n1", 2), superseded=(("n1", 1),)),
    ]
    assert check_blind(ops, {"blind0": {"b-1"}}).ok
    back = check_blind(ops, {"blind0": {"a-1", "b-1"}})
    assert back.resurrected and not back.lost


def test_an_acknowledged_context_write_a_blind_clock_does_not_cover_must_survive() -> None:
    ops = [
        _b("a", 1, "cput", "a-1", 0.0, 1.0, dot=("n2", 1)),
        _b("b", 1, "bput", "b-1", 0.5, 1.5, dot=("n1", 1), superseded=()),
    ]
    assert check_blind(ops, {"blind0": {"a-1", "b-1"}}).ok
    gone = check_blind(ops, {"blind0": {"b-1"}})
    assert gone.lost and "a-1" in gone.lost[0]


def test_a_blind_clock_covering_a_later_write_is_an_overreach() -> None:
    ops = [
        _b("b", 1, "bput", "b-1", 0.0, 1.0, dot=("n1", 1), superseded=(("n2", 1000),)),
        _b("a", 1, "cput", "a-1", 2.0, 3.0, dot=("n2", 5)),
    ]
    report = check_blind(ops, {"blind0": {"b-1"}})
    assert any("written after it was answered" in p for p in report.lost)


def test_a_blind_write_of_unknown_outcome_may_have_superseded_what_came_before_it_ended() -> None:
    ops = [
        _b("a", 1, "cput", "a-1", 0.0, 1.0, dot=("n2", 1)),
        _b("b", 1, "bdelete", None, 0.5, 2.0, outcome=UNKNOWN),
    ]
    assert check_blind(ops, {"blind0": set()}).ok


def test_workload_keys_takes_any_iterable_of_clients() -> None:
    # the real chaos harness passes a generator: every client's registers must still be in the final read
    from zkv.testing.workload import workload_keys

    keys = workload_keys(f"c{i}" for i in range(2))
    assert keys == workload_keys(["c0", "c1"])
    assert {"reg-c0-0", "reg-c1-0", "ttl-c0-0", "ttl-c1-0"} <= set(keys)
