#!/usr/bin/env python3
"""Storage engine benchmark: one engine on its own (log by default, or redis), no network, one process.

Measures, with 100-byte values and 16-byte keys:
  * writes/s for each fsync policy, with 1 and 64 puts per flush (one loop turn's group commit);
  * reads/s from the value cache and from disk (cache off);
  * memory per key of the key directory (tracemalloc, cache off), and the memory engine's for contrast;
  * restart time (rebuilding the key directory) after a clean close and after a kill -9, for each
    ``--restart-keys`` count;
  * the longest compaction slice while compacting a store where half the records are dead (log only).

With ``--engine redis`` each store runs its own redis-server (as a node does: unix socket, appendfsync
from the fsync policy); "from disk" then means from Redis, "kill -9" a copy of its files taken while it runs.

  tools/storage_bench.py                          # the docs/storage.md table (1M-key restart: ~1 min)
  tools/storage_bench.py --seconds 1 --restart-keys 200000
  tools/storage_bench.py --dir /mnt/ssd/tmp        # measure on another disk
  tools/storage_bench.py --engine redis --restart-keys 200000

Runs in a temporary directory under --dir (default: the system's), removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zkv.core.versions import EMPTY, update
from zkv.storage.log import LogStore
from zkv.storage.memory import MemoryStore
from zkv.storage.redis import RedisStore

VALUE_BYTES = 100
STATE = update(EMPTY, "n1~bench", {}, b"v" * VALUE_BYTES, 1.0)[0]


ENGINE = "log"  # set from --engine


def open_engine(path: Path, **options: Any) -> Any:
    """A store of the engine under test in ``path`` (the redis engine starts its own server there)."""
    if ENGINE == "redis":
        options.pop("fsync_interval_ms", None)
        return RedisStore(path, **options)
    return LogStore(path, **options)


def key(i: int) -> bytes:
    return b"key-%012d" % i  # 16 bytes


def rate(ops: Callable[[int], int], seconds: float) -> float:
    """Operations per second of ``ops(n)`` (which does about ``n`` operations and returns how many)."""
    done, started, batch = 0, time.perf_counter(), 256
    while (elapsed := time.perf_counter() - started) < seconds:
        done += ops(batch)
    return done / elapsed


def bench_writes(root: Path, fsync: str, per_flush: int, seconds: float) -> float:
    path = root / f"w-{fsync}-{per_flush}"
    store = open_engine(path, fsync=fsync, fsync_interval_ms=100)
    counter = [0]

    def ops(n: int) -> int:
        i = counter[0]
        for _ in range(max(1, n // per_flush)):
            for _ in range(per_flush):
                store.put(key(i), STATE)
                i += 1
            store.flush()
        done, counter[0] = i - counter[0], i
        return done

    result = rate(ops, seconds)
    store.close()
    shutil.rmtree(path)
    return result


def bench_reads(root: Path, keys: int, seconds: float) -> tuple[float, float]:
    """(reads/s from the cache, reads/s from disk) over ``keys`` keys."""
    path = root / "reads"
    store = open_engine(path, fsync="never")
    for i in range(keys):
        store.put(key(i), STATE)
        if i % 1000 == 999:
            store.flush()
    store.close()
    results = []
    for cache_bytes in (256 * 1024 * 1024, 0):
        store = open_engine(path, cache_bytes=cache_bytes)
        rng = random.Random(1)
        if cache_bytes:
            for i in range(keys):
                store.get(key(i))

        def ops(n: int, store: Any = store, rng: random.Random = rng) -> int:
            for _ in range(n):
                store.get(key(rng.randrange(keys)))
            return n

        results.append(rate(ops, seconds))
        store.close()
    shutil.rmtree(path)
    return results[0], results[1]


def populate(path: Path, keys: int) -> Path:
    """A store of ``keys`` keys closed cleanly, and a copy of it as a kill -9 would have left it."""
    store = open_engine(path, fsync="never")
    for i in range(keys):
        store.put(key(i), STATE)
        if i % 1000 == 999:
            store.flush()
    store.flush()
    crashed = path.with_name(path.name + "-crashed")
    shutil.copytree(path, crashed, ignore=shutil.ignore_patterns("*.sock", "LOCK"))
    store.close()
    return crashed


def bench_restart(root: Path, keys: int) -> dict[str, float]:
    clean = root / f"restart-{keys}"
    crashed = populate(clean, keys)
    out = {}
    for kind, path in (("clean", clean), ("crashed", crashed)):
        gc.collect()
        started = time.perf_counter()
        store = open_engine(path)
        out[kind] = time.perf_counter() - started
        assert len(store) == keys
        store.close()
        del store
        shutil.rmtree(path)
    return out


def bench_memory(root: Path, keys: int) -> tuple[float, float]:
    """Bytes per key: the log engine's key directory (cache off) and the memory engine's whole store."""
    path = root / "memory"
    crashed = populate(path, keys)
    shutil.rmtree(crashed)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = open_engine(path, cache_bytes=0)
    log_bytes = tracemalloc.get_traced_memory()[0] - before
    store.close()
    del store
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    memory = MemoryStore()
    for i in range(keys):  # a distinct state per key, as a real store holds
        memory.put(key(i), update(EMPTY, "n1~bench", {}, b"v" * VALUE_BYTES, float(i))[0])
    memory_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    shutil.rmtree(path)
    return log_bytes / keys, memory_bytes / keys


def bench_compaction(root: Path, keys: int) -> tuple[float, float, int]:
    """(longest compact_step in ms, MB/s of segment data compacted, compactions) with half the data dead."""
    path = root / "compaction"
    store = LogStore(path, fsync="never", segment_bytes=4 * 1024 * 1024, compaction_min_bytes=0)
    for _ in range(2):  # every key written twice: the first copies are dead
        for i in range(keys):
            store.put(key(i), STATE)
            if i % 1000 == 999:
                store.flush()
    store.flush()
    disk_before = store.statistics().disk_bytes
    longest, started = 0.0, time.perf_counter()
    while True:
        t = time.perf_counter()
        more = store.compact_step(0.005)
        longest = max(longest, time.perf_counter() - t)
        if not more:
            break
    elapsed = time.perf_counter() - started
    stats = store.statistics()
    store.close()
    shutil.rmtree(path)
    return longest * 1000, (disk_before - stats.disk_bytes) / elapsed / 1e6, stats.compactions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per throughput measurement")
    parser.add_argument("--read-keys", type=int, default=200_000, help="keys in the read benchmark")
    parser.add_argument("--memory-keys", type=int, default=200_000, help="keys in the memory benchmark")
    parser.add_argument(
        "--restart-keys", type=int, nargs="+", default=[200_000, 1_000_000], help="store sizes to restart"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to put the temporary stores")
    parser.add_argument("--engine", choices=("log", "redis"), default="log", help="the engine to measure")
    args = parser.parse_args(argv)
    global ENGINE
    ENGINE = args.engine
    root = Path(tempfile.mkdtemp(prefix="zkv-storage-bench-", dir=args.dir))
    try:
        print(
            f"# {ENGINE} engine, {VALUE_BYTES}-byte values, 16-byte keys; {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, data in {root}\n"
        )
        print("| fsync | puts per flush | writes/s |")
        print("|---|---|---|")
        for fsync in ("always", "interval", "never"):
            for per_flush in (1, 64):
                print(
                    f"| {fsync} | {per_flush} | {bench_writes(root, fsync, per_flush, args.seconds):,.0f} |",
                    flush=True,
                )
        cached, disk = bench_reads(root, args.read_keys, args.seconds)
        print(f"\n| reads ({args.read_keys:,} keys) | reads/s |\n|---|---|")
        print(
            f"| from the value cache | {cached:,.0f} |\n| from disk (cache off) | {disk:,.0f} |", flush=True
        )
        log_per_key, memory_per_key = bench_memory(root, args.memory_keys)
        print(f"\n| memory per key ({args.memory_keys:,} keys) | bytes |\n|---|---|")
        print(f"| {ENGINE} engine, key directory | {log_per_key:,.0f} |")
        print(f"| memory engine, whole store | {memory_per_key:,.0f} |", flush=True)
        print("\n| restart | keys | seconds |\n|---|---|---|")
        for keys in args.restart_keys:
            timings = bench_restart(root, keys)
            print(f"| after a clean stop (index files) | {keys:,} | {timings['clean']:.2f} |")
            print(
                f"| after kill -9 (active segment scanned) | {keys:,} | {timings['crashed']:.2f} |",
                flush=True,
            )
        if ENGINE != "log":
            return 0  # compaction is Redis's own (append-only file rewrites)
        longest_ms, mb_s, rounds = bench_compaction(root, args.read_keys)
        print(f"\n| compaction ({args.read_keys:,} keys written twice) | |\n|---|---|")
        print(f"| longest compact_step(0.005) | {longest_ms:.1f} ms |")
        print(f"| reclaimed | {mb_s:.1f} MB/s of loop time, {rounds} compactions |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
