"""Quorum bookkeeping: when a write or read is decided, for every level at N=3 and N=5, and what to repair."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from versions_strategies import reachable_states

from zkv.core.quorum import Outcome, ReadQuorum, WriteQuorum, required
from zkv.core.versions import EMPTY, KeyState, merge, merge_all, update

CASES = [(n, level) for n in (3, 5) for level in ("one", "quorum", "all")]
NEED = {(3, "one"): 1, (3, "quorum"): 2, (3, "all"): 3, (5, "one"): 1, (5, "quorum"): 3, (5, "all"): 5}
ids = [f"N{n}-{level}" for n, level in CASES]


def targets(n: int) -> tuple[str, ...]:
    return tuple(f"r{i}" for i in range(n))


def write(n: int, level: str) -> WriteQuorum:
    return WriteQuorum(targets(n), required(level, n), deadline=10.0)


def read(n: int, level: str) -> ReadQuorum:
    return ReadQuorum(targets(n), required(level, n), deadline=10.0)


def value_state(value: bytes) -> KeyState:
    return update(EMPTY, "a", {}, value, 0.0)[0]


def test_required_levels():
    for (n, level), need in NEED.items():
        assert required(level, n) == need
    assert [required("quorum", n) for n in (1, 2, 4, 6, 7)] == [1, 2, 3, 4, 4]
    for bad in ("two", "ALL", "", "quorum "):
        with pytest.raises(ValueError):
            required(bad, 3)


# ---------------------------------------------------------------------------------------------- writes


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_write_succeeds_at_exactly_the_required_acks(n, level):
    q = write(n, level)
    need = NEED[n, level]
    nodes = targets(n)
    assert q.outcome() is Outcome.PENDING
    for node in nodes[: need - 1]:
        assert q.on_ack(node) is Outcome.PENDING
    assert q.on_ack(nodes[need - 1]) is Outcome.OK
    assert not q.complete or need == n
    for node in nodes[need:]:
        assert q.on_ack(node) is Outcome.OK
    assert q.complete and q.outstanding == 0


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_write_unavailable_once_too_many_failed(n, level):
    q = write(n, level)
    need = NEED[n, level]
    nodes = targets(n)
    spare = n - need  # failures the level tolerates
    for node in nodes[:spare]:
        assert q.on_failure(node, "unreachable") is Outcome.PENDING
    assert q.on_failure(nodes[spare], "unreachable") is Outcome.UNAVAILABLE
    assert q.failed[nodes[spare]] == "unreachable"
    # late acks from the rest cannot reach the level any more
    for node in nodes[spare + 1 :]:
        assert q.on_ack(node) is Outcome.UNAVAILABLE
    assert q.on_deadline() is Outcome.UNAVAILABLE


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_write_tolerates_failures_the_level_allows(n, level):
    q = write(n, level)
    nodes = targets(n)
    spare = n - NEED[n, level]
    for node in nodes[:spare]:
        q.on_failure(node, "unreachable")
    outcomes = [q.on_ack(node) for node in nodes[spare:]]
    assert outcomes[-1] is Outcome.OK
    assert all(o is Outcome.PENDING for o in outcomes[:-1])


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_write_deadline_times_out_only_while_pending(n, level):
    need = NEED[n, level]
    for acks in range(need):
        q = write(n, level)
        for node in targets(n)[:acks]:
            q.on_ack(node)
        assert q.on_deadline() is Outcome.TIMEOUT
    done = write(n, level)
    for node in targets(n)[:need]:
        done.on_ack(node)
    assert done.on_deadline() is Outcome.OK


def test_write_ignores_strangers_duplicates_and_changes_of_mind():
    q = WriteQuorum(("a", "b", "c"), 2, deadline=1.0)
    assert q.on_ack("stranger") is Outcome.PENDING and not q.acked
    assert q.on_ack("a") is Outcome.PENDING
    assert q.on_ack("a") is Outcome.PENDING, "one replica counts once"
    assert q.on_failure("a", "timeout") is Outcome.PENDING and "a" not in q.failed
    assert q.on_failure("b", "unreachable") is Outcome.PENDING
    assert q.on_ack("b") is Outcome.PENDING and "b" not in q.acked
    assert q.outstanding == 1
    assert q.on_ack("c") is Outcome.OK


def test_write_with_fewer_targets_than_required_is_unavailable_at_once():
    q = WriteQuorum(("a",), 2, deadline=1.0)
    assert q.outcome() is Outcome.UNAVAILABLE
    assert q.on_ack("a") is Outcome.UNAVAILABLE


# ---------------------------------------------------------------------------------------------- reads


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_read_succeeds_at_exactly_the_required_answers(n, level):
    q = read(n, level)
    need = NEED[n, level]
    nodes = targets(n)
    for node in nodes[: need - 1]:
        assert q.on_state(node, EMPTY) is Outcome.PENDING
    assert q.on_state(nodes[need - 1], value_state(b"v")) is Outcome.OK
    assert q.merged().values == [b"v"]
    for node in nodes[need:]:
        q.on_state(node, EMPTY)
    assert q.complete


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_read_unavailable_once_too_many_failed(n, level):
    q = read(n, level)
    nodes = targets(n)
    spare = n - NEED[n, level]
    for node in nodes[:spare]:
        assert q.on_failure(node, "unreachable") is Outcome.PENDING
    assert q.on_failure(nodes[spare], "invalid_request") is Outcome.UNAVAILABLE
    assert q.on_deadline() is Outcome.UNAVAILABLE


@pytest.mark.parametrize(("n", "level"), CASES, ids=ids)
def test_read_deadline_times_out_only_while_pending(n, level):
    need = NEED[n, level]
    for answers in range(need):
        q = read(n, level)
        for node in targets(n)[:answers]:
            q.on_state(node, EMPTY)
        assert q.on_deadline() is Outcome.TIMEOUT
    done = read(n, level)
    for node in targets(n)[:need]:
        done.on_state(node, EMPTY)
    assert done.on_deadline() is Outcome.OK


def test_read_ignores_strangers_and_changes_of_mind():
    q = ReadQuorum(("a", "b", "c"), 2, deadline=1.0)
    assert q.merged() == EMPTY
    q.on_state("stranger", value_state(b"x"))
    assert "stranger" not in q.states
    q.on_failure("a", "unreachable")
    q.on_state("a", value_state(b"x"))
    assert "a" not in q.states
    q.on_state("b", EMPTY)
    q.on_failure("b", "unreachable")
    assert "b" not in q.failed
    assert q.outstanding == 1 and q.outcome() is Outcome.PENDING


# ---------------------------------------------------------------------------------------------- repair


def test_stale_replicas_example():
    base = value_state(b"v1")
    newer = update(base, "a", dict(base.clock), b"v2", 1.0)[0]
    sibling = update(merge(EMPTY, base), "b", dict(base.clock), b"v3", 2.0)[0]
    q = ReadQuorum(("r0", "r1", "r2", "r3", "r4"), 3, deadline=1.0)
    q.on_state("r0", newer)
    q.on_state("r1", base)
    q.on_state("r2", EMPTY)
    q.on_state("r3", sibling)
    q.on_failure("r4", "unreachable")
    merged, stale = q.stale_replicas()
    assert sorted(merged.values) == [b"v2", b"v3"]
    assert sorted(stale) == ["r0", "r1", "r2", "r3"]
    q2 = ReadQuorum(("r0", "r1"), 2, deadline=1.0)
    q2.on_state("r0", newer)
    q2.on_state("r1", merge(EMPTY, newer))
    assert q2.stale_replicas() == (newer, [])


def _lacks(state: KeyState, merged: KeyState) -> bool:
    """An independent definition: a replica is stale when its siblings or its clock differ from the merge."""
    clock = {a: c for a, c in state.clock.items() if c > 0}
    merged_clock = {a: c for a, c in merged.clock.items() if c > 0}
    return state.dots() != merged.dots() or clock != merged_clock


@settings(max_examples=150, deadline=None)
@given(reachable_states(4), st.lists(st.booleans(), min_size=4, max_size=4))
def test_stale_replicas_lists_exactly_the_replicas_that_lack_something(states, answered):
    nodes = ("r0", "r1", "r2", "r3")
    q = ReadQuorum(nodes, 1, deadline=1.0)
    for node, state, ok in zip(nodes, states, answered, strict=True):
        if ok:
            q.on_state(node, state)
        else:
            q.on_failure(node, "unreachable")
    merged, stale = q.stale_replicas()
    answered_states = [s for s, ok in zip(states, answered, strict=True) if ok]
    assert merged == merge_all(answered_states)
    expected = [n for n, s, ok in zip(nodes, states, answered, strict=True) if ok and _lacks(s, merged)]
    assert sorted(stale) == expected
    for node in stale:  # read repair makes every stale replica whole
        assert merge(q.states[node], merged) == merged
