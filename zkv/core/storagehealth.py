"""Whether this node's disk takes writes, and when to try it again.

Theory of operation
-------------------
The runtime reports what the disk said, the core decides what it means (DESIGN.md §7: the runtime only
catches and reports). A write, fsync or metadata save that fails with ENOSPC or EDQUOT makes the node
**full**; any other error (EIO, EROFS...) makes it **failed**. Either way the node stops taking writes
(client writes it would coordinate, replica writes, hints, handoffs, repairs into its store) with a
named error (``storage_full``, ``storage_error``; ``storage_unavailable`` when the engine's server,
Redis, cannot be reached or is out of memory), and keeps serving what needs no disk write: reads,
the views, gossip, hint delivery from what it holds. etcd does the same with its NOSPACE alarm,
Cassandra with ``disk_failure_policy: stop_paranoid``'s gentler cousins.

It resumes by itself: every ``probe_interval`` the runtime retries the flush of what is still buffered
and measures the free space; once both are fine (at least ``resume_free_bytes`` free, so a node does not
flap on the last few KiB), writes are taken again. A failed fsync's data is never trusted to a second
fsync; the storage engine writes it again into a new file (``zkv.storage.segment``).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from zkv.errors import StorageError, StorageFull, StorageUnavailable, ZkvError

OK, FULL, FAILED, UNAVAILABLE = "ok", "full", "failed", "unavailable"
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
PROBE_INTERVAL_S = 1.0
FAILED_PROBE_INTERVAL_S = 5.0  # an I/O error is rarely gone in a second; do not hammer a failing disk
UNAVAILABLE_PROBE_INTERVAL_S = 0.5  # a restarted Redis is back within a second: notice it soon
PROBE_INTERVALS = {
    FULL: PROBE_INTERVAL_S,
    FAILED: FAILED_PROBE_INTERVAL_S,
    UNAVAILABLE: UNAVAILABLE_PROBE_INTERVAL_S,
}
RESUME_FREE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StorageHealthStats:
    state: str  # ok | full | failed | unavailable
    error: str | None  # the last error the disk gave, with its file
    since_s: float  # how long the node has been in this state
    faults: int  # times the disk refused since start
    refused_writes: int  # writes refused because of the state
    free_bytes: int | None  # free space the last probe measured


class StorageHealth:
    """The disk's state as this node's writes see it (see the module doc)."""

    def __init__(self, now: float, resume_free_bytes: int = RESUME_FREE_BYTES) -> None:
        self._state = OK
        self.writable = True  # state == OK, kept as a plain attribute: every local write asks it
        self.error: str | None = None
        self.since = now
        self.next_probe = float("inf")
        self.faults = 0
        self.refused = 0
        self.free_bytes: int | None = None
        self.resume_free_bytes = resume_free_bytes

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state
        self.writable = state == OK

    def on_fault(self, code: int | str | None, message: str, now: float) -> None:
        """The disk refused a write, fsync or metadata save with ``errno`` ``code`` (or the engine's server
        failed: ``code`` is then ``"storage_unavailable"``)."""
        state = FULL if code in FULL_ERRNOS else UNAVAILABLE if code == StorageUnavailable.code else FAILED
        if self.state != state:
            self.since = now
        self.state = state
        self.error = message
        self.faults += 1
        self.next_probe = now + PROBE_INTERVALS[state]

    def probe_due(self, now: float) -> bool:
        return self.state != OK and now >= self.next_probe

    def on_probe(self, free_bytes: int | None, now: float) -> bool:
        """A probe flushed everything without error and measured ``free_bytes``: resume if there is room.

        True when the node takes writes again.
        """
        self.free_bytes = free_bytes
        if self.state == OK:
            return True
        if free_bytes is not None and free_bytes < self.resume_free_bytes:
            self.next_probe = now + PROBE_INTERVAL_S
            return False
        self.state, self.since, self.next_probe = OK, now, float("inf")
        return True

    def refusal(self) -> ZkvError:
        """The error a refused write gets (counted)."""
        self.refused += 1
        if self.state == UNAVAILABLE:
            return StorageUnavailable(
                f"this node's storage is unavailable ({self.error}); writes resume when it is back"
            )
        if self.state == FULL:
            return StorageFull(f"this node's disk is full ({self.error}); writes resume once space is freed")
        return StorageError(f"this node's disk failed ({self.error}); no writes until a probe succeeds")

    def statistics(self, now: float) -> StorageHealthStats:
        return StorageHealthStats(
            state=self.state,
            error=self.error,
            since_s=round(now - self.since, 3),
            faults=self.faults,
            refused_writes=self.refused,
            free_bytes=self.free_bytes,
        )
