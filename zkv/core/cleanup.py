"""``cleanup``: a node drops the keys it no longer replicates, once their owners are known to hold them.

Theory of operation
-------------------
After a join the old owners keep the keys that moved away (the new owner streamed copies of them):
they take disk and would be read by no one. ``cleanup`` walks the node's keys in order; each key that
neither the ring nor the future ring (a join in progress) places on this node is a candidate. Candidates
go in batches to their owners (``ccheck`` {keys}); each owner answers the clock of every key it holds
(``ccheck_ok`` {clocks}). A key is dropped only when **every** owner answered and each one's clock covers
every version this node holds (it has seen each of them: it holds them or what superseded them), or,
for a key that is only tombstones here, the owner holds nothing (never had it, or purged it). An owner
that does not answer within the request timeout keeps the batch's keys here (``kept``): run it again.

The check and the drop happen in one turn of this node, on what it holds at that moment, so a write
that arrived meanwhile (a coordinator with a stale ring) is checked as well. Dropping is a store delete;
compaction reclaims the bytes. Progress and totals are in ``status`` → ``transfer.cleanup``.

Pure: rings, stores and time are arguments; this module returns messages.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from zkv.core.ring import Ring
from zkv.core.versions import KeyState, covers, wire_size

BATCH_KEYS = 200  # candidate keys checked per round trip
SCAN_KEYS = 2000  # keys looked at per tick at most, so a big store never stalls the loop


def covering(local: KeyState, owner_clock: dict[str, int] | None) -> bool:
    """Does an owner with ``owner_clock`` (None: it holds nothing for the key) hold what ``local`` holds?"""
    if owner_clock is None:
        return all(s.value is None for s in local.siblings)  # tombstones only: no value could come back
    return all(covers(owner_clock, s.dot) for s in local.siblings)


def parse_clocks(raw: Any) -> dict[bytes, dict[str, int] | None]:
    """A ``ccheck_ok``'s ``clocks``: ``[[key, clock or nil], ...]``; ValueError when malformed."""
    if not isinstance(raw, list):
        raise ValueError("clocks must be a list")
    out: dict[bytes, dict[str, int] | None] = {}
    for item in raw:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], bytes):
            raise ValueError("malformed [key, clock] item")
        clock = item[1]
        if clock is not None and not (
            isinstance(clock, dict) and all(isinstance(a, str) and type(c) is int for a, c in clock.items())
        ):
            raise ValueError("malformed clock")
        out[item[0]] = clock
    return out


def answer_check(rid: Any, keys: Any, local: Callable[[bytes], KeyState | None]) -> dict[str, Any]:
    """An owner's answer to ``ccheck``: the clock of each key it holds (nil for one it does not)."""
    if not isinstance(keys, list) or len(keys) > BATCH_KEYS or not all(isinstance(k, bytes) for k in keys):
        raise ValueError(f"ccheck needs 'keys': at most {BATCH_KEYS} keys")
    clocks = []
    for key in keys:
        state = local(key)
        clocks.append([key, dict(state.clock) if state is not None else None])
    return {"op": "ccheck_ok", "id": rid, "clocks": clocks}


@dataclass(slots=True)
class Cleanup:
    """One pass over this node's keys (started by the ``cleanup`` request)."""

    timeout: float
    keys: Iterator[bytes]
    total: int
    looked_at: int = 0
    dropped: int = 0
    bytes_freed: int = 0
    kept: int = 0  # candidates an owner did not confirm (down, slow, or behind this node)
    done: bool = False
    batch: dict[bytes, tuple[str, ...]] = field(default_factory=dict)  # candidate -> its owners
    waiting: dict[int, str] = field(default_factory=dict)  # check id -> owner
    answers: dict[str, dict[bytes, dict[str, int] | None]] = field(default_factory=dict)
    deadline: float = 0.0

    def next_batch(
        self, now: float, name: str, ring: Ring, future: Ring, ids: itertools.count
    ) -> list[tuple[str, dict[str, Any]]]:
        """The checks of the next batch of candidates (nothing while one is in flight, or at the end)."""
        if self.done or self.batch:
            return []
        seen = 0
        for key in itertools.islice(self.keys, SCAN_KEYS):
            seen += 1
            owners = ring.preference_list(key)
            if name in owners or name in future.preference_list(key):
                continue
            self.batch[key] = tuple(owners)
            if len(self.batch) >= BATCH_KEYS:
                break
        self.looked_at += seen
        if not self.batch:
            self.done = seen < SCAN_KEYS  # the walk reached the end
            return []
        by_owner: dict[str, list[bytes]] = {}
        for key, owners in self.batch.items():
            for owner in owners:
                by_owner.setdefault(owner, []).append(key)
        out = []
        for owner, keys in by_owner.items():
            rid = next(ids)
            self.waiting[rid] = owner
            out.append((owner, {"op": "ccheck", "id": rid, "keys": keys}))
        self.deadline = now + self.timeout
        return out

    def on_answer(self, rid: Any, raw: Any) -> bool:
        """An owner's ``ccheck_ok``; True when it was the batch's last awaited answer."""
        owner = self.waiting.pop(rid, None)
        if owner is None:
            return False
        with contextlib.suppress(ValueError):  # a malformed answer confirms nothing: those keys stay
            self.answers[owner] = parse_clocks(raw)
        return not self.waiting

    def timed_out(self, now: float) -> bool:
        return bool(self.batch) and now >= self.deadline

    def on_failed(self, rid: Any) -> None:
        self.waiting.pop(rid, None)  # that owner confirms nothing: its keys stay (judged at the deadline)

    def settle(self, local: Callable[[bytes], KeyState | None], delete: Callable[[bytes], None]) -> None:
        """Judge the batch on what this node holds now: drop each key every owner confirmed."""
        for key, owners in self.batch.items():
            state = local(key)
            if state is None:
                continue
            confirmed = True
            for owner in owners:
                answer = self.answers.get(owner)
                if answer is None or key not in answer or not covering(state, answer[key]):
                    confirmed = False
                    break
            if confirmed:
                delete(key)
                self.dropped += 1
                self.bytes_freed += wire_size(state)
            else:
                self.kept += 1
        self.batch.clear()
        self.waiting.clear()
        self.answers.clear()

    def statistics(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "keys": self.total,
            "looked_at": self.looked_at,
            "dropped": self.dropped,
            "bytes_freed": self.bytes_freed,
            "kept": self.kept,
        }
