"""The hot path's shortcuts compute exactly what the plain definitions do (issue #18, step 1)."""

from __future__ import annotations

import hashlib

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from versions_strategies import reachable_states

from zkv.core.merkle import packed_digest, state_digest
from zkv.core.purge import TombstonePurge
from zkv.core.versions import KeyState, Sibling, encode_context, join, pack_state, unpack_state
from zkv.core.writes import written_context


def digest_by_definition(key: bytes, state: KeyState) -> int:
    """The digest as it was first written (and as every stored index holds it): a second encoding."""
    canonical = msgpack.packb(
        [
            key,
            [
                [s.actor, s.counter, s.timestamp, s.value]
                if s.expires is None
                else [s.actor, s.counter, s.timestamp, s.value, s.expires]
                for s in state.siblings
            ],
            sorted(state.clock.items()),
        ],
        use_bin_type=True,
    )
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big") or 1


@settings(max_examples=300, deadline=None)
@given(reachable_states(1), st.binary(max_size=300))
def test_the_digest_of_the_stored_bytes_is_the_digest_of_the_state(states, key):
    (state,) = states
    assert packed_digest(key, pack_state(state)) == digest_by_definition(key, state)
    assert state_digest(key, state) == digest_by_definition(key, state)


def test_a_clock_in_any_order_packs_to_the_same_bytes():
    one = KeyState((Sibling("b", 2, 1.0, b"v"),), {"b": 2, "a": 7, "c": 1})
    other = KeyState(one.siblings, {"c": 1, "a": 7, "b": 2})
    assert pack_state(one) == pack_state(other)
    assert unpack_state(pack_state(one)) == one
    # a digest stored by an earlier version (the definition above) still matches: no re-hash on start
    assert packed_digest(b"k", pack_state(other)) == digest_by_definition(b"k", one)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "n1~1", "n2~3"]), st.integers(0, 2**40), max_size=4),
    st.sampled_from(["a", "n1~1", "z"]),
    st.integers(1, 2**41),
)
def test_the_written_context_is_the_join_of_the_context_and_the_new_dot(context, actor, counter):
    new = Sibling(actor, counter, 1.0, b"v")
    assert written_context(context, new) == encode_context(join(context, {actor: counter}))


def test_a_live_write_forgets_a_retired_or_waiting_tombstone():
    purge = TombstonePurge(grace_s=10.0)
    live = KeyState((Sibling("a", 2, 5.0, b"v"),), {"a": 2})
    dead = KeyState((Sibling("a", 1, 5.0, None),), {"a": 1})
    assert purge.on_write(b"k", live) is False  # the shortcut with nothing waiting
    purge.on_write(b"k", dead)
    assert purge.due_at() == 15.0
    assert purge.on_write(b"k", live) is False
    assert purge.due_at() == float("inf")
    purge.on_write(b"k", dead)
    assert purge.retire_due(20.0, 100.0) == [b"k"]
    assert purge.on_write(b"k", live) is True  # it was retired: live in the comparison again
    assert not purge.retired
