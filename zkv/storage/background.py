"""The log engine's helper thread: disk waits of compaction (fsync, unlink) off the loop's thread.

It runs only self-contained disk calls on file descriptors and paths the loop hands it, one at a time in
order, and never touches the store's state (DESIGN.md §3a). The loop waits for a result only where the
order matters (outputs durable before inputs go), and never longer than its slice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

from zkv.storage.records import fsync_dir

log = logging.getLogger(__name__)


class BackgroundIO:
    def __init__(self) -> None:
        self._pool: futures.ThreadPoolExecutor | None = None

    def run(self, work: Callable[[], object]) -> futures.Future:
        """Queue ``work``; a failure is logged (and raised by the future to whoever waits for it)."""
        if self._pool is None:
            self._pool = futures.ThreadPoolExecutor(1, thread_name_prefix="zkv-compaction-io")
        future = self._pool.submit(work)
        future.add_done_callback(_log_failure)
        return future

    def wait(self) -> None:
        """Let everything queued finish (before descriptors are closed), and end the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def sync_all(fds: list[int], directory: Path) -> None:
    """fdatasync every file, then the directory that names them."""
    for fd in fds:
        os.fdatasync(fd)
    fsync_dir(directory)


def _log_failure(future: futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("compaction I/O failed: %r", future.exception())
