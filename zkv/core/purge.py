"""Tombstone purge: when a replica may drop a tombstone (a delete, or a value past its TTL) for good.

Theory of operation
-------------------
A tombstone exists so that no older version of its key comes back; it may go once no replica holds such
a version any more. Timer-only purging (Cassandra's ``gc_grace_seconds`` alone) is how Cassandra and
Scylla users get deleted data back: a replica that was down past the grace still holds the old value and
hands it out again. So a tombstone here goes through three stages, each decided from values alone:

1. **Live**: an ordinary state. Anti-entropy, read repair and handoff spread it to every replica.
2. **Retired**: once the wall clock passes its death (``versions.dead_from``: the delete's timestamp, or
   the last expiry) plus ``grace_s``. Its anti-entropy digest becomes 0, which is what "no key" hashes to,
   so replicas that retired it and replicas that never held it compare equal and stop exchanging it. It
   stays in the store: a stale version that still arrives (from a replica that was down) merges into it
   and loses, and the replica answers with the tombstone (``Replica.on_aae_items``), so the stale
   replica is reconciled, not obeyed.
3. **Purged**: once *every other replica of the key* agreed with this node in the key's Merkle leaf
   (``AntiEntropy.agreed_since``) after it retired. Agreeing there means that replica holds nothing
   that differs: the retired tombstone, or nothing at all, and never an older live value (that would
   hash differently). Then the store deletes the key; compaction reclaims its bytes.

A replica that is down blocks the purge of every key it replicates: nothing agrees with it. When it
comes back, anti-entropy hands it the tombstone (stage 2 above), and only then do the others drop theirs.
What the rule cannot see is a stale version in flight outside the replicas: a hint on a fallback, or a
stray on an old owner. Those are bounded by time: hints live at most ``max_hint_window_s``, which the
grace must exceed (the config refuses less), and a hinted state older than the grace arriving for a key
its owner does not hold is dropped (:meth:`TombstonePurge.stale_hint`), since whatever it was, its
replicas either still hold it (and keep it) or deleted and purged it.

Pure: wall-clock and monotonic times arrive as arguments; the replica carries out the decisions.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator

from zkv.core.status import PurgeStatistics
from zkv.core.versions import KeyState, dead_from

CHECK_INTERVAL_S = 1.0  # how often retired tombstones are checked for agreement
SLICE_KEYS = 2000  # retired tombstones checked per tick


class TombstonePurge:
    """Which of this node's keys hold a dead state, when each retires, and which may be purged now."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._due: dict[bytes, float] = {}  # key -> wall time from which it may retire
        self._heap: list[tuple[float, bytes]] = []  # (due, key); entries no longer in _due are stale
        self.retired: dict[bytes, float] = {}  # key -> the node's ``now`` when it retired
        self._checking: Iterator[bytes] | None = None
        self._next_check = -math.inf
        self.retired_total = 0
        self.purged = 0
        self.stale_hints = 0

    def on_write(self, key: bytes, state: KeyState) -> bool:
        """``key`` now holds ``state`` here. True if it was retired: it is live in the comparison again."""
        siblings = state.siblings
        if siblings and siblings[0].value is not None and siblings[0].expires is None:
            # the common write, a live value with no TTL, never dies (dead_from: None): only forget the key
            if not self._due and not self.retired:
                return False  # nothing waits to retire or purge: the usual case, no lookups
            self._due.pop(key, None)
            return self.retired.pop(key, None) is not None
        was_retired = self.retired.pop(key, None) is not None
        died = dead_from(state)
        if died is None:
            self._due.pop(key, None)
            return was_retired
        due = died + self.grace_s
        if self._due.get(key) != due:
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
        return was_retired

    def forget(self, key: bytes) -> None:
        """``key`` is gone from the store (purged)."""
        self._due.pop(key, None)
        self.retired.pop(key, None)

    def retire_due(self, wall: float, now: float) -> list[bytes]:
        """The keys whose grace ended by ``wall``: retired now (their digests go to 0)."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= wall:
            due, key = heapq.heappop(heap)
            if self._due.get(key) != due:
                continue  # written again since
            del self._due[key]
            self.retired[key] = now
            out.append(key)
        self.retired_total += len(out)
        return out

    def due_at(self) -> float:
        """The wall time of the next retirement (inf: none waiting)."""
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else math.inf

    def next_check(self) -> float:
        """When (``now``) retired tombstones are next checked for agreement (inf: none retired)."""
        return self._next_check if self.retired else math.inf

    def purgeable(
        self,
        now: float,
        me: str,
        replicas: Callable[[bytes], Iterable[str]],
        agreed_since: Callable[[str, bytes], float],
    ) -> list[bytes]:
        """A slice of the retired keys that every other replica agreed on since they retired.

        A key this node does not replicate (a stray after a ring change) is never purged here: no one
        compares it with this node.
        """
        if not self.retired or now < self._next_check:
            return []
        if self._checking is None:
            self._checking = iter(list(self.retired))
        out = []
        done = 0
        for key in itertools.islice(self._checking, SLICE_KEYS):
            done += 1
            since = self.retired.get(key)
            if since is None:
                continue
            owners = list(replicas(key))
            if me in owners and all(agreed_since(p, key) > since for p in owners if p != me):
                out.append(key)
        if done < SLICE_KEYS:
            self._checking = None
            self._next_check = now + CHECK_INTERVAL_S
        return out

    def stale_hint(self, state: KeyState, wall: float) -> bool:
        """Is a hinted ``state`` for a key its owner does not hold older than the grace? (then: drop it)"""
        return bool(state.siblings) and max(s.timestamp for s in state.siblings) < wall - self.grace_s

    def statistics(self) -> PurgeStatistics:
        return PurgeStatistics(
            grace_s=self.grace_s,
            waiting=len(self._due),
            retired=len(self.retired),
            retired_total=self.retired_total,
            purged=self.purged,
            stale_hints_dropped=self.stale_hints,
        )
