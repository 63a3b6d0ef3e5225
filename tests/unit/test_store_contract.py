"""The storage engine contract, run on every engine: memory, log and redis.

Every behaviour the core relies on that is not about one engine's own format: round trips, tombstones,
reading the turn's own writes, big turns, digests, group commit, metadata, hints, and a dict model with
flushes, reopens and crashes. Durable engines (log, redis) must also keep what was flushed across a
reopen and a crash (a kill -9 of the node). The log engine's file format (segments, torn tails,
compaction, index files) is tested in ``test_log_engine.py``; the redis engine's server handling
(its own redis-server, failures, a given server's persistence) in ``test_redis_store.py``.

The redis engine runs here against one redis-server per module (appendfsync always, a unix socket in
a temporary folder), each store under a fresh key prefix, so reopening a store costs no server start.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkv.core.merkle import state_digest
from zkv.core.versions import EMPTY, KeyState, update
from zkv.storage import open_store
from zkv.storage.hints import open_hints
from zkv.storage.log import LogStore
from zkv.storage.memory import MemoryStore
from zkv.storage.redis import RedisStore
from zkv.storage.redis_server import RedisServer

SMALL = 4096  # the log engine's segment size here, so a few hundred records span several segments
ENGINES = ["memory", "log", "redis"]
_prefixes = itertools.count()


def state(value: bytes | None, actor: str = "n1", ts: float = 1.0, base: KeyState = EMPTY) -> KeyState:
    return update(base, actor, dict(base.clock), value, ts)[0]


def value_of(store: Any, key: bytes) -> bytes | None:
    got = store.get(key)
    return None if got is None else got.siblings[0].value


def contents(store: Any) -> dict[bytes, KeyState | None]:
    return {k: store.get(k) for k in list(store.keys())}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str | None]:
    """One redis-server for the module's redis cases (None without the binary: see ``needs_redis``)."""
    if shutil.which("redis-server") is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="zkv-contract-"))
    server = RedisServer(folder, "always")
    server.start()
    yield "unix:" + server.socket
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


class Engine:
    """Opens, reopens and crashes stores of one engine, in one folder (or under one Redis prefix)."""

    def __init__(self, name: str, folder: Path, redis_url: str | None) -> None:
        self.name = name
        self.durable = name != "memory"
        self.folder = folder
        self.redis_url = redis_url
        self.prefix = f"t{next(_prefixes)}"
        self.options: dict[str, Any] = {}

    def open(self, **options: Any) -> Any:
        self.options = options
        if self.name == "memory":
            return MemoryStore()
        if self.name == "log":
            options = {"segment_bytes": SMALL, "compaction_min_bytes": 0, **options}
            return LogStore(self.folder, **options)
        return RedisStore(None, url=self.redis_url, namespace=self.prefix, **options)

    def reopen(self, store: Any) -> Any:
        store.close()
        return self.open(**self.options)

    def crash(self, store: Any) -> Any:
        """What a kill -9 of the node leaves: what reached the OS (log) or Redis (redis), no close."""
        if self.name == "log":
            image = self.folder.with_name(self.folder.name + "-crash")
            for path in sorted(self.folder.rglob("*")):
                target = image / path.relative_to(self.folder)
                if path.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
            store.close()
            shutil.rmtree(self.folder)
            image.rename(self.folder)
        elif self.name == "redis":
            store._closed = True  # the process is gone: nothing more is sent
            store._client.close()
        return self.open(**self.options)

    def hints(self, store: Any, **options: Any) -> Any:
        return open_hints(self.name, self.folder, store=store, **options)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str | None) -> Engine:
    if request.param == "redis":
        request.getfixturevalue("needs_redis")  # skips, or fails in CI, without redis-server
    return Engine(request.param, tmp_path / "store", redis_url)


# ---------------------------------------------------------------------------------------------- basics


def test_put_get_overwrite_delete_round_trip(engine: Engine) -> None:
    store = engine.open()
    assert store.get(b"k") is None and len(store) == 0
    first = state(b"v1")
    store.put(b"k", first)
    assert store.get(b"k") == first
    second = state(b"v2", base=first)
    store.put(b"k", second)
    store.put(b"other", state(b"\x00" * 1000))
    assert store.get(b"k") == second and len(store) == 2 and b"k" in store
    store.delete(b"other")
    store.delete(b"never-there")
    assert store.get(b"other") is None and sorted(store.keys()) == [b"k"]
    store.flush()
    if engine.durable:
        store = engine.reopen(store)
    assert store.get(b"k") == second and store.get(b"other") is None and len(store) == 1
    assert store.statistics().keys == 1 and store.statistics().engine == engine.name
    store.close()


def test_tombstone_states_are_stored_like_values(engine: Engine) -> None:
    store = engine.open()
    tomb = state(None, base=state(b"v"))
    assert tomb.is_deleted
    store.put(b"k", tomb)
    store.flush()
    if engine.durable:
        store = engine.reopen(store)
    assert store.get(b"k") == tomb and list(store.keys()) == [b"k"]
    store.close()


def test_reads_see_writes_of_the_same_turn_before_the_flush(engine: Engine) -> None:
    store = engine.open() if engine.name == "memory" else engine.open(cache_bytes=0)
    store.put(b"k", state(b"v"))
    assert store.needs_flush() == engine.durable
    assert value_of(store, b"k") == b"v"
    store.flush()
    assert not store.needs_flush()
    assert value_of(store, b"k") == b"v"  # now from the disk or from Redis: there is no cache
    store.close()


@pytest.mark.parametrize("engine", ["log", "redis"], indirect=True)
def test_values_live_behind_a_bounded_cache(engine: Engine) -> None:
    store = engine.open(cache_bytes=20_000)
    for i in range(1000):
        store.put(b"key%d" % i, state(b"%d" % i * 20))
    store.flush()
    assert 0 < store.statistics().cache_bytes <= 20_000
    for i in range(1000):
        assert value_of(store, b"key%d" % i) == b"%d" % i * 20
    assert store.statistics().values_read > 800
    store.close()


def test_a_big_turn_and_big_values(engine: Engine) -> None:
    store = engine.open() if engine.name == "memory" else engine.open(cache_bytes=0)
    big = b"x" * 10_000
    for i in range(300):  # 3 MB in one turn
        store.put(b"k%d" % i, state(big + b"%d" % i))
    store.put(b"huge", state(bytes(range(256)) * 4096))
    assert all(value_of(store, b"k%d" % i) == big + b"%d" % i for i in range(300))
    huge = store.get(b"huge")
    store.flush()
    if engine.durable:
        store = engine.reopen(store)
    assert len(store) == 301 and store.get(b"huge") == huge and value_of(store, b"k299") == big + b"299"
    store.close()


def test_digest_summarises_the_state_without_reading_it(engine: Engine) -> None:
    store = engine.open()
    s = state(b"v")
    store.put(b"k", s)
    assert store.digest(b"k") == state_digest(b"k", s) and store.digest(b"missing") is None
    store.flush()
    if engine.durable:
        store = engine.reopen(store)
        assert store.digest(b"k") == state_digest(b"k", s)
        assert store.keeps_digests and store.statistics().values_read == 0
    store.close()


def test_open_store_names_the_engines(engine: Engine) -> None:
    options: dict[str, Any] = {"redis_url": engine.redis_url, "namespace": engine.prefix}
    store = open_store(engine.name, engine.folder, "always", cache_bytes=1 << 20, **options)
    assert store.statistics().engine == engine.name
    store.close()
    with pytest.raises(ValueError, match="memory, log, redis"):
        open_store("rocks", engine.folder)


def test_a_flush_is_one_group_commit(engine: Engine) -> None:
    store = engine.open()
    for i in range(100):
        store.put(b"k%d" % i, state(b"v"))
    store.flush()
    flushes = 1 if engine.durable else 0
    assert store.statistics().flushes == flushes
    store.flush()  # nothing written since: nothing to commit
    assert store.statistics().flushes == flushes and not store.needs_flush()
    store.close()


@pytest.mark.parametrize("engine", ["log", "redis"], indirect=True)  # memory forgets, by design
def test_what_was_flushed_survives_a_crash(engine: Engine) -> None:
    store = engine.open()
    for i in range(50):
        store.put(b"k%d" % i, state(b"v%d" % i))
    store.delete(b"k0")
    store.flush()
    store.put(b"late", state(b"never flushed"))
    store = engine.crash(store)
    assert len(store) == 49 and value_of(store, b"k49") == b"v49" and store.get(b"k0") is None
    assert store.get(b"late") is None or value_of(store, b"late") == b"never flushed"
    store.close()


# ---------------------------------------------------------------------------------------------- paxos


def test_paxos_acceptor_state_is_kept_apart_from_the_keys(engine: Engine) -> None:
    store = engine.open()
    assert store.paxos_get(b"k") is None
    store.put(b"k", state(b"v"))
    store.paxos_put(b"k", b"promise 1")
    store.paxos_put(b"k", b"promise 2")
    store.paxos_put(b"only-paxos", b"x" * 5000)
    assert store.paxos_get(b"k") == b"promise 2"  # read back before the flush, as key states are
    assert store.needs_flush() or not engine.durable
    store.flush()
    assert sorted(store.keys()) == [b"k"] and len(store) == 1  # acceptor state is no key
    if engine.durable:
        store = engine.reopen(store)
        assert store.paxos_get(b"k") == b"promise 2" and store.paxos_get(b"only-paxos") == b"x" * 5000
        assert value_of(store, b"k") == b"v"
    store.close()


@pytest.mark.parametrize("engine", ["log", "redis"], indirect=True)
def test_flushed_paxos_state_survives_a_crash(engine: Engine) -> None:
    store = engine.open()
    for i in range(200):
        store.paxos_put(b"k%d" % (i % 20), b"ballot %d" % i)
    store.flush()
    store.paxos_put(b"late", b"never flushed")
    store = engine.crash(store)
    assert store.paxos_get(b"k19") == b"ballot 199" and store.paxos_get(b"k0") == b"ballot 180"
    assert store.paxos_get(b"late") in (None, b"never flushed")
    store.close()


# ---------------------------------------------------------------------------------------------- metadata


def test_node_metadata_is_replaced_whole(engine: Engine) -> None:
    store = engine.open()
    assert store.load_meta() == {}
    store.save_meta({"generation": 7, "actor": "n1~a", "tokens": [1, 2**63]})
    store.save_meta({"generation": 8, "actor": "n1~b", "clean_stop": False})
    meta = store.load_meta()
    meta["generation"] = 0  # a copy: changing it changes nothing stored
    if engine.durable:
        store = engine.crash(store)  # saved means durable at once, with no flush
    assert store.load_meta() == {"generation": 8, "actor": "n1~b", "clean_stop": False}
    store.close()


# ---------------------------------------------------------------------------------------------- hints


def test_hints_queue_per_target_and_survive_a_restart(engine: Engine) -> None:
    store = engine.open()
    hints = engine.hints(store)
    a1 = hints.add("n2", b"k1", state(b"v1"))
    a2 = hints.add("n2", b"k2", state(b"v2"))
    b1 = hints.add("node/3", b"k1", state(b"v1"))
    assert hints.counts() == {"n2": 2, "node/3": 1} and hints.bytes() > 0 and len(hints) == 3
    assert [(i, k) for i, k, _ in hints.pending("n2")] == [(a1, b"k1"), (a2, b"k2")]
    hints.remove("n2", [a1, 12345])
    hints.flush()
    store.flush()
    if engine.durable:
        hints.close()
        store = engine.reopen(store)
        hints = engine.hints(store)
    assert hints.counts() == {"n2": 1, "node/3": 1}
    [(hint_id, key, got)] = list(hints.pending("n2"))
    assert (hint_id, key, got.values) == (a2, b"k2", [b"v2"])
    assert [i for i, _, _ in hints.pending("node/3")] == [b1]
    assert hints.add("n2", b"k3", state(b"v3")) > b1  # ids never reused while hints remain
    hints.close()
    store.close()


def test_a_full_hint_store_drops_the_oldest(engine: Engine) -> None:
    store = engine.open()
    hints = engine.hints(store, max_hints=5)
    ids = [hints.add("n2", b"k%d" % i, state(b"v")) for i in range(4)]
    ids += [hints.add("n3", b"k%d" % i, state(b"v")) for i in range(3)]
    assert len(hints) == 5 and hints.statistics().dropped == 2
    assert [i for i, _, _ in hints.pending("n2")] == ids[2:4]
    assert [i for i, _, _ in hints.pending("n3")] == ids[4:]
    hints.flush()
    if engine.durable:
        hints.close()
        store = engine.reopen(store)
        hints = engine.hints(store, max_hints=5)
        assert [i for i, _, _ in hints.pending("n2")] == ids[2:4] and len(hints) == 5
    hints.close()
    store.close()


# ---------------------------------------------------------------------------------------------- a dict model

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 12), st.binary(max_size=300)),
        st.tuples(st.just("tomb"), st.integers(0, 12), st.none()),
        st.tuples(st.just("delete"), st.integers(0, 12), st.none()),
        st.tuples(st.sampled_from(["flush", "compact", "reopen", "crash"]), st.none(), st.none()),
    ),
    max_size=60,
)


def check_like_a_dict(engine_for: Callable[[], Engine], ops: list) -> None:
    """Apply ``ops`` to a store and to a dict; after a crash, each key is as of the last flush or later."""
    engine = engine_for()
    store = engine.open(cache_bytes=500) if engine.name != "memory" else engine.open()
    model: dict[bytes, KeyState] = {}
    durable: dict[bytes, KeyState] = {}  # as of the last flush
    since: dict[bytes, list[KeyState | None]] = {}  # what each key was set to after it (None: deleted)
    for n, (op, k, value) in enumerate(ops):
        key = b"key-%d" % k if k is not None else b""
        if op in ("put", "tomb"):
            model[key] = state(value if op == "put" else None, ts=n)
            store.put(key, model[key])
            since.setdefault(key, []).append(model[key])
        elif op == "delete":
            if model.pop(key, None) is not None:
                since.setdefault(key, []).append(None)
            store.delete(key)
        elif op == "compact":
            store.compact_step(budget_s=0.0)
        elif op == "flush" or (op in ("reopen", "crash") and not engine.durable):
            store.flush()
            durable, since = dict(model), {}
        elif op == "reopen":
            store = engine.reopen(store)
            durable, since = dict(model), {}
        else:  # crash: what was flushed is promised; a later write may or may not be there
            store = engine.crash(store)
            model = contents(store)  # type: ignore[assignment]
            for key in model.keys() | durable.keys() | since.keys():
                assert model.get(key) in [durable.get(key), *since.get(key, [])], key
            durable, since = dict(model), {}
        assert contents(store) == model
        assert len(store) == len(model)
    store.close()


@pytest.mark.parametrize("name", ENGINES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_the_store_behaves_like_a_dict(
    name: str, redis_url: str | None, request: pytest.FixtureRequest, ops: list
) -> None:
    if name == "redis":
        request.getfixturevalue("needs_redis")
    with tempfile.TemporaryDirectory() as tmp:
        check_like_a_dict(lambda: Engine(name, Path(tmp) / "d", redis_url), ops)


def test_scan_pages_keys_in_byte_order_after_a_cursor_within_a_prefix(engine: Engine) -> None:
    store = engine.open()
    keys = [b"a", b"b\x00", b"ba", b"bb", b"b\xff", b"c", b"user:1", b"user:10", b"user:2", b"zz"]
    for k in reversed(keys):
        store.put(k, state(b"v" + k))
    store.put(b"gone", state(None))  # a tombstone is a stored key: the engine lists it, the scan hides it
    store.delete(b"zz")  # removed for good: not listed
    store.flush()
    every = sorted([*keys[:-1], b"gone"])
    for reopen in [False, True] if engine.durable else [False]:
        current = engine.reopen(store) if reopen else store
        assert current.scan(b"", None, 100) == every
        assert current.scan(b"", None, 3) == every[:3]
        assert current.scan(b"", every[2], 3) == every[3:6]
        assert current.scan(b"b", None, 10) == [b"b\x00", b"ba", b"bb", b"b\xff"]  # bytes, not text
        assert current.scan(b"b", b"ba", 10) == [b"bb", b"b\xff"]
        assert current.scan(b"b", b"a", 2) == [b"b\x00", b"ba"]  # a cursor before the prefix
        assert current.scan(b"user:", b"user:1", 10) == [b"user:10", b"user:2"]
        assert current.scan(b"nothing", None, 10) == [] and current.scan(b"", b"zz", 10) == []
        store = current
    store.close()
