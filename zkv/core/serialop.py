"""A serial request in flight, the callbacks it ends through, and the pure decisions on a key's state
that its rounds take (:mod:`zkv.core.serial` runs the rounds).

Kept apart from the proposer so that the layers built on serial requests (multi-key transactions,
:mod:`zkv.core.txncoord`; the plain/serial mixing rule) see the request and its decisions without the
round machinery.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zkv.core.paxos import ZERO, Ballot
from zkv.core.pending import Origin
from zkv.core.versions import EMPTY, KeyState, Sibling, covers
from zkv.protocol import ok

Finish = Callable[[Origin, str, "str | None", float, float, dict[str, Any]], None]
#: an internal request's decision on the key's current state (:mod:`zkv.core.txn`): a ``Write`` (any
#: object with ``value`` and ``expires``) to propose, or a reply to end with
Compute = Callable[[KeyState, float], Any]
Done = Callable[[dict[str, Any], float], None]
#: the transaction layer's look at a client request's round: True when it took the request over
IntentHook = Callable[["SerialOp", KeyState, float], bool]


@dataclass(slots=True)
class SerialOp:
    """One serial request in flight, across its rounds."""

    origin: Origin
    op: str  # put | delete | get
    key: bytes
    value: bytes | None
    condition: tuple[str, bytes | None] | None  # ("absent", None) | ("value", expected) | None
    context: dict[str, int] | None  # an ordered plain write's context (None: it supersedes all it sees)
    expires_in: float | None
    started: float
    deadline: float
    lists: tuple[tuple[str, ...], ...] = ()  # the preference lists each needing a majority (joint)
    targets: tuple[str, ...] = ()
    phase: str = "prepare"  # prepare | propose | commit | backoff
    ballot: Ballot = ZERO
    iid: int = 0  # the id of this round's messages: answers to older rounds are ignored
    answered: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    promises: list[dict[str, Any]] = field(default_factory=list)
    proposal: KeyState = EMPTY
    completing: bool = False  # the round's proposal is someone else's in-progress one
    settled_copies: bool = False  # it committed the merged copies once (serial._settle): not again
    owns: list[Sibling] = field(default_factory=list)  # this request's proposed versions: may be chosen
    minted: int = 0  # the highest dot counter its proposals minted (the node's floor takes it at the end)
    chosen: bool = False  # one of them was seen committed
    attempts: int = 0
    sid: int = 0  # this request's id for its timers (the round id changes every phase)
    compute: Compute | None = None  # an internal request (a transaction's step): decides what to write
    on_done: Done | None = None  # an internal request's answer goes here, not to a client


class RecentRequests:
    """The client requests started lately, by who asked (route, ids) and what: a copy of one (a
    duplicated client or forwarded message) is recognised for two request timeouts."""

    def __init__(self) -> None:
        self._recent: dict[tuple[Any, ...], float] = {}
        self._order: deque[tuple[float, tuple[Any, ...]]] = deque()

    def is_copy(self, token: tuple[Any, ...], now: float, keep_s: float) -> bool:
        """Was this request seen within the last ``keep_s`` (then: a copy)? Else remember it."""
        recent, order = self._recent, self._order
        while order and order[0][0] <= now:
            expires, old = order.popleft()
            if recent.get(old) == expires:
                del recent[old]
        if token in recent:
            return True
        expires = now + keep_s
        recent[token] = expires
        order.append((expires, token))
        return False


def own_fate(owns: list[Sibling], current: KeyState) -> str:
    """What the key's current state says of a request's earlier proposals: ``applied`` (one is a current
    version), ``unknown`` (one is superseded: it was applied before the write that superseded it, or a
    proposal of another request that minted the same dot was), else ``open``: each is either still
    uncovered (perhaps accepted somewhere) or dead (another version of its dot was chosen instead; two
    proposals mint the same dot only from the same state, and at most one of them is ever chosen)."""
    dots = {s.dot for s in current.siblings}
    if any(o in current.siblings for o in owns):
        return "applied"
    if any(covers(current.clock, o.dot) and o.dot not in dots for o in owns):
        return "unknown"
    return "open"


def live_values(state: KeyState, wall: float) -> list[bytes]:
    return [s.value for s in state.siblings if s.value is not None and not s.expired(wall)]


def holds(condition: tuple[str, bytes | None] | None, state: KeyState, wall: float) -> bool:
    """Does a serial write's condition hold on the key's current state?"""
    if condition is None:
        return True
    values = live_values(state, wall)
    if condition[0] == "absent":
        return not values
    return values == [condition[1]]


def read_reply(state: KeyState, wall: float) -> dict[str, Any]:
    """A serial read's answer: the shape of a plain read's."""
    live = [s for s in state.siblings if s.value is not None and not s.expired(wall)]
    return ok(0, values=[s.value for s in live], timestamps=[s.timestamp for s in live], ctx=state.context())
