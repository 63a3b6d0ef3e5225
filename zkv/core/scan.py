"""Key scans: a page of keys in byte order, gathered across the ring, bounded in memory everywhere.

Theory of operation
-------------------
Keys are placed by hash, so key order and ring order have nothing in common: every node holds keys from
the whole key space. A scan page is therefore a *coverage* query over every node (Riak's coverage plans,
without Riak's list-keys that streams every key of the cluster at once):

1. Each node answers ``local_scan``: its first ``limit`` keys after the cursor that start with the prefix,
   in byte order, with their stored states (:func:`local_page`). It finds them with ``heapq.nsmallest``
   over its key directory, so it holds ``limit`` keys at a time whatever it stores, and it stops early at
   :data:`SCAN_REPLY_BYTES` of states. A node that stopped (``full``) may hold more keys past its last.
2. The gatherer merges the answers (:func:`merge_page`). Only keys up to the smallest *last key* among
   the full answers are known completely: past it, a full node may hold keys it did not send. The page
   ends there (or at ``limit`` visible keys, whichever comes first) and the cursor says where.
3. Every token range must be covered by as many of its replicas as the consistency asks (R of N, as a
   read); otherwise the page is ``unavailable`` rather than silently missing a range's keys.
4. A key's states from its own replicas are merged (the same join as a read) and the key is shown only
   when a live value remains: tombstones and expired values are hidden. States a non-replica still holds
   (left from before a join or leave) are ignored.

A scan is a read of many keys at once, not a snapshot: writes that race it may or may not be seen, and it
repairs nothing (anti-entropy does). Writes held only as hints on fallback nodes are seen once delivered.

The gathering (one request per node, in parallel) is the client's; every decision is here, pure: what a
node answers from its store, which answers are enough, where the page ends, what is visible.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from zkv.core.quorum import required
from zkv.core.ring import Ring
from zkv.core.versions import KeyState, merge_all, state_from_wire, state_to_wire, visible, wire_size
from zkv.errors import BadCursor, BadLimit, Unavailable

MAX_SCAN_LIMIT = 10_000  # keys one page (and one node's answer) may hold
DEFAULT_SCAN_LIMIT = 1000
SCAN_REPLY_BYTES = 4 * 1024 * 1024  # a node's answer stops at about this many bytes of states
MAX_CURSOR_KEY_BYTES = 64 * 1024
_CURSOR_VERSION = b"\x01"


def check_limit(limit: object) -> int:
    """A page size of 1 to :data:`MAX_SCAN_LIMIT`; anything else is :class:`~zkv.errors.BadLimit`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SCAN_LIMIT:
        raise BadLimit(
            f"limit must be a whole number from 1 to {MAX_SCAN_LIMIT}, not {limit!r}", max=MAX_SCAN_LIMIT
        )
    return limit


def encode_cursor(key: bytes) -> str:
    """The opaque continuation token of a page that ended at ``key`` (URL- and header-safe)."""
    return base64.urlsafe_b64encode(_CURSOR_VERSION + key).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: object, prefix: bytes) -> bytes | None:
    """The key a cursor continues after; None for no cursor. :class:`~zkv.errors.BadCursor` for text no
    page of a scan of ``prefix`` could have returned."""
    if cursor is None or cursor == "":
        return None
    if isinstance(cursor, str):
        try:
            text = cursor.encode("ascii")
            if text.strip(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
                raise ValueError
            raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
        except (UnicodeEncodeError, ValueError, binascii.Error):
            raw = b""
        key = raw[1:]
        if raw[:1] == _CURSOR_VERSION and len(key) <= MAX_CURSOR_KEY_BYTES and key.startswith(prefix):
            return key
    raise BadCursor("bad cursor: pass the cursor the previous page of the same scan (same prefix) returned")


# ---------------------------------------------------------------------------------------------- a node


def first_keys(keys: Iterable[bytes], prefix: bytes, after: bytes | None, limit: int) -> list[bytes]:
    """The ``limit`` smallest keys after ``after`` that start with ``prefix``, in order.

    One pass over ``keys`` holding at most ``limit`` of them (a heap): a node's memory for a page does not
    grow with what it stores. Every engine answers its ``scan`` with this over its key directory. The pass
    tests only the lower bound (a C comparison per key, no Python per key); the keys with the prefix are
    the smallest ones above it, so the prefix's end is cut from the ``limit`` found."""
    above = after.__lt__ if after is not None and after >= prefix else prefix.__le__
    smallest = heapq.nsmallest(limit, filter(above, keys))
    end = len(smallest)
    while end and not smallest[end - 1].startswith(prefix):
        end -= 1
    return smallest[:end]


class LocalPage(NamedTuple):
    """One node's answer: its first keys after the cursor (in order) with their states, and ``full``:
    whether it may hold more keys after the last one (it stopped at the limit or the byte cap)."""

    items: list[tuple[bytes, KeyState]]
    full: bool


def local_page(
    store: Any,
    prefix: bytes,
    after: bytes | None,
    limit: int,
    values: bool,
    max_bytes: int = SCAN_REPLY_BYTES,
) -> LocalPage:
    """What a node answers to ``local_scan`` from its ``store`` (any engine: it needs ``scan`` and ``get``).

    Without ``values`` the states travel with every value emptied: liveness (tombstones, expiry, which
    version supersedes which) depends on dots and clocks only, so keys-only scans cost no value bytes."""
    keys = store.scan(prefix, after, limit)
    items: list[tuple[bytes, KeyState]] = []
    size = 0
    for key in keys:
        state = store.get(key)
        if state is None:
            continue
        if not values:
            state = KeyState(
                tuple(s if s.value is None else s._replace(value=b"") for s in state.siblings), state.clock
            )
        items.append((key, state))
        size += len(key) + wire_size(state)
        if size >= max_bytes and len(items) < len(keys):
            return LocalPage(items, True)
    return LocalPage(items, len(keys) >= limit)


def page_to_wire(page: LocalPage) -> dict[str, Any]:
    return {"items": [[k, state_to_wire(s)] for k, s in page.items], "full": page.full}


def page_from_wire(reply: Mapping[str, Any]) -> LocalPage:
    """A node's ``local_scan`` answer; ``ValueError`` when it is malformed (or out of order)."""
    items = reply.get("items")
    if not isinstance(items, list):
        raise ValueError("local_scan answer without items")
    out: list[tuple[bytes, KeyState]] = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], bytes):
            raise ValueError("local_scan item is not [key, state]")
        if out and item[0] <= out[-1][0]:
            raise ValueError("local_scan items out of order")
        out.append((item[0], state_from_wire(item[1])))
    return LocalPage(out, bool(reply.get("full")))


# ---------------------------------------------------------------------------------------------- the page


@dataclass(frozen=True, slots=True)
class ScanEntry:
    """One key of a page: its live values newest first (empty in a keys-only scan), and how many."""

    key: bytes
    values: tuple[bytes, ...]
    siblings: int


@dataclass(frozen=True, slots=True)
class ScanPage:
    """A page of a scan: its entries in key order, and the cursor of the next page (None: the end)."""

    entries: tuple[ScanEntry, ...]
    cursor: str | None

    @property
    def keys(self) -> list[bytes]:
        return [e.key for e in self.entries]


def check_coverage(ring: Ring, consistency: str, answered: Iterable[str]) -> None:
    """Raise :class:`~zkv.errors.Unavailable` unless every token range has enough answering replicas."""
    answered = set(answered)
    for replicas in ring.preference_lists():
        need = required(consistency, len(replicas))
        alive = sum(1 for n in replicas if n in answered)
        if alive < need:
            down = ", ".join(sorted(n for n in replicas if n not in answered))
            raise Unavailable(
                f"a scan at {consistency} needs {need} of the replicas {', '.join(replicas)} for every "
                f"range, {alive} answered (no answer from {down}); try 'one' or bring nodes back",
                required=need,
                alive=alive,
            )


def merge_page(
    ring: Ring,
    consistency: str,
    answers: Mapping[str, LocalPage],
    limit: int,
    wall: float,
    values: bool = True,
) -> ScanPage:
    """The page the nodes' ``answers`` (node name -> its answer) make, at wall-clock time ``wall``;
    without ``values`` the entries carry none (a keys-only scan)."""
    check_coverage(ring, consistency, answers)
    ends = [page.items[-1][0] for page in answers.values() if page.full and page.items]
    bound = min(ends) if ends else None
    states: dict[bytes, list[KeyState]] = {}
    for node, page in answers.items():
        for key, state in page.items:
            if bound is not None and key > bound:
                break
            if node in ring.preference_list(key):
                states.setdefault(key, []).append(state)
    entries: list[ScanEntry] = []
    for key in sorted(states):
        live = [s for s in visible(merge_all(states[key]), wall).siblings if s.value is not None]
        if not live:
            continue
        shown = tuple(s.value for s in live if s.value is not None) if values else ()
        entries.append(ScanEntry(key, shown, len(live)))
        if len(entries) == limit:
            return ScanPage(tuple(entries), encode_cursor(key))
    return ScanPage(tuple(entries), encode_cursor(bound) if bound is not None else None)
