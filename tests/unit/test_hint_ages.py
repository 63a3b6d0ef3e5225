"""The age of each target's oldest pending hint, as the handoff reports it (pure: time is passed in)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from zkv.core.handoff import AGE_RESOLUTION_S, Handoff
from zkv.core.versions import KeyState, Sibling
from zkv.storage.hints import HintStore, MemoryHintStore


def _state(n: int) -> KeyState:
    return KeyState((Sibling("n1~a", n, 0.0, b"v%d" % n),), {"n1~a": n})


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryHintStore | HintStore:
    if request.param == "memory":
        return MemoryHintStore()
    return HintStore(tmp_path / "hints", fsync="never")


def test_no_hints_no_age(store: MemoryHintStore | HintStore) -> None:
    handoff = Handoff(store, 1.0, 2.0)
    assert handoff.oldest_age("n2", 10.0) is None
    assert handoff.statistics(10.0).oldest_age_s == {}


def test_age_grows_with_time_and_counts_from_the_oldest_hint(store: MemoryHintStore | HintStore) -> None:
    handoff = Handoff(store, 1.0, 2.0)
    handoff.keep("n2", b"a", _state(1), now=100.0)
    handoff.keep("n2", b"b", _state(2), now=105.0)
    handoff.keep("n3", b"c", _state(3), now=108.0)
    stats = handoff.statistics(110.0)
    assert stats.pending == {"n2": 2, "n3": 1}
    assert stats.oldest_age_s == {"n2": 10.0, "n3": 2.0}
    assert handoff.statistics(130.0).oldest_age_s == {"n2": 30.0, "n3": 22.0}


def test_delivered_hints_take_their_age_with_them(store: MemoryHintStore | HintStore) -> None:
    handoff = Handoff(store, 1.0, 2.0)
    for i, at in enumerate((100.0, 100.2, 104.0, 109.0)):
        handoff.keep("n2", b"k%d" % i, _state(i + 1), now=at)
    ids = itertools.count(1)
    (target, msg), *_ = handoff.offers(110.0, lambda n: True, ids)
    assert target == "n2" and len(msg["items"]) == 4
    # deliver only the first two (a smaller batch): the oldest left was kept at 104
    store.remove("n2", [hint_id for hint_id, _, _ in list(store.pending("n2"))[:2]])
    assert handoff.oldest_age("n2", 110.0) == pytest.approx(6.0)
    store.remove("n2", [hint_id for hint_id, _, _ in list(store.pending("n2"))[:1]])
    assert handoff.oldest_age("n2", 110.0) == pytest.approx(1.0)
    handoff.on_delivered(msg["id"], 111.0)
    assert handoff.oldest_age("n2", 111.0) is None
    handoff.keep("n2", b"again", _state(9), now=120.0)
    assert handoff.oldest_age("n2", 121.0) == pytest.approx(1.0)  # a fresh queue: a fresh age


def test_hints_within_the_resolution_share_a_time(store: MemoryHintStore | HintStore) -> None:
    handoff = Handoff(store, 1.0, 2.0)
    handoff.keep("n2", b"a", _state(1), now=50.0)
    handoff.keep("n2", b"b", _state(2), now=50.0 + AGE_RESOLUTION_S / 2)
    store.remove("n2", [next(iter(store.pending("n2")))[0]])
    age = handoff.oldest_age("n2", 60.0)
    assert age is not None and 10.0 - AGE_RESOLUTION_S <= age <= 10.0


def test_dropped_hints_end_the_age(store: MemoryHintStore | HintStore) -> None:
    handoff = Handoff(store, 1.0, 2.0)
    handoff.keep("n2", b"a", _state(1), now=1.0)
    handoff.drop("n2")
    assert handoff.oldest_age("n2", 5.0) is None


def test_hints_loaded_from_disk_count_from_the_first_look(tmp_path: Path) -> None:
    store = HintStore(tmp_path / "hints", fsync="always")
    Handoff(store, 1.0, 2.0).keep("n2", b"a", _state(1), now=1.0)
    store.flush()
    store.close()
    reopened = HintStore(tmp_path / "hints", fsync="always")
    try:
        handoff = Handoff(reopened, 1.0, 2.0)  # a restarted node: the hint is there, its time is not
        handoff.offers(500.0, lambda n: False, itertools.count(1))
        assert handoff.statistics(503.0).oldest_age_s == {"n2": 3.0}  # at least 3 s (a lower bound)
    finally:
        reopened.close()
