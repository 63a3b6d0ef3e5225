"""A node's own redis-server child, for ``engine = "redis"`` without a ``redis`` URL.

The node starts it with its data in ``data_dir/redis/``, listening on a unix socket there and on no TCP
port, with the append-only file on and ``appendfsync`` mapped from zkv's fsync policy. It dies with the
node: the child gets SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), even after a kill -9 of the
node, and Redis answers SIGTERM by syncing its append-only file and exiting. A child left over by a
previous life of the node (still exiting) is waited for before a new one starts on the same files.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

APPENDFSYNC = {"always": "always", "interval": "everysec", "never": "no"}  # zkv fsync -> Redis
START_TIMEOUT_S = 30.0  # loading a large append-only file takes a while
STOP_TIMEOUT_S = 15.0
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; longer paths go to a short folder under /tmp
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)  # loaded before any fork


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the node dies (no dlopen here)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServer:
    """One supervised redis-server on a unix socket in ``directory`` (see the module doc)."""

    def __init__(self, directory: Path, fsync: str, binary: str = "redis-server") -> None:
        self.directory = Path(directory)
        self.appendfsync = APPENDFSYNC[fsync]
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.pidfile = self.directory / "redis.pid"
        self.logfile = self.directory / "redis.log"
        self._short_dir: str | None = None
        # named by this node's pid: a server of the previous life that is still exiting removes its own
        # socket file as it goes, never this one
        socket = self.directory / f"redis-{os.getpid()}.sock"
        if len(str(socket)) > MAX_SOCKET_PATH:
            self._short_dir = tempfile.mkdtemp(prefix="zkv-redis-")
            socket = Path(self._short_dir) / "redis.sock"
        self.socket = str(socket)

    def start(self) -> None:
        """Start the child and wait until it answers (it may first load its append-only file)."""
        path = shutil.which(self.binary)
        if path is None:
            raise OSError(
                f"engine = 'redis' needs {self.binary} on PATH (Debian: apt-get install redis-server), "
                "or a redis = URL for this node to use a server you run"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._wait_for_leftover()
        for stale in self.directory.glob("redis-*.sock"):  # of earlier lives killed with their server
            if stale.stem.removeprefix("redis-").isdigit() and not _alive(int(stale.stem[6:])):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        args = [
            path,
            "--port", "0",
            "--unixsocket", self.socket,
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, libc loaded beforehand
            cwd=self.directory,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(unix_socket_path=self.socket, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise OSError(
                        f"redis-server exited with status {self.proc.returncode} at start; "
                        f"its log ({self.logfile}) ends:\n{self.log_tail()}"
                    )
                try:
                    if client.ping():
                        break
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise OSError(
                        f"redis-server did not answer on {self.socket} within {START_TIMEOUT_S:.0f}s"
                    )
                time.sleep(0.02)  # polling the child's readiness against a deadline
        finally:
            client.close()
        log.info("redis-server %d serving %s on %s", self.proc.pid, self.directory, self.socket)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (Redis syncs its append-only file and exits), SIGKILL if it does not in time."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("redis-server %d ignored SIGTERM for %.0fs; killed", proc.pid, STOP_TIMEOUT_S)
                proc.kill()
                proc.wait()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_for_leftover(self) -> None:
        """A redis-server of this node's previous life may still be exiting: wait for it (then end it).

        The caller holds the node's directory lock, so no live node owns that process any more.
        """
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" not in cmdline or pid == os.getpid():
            return
        log.warning("redis-server %d of this node's previous run is still there; stopping it", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)  # polling for the old process's exit against a deadline


def _alive(pid: int) -> bool:
    """Is ``pid`` a running process (not gone, not a zombie nobody reaped yet)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
