"""Hinted handoff: keep writes meant for a down node, and hand them over when it is back.

Theory of operation
-------------------
When a primary replica of a key is down, the coordinator sends the write to a fallback node with a
``hint`` naming the owner (sloppy quorum, DESIGN.md §4). The fallback keeps the state in its hint store
(durable with the log engine) instead of its own data, and acknowledges. Every ``interval`` this module
offers each owner that is up again a batch of its hints (``handoff`` message); the owner merges them like
any replica write and answers ``handoff_ok`` once they are flushed, and only then are the hints removed.
One batch per owner is in flight at a time; a lost batch is offered again (merging is idempotent, so a
duplicate delivery is harmless).

Pure: the hint store is injected (``zkv.storage.hints``), time arrives as ``now``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from zkv.core.status import HandoffStatistics
from zkv.core.versions import KeyState, state_to_wire, wire_size
from zkv.protocol import BATCH_BYTES

BATCH = 256  # hints per handoff message
AGE_RESOLUTION_S = 1.0  # hints kept within this long of each other share one "kept at" time


class Hints(Protocol):
    def add(self, target: str, key: bytes, state: KeyState) -> int: ...

    def pending(self, target: str) -> Any: ...

    def remove(self, target: str, hint_ids: list[int]) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def oldest(self, target: str) -> int | None: ...

    def bytes(self) -> int: ...

    def __len__(self) -> int: ...

    def flush(self) -> None: ...

    def needs_flush(self) -> bool: ...


@dataclass(slots=True)
class Offer:
    """A batch of hints on its way to their owner."""

    target: str
    hint_ids: list[int]
    deadline: float


class Handoff:
    """Hints kept for down owners and their delivery schedule."""

    def __init__(self, hints: Hints, interval: float, timeout: float) -> None:
        self.hints = hints
        self.interval = interval
        self.timeout = timeout
        self.batch_bytes = BATCH_BYTES  # soft cap per handoff message; NodeCore fits it to its limits
        self._next = 0.0
        self._in_flight: dict[int, Offer] = {}  # offer id -> offer
        self.delivered = 0
        self.dropped = 0
        # target -> (first hint id, when kept), oldest first: one entry per AGE_RESOLUTION_S of writes, so
        # the age of a target's oldest hint costs no read of the store and no memory per hint
        self._kept_at: dict[str, deque[tuple[int, float]]] = {}

    def keep(self, target: str, key: bytes, state: KeyState, now: float) -> None:
        """Store a hinted write (raises ValueError when a single hint is over the store's bound)."""
        hint_id = self.hints.add(target, key, state)
        times = self._kept_at.setdefault(target, deque())
        if not times or now - times[-1][1] >= AGE_RESOLUTION_S:
            times.append((hint_id, now))

    def oldest_age(self, target: str, now: float) -> float | None:
        """Seconds since the oldest hint still pending for ``target`` was kept (None: there is none).

        Exact to ``AGE_RESOLUTION_S``. Hints loaded from disk at start carry no time: they count from the
        first time this node looked (its start), so after a restart the age is a lower bound.
        """
        oldest = self.hints.oldest(target)
        times = self._kept_at.get(target)
        if oldest is None:
            self._kept_at.pop(target, None)
            return None
        if times is None:
            times = self._kept_at[target] = deque()
        while len(times) > 1 and times[1][0] <= oldest:
            times.popleft()  # every hint of the first entry is delivered or dropped
        if not times or times[0][0] > oldest:
            times.appendleft((oldest, now))  # hints older than this process (loaded from disk)
        return now - times[0][1]

    def next_wakeup(self) -> float:
        return self._next if len(self.hints) else float("inf")  # every turn asks: no dict built

    def offers(
        self, now: float, is_up: Callable[[str], bool], ids: itertools.count
    ) -> list[tuple[str, dict]]:
        """Batches to send now, as ``(owner, message)``; at most one per owner in flight."""
        for oid, offer in list(self._in_flight.items()):
            if offer.deadline <= now:
                del self._in_flight[oid]  # lost: offered again below
        if now < self._next:
            return []
        self._next = now + self.interval
        busy = {offer.target for offer in self._in_flight.values()}
        out = []
        for target, count in self.hints.counts().items():
            if count and target not in self._kept_at:
                self.oldest_age(target, now)  # hints loaded at start: their age counts from now
            if not count or target in busy or not is_up(target):
                continue
            batch: list[Any] = []
            size = 0
            for hint in itertools.islice(self.hints.pending(target), BATCH):
                if batch and size + wire_size(hint[2]) > self.batch_bytes:
                    break  # large values: fewer hints per message, so it stays under the message limit
                batch.append(hint)
                size += wire_size(hint[2])
            if not batch:
                continue
            oid = next(ids)
            self._in_flight[oid] = Offer(target, [hint_id for hint_id, _, _ in batch], now + self.timeout)
            items = [[key, state_to_wire(state)] for _, key, state in batch]
            out.append((target, {"op": "handoff", "id": oid, "items": items}))
        return out

    def targets(self) -> list[str]:
        return [t for t, c in self.hints.counts().items() if c]

    def drop(self, target: str) -> None:
        """Forget every hint for ``target`` (down past the hint window: anti-entropy will repair it)."""
        ids = [hint_id for hint_id, _, _ in self.hints.pending(target)]
        self.hints.remove(target, ids)
        self.dropped += len(ids)

    def owns(self, offer_id: Any) -> bool:
        return offer_id in self._in_flight

    def on_delivered(self, offer_id: int, now: float) -> None:
        """The owner merged and flushed the batch: forget those hints, and offer the next batch soon."""
        offer = self._in_flight.pop(offer_id, None)
        if offer is None:
            return
        self.hints.remove(offer.target, offer.hint_ids)
        self.delivered += len(offer.hint_ids)
        self._next = now  # keep draining while the owner is up

    def on_failed(self, offer_id: int) -> None:
        self._in_flight.pop(offer_id, None)

    def statistics(self, now: float) -> HandoffStatistics:
        pending = {t: c for t, c in self.hints.counts().items() if c}
        ages = {t: self.oldest_age(t, now) for t in pending}
        return HandoffStatistics(
            pending=pending,
            oldest_age_s={t: round(age, 3) for t, age in ages.items() if age is not None},
            bytes=self.hints.bytes(),
            delivered=self.delivered,
            dropped=self.dropped,
            in_flight=len(self._in_flight),
        )
