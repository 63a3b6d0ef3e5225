"""The token ring: balance, preference lists, sloppy-quorum placements, ownership, minimal movement."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkv.core.ring import RING_SIZE, Placement, Ring, hash64, moved_keys, node_tokens

NAMES3 = ("n1", "n2", "n3")
NAMES5 = ("n1", "n2", "n3", "n4", "n5")
RING3 = Ring.from_nodes(NAMES3, 64, 3)
RING5 = Ring.from_nodes(NAMES5, 64, 3)
KEYS = [f"key-{i}".encode() for i in range(3000)]

keys = st.binary(min_size=1, max_size=64)
PROPS = settings(max_examples=200, deadline=None)


def test_three_nodes_share_the_ring_evenly():
    share = RING3.primary_ownership()
    assert set(share) == set(NAMES3)
    for node, fraction in share.items():
        assert abs(fraction - 1 / 3) <= 0.08, (node, fraction)
    assert sum(share.values()) == pytest.approx(1.0)


@PROPS
@given(keys)
def test_preference_list_has_n_distinct_nodes(key):
    pref = RING5.preference_list(key)
    assert len(pref) == 3 and len(set(pref)) == 3
    assert set(pref) <= set(NAMES5)


@PROPS
@given(keys)
def test_preference_list_is_a_prefix_of_the_walk(key):
    walk = list(RING5.walk(key))
    assert sorted(walk) == sorted(NAMES5), "the walk meets every member exactly once"
    assert tuple(walk[:3]) == RING5.preference_list(key)
    assert RING5.preference_list(key) == RING5.preference_list(key)  # cached answer is the same


@PROPS
@given(keys, st.sets(st.sampled_from(NAMES5)))
def test_placements_substitute_one_up_fallback_per_down_primary(key, down):
    def is_up(node: str) -> bool:
        return node not in down

    pref = RING5.preference_list(key)
    placed = RING5.placements(key, is_up)
    nodes = [p.node for p in placed]
    assert len(nodes) == len(set(nodes))
    assert not set(nodes) & down, "never a down node"
    primaries = [p.node for p in placed if p.role == "primary"]
    fallbacks = [p.node for p in placed if p.role == "fallback"]
    assert {p.role for p in placed} <= {"primary", "fallback"}
    assert primaries == [n for n in pref if n not in down]
    candidates = [n for n in RING5.walk(key) if n not in pref and n not in down]
    down_primaries = sum(1 for n in pref if n in down)
    assert fallbacks == candidates[:down_primaries], "the next healthy nodes on the walk, in order"
    assert len(placed) == min(3, len(primaries) + len(candidates))


def test_placements_with_everyone_up_are_the_preference_list():
    for key in KEYS[:50]:
        placed = RING5.placements(key, lambda node: True)
        assert placed == [Placement(n, "primary") for n in RING5.preference_list(key)]


@pytest.mark.parametrize(
    ("names", "rf"),
    [(NAMES3, 3), (NAMES3, 1), (NAMES5, 3), (NAMES5, 2), (NAMES5, 5), (("solo",), 3)],
)
def test_ownership_sums_to_n(names, rf):
    ring = Ring.from_nodes(names, 32, rf)
    share = ring.ownership()
    n = min(rf, len(names))
    assert ring.replication_factor == n
    assert sum(share.values()) == pytest.approx(n)
    assert all(0 < s <= 1 + 1e-9 for s in share.values())
    assert sum(ring.primary_ownership().values()) == pytest.approx(1.0)


def test_ownership_matches_where_keys_actually_land():
    """``ownership()`` is computed from token widths; check it against sampled preference lists."""
    share = RING5.ownership()
    primary = RING5.primary_ownership()
    for node in NAMES5:
        held = sum(1 for k in KEYS if node in RING5.preference_list(k)) / len(KEYS)
        first = sum(1 for k in KEYS if RING5.preference_list(k)[0] == node) / len(KEYS)
        assert held == pytest.approx(share[node], abs=0.04), node
        assert first == pytest.approx(primary[node], abs=0.04), node


def test_adding_a_node_moves_only_keys_it_takes_over():
    before = Ring.from_nodes(NAMES3, 64, 3)
    after = Ring.from_nodes((*NAMES3, "n4"), 64, 3)
    moved = moved_keys(before, after, KEYS)
    assert moved, "the new node takes over something"
    takes = [k for k in KEYS if "n4" in after.preference_list(k)]
    assert moved == takes
    for key in set(KEYS) - set(moved):
        assert before.preference_list(key) == after.preference_list(key)
    # with N=3 of 4 nodes, the new node holds about 3/4 of the keys
    assert len(moved) / len(KEYS) == pytest.approx(after.ownership()["n4"], abs=0.05)


def test_removing_a_node_moves_only_keys_it_held():
    before = RING5
    after = Ring.from_nodes([n for n in NAMES5 if n != "n3"], 64, 3)
    moved = moved_keys(before, after, KEYS)
    assert moved == [k for k in KEYS if "n3" in before.preference_list(k)]


def test_tokens_are_a_pure_function_of_names():
    assert node_tokens("n1", 64) == node_tokens("n1", 64)
    assert node_tokens("n1", 64) != node_tokens("n2", 64)
    assert node_tokens("n1", 8) == sorted(node_tokens("n1", 8))
    shuffled = Ring.from_nodes(("n3", "n1", "n2"), 64, 3)
    assert shuffled.tokens() == RING3.tokens() == {n: node_tokens(n, 64) for n in NAMES3}
    assert shuffled.members == RING3.members == NAMES3
    for key in KEYS[:200]:
        assert shuffled.preference_list(key) == RING3.preference_list(key)
    assert all(0 <= t < RING_SIZE for toks in RING3.tokens().values() for t in toks)


def test_key_on_a_token_belongs_to_that_token_and_the_ring_wraps():
    key = b"on-the-token"
    h = hash64(key)
    ring = Ring({"a": [h], "b": [(h + 10) % RING_SIZE], "c": [(h - 10) % RING_SIZE]}, 3)
    assert ring.preference_list(key) == ("a", "b", "c")
    last = Ring({"a": [5], "b": [RING_SIZE - 1]}, 1)
    high = next(k for k in KEYS if hash64(k) > 5)
    assert last.preference_list(high) == ("b",)
    wrap = Ring({"a": [0], "b": [1]}, 2)
    assert wrap.preference_list(KEYS[0]) == ("a", "b"), "past the last token the walk wraps to the first"


def test_replication_factor_is_validated_and_clamped():
    with pytest.raises(ValueError):
        Ring.from_nodes(NAMES3, 8, 0)
    big = Ring.from_nodes(NAMES3, 8, 7)
    assert big.replication_factor == 3
    assert big.preference_list(b"k") == tuple(big.walk(b"k"))
    empty = Ring({}, 3)
    assert empty.preference_list(b"k") == () and list(empty.walk(b"k")) == []
    assert empty.ownership() == {} and empty.placements(b"k", lambda n: True) == []


def test_ownership_terminates_when_a_member_has_no_tokens():
    code = "from zkv.core.ring import Ring; print(Ring({'a': [1], 'b': []}, 2).ownership())"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=2)
    except subprocess.TimeoutExpired:
        pytest.fail("Ring({'a': [1], 'b': []}, 2).ownership() did not return within 2 s")
    assert done.returncode == 0, done.stderr


def test_shared_token_does_not_count_the_whole_ring_twice():
    ring = Ring({"a": [5, 2**63], "b": [5]}, 1)
    assert sum(ring.primary_ownership().values()) == pytest.approx(1.0)
