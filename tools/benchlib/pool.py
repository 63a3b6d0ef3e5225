"""The processes the benchmark starts besides the nodes: client processes and the echo server.

Every one is a spawned ``multiprocessing`` child (a fresh interpreter: no ZeroMQ context is inherited) and
every one is ended by :meth:`close`, by its own PID: first asked, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any

from benchlib import worker
from benchlib.workload import Job

READY_TIMEOUT_S = 60.0  # connect + ping + route 10^6 keys fits well within this
STOP_GRACE_S = 3.0


class BenchFailed(RuntimeError):
    """A client process failed or went silent: the run is aborted (after cleaning up)."""


def _end(proc: Any, grace: float) -> bool:
    """Stop one child (asked already; SIGTERM after ``grace`` seconds); True when it had to be killed."""
    proc.join(grace)
    if proc.is_alive():
        proc.terminate()
        proc.join(STOP_GRACE_S)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return True
    return False


class WorkerPool:
    """``size`` client processes that run :class:`Job` shares together, started at one instant."""

    def __init__(self, size: int) -> None:
        self._mp = multiprocessing.get_context("spawn")
        self.size = size
        self.progress = self._mp.RawArray("q", size)
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        for slot in range(size):
            parent, child = self._mp.Pipe()
            proc = self._mp.Process(
                target=worker.worker_main, args=(child, slot, self.progress), name=f"bench-client-{slot}"
            )
            proc.daemon = True
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def run(
        self,
        jobs: list[Job],
        on_start: Callable[[], None] | None = None,
        on_wait: Callable[[int], None] | None = None,
        limit_s: float = 3600.0,
    ) -> list[dict[str, Any]]:
        """Run one job per client process (at most ``size``), all starting together; their results.

        ``on_start`` is called just before the common start instant, ``on_wait(completed)`` every ~0.1 s
        while they run (the completed count summed over the processes).
        """
        if len(jobs) > self.size:
            raise ValueError(f"{len(jobs)} jobs for {self.size} client processes")
        conns = self._conns[: len(jobs)]
        for slot, (conn, job) in enumerate(zip(conns, jobs, strict=True)):
            self.progress[slot] = 0
            conn.send(("job", replace(job, worker=slot, workers=len(jobs))))
        for conn in conns:
            self._expect(conn, "ready", READY_TIMEOUT_S)
        if on_start:
            on_start()
        start_ns = time.monotonic_ns() + 20_000_000
        for conn in conns:
            conn.send(("go", start_ns))
        results: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + limit_s
        while len(results) < len(conns):
            if time.monotonic() > deadline:
                raise BenchFailed(f"client processes still running after {limit_s:.0f}s")
            for conn in wait([c for i, c in enumerate(conns) if i not in results], timeout=0.1):
                i = conns.index(conn)
                results[i] = self._reply(conn, "result")
            for i, proc in enumerate(self._procs[: len(jobs)]):
                if i not in results and not proc.is_alive():
                    raise BenchFailed(f"client process {i} (pid {proc.pid}) died with {proc.exitcode}")
            if on_wait:
                on_wait(sum(self.progress[: len(jobs)]))
        return [results[i] for i in range(len(conns))]

    def _expect(self, conn: Any, what: str, timeout: float) -> Any:
        if not conn.poll(timeout):
            raise BenchFailed(f"a client process did not get {what} within {timeout:.0f}s")
        return self._reply(conn, what)

    @staticmethod
    def _reply(conn: Any, what: str) -> Any:
        try:
            kind, body = conn.recv()
        except EOFError:
            raise BenchFailed("a client process went away") from None
        if kind == "failed":
            raise BenchFailed(f"a client process failed: {body}")
        if kind != what:
            raise BenchFailed(f"a client process said {kind!r}, expected {what!r}")
        return body

    def close(self, grace: float = STOP_GRACE_S) -> list[int]:
        """End every client process; the PIDs of those that had to be killed."""
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        killed = [p.pid for p in self._procs if _end(p, grace)]
        for conn in self._conns:
            conn.close()
        return killed


class EchoServer:
    """The bare ZeroMQ echo server of the ceiling, in its own process."""

    def __init__(self) -> None:
        mp = multiprocessing.get_context("spawn")
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=worker.echo_main, args=(child,), name="bench-echo")
        self._proc.daemon = True
        self._proc.start()
        child.close()
        if not self._conn.poll(READY_TIMEOUT_S):
            self.close()
            raise BenchFailed("the echo server did not start")
        _, self.address, self.pid = self._conn.recv()

    def close(self, grace: float = STOP_GRACE_S) -> bool:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        killed = _end(self._proc, grace)
        self._conn.close()
        return killed


def pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")
