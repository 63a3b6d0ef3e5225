"""Tombstone purge on a real cluster (zkv.core.purge): after deleting many keys, every node's disk goes
back to near empty once the grace is over, every replica agreed and compaction ran; and a replica that
was down past the grace blocks the purge, then gets the tombstones when it returns (reconciled, never
obeyed): no deleted key comes back through it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zkv.core.status import NodeStatus
from zkv.testing.localcluster import LocalCluster, wait_until

GRACE_S = 4
SETTINGS = {
    "engine": "log",
    "tombstone_grace_s": GRACE_S,
    "max_hint_window_s": GRACE_S,  # the config refuses a grace shorter than the hint window
    "anti_entropy_interval_ms": 300,
    "segment_bytes": 1 << 20,
}
KEYS = 10_000
VALUE = "v" * 100


def write_all(call: Callable[..., list], items: list) -> None:
    """Every item acknowledged at quorum; a timeout on a loaded machine is sent again (blind: harmless)."""
    for start in range(0, len(items), 500):
        batch = items[start : start + 500]
        for _ in range(20):
            results = call(batch, "quorum")
            batch = [item for item, error in zip(batch, results, strict=True) if error is not None]
            if not batch:
                break
        assert not batch, f"{len(batch)} writes failed 20 times"


def statuses(cluster: LocalCluster) -> dict[str, NodeStatus]:
    with cluster.client(timeout=5.0) as client:
        return {name: client.status(name) for name in cluster.names}


def test_disk_bytes_go_back_to_near_empty_after_deleting_every_key(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, **SETTINGS) as cluster:
        cluster.start()
        keys = [f"key-{i:06d}" for i in range(KEYS)]
        with cluster.client(timeout=10.0) as client:
            write_all(client.put_many, [(k, VALUE) for k in keys])
            wait_until(lambda: all(s.keys == KEYS for s in statuses(cluster).values()), 60, "every copy")
            full = {name: s.storage.disk_bytes for name, s in statuses(cluster).items()}
            assert all(size > KEYS * 100 for size in full.values()), full
            write_all(client.delete_many, keys)

            seen: dict[str, NodeStatus] = {}

            def purged_and_compacted() -> bool:
                seen.update(statuses(cluster))
                # what may stay: delete records in a small active segment (compaction closes an active
                # segment only once it is worth rewriting)
                return all(s.keys == 0 and s.storage.disk_bytes < full[n] / 10 for n, s in seen.items())

            try:
                wait_until(purged_and_compacted, 120, "every node to purge its tombstones and compact")
            except AssertionError as exc:
                detail = {n: (s.keys, s.storage, s.purge) for n, s in seen.items()}
                raise AssertionError(f"{exc}; full {full}, last {detail}") from None
            after = statuses(cluster)
            for name, s in after.items():
                # a delete re-sent after a timeout, or a late replica write, makes a tombstone purged twice
                assert s.purge is not None and s.purge.purged >= KEYS, (name, s.purge)
            for key in keys[:: KEYS // 50]:
                assert client.get(key, consistency="all").values == []


def test_a_replica_down_past_the_grace_blocks_the_purge_and_is_reconciled(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, **SETTINGS) as cluster:
        cluster.start()
        keys = [f"gone-{i}" for i in range(200)]
        with cluster.client(timeout=5.0) as client:
            write_all(client.put_many, [(k, "old") for k in keys])
            wait_until(lambda: all(s.keys == len(keys) for s in statuses(cluster).values()), 60, "every copy")
            client.put("kept", "here", consistency="all")
        cluster.kill("n3")  # SIGKILL: n3 keeps every "old" on disk and misses the deletes
        with cluster.client("n1", "n2", timeout=5.0) as client:
            write_all(client.delete_many, keys)

            def retired_on_n1_n2() -> bool:
                return all(
                    (s := client.status(n)).purge is not None and s.purge.retired == len(keys)
                    for n in ("n1", "n2")
                )

            # past the grace the tombstones retire, but n3 agreed on none of them: none is purged
            wait_until(retired_on_n1_n2, 30, "n1 and n2 to retire the tombstones")
            for name in ("n1", "n2"):
                s = client.status(name)
                assert s.purge is not None and s.purge.purged == 0 and s.storage.keys >= len(keys)
        cluster.start("n3")  # down for longer than the grace, holding the old values
        with cluster.client(timeout=5.0) as client:

            def purged_everywhere() -> bool:
                return all(s.keys == 1 for s in statuses(cluster).values())  # only "kept" is left

            wait_until(purged_everywhere, 60, "every replica, n3 included, to purge the deleted keys")
            for key in keys:
                for level in ("one", "quorum", "all"):
                    assert client.get(key, consistency=level).values == [], (key, level)
                assert all(
                    not isinstance(r, Exception) and r.versions == [] for r in client.replicas(key).values()
                ), key
            assert client.get("kept", consistency="all").value == b"here"
        with cluster.client("n3", pinned=True, timeout=5.0) as client:
            assert all(client.get(key, consistency="one").values == [] for key in keys)
