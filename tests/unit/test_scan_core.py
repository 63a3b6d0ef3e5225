"""Key scans, pure: each node's page from its store, the merged page, its bound, cursors, coverage.

The paging test runs whole scans over stores filled as a cluster would fill them (every key on its
preference list, some replicas missing writes, tombstones, expired values, stale copies on non-replicas)
and checks that the pages together hold exactly the live keys, in order, each once. A merge that ends
its page past the smallest last key of a full answer loses keys: the broken variant proves the check
sees it.
"""

from __future__ import annotations

import random

import pytest

from zkv.core import scan as scanning
from zkv.core.ring import Ring
from zkv.core.scan import (
    MAX_SCAN_LIMIT,
    LocalPage,
    check_limit,
    decode_cursor,
    encode_cursor,
    local_page,
    merge_page,
    page_from_wire,
    page_to_wire,
)
from zkv.core.versions import EMPTY, KeyState, update
from zkv.errors import BadCursor, BadLimit, Unavailable
from zkv.storage.memory import MemoryStore

NOW = 1_000_000.0
NODES = ["n1", "n2", "n3", "n4", "n5"]


def written(value: bytes | None, base: KeyState = EMPTY, actor: str = "n1", expires: float | None = None):
    state, _ = update(base, actor, base.clock, value, NOW - 10, expires=expires)
    return state


def cluster(seed: int) -> tuple[Ring, dict[str, MemoryStore], set[bytes]]:
    """Five stores filled as replication would: what is live, and the stores."""
    rng = random.Random(seed)
    ring = Ring.from_nodes(NODES, vnodes=8, replication_factor=3)
    stores = {n: MemoryStore() for n in NODES}
    live: set[bytes] = set()
    for i in range(rng.randrange(50, 400)):
        key = rng.choice([b"a", b"b", b"user:", b""]) + b"%d" % i  # each key written once
        kind = rng.random()
        if kind < 0.15:
            state = written(None)  # a tombstone
        elif kind < 0.2:
            state = written(b"old", expires=NOW - 1)  # expired
        else:
            state = written(b"v%d" % i)
        replicas = list(ring.preference_list(key))
        holders = replicas if rng.random() < 0.7 else replicas[: rng.randrange(2, 4)]  # one may lack it
        for node in holders:
            stores[node].put(key, state)
        if rng.random() < 0.05:  # a stale copy on a non-replica (from before a rebalance)
            other = next(n for n in NODES if n not in replicas)
            stores[other].put(key, written(b"stale"))
        if state.values and not state.siblings[0].expired(NOW):
            live.add(key)
        else:
            live.discard(key)
    return ring, stores, live


def full_scan(ring, stores, prefix: bytes, limit: int, answering=None, merge=merge_page) -> list[bytes]:
    keys: list[bytes] = []
    cursor = None
    for _ in range(10_000):
        after = decode_cursor(cursor, prefix)
        answers = {
            n: page_from_wire(page_to_wire(local_page(store, prefix, after, limit, values=False)))
            for n, store in stores.items()
            if answering is None or n in answering
        }
        page = merge(ring, "quorum", answers, limit, NOW, False)
        assert len(page.entries) <= limit
        keys += page.keys
        if page.cursor is None:
            return keys
        cursor = page.cursor
    raise AssertionError("the scan never ended")


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("limit", [1, 3, 17, 1000])
def test_pages_together_hold_every_live_key_once_in_order(seed: int, limit: int) -> None:
    ring, stores, live = cluster(seed)
    for prefix in [b"", b"user:", b"a1"]:
        expected = sorted(k for k in live if k.startswith(prefix))
        assert full_scan(ring, stores, prefix, limit) == expected


@pytest.mark.parametrize("seed", range(6))
def test_a_quorum_scan_with_one_node_down_sees_every_live_key_all_its_replicas_hold(seed: int) -> None:
    ring, stores, live = cluster(seed)
    everywhere = {k for k in live if all(stores[n].get(k) is not None for n in ring.preference_list(k))}
    got = full_scan(ring, stores, b"", 7, answering=set(NODES) - {"n3"})
    assert everywhere <= set(got) <= live and got == sorted(got)


def test_a_merge_that_ends_past_the_smallest_full_last_key_loses_keys() -> None:
    def broken(ring, consistency, answers, limit, wall, values=True):  # ends at the largest last key
        stretched = {n: LocalPage(p.items, False) for n, p in answers.items()}
        page = merge_page(ring, consistency, stretched, limit, wall, values)
        ends = [p.items[-1][0] for p in answers.values() if p.full and p.items]
        return scanning.ScanPage(page.entries, encode_cursor(max(ends)) if ends else None)

    lost = 0
    for seed in range(6):
        ring, stores, live = cluster(seed)
        lost += len(set(live) - set(full_scan(ring, stores, b"", 5, merge=broken)))
    assert lost > 0


def test_coverage_all_needs_every_replica_and_quorum_a_majority_of_each_range() -> None:
    ring = Ring.from_nodes(NODES, vnodes=8, replication_factor=3)
    empty = LocalPage([], False)
    merge_page(ring, "quorum", {n: empty for n in NODES if n != "n3"}, 10, NOW)
    with pytest.raises(Unavailable) as caught:
        merge_page(ring, "all", {n: empty for n in NODES if n != "n3"}, 10, NOW)
    assert "n3" in caught.value.message and caught.value.required == 3
    with pytest.raises(Unavailable):  # two of five down: some range has only one of its three
        merge_page(ring, "quorum", {n: empty for n in NODES if n not in ("n1", "n2")}, 10, NOW)
    merge_page(ring, "one", {"n1": empty, "n2": empty, "n3": empty}, 10, NOW)  # 3 of 5 cover every range


def test_a_node_page_holds_at_most_limit_keys_and_stops_at_its_byte_budget() -> None:
    store = MemoryStore()
    for i in range(100):
        store.put(b"k%03d" % i, written(b"x" * 1000))
    page = local_page(store, b"", None, 10, values=True)
    assert [k for k, _ in page.items] == [b"k%03d" % i for i in range(10)] and page.full
    small = local_page(store, b"", b"k050", 10, values=True, max_bytes=2500)
    assert [k for k, _ in small.items] == [b"k051", b"k052", b"k053"] and small.full
    keys_only = local_page(store, b"", b"k095", 10, values=False)
    assert len(keys_only.items) == 4 and not keys_only.full
    assert all(s.value == b"" for _, st in keys_only.items for s in st.siblings)


def test_values_are_the_merged_live_siblings_and_keys_only_carries_none() -> None:
    ring = Ring.from_nodes(["n1", "n2", "n3"], vnodes=4, replication_factor=3)
    a = written(b"one", actor="n1")
    b = written(b"two", actor="n2")  # concurrent with a: two siblings once merged
    answers = {"n1": LocalPage([(b"k", a)], False), "n2": LocalPage([(b"k", b)], False)}
    page = merge_page(ring, "quorum", answers, 10, NOW)
    assert page.cursor is None and sorted(page.entries[0].values) == [b"one", b"two"]
    assert merge_page(ring, "quorum", answers, 10, NOW, values=False).entries[0].values == ()
    deleted = {"n1": LocalPage([(b"k", written(None, base=a))], False), "n2": LocalPage([(b"k", a)], False)}
    assert merge_page(ring, "quorum", deleted, 10, NOW).entries == ()  # the tombstone supersedes a


@pytest.mark.parametrize("limit", [0, -1, MAX_SCAN_LIMIT + 1, 10**12, 1.5, "10", True, None])
def test_bad_limits_are_bad_limit(limit: object) -> None:
    with pytest.raises(BadLimit):
        check_limit(limit)


def test_cursors_round_trip_and_foreign_text_is_bad_cursor() -> None:
    assert decode_cursor(encode_cursor(b"user:\x00\xff"), b"user:") == b"user:\x00\xff"
    assert decode_cursor(None, b"") is None and decode_cursor("", b"") is None
    for bad in ["!!!", "abc", encode_cursor(b"a")[:-1] + "*", 12, b"x"]:
        with pytest.raises(BadCursor):
            decode_cursor(bad, b"")
    with pytest.raises(BadCursor):  # a cursor of another prefix's scan
        decode_cursor(encode_cursor(b"other"), b"user:")
