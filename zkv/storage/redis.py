"""The Redis engine: a replica's key states in a redis-server, for users who run and trust Redis.

Theory of operation
-------------------
Each node keeps its data under its own prefix, ``zkv:NODE:``, in four Redis keys a user can inspect
with ``redis-cli``: the hash ``states`` (key -> packed :class:`KeyState`), the hash ``digests`` (key -> the
state's 64-bit Merkle digest and its size), the hash ``hints`` (hint id -> target, key, state) and the
string ``meta`` (the node metadata). The node holds the key directory (key -> digest, size) in memory, as
the log engine does, so ``keys()``, ``len`` and the Merkle leaves never ask Redis; values are read from
Redis behind the same bounded cache of hot states.

Durability is the runtime's group commit: ``put`` only buffers (reads see the buffer), and ``flush`` sends
the turn's writes and hints as one MULTI/EXEC pipeline: one round trip, applied whole or not at all. The
promise per fsync policy is Redis's append-only file's: the node's own server runs ``appendfsync always``
for ``fsync = "always"`` (Redis answers EXEC only after its fsync, so a replica acknowledges only what
Redis has fsynced), ``everysec`` for ``interval`` and ``no`` for ``never``; a server given by URL must be
set up accordingly (checked at open). The metadata is always saved durably.

Failures: any Redis error (no server, no answer in time, out of memory under ``maxmemory``, the socket
gone) raises :class:`zkv.errors.StorageUnavailable`, which clients see as ``storage_unavailable``. A
failed flush keeps its writes buffered and retries them (with backoff) until Redis takes them; meanwhile
``put`` refuses, so no write is acknowledged that Redis did not store, while reads of the directory and
the cache still work. The node's own server is restarted when it died.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import msgpack
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from zkv.core.merkle import packed_digest
from zkv.core.versions import KeyState, pack_state, unpack_state
from zkv.errors import StorageUnavailable
from zkv.storage.base import FSYNC_POLICIES, StoreStats
from zkv.storage.cache import CACHE_ENTRY_OVERHEAD_BYTES, ValueCache
from zkv.storage.keydir import KeyDirectory
from zkv.storage.records import DirLock
from zkv.storage.redis_server import APPENDFSYNC, RedisServer

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
SOCKET_TIMEOUT_S = 3.0  # a Redis that answers nothing this long counts as down
CONNECT_TIMEOUT_S = 1.0
# after a failure, calls fail fast this long before one tries again (below the core's 0.5 s probes)
MIN_BACKOFF_S, MAX_BACKOFF_S = 0.05, 0.4
CHUNK = 512  # fields per HSET / HDEL command in a flush
SCAN_COUNT = 10_000
EVICTION_SAFE = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


def connect(url: str) -> redis.Redis:
    """A client for ``unix:PATH`` or a ``redis://`` / ``rediss://`` URL; it never retries by itself."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    if url.startswith("unix:"):
        return redis.Redis(unix_socket_path=url.removeprefix("unix:").removeprefix("//"), **options)
    return redis.Redis.from_url(url, **options)


class RedisStore(KeyDirectory):
    """A replica's key states in Redis (see the module doc)."""

    def __init__(
        self,
        data_dir: Path | str | None,
        fsync: str = "always",
        url: str | None = None,
        namespace: str = "zkv",
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        binary: str = "redis-server",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync = {fsync!r}: expected one of {', '.join(FSYNC_POLICIES)}")
        self.fsync = fsync
        self._clock = clock
        prefix = f"zkv:{namespace}:"
        self._states, self._digests = prefix + "states", prefix + "digests"
        self._meta_key, self.hints_key = prefix + "meta", prefix + "hints"
        self._paxos_key = prefix + "paxos"  # acceptor state per serial key (zkv.core.paxos)
        self._paxos: dict[bytes, bytes] = {}
        self._paxos_pending: dict[bytes, bytes] = {}
        self.keydir: dict[bytes, int] = {}  # key -> digest | size << 64
        self._pending: dict[bytes, tuple[KeyState, bytes] | None] = {}  # this turn's writes (None: delete)
        self.hint_ops: list[tuple[str, bytes, bytes]] = []  # ("hset"|"hdel", id, packed), RedisHintStore's
        self._cache = ValueCache(cache_bytes)
        self._bytes = 0
        self._counters = dict.fromkeys(("flushes", "values_read", "failures", "missing"), 0)
        self._backoff = MIN_BACKOFF_S
        self._retry_at = 0.0
        self._down_since: float | None = None  # when a write failed that is not stored yet
        self._failing = False  # the last call to Redis failed
        self._down_reason = ""
        self._appendfsync: str | None = None  # the server's, when CONFIG tells it
        self._closed = False
        self._server: RedisServer | None = None
        self._lock: DirLock | None = None
        if data_dir is not None:
            Path(data_dir).mkdir(parents=True, exist_ok=True)  # the node's probes measure its free space
        if url is None:
            if data_dir is None:
                raise ValueError("the redis engine needs a data_dir (for its own redis-server) or a URL")
            directory = Path(data_dir) / "redis"
            directory.mkdir(parents=True, exist_ok=True)
            self._lock = DirLock(directory)
            self._server = RedisServer(directory, fsync, binary)
            try:
                self._server.start()
            except BaseException:
                self._lock.release()
                raise
            url = "unix:" + self._server.socket
            self._appendfsync = APPENDFSYNC[fsync]
        self.url = url
        self._client = connect(url)
        started = time.perf_counter()
        try:
            if self._server is None:
                self._check_server()
            self._load_directory()
        except redis.RedisError as exc:
            self._release()
            raise OSError(f"cannot use Redis at {url}: {exc}") from None
        except BaseException:
            self._release()
            raise
        self._recovery_s = time.perf_counter() - started

    # ------------------------------------------------------------------------------------------ reads

    def get(self, key: bytes) -> KeyState | None:
        if key in self._pending:
            pending = self._pending[key]
            return None if pending is None else pending[0]
        entry = self.keydir.get(key)
        if entry is None:
            return None
        state = self._cache.get(key)
        if state is not None:
            return state
        raw = cast("bytes | None", self._redis("read", lambda c: c.hget(self._states, key)))
        self._counters["values_read"] += 1
        if raw is None:
            # the directory says it is there and Redis does not have it (a server that lost data):
            # forget the key, as the log engine forgets a damaged record; anti-entropy repairs it
            self._counters["missing"] += 1
            log.warning("key %r is in the directory but not in Redis; dropped", key)
            self._forget(key)
            return None
        try:
            state = unpack_state(raw)
        except Exception:  # noqa: BLE001 - bytes that are no state (edited by hand, damaged): the same
            self._counters["missing"] += 1
            log.warning("key %r holds no valid state in Redis; dropped", key)
            self._forget(key)
            return None
        self._cache.put(key, state, len(raw) + CACHE_ENTRY_OVERHEAD_BYTES)
        return state

    @staticmethod
    def entry_digest(e: int) -> int:
        return e & 0xFFFF_FFFF_FFFF_FFFF

    # ------------------------------------------------------------------------------------------ writes

    def put(self, key: bytes, state: KeyState) -> None:
        self._refuse_while_down()
        packed = pack_state(state)
        self._forget(key)
        self._pending[key] = (state, packed)
        self.keydir[key] = packed_digest(key, packed) | len(packed) << 64
        self._bytes += len(key) + len(packed)
        self._cache.put(key, state, len(packed) + CACHE_ENTRY_OVERHEAD_BYTES)

    def delete(self, key: bytes) -> None:
        """Remove ``key`` for good (purging a tombstone is the core's decision)."""
        if key not in self.keydir:
            return
        self._refuse_while_down()
        self._forget(key)
        self._pending[key] = None

    def _forget(self, key: bytes) -> None:
        old = self.keydir.pop(key, None)
        if old is not None:
            self._bytes -= len(key) + (old >> 64)
        self._cache.discard(key)

    def _refuse_while_down(self) -> None:
        """While a flush is failing, take no new write: it could never be acknowledged anyway."""
        if self._down_since is not None:
            raise StorageUnavailable(self._down_reason)

    # ------------------------------------------------------------------------------------------ durability

    def paxos_get(self, key: bytes) -> bytes | None:
        return self._paxos.get(key)

    def paxos_put(self, key: bytes, blob: bytes) -> None:
        self._refuse_while_down()
        self._paxos[key] = blob
        self._paxos_pending[key] = blob

    def paxos_keys(self) -> list[bytes]:
        return list(self._paxos)

    def needs_flush(self) -> bool:
        return bool(self._pending or self.hint_ops or self._paxos_pending)

    def flush(self) -> None:
        """The group commit: the turn's writes and hints in one MULTI/EXEC round trip (module doc)."""
        if not self._pending and not self.hint_ops and not self._paxos_pending:
            if self._failing:
                self._redis("ping", lambda c: c.ping())  # the core's probe: is Redis back?
            return
        puts: dict[bytes, bytes] = {}
        digests: dict[bytes, bytes] = {}
        deletes: list[bytes] = []
        for key, pending in self._pending.items():
            if pending is None:
                deletes.append(key)
            else:
                puts[key] = pending[1]
                entry = self.keydir[key]
                digests[key] = (entry & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big") + (entry >> 64).to_bytes(
                    4, "big"
                )
        hint_sets = {i: packed for op, i, packed in self.hint_ops if op == "hset"}
        hint_dels = [i for op, i, _ in self.hint_ops if op == "hdel"]

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=True)
            for table, mapping in (
                (self._states, puts),
                (self._digests, digests),
                (self.hints_key, hint_sets),
                (self._paxos_key, self._paxos_pending),
            ):
                items = list(mapping.items())
                for start in range(0, len(items), CHUNK):
                    pipe.hset(table, mapping=dict(items[start : start + CHUNK]))
            for table, fields in (
                (self._states, deletes),
                (self._digests, deletes),
                (self.hints_key, hint_dels),
            ):
                for start in range(0, len(fields), CHUNK):
                    pipe.hdel(table, *fields[start : start + CHUNK])
            pipe.execute()

        self._redis("write", write)
        self._pending.clear()
        self.hint_ops.clear()
        self._paxos_pending.clear()
        self._counters["flushes"] += 1
        if self._down_since is not None:
            log.warning("Redis takes writes again after %.1fs", self._clock() - self._down_since)
            self._down_since = None

    def compact_step(self, budget_s: float = 0.005) -> bool:
        return False  # Redis rewrites its append-only file by itself

    def close(self) -> None:
        """Flush what Redis takes, then stop the node's own server (it syncs its file as it exits)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.needs_flush():
                try:
                    self.flush()
                except StorageUnavailable as exc:
                    log.error(
                        "closing with %d unstored writes (never acknowledged): %s", len(self._pending), exc
                    )
        finally:
            self._release()

    def _release(self) -> None:
        self._cache.clear()
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
        if self._server is not None:
            self._server.stop()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------------------------------ Redis calls

    def _redis(self, what: str, call: Callable[[redis.Redis], T]) -> T:
        """Run ``call`` on the client; any Redis failure becomes :class:`StorageUnavailable`."""
        now = self._clock()
        if now < self._retry_at:
            raise StorageUnavailable(self._down_reason)
        try:
            if self._server is not None and not self._server.running():
                self._restart_server()
            result = call(self._client)
        except (redis.RedisError, OSError) as exc:
            self._counters["failures"] += 1
            self._failing = True
            self._client.connection_pool.disconnect()  # a later call starts on a fresh connection
            self._retry_at = now + self._backoff
            self._backoff = min(MAX_BACKOFF_S, self._backoff * 2)
            self._down_reason = _explain(what, self.url, exc)
            if what == "write" and self._down_since is None:
                self._down_since = now
                log.error("%s; writes are refused until Redis takes them again", self._down_reason)
            else:
                log.warning("%s", self._down_reason)
            raise StorageUnavailable(self._down_reason) from None
        self._backoff = MIN_BACKOFF_S
        self._failing = False
        return result

    def _restart_server(self) -> None:
        assert self._server is not None
        proc = self._server.proc
        status = None if proc is None else proc.returncode
        log.error(
            "redis-server exited (status %s); restarting it. Its log ends:\n%s",
            status,
            self._server.log_tail(),
        )
        self._server.start()

    def _check_server(self) -> None:
        """A server given by URL must keep what it acknowledges as the fsync policy promises."""
        try:
            config = self._client.config_get("append*")
            config.update(self._client.config_get("maxmemory*"))
        except redis.ResponseError:  # CONFIG renamed away (managed Redis): INFO says less
            aof = self._client.info("persistence").get("aof_enabled")
            if self.fsync == "always" and not aof:
                raise OSError(
                    f"Redis at {self.url} has persistence off (aof_enabled:0) while fsync = 'always'"
                ) from None
            log.warning("cannot read the CONFIG of Redis at %s: its appendfsync is not checked", self.url)
            return
        config = {_text(k): _text(v) for k, v in config.items()}
        self._appendfsync = config.get("appendfsync")
        if self.fsync == "always" and (config.get("appendonly") != "yes" or self._appendfsync != "always"):
            raise OSError(
                f"Redis at {self.url} has appendonly {config.get('appendonly')}, appendfsync "
                f"{self._appendfsync}, but [cluster] fsync = 'always' promises that a replica acknowledges "
                "only what is fsynced: set 'appendonly yes' and 'appendfsync always' on that server, "
                "or choose fsync = 'interval'"
            )
        policy = config.get("maxmemory-policy", "noeviction")
        if config.get("maxmemory", "0") != "0" and policy not in EVICTION_SAFE:
            raise OSError(
                f"Redis at {self.url} has maxmemory-policy {policy}: it would evict this node's data; "
                "use noeviction (a full Redis then refuses writes, and zkv says storage_unavailable)"
            )
        if config.get("appendonly") != "yes":
            log.warning(
                "Redis at %s has appendonly no: a restart of that server loses this node's data", self.url
            )

    def _load_directory(self) -> None:
        """Rebuild the directory from the ``digests`` hash (no value is read)."""
        cursor = 0
        while True:
            cursor, items = cast(
                "tuple[int, dict[bytes, bytes]]", self._client.hscan(self._digests, cursor, count=SCAN_COUNT)
            )
            for key, raw in items.items():
                self.keydir[key] = int.from_bytes(raw[:8], "big") | int.from_bytes(raw[8:12], "big") << 64
            if not cursor:
                break
        self._bytes = sum(len(k) + (e >> 64) for k, e in self.keydir.items())
        self._paxos = cast("dict[bytes, bytes]", self._client.hgetall(self._paxos_key))
        if self.keydir:
            log.info("%d keys in Redis at %s", len(self.keydir), self.url)

    # ------------------------------------------------------------------------------------------ metadata

    def load_meta(self) -> dict:
        raw = cast("bytes | None", self._redis("read", lambda c: c.get(self._meta_key)))
        if raw is None:
            return {}
        meta = msgpack.unpackb(raw, raw=False)
        if not isinstance(meta, dict):
            raise OSError(f"{self._meta_key} in Redis at {self.url} does not hold node metadata")
        return meta

    def save_meta(self, meta: dict) -> None:
        """Replace the metadata durably, whatever the policy: Redis is told to fsync this one write."""
        body = msgpack.packb(meta, use_bin_type=True)
        if self._appendfsync in ("always", None):
            if self._appendfsync is None:
                log.warning("saving node metadata to %s without knowing whether it is fsynced", self.url)
            self._redis("write", lambda c: c.set(self._meta_key, body))
            return
        old = self._appendfsync
        self._redis("write", lambda c: c.config_set("appendfsync", "always"))
        try:
            self._redis("write", lambda c: c.set(self._meta_key, body))  # answered after its fsync
        finally:
            self._redis("write", lambda c: c.config_set("appendfsync", old))

    # ------------------------------------------------------------------------------------------ hints

    def load_hints(self) -> list[tuple[int, str, bytes, KeyState]]:
        """Every stored hint as ``(id, target, key, state)``, oldest first; damaged ones are skipped."""
        raw = cast("dict[bytes, bytes]", self._redis("read", lambda c: c.hgetall(self.hints_key)))
        hints = []
        for field, packed in raw.items():
            try:
                target, key, state = msgpack.unpackb(packed, raw=True)
                hints.append((int(field), target.decode(), key, unpack_state(state)))
            except Exception:  # noqa: BLE001 - anything that is not a hint: skipped and logged
                log.warning("hint %r in Redis is damaged; dropped", field)
        return sorted(hints, key=lambda h: h[0])

    # ------------------------------------------------------------------------------------------ statistics

    def statistics(self) -> StoreStats:
        c = self._counters
        return StoreStats(
            engine="redis",
            keys=len(self.keydir),
            bytes=self._bytes,
            flushes=c["flushes"],
            corrupt_records=c["missing"],
            cache_bytes=self._cache.bytes,
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            values_read=c["values_read"],
            recovery_s=round(self._recovery_s, 4),
            available=not self._failing and self._down_since is None,
            failures=c["failures"],
        )


def _explain(what: str, url: str, exc: BaseException) -> str:
    """A line an operator can act on, for a failed Redis call."""
    text = (str(exc) or type(exc).__name__).rpartition("of pipeline caused error: ")[2][:300]
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "maxmemory" in text:
        return f"Redis at {url} is out of memory (maxmemory): {what} refused ({text})"
    if isinstance(exc, redis.TimeoutError):
        return f"Redis at {url} did not answer within {SOCKET_TIMEOUT_S:.0f}s ({what})"
    if isinstance(exc, redis.ConnectionError | OSError):
        return f"Redis at {url} is not reachable ({what}): {text}"
    return f"Redis at {url} refused a {what}: {text}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
