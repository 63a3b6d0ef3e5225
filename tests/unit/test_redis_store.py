"""The redis engine's own business: the redis-server it runs, a given server's persistence, one round trip
per flush, and Redis failing under it (gone, killed, out of memory) without an unstored write ever
being taken as stored. What every engine does is in ``test_store_contract.py``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis

from zkv.core.versions import EMPTY, KeyState, update
from zkv.errors import StorageUnavailable
from zkv.storage.hints import open_hints
from zkv.storage.redis import MAX_BACKOFF_S, RedisStore
from zkv.storage.redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("needs_redis")


def state(value: bytes | None) -> KeyState:
    return update(EMPTY, "n1", {}, value, 1.0)[0]


class Clock:
    """A hand-moved clock for the engine's retry backoff."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def pass_backoff(self) -> None:
        self.now += MAX_BACKOFF_S + 0.01


@pytest.fixture
def server(tmp_path: Path):
    """A redis-server this test runs (as an operator's would be), appendfsync always."""
    srv = RedisServer(tmp_path / "external", "always")
    srv.start()
    yield srv
    srv.stop()


def exec_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))


@pytest.mark.parametrize(
    ("fsync", "appendfsync"), [("always", "always"), ("interval", "everysec"), ("never", "no")]
)
def test_the_node_runs_its_own_server_on_a_unix_socket_only(
    tmp_path: Path, fsync: str, appendfsync: str
) -> None:
    store = RedisStore(tmp_path, fsync=fsync, namespace="n1")
    server = store._server
    assert server is not None and server.running()
    assert Path(server.socket).parent == tmp_path / "redis" and store.url == "unix:" + server.socket
    config = store._client.config_get("*")
    assert config["port"] == "0" and config["appendonly"] == "yes" and config["appendfsync"] == appendfsync
    assert config["dir"] == str(tmp_path / "redis")
    store.put(b"k", state(b"v"))
    store.flush()
    store.save_meta({"generation": 3})
    assert store._client.config_get("appendfsync")["appendfsync"] == appendfsync  # restored after the meta
    pid = server.proc.pid
    store.close()
    assert not server.running() and not Path(f"/proc/{pid}/cmdline").exists() or _zombie(pid)
    again = RedisStore(tmp_path, fsync=fsync, namespace="n1")
    assert again.get(b"k") == state(b"v") and again.load_meta() == {"generation": 3}
    with pytest.raises(OSError, match="in use by another process"):
        RedisStore(tmp_path, fsync=fsync, namespace="n1")
    again.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_a_missing_redis_server_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="needs redis-server-nowhere on PATH .*apt-get install redis-server"):
        RedisStore(tmp_path, binary="redis-server-nowhere")
    RedisStore(tmp_path).close()  # the lock was released


def test_a_flush_is_one_round_trip_with_the_hints(server: RedisServer) -> None:
    store = RedisStore(None, url="unix:" + server.socket, namespace="n1")
    hints = open_hints("redis", None, store=store)
    watcher = redis.Redis(unix_socket_path=server.socket)
    before = exec_calls(watcher)
    for i in range(300):
        store.put(b"k%d" % i, state(b"v" * 100))
    store.delete(b"k0")
    hints.add("n2", b"k1", state(b"v"))
    assert store.needs_flush() and hints.needs_flush()
    store.flush()
    hints.flush()  # already sent with the store's writes
    assert exec_calls(watcher) == before + 1 and not hints.needs_flush()
    assert watcher.hlen("zkv:n1:states") == 299 and watcher.hlen("zkv:n1:hints") == 1
    store.flush()  # nothing new: no round trip
    assert exec_calls(watcher) == before + 1
    store.close()


def test_a_given_server_must_persist_what_fsync_always_promises(server: RedisServer) -> None:
    url = "unix:" + server.socket
    admin = redis.Redis(unix_socket_path=server.socket)
    admin.config_set("appendfsync", "everysec")
    with pytest.raises(OSError, match="appendfsync everysec.*fsync = 'always'"):
        RedisStore(None, url=url, fsync="always")
    admin.config_set("appendonly", "no")
    with pytest.raises(OSError, match="appendonly no"):
        RedisStore(None, url=url, fsync="always")
    interval = RedisStore(None, url=url, fsync="interval", namespace="n1")  # allowed, with a warning
    interval.save_meta({"generation": 1})
    assert admin.config_get("appendfsync")["appendfsync"] == "everysec"
    interval.close()
    admin.config_set("appendonly", "yes")
    admin.config_set("appendfsync", "always")
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(OSError, match="allkeys-lru: it would evict"):
        RedisStore(None, url=url, fsync="always")
    admin.config_set("maxmemory-policy", "noeviction")
    RedisStore(None, url=url, fsync="always").close()
    with pytest.raises(OSError, match="cannot use Redis at unix:/nonexistent"):
        RedisStore(None, url="unix:/nonexistent/redis.sock")


def test_a_redis_that_goes_away_refuses_writes_and_keeps_the_unstored_ones(server: RedisServer) -> None:
    clock = Clock()
    store = RedisStore(None, url="unix:" + server.socket, namespace="n1", clock=clock, cache_bytes=0)
    store.put(b"stored", state(b"1"))
    store.flush()
    server.stop()  # the socket vanishes
    store.put(b"held", state(b"2"))  # not known yet: buffered
    with pytest.raises(StorageUnavailable, match="not reachable"):
        store.flush()
    assert store.needs_flush() and not store.statistics().available
    with pytest.raises(StorageUnavailable):
        store.put(b"refused", state(b"3"))  # no new write while the held ones cannot be stored
    assert store.get(b"held") == state(b"2")  # the turn's own writes are still read
    with pytest.raises(StorageUnavailable):
        store.get(b"stored")  # a value only Redis has
    assert sorted(store.keys()) == [b"held", b"stored"]  # the directory is in memory
    server.start()
    with pytest.raises(StorageUnavailable):
        store.flush()  # still backing off: no call to Redis yet
    clock.pass_backoff()
    store.flush()
    assert not store.needs_flush() and store.statistics().available and store.statistics().failures == 1
    store.put(b"after", state(b"4"))
    store.flush()
    store.close()
    again = RedisStore(None, url="unix:" + server.socket, namespace="n1")
    assert sorted(again.keys()) == [b"after", b"held", b"stored"] and again.get(b"held") == state(b"2")
    again.close()


def test_the_own_server_killed_is_started_again(tmp_path: Path) -> None:
    clock = Clock()
    store = RedisStore(tmp_path, namespace="n1", clock=clock)
    store.put(b"a", state(b"1"))
    store.flush()
    assert store._server is not None
    os.kill(store._server.proc.pid, signal.SIGKILL)
    store._server.proc.wait()
    store.put(b"b", state(b"2"))
    store.flush()  # the dead server is noticed and started again; then the write goes in
    assert store._server.running()
    os.kill(store._server.proc.pid, signal.SIGKILL)
    store._server.proc.wait()
    store._server.binary = "redis-server-gone"  # now it cannot be started: errors until it can
    store.put(b"c", state(b"3"))
    with pytest.raises(StorageUnavailable, match="apt-get install redis-server"):
        store.flush()
    store._server.binary = "redis-server"
    clock.pass_backoff()
    store.flush()
    store.close()
    again = RedisStore(tmp_path, namespace="n1")
    assert [again.get(k) for k in (b"a", b"b", b"c")] == [state(b"1"), state(b"2"), state(b"3")]
    again.close()


def test_out_of_memory_refuses_the_turn_whole_then_recovers(server: RedisServer) -> None:
    clock = Clock()
    admin = redis.Redis(unix_socket_path=server.socket)
    store = RedisStore(None, url="unix:" + server.socket, namespace="n1", clock=clock)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", str(used + 2_000_000))
    failed = None
    for turn in range(40):
        for i in range(10):
            store.put(b"k%d-%d" % (turn, i), state(os.urandom(20_000)))
        try:
            store.flush()
        except StorageUnavailable as exc:
            failed = (turn, str(exc))
            break
    assert failed is not None and "out of memory" in failed[1], failed
    turn = failed[0]
    assert admin.hexists("zkv:n1:states", b"k%d-0" % turn) is False  # MULTI/EXEC: none of the turn went in
    assert store.get(b"k0-0") is not None  # reads go on
    admin.config_set("maxmemory", "0")
    clock.pass_backoff()
    store.flush()
    assert admin.hexists("zkv:n1:states", b"k%d-9" % turn)
    store.close()


def test_a_key_redis_lost_reads_as_missing_and_is_counted(server: RedisServer) -> None:
    store = RedisStore(None, url="unix:" + server.socket, namespace="n1", cache_bytes=0)
    store.put(b"k", state(b"v"))
    store.flush()
    redis.Redis(unix_socket_path=server.socket).hdel("zkv:n1:states", b"k")  # as a server that lost data
    assert store.get(b"k") is None and b"k" not in store
    store.put(b"j", state(b"v"))
    store.flush()
    redis.Redis(unix_socket_path=server.socket).hset("zkv:n1:states", b"j", b"\xc1 not msgpack")
    assert store.get(b"j") is None and b"j" not in store
    assert store.statistics().corrupt_records == 2
    store.close()


def test_a_leftover_server_of_a_previous_life_is_stopped_first(tmp_path: Path) -> None:
    store = RedisStore(tmp_path, namespace="n1")
    store.put(b"k", state(b"v"))
    store.flush()
    old = store._server.proc
    store._server.proc = None  # as if the node died and its child outlived it for a moment
    store._release()
    assert old.poll() is None
    again = RedisStore(tmp_path, namespace="n1")
    old.wait(timeout=10)  # it was told to stop before the new one started on the same files
    assert again.get(b"k") == state(b"v")
    again.close()
