"""Code that runs in the spawned processes: the client load loop and the bare ZeroMQ echo server.

Client process protocol (over a multiprocessing pipe, one job at a time)::

    parent -> ("job", Job)        child connects, pings every address, computes routes
    child  -> ("ready", None)     (or ("failed", text))
    parent -> ("go", start_ns)    a CLOCK_MONOTONIC instant shared by every client process
    child  -> ("result", dict)    see :func:`run_load`
    parent -> None                exit

The load loop is one DEALER per node and a ``zmq.Poller``, draining without blocking, like the node's own
loop (DESIGN.md §3a). It keeps exactly ``concurrency`` requests in flight: every answer is replaced by a
new request before the next poll. Each request goes to the first node of its key's preference list (what
the smart client does), one request per frame. Latencies are taken with ``time.monotonic_ns`` around the
send and the receive and kept raw (an ``array('q')`` per op), so the parent computes exact percentiles.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import time
from array import array
from collections import Counter
from typing import Any

import msgpack
import zmq

from benchlib.workload import GET, PUT, Frames, Job, key_bytes, sampler

PROGRESS_EVERY = 64  # completions between updates of the shared progress counter
CONNECT_TIMEOUT_S = 10.0
HWM = 100_000


def _cpu_seconds() -> float:
    """CPU seconds of this process, every thread (ZeroMQ's I/O thread included), at microsecond grain."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_main(conn: Any, slot: int, progress: Any) -> None:
    """Entry point of one client process: serve jobs from ``conn`` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    ctx = zmq.Context()
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                return
            _, job = msg
            try:
                result = run_load(ctx, conn, job, progress, slot)
            except Exception as exc:  # report instead of dying silently; the parent aborts the run
                conn.send(("failed", f"{type(exc).__name__}: {exc}"))
                continue
            conn.send(("result", result))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return
    finally:
        ctx.destroy(linger=0)


def _connect(ctx: zmq.Context, addresses: tuple[str, ...]) -> tuple[list[zmq.Socket], zmq.Poller]:
    socks = []
    poller = zmq.Poller()
    for address in addresses:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.connect(address)
        poller.register(sock, zmq.POLLIN)
        socks.append(sock)
    # a round trip on every connection before the clock starts, so no request waits for a handshake
    for sock in socks:
        sock.send(msgpack.packb({"op": "ping", "id": 0}))
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    pending = set(socks)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer to a ping from {len(pending)} of {len(socks)} addresses")
        for sock, _ in poller.poll(left * 1000):
            while True:
                try:
                    sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
            pending.discard(sock)
    return socks, poller


def _routes(job: Job, keys: list[bytes]) -> list[int]:
    """For each key, the index of the socket of its natural coordinator (first of its preference list)."""
    if len(job.addresses) == 1 or not job.ring:
        return [0] * len(keys)
    from zkv.core.ring import Ring  # the smart client's routing; the echo ceiling never imports zkv

    ring = Ring({name: tokens for name, (_, tokens) in job.ring.items()}, job.replication_factor)
    index = {name: i for name, (i, _) in job.ring.items()}
    out = []
    for key in keys:
        out.append(index[ring.preference_list(key)[0]])
        if len(out) % 60000 == 0:
            ring._cache.clear()  # the ring's own cache is bounded anyway; keep memory flat
    return out


def run_load(ctx: zmq.Context, conn: Any, job: Job, progress: Any, slot: int) -> dict[str, Any]:
    """Run ``job``: connect, report ready, wait for the start instant, keep the pipe full, return counts."""
    socks, poller = _connect(ctx, job.addresses)
    try:
        return _run(conn, job, socks, poller, progress, slot)
    finally:
        for sock in socks:
            sock.close(linger=0)


def _run(conn: Any, job: Job, socks: list[zmq.Socket], poller: zmq.Poller, progress: Any, slot: int):
    rng = random.Random(job.seed)
    keys = [key_bytes(job.namespace, i) for i in range(job.keys)]
    routes = _routes(job, keys)
    packed = [msgpack.packb(k) for k in keys]
    del keys
    value = rng.randbytes(job.value_size)
    frames = Frames(job.consistency, value)
    frame = frames.frame
    next_key = sampler(job, rng)
    chained = job.chained
    if chained and job.workers > 1 and job.op != "fill":
        # one writer per key: this process takes the keys whose index % workers is its own
        draw, w, p, top = next_key, job.worker, job.workers, job.keys - 1

        def next_key() -> int:
            k = draw() // p * p + w
            return k if k <= top else k - p

    contexts: list[bytes | None] = [None] * job.keys if chained else []  # the last put reply's, per key
    busy = bytearray(job.keys) if chained else bytearray()  # a put of the key is in flight
    put_ctx = frames.put_with_context
    rand = rng.random
    echo = job.kind == "echo"

    if job.op == "fill":  # every workers-th key once, in order
        mine = range(job.worker, job.keys, job.workers)
        next_key = iter(mine).__next__
        quota = len(mine)
    else:
        quota = job.ops if job.ops is not None else 1 << 62
    op_fixed = {"put": PUT, "get": GET, "fill": PUT}.get(job.op)
    read_ratio = job.read_ratio

    progress[slot] = 0
    conn.send(("ready", None))
    msg = conn.recv()
    if msg is None or msg[0] != "go":
        raise RuntimeError("told to stop before the start")
    start_ns = msg[1]
    while time.monotonic_ns() < start_ns:
        time.sleep(0.0005)

    measure_ns = start_ns + int(job.warmup * 1e9)
    stop_ns = measure_ns + int(job.duration * 1e9) if job.duration is not None else 1 << 62
    timeout_ns = int(job.timeout * 1e9)

    ok = [0, 0]
    samples = [array("q"), array("q")]  # latency in ns of each successful put, get
    errors: list[Counter] = [Counter(), Counter()]
    inflight: dict[int, tuple[int, int, int]] = {}
    conc = job.concurrency
    rid = 0
    issued = 0
    issuing = True
    completed = 0
    last_ns = start_ns
    next_check = start_ns + 250_000_000
    monotonic_ns = time.monotonic_ns
    cpu0 = _cpu_seconds()
    wall0 = monotonic_ns()
    unpackb = msgpack.unpackb
    again = zmq.Again
    noblock = zmq.NOBLOCK

    while True:
        if issuing:
            now = monotonic_ns()
            if now >= stop_ns or issued >= quota:
                issuing = False
            else:
                while len(inflight) < conc and issued < quota:
                    k = next_key()
                    opc = op_fixed if op_fixed is not None else (GET if rand() < read_ratio else PUT)
                    rid += 1
                    issued += 1
                    node = routes[k]
                    if chained and opc == PUT:
                        for _ in range(8):  # another key while this one's last put is unanswered
                            if not busy[k]:
                                break
                            k = next_key()
                        node = routes[k]
                        busy[k] = 1
                        last = contexts[k]
                        payload = (
                            frame(PUT, packed[k], rid) if last is None else put_ctx(packed[k], last, rid)
                        )
                    else:
                        payload = frame(opc, packed[k], rid)
                    t0 = monotonic_ns()
                    socks[node].send(payload)
                    inflight[rid] = (t0, opc, k)
        if not inflight:
            if not issuing:
                break
            continue
        wait_ms = 50
        if issuing and stop_ns < 1 << 61:
            wait_ms = max(0, min(wait_ms, (stop_ns - monotonic_ns()) // 1_000_000 + 1))
        for sock, _ in poller.poll(wait_ms):
            while True:
                try:
                    payload = sock.recv(noblock)
                except again:
                    break
                now = monotonic_ns()
                obj = unpackb(payload)
                for reply in obj if type(obj) is list else (obj,):
                    entry = inflight.pop(reply.get("id"), None)
                    if entry is None:
                        continue  # late answer to a request we already gave up on
                    t0, opc, k = entry
                    if chained and opc == PUT:
                        busy[k] = 0
                        if reply.get("ok") and reply.get("ctx") is not None:
                            contexts[k] = reply["ctx"]
                    completed += 1
                    if completed % PROGRESS_EVERY == 0:
                        progress[slot] = completed
                    if t0 < measure_ns:
                        continue  # warmup
                    if echo or reply.get("ok"):
                        ok[opc] += 1
                        samples[opc].append(now - t0)
                    else:
                        errors[opc][str(reply.get("error"))] += 1
                    last_ns = now
        now = monotonic_ns()
        if now >= next_check:
            next_check = now + 250_000_000
            expired = [r for r, (t0, _, _) in inflight.items() if now - t0 > timeout_ns]
            for r in expired:
                t0, opc, k = inflight.pop(r)
                if chained and opc == PUT:
                    busy[k] = 0
                if t0 >= measure_ns:
                    errors[opc]["client_timeout"] += 1
    progress[slot] = completed
    return {
        "ok": ok,
        "errors": [dict(e) for e in errors],
        "samples": [samples[PUT].tobytes(), samples[GET].tobytes()],
        "measure_ns": measure_ns,
        "last_ns": last_ns,
        "issued": issued,
        "completed": completed,  # every answer, warmup included: what the CPU figures cover
        "cpu_s": _cpu_seconds() - cpu0,
        "wall_s": (monotonic_ns() - wall0) / 1e9,
    }


# ---------------------------------------------------------------------------------------------- echo


def echo_main(conn: Any) -> None:
    """The ceiling: a bare pyzmq ROUTER on loopback that sends every message straight back.

    The loop is the one DESIGN.md §3a measured: a ``zmq.Poller``, each ready socket drained with NOBLOCK,
    every message echoed as it is read (no decoding, no batching, no zkv code).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.SNDHWM, HWM)
    router.setsockopt(zmq.RCVHWM, HWM)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    conn.send(("ready", f"tcp://127.0.0.1:{port}", os.getpid()))
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    recv, send, again = router.recv_multipart, router.send_multipart, zmq.Again
    try:
        while True:
            if poller.poll(200):
                while True:
                    try:
                        frames = recv(zmq.NOBLOCK)
                    except again:
                        break
                    send(frames)
            elif conn.poll():
                return  # the parent said stop (or went away)
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        ctx.destroy(linger=0)
