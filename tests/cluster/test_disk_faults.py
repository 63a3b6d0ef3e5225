"""A full disk and a failing fsync on one node of a real 3-node cluster (log engine).

The full disk is real: n3's data dir is a small tmpfs (root only; skipped otherwise, saying so). The
fsync error comes through the storage test seam (``ZKV_TEST_FSYNC_FAULT``, zkv/storage/segment.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zkv import Client
from zkv.core.storagehealth import StorageHealthStats
from zkv.errors import StorageError, StorageFull
from zkv.storage.log import META_FILE, LogStore
from zkv.testing.localcluster import LocalCluster, wait_until

TMPFS_BYTES = 8 * 1024 * 1024
BALLAST_BYTES = 2 * 1024 * 1024 + 512 * 1024  # what the "operator" deletes to free space
VALUE = b"x" * 4096


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "ab", buffering=0) as f:
        block = b"\0" * 65536
        while True:
            try:
                f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                block = block[: len(block) // 2]
                if not block:
                    return


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``tmpfs(path)`` mounts an 8 MiB tmpfs there; every mount is removed at teardown."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to mount a tmpfs")
    mounted: list[Path] = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _disk(client: Client, node: str) -> StorageHealthStats:
    disk = client.status(node).disk
    assert disk is not None
    return disk


def _sees_disk(client: Client, observer: str, node: str, state: str) -> bool:
    return any(n.name == node and n.disk == state for n in client.nodes(observer))


def test_full_disk_refuses_writes_serves_reads_and_resumes(
    make_cluster: Callable[..., LocalCluster], tmpfs: Callable[[Path], Path], record_property
) -> None:
    cluster = make_cluster(3, start=False, engine="log", fsync="always", anti_entropy_interval_ms=600000)
    data = tmpfs(cluster.workdir / "data" / "n3")
    ballast = data / "ballast.bin"
    ballast.write_bytes(b"\0" * BALLAST_BYTES)
    try:
        cluster.start()
        addresses = cluster.addresses
        acked: list[bytes] = []
        with cluster.client(timeout=3.0) as client, Client([addresses["n3"]], pinned=True) as on_n3:
            # write until n3's disk refuses; every quorum write goes on through n1 and n2
            batch = 0
            while _disk(client, "n3").state == "ok":
                assert batch < 60, "n3's disk never filled up"
                keys = [b"k%06d" % (batch * 50 + i) for i in range(50)]
                errors = client.put_many([(k, VALUE) for k in keys], consistency="quorum")
                assert errors == [None] * len(keys), {e.code for e in errors if e}
                acked += keys
                batch += 1
            disk = _disk(client, "n3")
            assert disk.state == "full" and "No space left on device" in (disk.error or ""), disk
            assert str(data) in (disk.error or "")  # the error names the file
            record_property("writes_until_full", len(acked))
            assert cluster.procs["n3"].poll() is None  # alive
            # more quorum writes succeed through the others; `all` gets the named error
            errors = client.put_many([(b"later%d" % i, VALUE) for i in range(100)], consistency="quorum")
            assert errors == [None] * 100
            with pytest.raises(StorageFull):
                client.put(b"needs-n3", VALUE, consistency="all")
            with pytest.raises(StorageFull):
                on_n3.put(b"needs-n3-too", VALUE, consistency="all")
            on_n3.put(b"through-n3", VALUE, consistency="one")  # n3 hands it to a replica with room
            # n3 serves reads of what it holds, and the others show its disk state
            assert on_n3.get(acked[0], consistency="one").values == [VALUE]
            assert client.replicas(acked[0])["n3"].values == [VALUE]
            wait_until(
                lambda: _sees_disk(client, cluster.addresses["n1"], "n3", "full"),
                5,
                "n1 to show n3's disk full",
            )
            assert _disk(client, "n3").refused_writes > 0

        # restarted while still full (no room even for the metadata): starts read-only, old metadata kept
        cluster.kill("n3")
        meta_before = (data / META_FILE).read_bytes()
        _fill(data / "filler.bin")
        cluster.start("n3")
        with cluster.client(timeout=3.0) as client:
            assert _disk(client, "n3").state == "full"
            assert (data / META_FILE).read_bytes() == meta_before
            assert not (data / (META_FILE + ".tmp")).exists()
            with pytest.raises(StorageFull):
                client.put(b"needs-n3", VALUE, consistency="all")
            # the operator frees space: n3 takes writes again by itself
            (data / "filler.bin").unlink()
            ballast.unlink()
            resumed = wait_until(lambda: _disk(client, "n3").state == "ok", 5, "n3 to take writes again")
            assert resumed
            client.put(b"after-resume", VALUE, consistency="all")
            assert (data / META_FILE).read_bytes() != meta_before  # the new generation is saved now

        # kill -9 and restart: nothing n3 held is damaged
        cluster.kill("n3")
        cluster.start("n3")
        with cluster.client(timeout=3.0) as client:
            status = client.status("n3")
            assert status.storage.corrupt_records == 0 and status.disk.state == "ok"
            assert client.replicas(b"after-resume")["n3"].values == [VALUE]
            held = [k for k in acked[:200] if client.replicas(k)["n3"].values == [VALUE]]
            assert len(held) == 200
            results = client.get_many(acked, consistency="quorum")
            assert all(not isinstance(r, Exception) and r.values == [VALUE] for r in results)
    finally:
        cluster.close()
    store = LogStore(data)  # and the files themselves read back whole
    try:
        assert store.statistics().corrupt_records == 0 and store.get(b"after-resume") is not None
    finally:
        store.close()


def test_a_failed_fsync_is_never_acknowledged(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = tmp_path / "fsync-fault"
    monkeypatch.setenv("ZKV_TEST_FSYNC_FAULT", str(trigger))  # inherited by the node processes
    cluster = make_cluster(3, engine="log", fsync="always")
    with cluster.client(timeout=3.0) as client, Client([cluster.addresses["n1"]], pinned=True) as on_n1:
        client.put(b"before", b"v0", consistency="all")
        trigger.touch()  # every node's next fsync fails: whichever coordinates, no replica acks
        with pytest.raises(StorageError) as refused:
            on_n1.put(b"during", b"v1", consistency="all")
        assert "refused the write" in str(refused.value) or "fsync" in str(refused.value)
        wait_until(lambda: not trigger.exists(), 5, "a node to take the fault")
        assert any(_disk(client, n).state == "failed" for n in cluster.names)
        # the node seals its segment, writes what it held again elsewhere, and resumes after a probe
        wait_until(
            lambda: all(_disk(client, n).state == "ok" for n in cluster.names), 15, "every disk to resume"
        )
        client.put(b"after", b"v2", consistency="all")
        victims = [n for n in cluster.names if client.status(n).disk.faults > 0]
    for node in victims:
        cluster.kill(node)
        cluster.start(node)
    with cluster.client(timeout=3.0) as client:
        for node in victims:
            assert client.status(node).storage.corrupt_records == 0
            assert client.replicas(b"before")[node].values == [b"v0"]
            assert client.replicas(b"after")[node].values == [b"v2"]
    with contextlib.suppress(FileNotFoundError):
        trigger.unlink()
