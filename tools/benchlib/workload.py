"""What one client process is asked to do, and the cheap per-request pieces it needs (keys, sampling, frames).

A :class:`Job` is plain data (it crosses a pipe to a spawned process). The request frames are built by
concatenating pre-packed msgpack pieces rather than packing a dict per request: the map is written with
``id`` last, so only the key and the id are packed per request. The result is exactly what
``msgpack.packb({"op": ..., "cl": ..., "value": ..., "key": ..., "id": ...})`` gives (tested).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

OPS = ("put", "get")  # opcode = index
PUT, GET = 0, 1

ZIPF_THETA = 0.99  # YCSB's default skew


@dataclass(frozen=True, slots=True)
class Job:
    """One client process's share of a workload (or of the echo ceiling, or of the pre-load)."""

    kind: str  # "load": the workload / pre-load against nodes; "echo": the ceiling against the echo server
    addresses: tuple[str, ...]  # node ROUTERs (kind "load") or the echo server (kind "echo")
    op: str  # "put" | "get" | "mixed" | "fill" (every key of the namespace once, in order: the pre-load)
    consistency: str
    value_size: int
    keys: int
    namespace: bytes  # key prefix
    distribution: str = "uniform"  # "uniform" | "zipfian"
    read_ratio: float = 0.5  # share of gets when op is "mixed"
    concurrency: int = 1  # requests in flight in this process
    duration: float | None = None  # measured seconds (after warmup), or None with ops
    ops: int | None = None  # requests to issue, or None with duration
    warmup: float = 0.0  # seconds run before the measured window, not counted
    timeout: float = 5.0  # a request unanswered this long counts as error "client_timeout"
    seed: int = 0
    worker: int = 0  # this process's index among ``workers`` (a "fill" takes every workers-th key)
    workers: int = 1
    # node name -> (address index, tokens): the ring, so requests go to the key's natural coordinator
    ring: dict[str, tuple[int, list[int]]] = field(default_factory=dict)
    replication_factor: int = 3
    # Chained puts: each put carries the context the reply to this process's previous put of the key
    # handed back, as a client that writes what it last saw would, so a key keeps one version instead of
    # piling up siblings. Keys are then split between the client processes (index % workers), and a
    # process keeps one put per key in flight, so each key has one writer at a time. (Predicting the
    # coordinator's next dot, as this did before, stopped working once dots count on from a node-wide
    # floor: the keys held 1.2-3.3 versions in chained rows.)
    chained: bool = False


def key_bytes(namespace: bytes, index: int) -> bytes:
    return namespace + b"%08d" % index


def sampler(job: Job, rng: random.Random) -> Callable[[], int]:
    """A function returning the next key index, uniform or zipfian over ``range(job.keys)``."""
    n = job.keys
    rand = rng.random
    if job.distribution == "uniform":
        return lambda: int(rand() * n)
    if job.distribution == "zipfian":
        # rank r (0-based) is drawn with probability proportional to 1 / (r + 1) ** theta; key index r is
        # the r-th most popular key. Keys are hashed onto the ring, so the hot keys land on random nodes.
        weights = [1.0 / (r + 1) ** ZIPF_THETA for r in range(n)]
        total = sum(weights)
        cdf = []
        acc = 0.0
        for w in weights:
            acc += w / total
            cdf.append(acc)
        cdf[-1] = 1.0
        last = n - 1
        return lambda: min(bisect.bisect_left(cdf, rand()), last)
    raise ValueError(f"unknown distribution {job.distribution!r}")


class Frames:
    """Pre-packed request pieces: ``frame(opcode, packed_key, rid)`` is one request's bytes."""

    def __init__(self, consistency: str, value: bytes) -> None:
        pk = msgpack.packb
        put_body = pk("op") + pk("put") + pk("cl") + pk(consistency) + pk("value") + pk(value)
        self._heads = (
            b"\x85" + put_body + pk("key"),
            b"\x84" + pk("op") + pk("get") + pk("cl") + pk(consistency) + pk("key"),
        )
        self._put_ctx_head = b"\x86" + put_body + pk("ctx")
        self._key = pk("key")
        self._id = pk("id")
        self._pack = pk

    def frame(self, opcode: int, packed_key: bytes, rid: int) -> bytes:
        return self._heads[opcode] + packed_key + self._id + self._pack(rid)

    def put_with_context(self, packed_key: bytes, context: bytes, rid: int) -> bytes:
        pk = self._pack
        return self._put_ctx_head + pk(context) + self._key + packed_key + self._id + pk(rid)


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as integers allow (earlier parts get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
