"""Versions of one key: dotted siblings under a causal context.

Theory of operation
-------------------
A replica keeps, for every key, a :class:`KeyState`: a set of *siblings* and a *clock*.

* Each sibling is a value (or a tombstone) tagged with a **dot** ``(actor, counter)``: the unique event that
  wrote it. Only the coordinator named ``actor`` mints dots of that actor, one counter after another, so a
  dot names exactly one write, forever.
* The **clock** is a version vector ``{actor: counter}`` summarising every dot this replica has *seen* for
  the key, including dots of siblings that were later superseded. Invariant: every sibling's dot is
  covered by the clock.

A put carries the *context* the client read (a clock). The coordinator removes the siblings whose dots the
context covers (the client saw them, so the new value supersedes them), keeps the others (concurrent
writes the client did not see survive as siblings), and adds the new value under a fresh dot. Because the
dot is fresh, two puts with the same context, through the same coordinator or not, both survive: the
failure of plain per-node vector clocks that DESIGN.md warns about cannot happen.

Two replica states merge (:func:`merge`) by keeping a sibling when both hold it, or when the other side has
not seen its dot yet; a sibling one side holds and the other has seen but dropped was superseded. This is
the join of a dot store with a causal context (the optimised OR-set / DVVSet construction): commutative,
associative and idempotent, so replicas converge whatever order states arrive in, and read repair,
anti-entropy and handoff all reduce to "send your state, merge it".

Tombstones are siblings whose value is ``None``; they carry dots like any write, so a delete supersedes
exactly what its context saw and never resurrects it.

Everything here is pure: time arrives as an argument (``timestamp`` orders siblings newest first for the
user, by the coordinator's wall clock, which a skewed clock gets wrong; it never decides causality).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import msgpack

Clock = dict[str, int]
Dot = tuple[str, int]

MAX_CONTEXT_BYTES = 8192
MAX_CONTEXT_ENTRIES = 256
MAX_STATE_SIBLINGS = 10_000
MAX_ACTOR_CHARS = 128
MAX_COUNTER = 2**62  # far beyond any real count, and leaves room to add one without overflowing int64


class Sibling(NamedTuple):
    """One version of a key: a value (``None`` for a tombstone) written by the event ``dot``.

    Named tuples, not frozen dataclasses, for the classes every request builds: as immutable, but built
    and compared in C (a frozen dataclass sets each field through ``object.__setattr__``, 3x slower).
    """

    actor: str
    counter: int
    timestamp: float
    value: bytes | None
    expires: float | None = None  # wall-clock seconds (TTL): from then on it reads as a tombstone

    @property
    def dot(self) -> Dot:
        return (self.actor, self.counter)

    @property
    def is_tombstone(self) -> bool:
        return self.value is None

    def expired(self, wall: float) -> bool:
        """Does this version read as deleted at wall-clock time ``wall``? (a tombstone, or past its TTL)"""
        return self.value is None or (self.expires is not None and self.expires <= wall)


class KeyState(NamedTuple):
    """What one replica holds for one key: its siblings, newest first, and the clock of all it has seen."""

    siblings: tuple[Sibling, ...]
    clock: Mapping[str, int]

    @property
    def values(self) -> list[bytes]:
        """Live sibling values, newest first; empty when the key is missing or deleted."""
        return [s.value for s in self.siblings if s.value is not None]

    @property
    def is_deleted(self) -> bool:
        return bool(self.siblings) and all(s.is_tombstone for s in self.siblings)

    def dots(self) -> frozenset[Dot]:
        return frozenset((s.actor, s.counter) for s in self.siblings)

    def context(self) -> bytes:
        """The opaque causal context a client hands back on its next put or delete."""
        return encode_context(self.clock)


EMPTY = KeyState((), {})


# ---------------------------------------------------------------------------------------------- clocks


def covers(clock: Mapping[str, int], dot: Dot) -> bool:
    """Has a replica with ``clock`` seen the write ``dot``?"""
    return clock.get(dot[0], 0) >= dot[1]


def join(a: Mapping[str, int], b: Mapping[str, int]) -> Clock:
    """The least clock that has seen everything either has (entry-wise max)."""
    out = dict(a)
    for actor, counter in b.items():
        if counter > out.get(actor, 0):
            out[actor] = counter
    return out


# ---------------------------------------------------------------------------------------------- states


def _ordered(siblings: Iterable[Sibling]) -> tuple[Sibling, ...]:
    """Newest first; ties broken by dot so every replica lists siblings in the same order."""
    siblings = tuple(siblings)
    if len(siblings) < 2:
        return siblings  # the usual case: nothing to sort
    return tuple(sorted(siblings, key=lambda s: (-s.timestamp, s.actor, -s.counter)))


def _normal(clock: Mapping[str, int]) -> Clock:
    return {actor: counter for actor, counter in clock.items() if counter > 0}


def merge(a: KeyState, b: KeyState) -> KeyState:
    """Join two replica states of the same key (commutative, associative, idempotent)."""
    if a is b or not b.clock:
        return a
    if not a.clock:
        return b
    if a.clock == b.clock and a.siblings == b.siblings:
        return a  # replicas in sync: the common case of every read
    a_clock, b_clock = a.clock, b.clock
    b_dots = {(s.actor, s.counter) for s in b.siblings}
    a_dots = {(s.actor, s.counter) for s in a.siblings}
    # a sibling stays when both hold it or the other side has not seen its dot (covers(), inlined)
    kept = [s for s in a.siblings if (s.actor, s.counter) in b_dots or b_clock.get(s.actor, 0) < s.counter]
    kept += [
        s for s in b.siblings if (s.actor, s.counter) not in a_dots and a_clock.get(s.actor, 0) < s.counter
    ]
    return KeyState(_ordered(kept), join(a_clock, b_clock))


def merge_all(states: Iterable[KeyState]) -> KeyState:
    out = EMPTY
    for state in states:
        out = merge(out, state)
    return out


def update(
    state: KeyState,
    actor: str,
    context: Mapping[str, int],
    value: bytes | None,
    timestamp: float,
    expires: float | None = None,
    floor: int = 0,
) -> tuple[KeyState, Sibling]:
    """Apply a put (or, with ``value=None``, a delete) coordinated by ``actor``.

    ``expires``: the absolute wall-clock time (the coordinator's ``timestamp`` plus the TTL) from which
    the new version reads as deleted. It is part of the version (its dot's event), so every replica
    holds the same expiry and decides the same way; a put without one supersedes an expiring version
    like any put, which clears the TTL.

    Siblings the client's ``context`` saw are superseded; the others stay as siblings of the new value. The
    new dot counts on from everything ``actor`` minted for this key that this replica has seen: the
    coordinator is a replica holding all of its own dots, so the dot is fresh. ``floor``: every counter
    ``actor`` minted so far, for any key; the new one goes above it, because a purged key's old dots are
    gone from every replica (``zkv.core.purge``) while a replica that still holds its retired tombstone
    would take a reused dot for one it had seen already, and drop the write.
    """
    counter = max(state.clock.get(actor, 0), context.get(actor, 0), floor) + 1
    if counter > MAX_COUNTER:
        raise ValueError("the context claims more writes than any node can have made")
    new = Sibling(actor, counter, timestamp, value, expires)
    kept = [s for s in state.siblings if not covers(context, s.dot)]
    clock = join(state.clock, context)
    clock[actor] = counter
    return KeyState(_ordered([new, *kept]), clock), new


def visible(state: KeyState, wall: float) -> KeyState:
    """``state`` as a reader sees it at wall-clock time ``wall``: expired versions become tombstones.

    Only for replies: what is stored and exchanged between replicas keeps the version as it was written
    (with its expiry), so a replica that missed the expiry still holds the version that supersedes the
    older ones, and nothing older can come back through read repair, handoff or anti-entropy.
    """
    if all(s.expires is None or s.expires > wall for s in state.siblings):
        return state
    siblings = tuple(
        s if s.expires is None or s.expires > wall else s._replace(value=None) for s in state.siblings
    )
    return KeyState(siblings, state.clock)


def is_dead(state: KeyState, wall: float) -> bool:
    """Every version of ``state`` reads as deleted at ``wall`` (tombstones, expired values): purgeable."""
    return bool(state.siblings) and all(s.expired(wall) for s in state.siblings)


def dead_from(state: KeyState) -> float | None:
    """The wall-clock time from which every version of ``state`` reads as deleted; None if one never does.

    A tombstone died when it was written (its timestamp), an expiring value at its expiry. The purge
    grace counts from here (``zkv.core.purge``): every replica computes the same time from the same state.
    """
    if not state.siblings:
        return None
    latest = -math.inf
    for s in state.siblings:
        if s.value is None:
            latest = max(latest, s.timestamp)
        elif s.expires is not None:
            latest = max(latest, s.expires)
        else:
            return None
    return latest


# ---------------------------------------------------------------------------------------------- encoding


def encode_context(clock: Mapping[str, int]) -> bytes:
    """Contexts are opaque to clients: msgpack of the clock, sorted so equal clocks give equal bytes."""
    return msgpack.packb(sorted(_normal(clock).items()), use_bin_type=True)


def decode_context(data: bytes | None) -> Clock:
    """Parse a client context; raises ``ValueError`` with a readable reason when it is not one of ours."""
    if not data:
        return {}
    if len(data) > MAX_CONTEXT_BYTES:
        raise ValueError(f"context is {len(data)} bytes, more than {MAX_CONTEXT_BYTES}")
    try:
        items = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:
        raise ValueError(f"context is not a zkv context ({exc.__class__.__name__})") from None
    if not isinstance(items, list) or len(items) > MAX_CONTEXT_ENTRIES:
        raise ValueError("context is not a zkv context")
    clock: Clock = {}
    for item in items:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not _counter_ok(item[1])
            or item[0] in clock
        ):
            raise ValueError("context is not a zkv context")
        clock[item[0]] = item[1]
    return clock


def _counter_ok(counter: object) -> bool:
    return type(counter) is int and 0 < counter <= MAX_COUNTER


def _actor_ok(actor: object) -> bool:
    return isinstance(actor, str) and 0 < len(actor) <= MAX_ACTOR_CHARS


def wire_size(state: KeyState) -> int:
    """Roughly the bytes ``state`` takes on the wire: enough to keep batches under the message limit."""
    return sum(len(s.value or b"") + len(s.actor) + 24 for s in state.siblings) + 16 * len(state.clock)


def state_to_wire(state: KeyState) -> list:
    """A state as msgpack-able lists: ``[[[actor, counter, ts, value(, expires)], ...], [[actor, counter],
    ...]]`` (``expires`` only on versions written with a TTL, so older states read the same).

    Canonical: the clock is sorted by actor, so equal states pack to equal bytes, and the Merkle digest
    of a stored state hashes the bytes the engine stores (``merkle.packed_digest``: one msgpack pass).
    """
    clock = state.clock
    return [
        [
            [s.actor, s.counter, s.timestamp, s.value]
            if s.expires is None
            else [s.actor, s.counter, s.timestamp, s.value, s.expires]
            for s in state.siblings
        ],
        [[a, clock[a]] for a in sorted(clock)] if len(clock) > 1 else [[a, c] for a, c in clock.items()],
    ]


def state_from_wire(obj: object) -> KeyState:
    """Inverse of :func:`state_to_wire`; raises ``ValueError`` on anything malformed.

    States come from peers and disk, so nothing is trusted: every field is type- and range-checked, and
    the invariants (distinct dots, every dot covered by the clock) are verified.
    """
    if not isinstance(obj, list | tuple) or len(obj) != 2:
        raise ValueError("malformed key state: not a [siblings, clock] pair")
    raw_siblings, raw_clock = obj
    if not isinstance(raw_clock, list | tuple) or not isinstance(raw_siblings, list | tuple):
        raise ValueError("malformed key state: siblings and clock must be arrays")
    if len(raw_clock) > MAX_CONTEXT_ENTRIES or len(raw_siblings) > MAX_STATE_SIBLINGS:
        raise ValueError("malformed key state: too many entries")
    clock: Clock = {}
    for entry in raw_clock:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise ValueError("malformed key state: bad clock entry")
        actor, counter = entry
        if not _actor_ok(actor) or not _counter_ok(counter) or actor in clock:
            raise ValueError("malformed key state: bad clock entry")
        clock[actor] = counter
    siblings = []
    dots: set[Dot] = set()
    for entry in raw_siblings:
        if not isinstance(entry, list | tuple) or len(entry) not in (4, 5):
            raise ValueError("malformed key state: bad sibling")
        actor, counter, ts, value = entry[:4]
        expires = entry[4] if len(entry) == 5 else None
        if expires is not None and (
            isinstance(expires, bool) or not isinstance(expires, int | float) or not math.isfinite(expires)
        ):
            raise ValueError("malformed key state: bad expiry")
        dot = (actor, counter)
        if not _actor_ok(actor) or not _counter_ok(counter) or dot in dots:
            raise ValueError("malformed key state: bad or repeated dot")
        if type(ts) is not float and (isinstance(ts, bool) or not isinstance(ts, int)):
            raise ValueError("malformed key state: bad timestamp")
        if not math.isfinite(ts):
            raise ValueError("malformed key state: bad timestamp")
        if value is not None and not isinstance(value, bytes):
            raise ValueError("malformed key state: bad value")
        if clock.get(actor, 0) < counter:
            raise ValueError("malformed key state: a sibling's dot is not in the clock")
        dots.add(dot)
        siblings.append(
            Sibling(actor, counter, float(ts), value, None if expires is None else float(expires))
        )
    return KeyState(_ordered(siblings), clock)


def pack_state(state: KeyState) -> bytes:
    """Bytes for storage engines."""
    return msgpack.packb(state_to_wire(state), use_bin_type=True)


def unpack_state(data: bytes) -> KeyState:
    return state_from_wire(msgpack.unpackb(data, raw=False, use_list=True))
