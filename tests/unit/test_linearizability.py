"""The linearizability checker on histories whose verdict is known (by hand, as in Knossos' and
Porcupine's own tests): it must accept the linearizable ones and refuse the others."""

from __future__ import annotations

import random

from zkv.testing.linearizability import (
    CAS,
    FAIL,
    READ,
    UNKNOWN,
    WRITE,
    RegisterOp,
    check_keys,
    check_register,
)


def op(client: str, kind: str, start: float, end: float, value: bytes | None = None, **kw) -> RegisterOp:
    return RegisterOp(client, kind, start, end, value=value, **kw)


def test_sequential_history_is_linearizable() -> None:
    h = [
        op("a", WRITE, 0, 1, b"1"),
        op("a", READ, 2, 3, b"1"),
        op("b", WRITE, 4, 5, b"2"),
        op("b", READ, 6, 7, b"2"),
    ]
    assert check_register(h).ok


def test_stale_read_after_a_completed_write_is_not() -> None:
    h = [op("a", WRITE, 0, 1, b"1"), op("b", READ, 2, 3, None)]
    verdict = check_register(h)
    assert not verdict.ok
    assert "read -> None" in str(verdict)


def test_concurrent_read_may_see_either_value() -> None:
    for seen in (None, b"1"):
        assert check_register([op("a", WRITE, 0, 10, b"1"), op("b", READ, 1, 2, seen)]).ok


def test_reads_may_not_go_back_in_time() -> None:
    # both reads overlap the write, but the second starts after the first saw the new value
    h = [op("a", WRITE, 0, 10, b"1"), op("b", READ, 1, 2, b"1"), op("c", READ, 3, 4, None)]
    assert not check_register(h).ok


def test_read_of_a_value_nobody_wrote_is_not() -> None:
    assert not check_register([op("a", WRITE, 0, 1, b"1"), op("b", READ, 2, 3, b"9")]).ok


def test_two_cas_from_the_same_value_cannot_both_apply() -> None:
    h = [
        op("a", WRITE, 0, 1, b"0"),
        op("b", CAS, 2, 5, b"1", expected=b"0"),
        op("c", CAS, 3, 6, b"1", expected=b"0"),
    ]
    assert not check_register(h).ok
    h[2] = op("c", CAS, 3, 6, b"1", expected=b"0", outcome=FAIL, observed=b"1")
    assert check_register(h).ok


def test_counter_by_cas() -> None:
    h = [
        op("a", CAS, 0, 2, b"1", expected=None),  # if_absent
        op("b", CAS, 1, 3, b"1", expected=None, outcome=FAIL, observed=b"1"),
        op("b", CAS, 4, 6, b"2", expected=b"1"),
        op("a", CAS, 5, 7, b"2", expected=b"1", outcome=FAIL, observed=b"2"),
        op("a", READ, 8, 9, b"2"),
    ]
    assert check_register(h).ok


def test_refused_cas_must_report_the_current_value() -> None:
    # the ConditionFailed carried a value the register never held at any instant the CAS could take
    h = [op("a", WRITE, 0, 1, b"1"), op("b", CAS, 2, 3, b"3", expected=b"2", outcome=FAIL, observed=b"0")]
    assert not check_register(h).ok


def test_refused_cas_whose_condition_held_is_not() -> None:
    h = [op("a", WRITE, 0, 1, b"1"), op("b", CAS, 2, 3, b"3", expected=b"1", outcome=FAIL, observed=b"1")]
    assert not check_register(h).ok


def test_unknown_write_may_take_effect_late() -> None:
    # the write's client gave up at 1; the value shows up at 5 and stays
    h = [op("a", WRITE, 0, 1, b"1", outcome=UNKNOWN), op("b", READ, 2, 3, None), op("b", READ, 5, 6, b"1")]
    assert check_register(h).ok


def test_unknown_write_may_never_take_effect() -> None:
    h = [op("a", WRITE, 0, 1, b"1", outcome=UNKNOWN), op("b", READ, 2, 3, None), op("b", READ, 5, 6, None)]
    assert check_register(h).ok


def test_unknown_write_takes_effect_once() -> None:
    # seen, then overwritten, then seen again: that would need it to apply twice
    h = [
        op("a", WRITE, 0, 1, b"1", outcome=UNKNOWN),
        op("b", READ, 2, 3, b"1"),
        op("b", WRITE, 4, 5, b"2"),
        op("b", READ, 6, 7, b"1"),
    ]
    assert not check_register(h).ok


def test_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    h = [op("b", READ, 0, 1, b"1"), op("a", WRITE, 2, 3, b"1", outcome=UNKNOWN)]
    assert not check_register(h).ok


def test_unknown_cas_applies_only_if_its_condition_held() -> None:
    h = [
        op("a", WRITE, 0, 1, b"1"),
        op("b", CAS, 2, 3, b"9", expected=b"0", outcome=UNKNOWN),
        op("c", READ, 4, 5, b"9"),
    ]
    assert not check_register(h).ok
    h[1] = op("b", CAS, 2, 3, b"9", expected=b"1", outcome=UNKNOWN)
    assert check_register(h).ok


def test_unknown_reads_are_ignored() -> None:
    h = [op("a", WRITE, 0, 1, b"1"), op("b", READ, 2, 3, b"junk", outcome=UNKNOWN)]
    assert check_register(h).ok


def test_initial_value() -> None:
    assert check_register([op("a", READ, 0, 1, b"5")], initial=b"5").ok
    assert not check_register([op("a", READ, 0, 1, b"5")]).ok


def test_keys_are_checked_apart() -> None:
    h = [
        op("a", WRITE, 0, 1, b"1", key="x"),
        op("a", READ, 2, 3, b"1", key="x"),
        op("b", WRITE, 0, 1, b"7", key="y"),
        op("b", READ, 2, 3, None, key="y"),
    ]
    verdicts = {v.key: v.ok for v in check_keys(h)}
    assert verdicts == {"x": True, "y": False}


def _sequential_run(rng: random.Random, clients: int, count: int) -> list[RegisterOp]:
    """A history made by a real sequential register, with every op stretched over a random interval that
    contains its instant: linearizable by construction, however the intervals overlap."""
    value: bytes | None = None
    ops = []
    for t in range(count):
        kind = rng.choice((READ, WRITE, CAS))
        start, end = t - rng.uniform(0, 4), t + rng.uniform(0, 4)
        client = f"c{rng.randrange(clients)}"
        if kind == READ:
            ops.append(op(client, READ, start, end, value))
        elif kind == WRITE:
            value = str(rng.randrange(3)).encode()
            ops.append(op(client, WRITE, start, end, value))
        else:
            expected = rng.choice((None, b"0", b"1", b"2"))
            new = str(rng.randrange(3)).encode()
            if value == expected:
                value = new
                ops.append(op(client, CAS, start, end, new, expected=expected))
            else:
                ops.append(op(client, CAS, start, end, new, expected=expected, outcome=FAIL, observed=value))
    return ops


def test_randomised_linearizable_histories_pass_and_corrupted_reads_fail() -> None:
    rng = random.Random(7)
    caught = 0
    for _ in range(200):
        history = _sequential_run(rng, 3, 25)
        verdict = check_register(history)
        assert verdict.ok, verdict
        assert not verdict.exhausted
        # corrupt one read to a value no write ever produced: never linearizable
        reads = [i for i, o in enumerate(history) if o.kind == READ]
        if reads:
            i = rng.choice(reads)
            bad = history[i]
            history[i] = RegisterOp(bad.client, READ, bad.invoked, bad.completed, value=b"never")
            assert not check_register(history).ok
            caught += 1
    assert caught > 100


def test_many_unobserved_unknown_writes_do_not_explode_the_search() -> None:
    """A partition leaves dozens of timed-out writes nobody read: each may or may not have applied, which
    is 2^n orders to try unless the checker sees that none of them matters."""
    h = [op("a", WRITE, 0, 1, b"0")]
    h += [op(f"c{i}", WRITE, 2 + i * 0.01, 3, f"lost{i}".encode(), outcome=UNKNOWN) for i in range(40)]
    h += [op("a", READ, 4, 5, b"0"), op("b", WRITE, 6, 7, b"1"), op("a", READ, 8, 9, b"1")]
    verdict = check_register(h)
    assert verdict.ok and verdict.steps < 1000, verdict
    h.append(op("a", READ, 10, 11, b"lost3"))  # now one of them was observed, after b's write: fine
    assert check_register(h).ok
