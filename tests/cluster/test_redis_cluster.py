"""The cluster suite's core cases on ``engine = "redis"``: three real nodes, each supervising its own
redis-server (unix socket in its data dir, no TCP port), plus what only this engine has: restarts keep
the data, and a wiped node is refilled by anti-entropy.

The cases shared with the memory engine are the same test functions, collected again here with the
``make_cluster`` fixture below, which puts every cluster of this module on the redis engine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from test_handoff import test_writes_while_a_replica_is_down_reach_it_when_it_returns  # noqa: F401
from test_replication import (  # noqa: F401
    test_delete_while_replica_cut_off_does_not_resurrect,
    test_deleted_key_stays_deleted_after_a_replica_restarts,
    test_put_get_delete_at_every_level,
    test_read_repair_fills_a_replica_that_missed_a_write,
    test_same_context_puts_become_siblings_and_merge,
)

from zkv import Client, StorageUnavailable, ZkvError
from zkv.storage.redis_server import RedisServer
from zkv.testing.localcluster import LocalCluster, wait_until

pytestmark = pytest.mark.usefixtures("needs_redis")


@pytest.fixture
def make_cluster(make_cluster):
    def make(nodes: int = 3, start: bool = True, **settings):
        settings.setdefault("engine", "redis")
        return make_cluster(nodes, start, **settings)

    return make


@pytest.fixture
def cluster3(make_cluster) -> LocalCluster:
    return make_cluster(3)


def redis_pid(cluster: LocalCluster, name: str) -> int | None:
    path = cluster.workdir / "data" / name / "redis" / "redis.pid"
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_the_nodes_run_their_own_redis_and_keep_data_across_a_restart(cluster3: LocalCluster) -> None:
    with cluster3.client() as c:
        assert c.status("n1").storage.engine == "redis"
        assert c.put_many([(f"k{i}", f"v{i}") for i in range(200)], consistency="all") == [None] * 200
    pid = redis_pid(cluster3, "n1")
    assert pid is not None and not gone(pid)
    assert cluster3.stop("n1") == 0
    wait_until(lambda: gone(pid), 10, "n1's redis-server to stop with it")
    cluster3.start("n1")
    with cluster3.client() as c:
        assert c.status("n1").keys == 200
        assert all(c.replicas(f"k{i}")["n1"].values == [f"v{i}".encode()] for i in range(0, 200, 7))


def test_a_wiped_replica_is_refilled_by_anti_entropy(make_cluster) -> None:
    cluster: LocalCluster = make_cluster(3, anti_entropy_interval_ms=500)
    keys = [f"key-{i}" for i in range(2000)]
    with cluster.client() as c:
        for start in range(0, len(keys), 500):
            chunk = [(k, f"v-{k}") for k in keys[start : start + 500]]
            assert c.put_many(chunk, consistency="all") == [None] * len(chunk)
        c.delete(keys[0], consistency="all", context=c.get(keys[0]))
    pid = redis_pid(cluster, "n3")
    cluster.kill("n3")
    wait_until(lambda: gone(pid), 10, "n3's redis-server to end with the node (kill -9)")
    shutil.rmtree(cluster.workdir / "data" / "n3")
    cluster.start("n3")
    with cluster.client(timeout=2.0) as c:
        wait_until(lambda: c.status("n3").keys == len(keys), 60, "n3 to hold every key again", 0.2)
        status = c.status("n3")
        assert status.requests.get("get/quorum", 0) == 0  # refilled with no client read
        assert status.anti_entropy.keys_received >= len(keys)  # it came back empty: all came by AAE
        for k in keys[1::97]:
            assert c.replicas(k)["n3"].values == [f"v-{k}".encode()]
        tomb = c.replicas(keys[0])["n3"]
        assert tomb.values == [] and tomb.versions and tomb.versions[0].is_tombstone


class QuorumLoad:
    """Writes fresh keys at consistency ``quorum`` from a thread; an ack means 2 of 3 replicas stored it."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.acked: list[bytes] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        with self.cluster.client(timeout=1.0) as client:
            while not self._stop.is_set():
                keys = [b"load-%d" % (i + j) for j in range(16)]
                i += 16
                results = client.put_many([(k, k) for k in keys], consistency="quorum")
                for key, result in zip(keys, results, strict=True):
                    if isinstance(result, ZkvError):
                        self.failed += 1
                    else:
                        self.acked.append(key)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def holders(client: Client, key: bytes) -> int:
    return sum(
        1
        for state in client.replicas(key).values()
        if not isinstance(state, ZkvError) and key in state.values
    )


def test_kill_9_under_quorum_writes_loses_no_acknowledged_write(make_cluster, record_property) -> None:
    """Six cycles: a node (and, every other cycle, its redis-server too) is killed with SIGKILL at a random
    moment under quorum writes and started again. Every acknowledged write must then be on at least two
    replicas: W = 2 nodes stored it before the ack. Anti-entropy and read repair are off, so nothing
    refills a replica that lost what it acknowledged; hints only carry writes made while it was down."""
    rng = random.Random(23)
    cluster = make_cluster(3, fsync="always", anti_entropy_interval_ms=3_600_000, read_repair_chance=0.0)
    load = QuorumLoad(cluster)
    checked = 0
    try:
        for cycle in range(6):
            victim = cluster.names[cycle % 3]
            seen = len(load.acked)
            wait_until(lambda s=seen: len(load.acked) > s + 100, 30, "writes to be acknowledged")
            time.sleep(rng.uniform(0.0, 0.3))  # a random moment under load, not a synchronisation
            server = redis_pid(cluster, victim)
            if cycle % 2 and server is not None:
                os.kill(server, signal.SIGKILL)  # the node's Redis dies with it, unsynced buffers and all
            cluster.kill(victim)
            acked = list(load.acked)
            cluster.start(victim)
            sample = acked[seen:] + rng.sample(acked[:seen], min(300, seen))
            with cluster.client(timeout=2.0) as client:
                for key in sample:
                    assert holders(client, key) >= 2, (cycle, victim, key)
            checked += len(sample)
    finally:
        load.stop()
    assert load.acked and checked > 600
    record_property("acknowledged_writes_checked", checked)
    record_property("writes_failed", load.failed)


def with_external_redis(cluster: LocalCluster, name: str, socket: str) -> None:
    """Point ``name`` at a redis-server the test runs (``redis = "unix:..."`` in its [[node]] table)."""
    for path in (cluster.config_path, cluster.initial_config_path):
        text = path.read_text()
        line = f'data_dir = "data/{name}"'
        path.write_text(text.replace(line, f'{line}\nredis = "unix:{socket}"'))


def test_redis_killed_under_a_node_gives_clear_errors_then_recovers(make_cluster, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "ops-redis", "always")
    server.start()
    try:
        cluster: LocalCluster = make_cluster(3, start=False, anti_entropy_interval_ms=3_600_000)
        with_external_redis(cluster, "n1", server.socket)
        cluster.start()
        with Client([cluster.addresses["n1"]], pinned=True, timeout=5.0) as n1, cluster.client() as c:
            assert n1.status("n1").storage.engine == "redis"
            assert n1.put_many([(f"k{i}", "before") for i in range(50)], consistency="all") == [None] * 50
            os.kill(server.proc.pid, signal.SIGKILL)  # the socket's server is gone mid-run
            server.proc.wait()
            # the turn that finds Redis gone cannot acknowledge its write: a clear error, never an ack
            with pytest.raises(StorageUnavailable, match="Redis at unix:.* not reachable"):
                n1.put("during-1", "x", consistency="one")
            status = n1.status("n1")  # the node answers what it can
            assert status.storage.available is False and status.disk.state == "unavailable"
            # from then on n1 hands the writes it coordinates to another replica and refuses replica
            # writes, so quorum writes go on and "all" says why it cannot be met
            assert n1.put_many([(f"q{i}", "quorum") for i in range(20)], consistency="quorum") == [None] * 20
            assert c.put_many([(f"r{i}", "quorum") for i in range(20)], consistency="quorum") == [None] * 20
            with pytest.raises(StorageUnavailable, match="n1 refused the write: storage unavailable"):
                n1.put("during-2", "x", consistency="all")
            assert n1.get("k7", consistency="quorum").values == [b"before"]
            server.start()  # the operator brings it back, on the same files and socket
            wait_until(
                lambda: n1.put_many([("after", "y")], consistency="all") == [None], 20, "n1 to write again"
            )
            status = n1.status("n1")
            assert status.storage.available is True and status.disk.state == "ok"
            replicas = n1.replicas("k7")
            assert replicas["n1"].values == [b"before"]  # stored before the kill: still there
            assert set(n1.get("after", consistency="all").values) == {b"y"}  # failed tries may add siblings
    finally:
        server.stop()


def test_its_own_redis_server_killed_is_started_again_by_the_node(cluster3: LocalCluster) -> None:
    with Client([cluster3.addresses["n2"]], pinned=True, timeout=5.0) as n2:
        assert n2.put_many([(f"k{i}", "v") for i in range(50)], consistency="all") == [None] * 50
        old = redis_pid(cluster3, "n2")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: gone(old), 10, "the redis-server to die")
        wait_until(
            lambda: n2.put_many([("after", "y")], consistency="all") == [None], 20, "n2 to write again"
        )
        new = redis_pid(cluster3, "n2")
        assert new is not None and new != old and not gone(new)
        assert all(n2.replicas(f"k{i}")["n2"].values == [b"v"] for i in range(0, 50, 5))
    assert "redis-server exited" in cluster3.log("n2")
