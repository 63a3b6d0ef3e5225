"""Per-key single-decree Paxos: ballots, the acceptor's durable state, and the acceptor's three answers.

Theory of operation
-------------------
A ``serial`` operation on a key is decided by consensus among the key's N primary replicas (its
preference list; fallbacks never take part: sloppy quorums do not count for serial). The proposer is the
key's coordinator (:mod:`zkv.core.serial`); every replica is an *acceptor* (this module). As in
Cassandra's lightweight transactions, each key runs a sequence of Paxos instances, one per serial write:

* ``px_prepare(key, b)`` — the acceptor promises to accept nothing below ballot ``b`` if ``b`` is above
  every promise it made, and answers with the proposal it accepted last (ballot and key state), the
  ballot of the last proposal it committed and the key state committed with it (the read phase rides on
  the promise; an acceptor that keeps no committed state sends its ordinary copy instead); otherwise it
  answers ``px_nack`` with the promise that beats ``b``.
* ``px_propose(key, b, state)`` — accepted unless a higher promise was made since (``px_accepted``).
* ``px_commit(key, b, state)`` — the decided state is merged into the key's copy (the ordinary store,
  where every read, repair and anti-entropy sees it); ``b`` becomes the last commit and ``state`` the
  committed state, both in the acceptor's durable record.

Serial requests read the committed state, never the ordinary copy (once there is one): a plain write's
version that reached some copies only would otherwise be seen through one majority and not through the
next (docs/transactions.md, section 2). Plain versions are invisible to serial requests until a Paxos
round orders them.

A proposal is the whole new state of the key (a dotted version that supersedes the state it was computed
from), so committing one twice, or an old one late, changes nothing: the version-vector merge is
idempotent. A proposal accepted above the last commit a majority reports is *in progress* (perhaps
chosen): whoever finds it must complete it before it does anything else — serial reads included
(CASSANDRA-12126: reads that skipped this saw minority-accepted proposals appear later).

The state (:class:`AcceptorState`) is written through the store (``paxos_put``) and replies leave only
after the flush that makes it durable (:mod:`zkv.core.turnplan`), so a crash never forgets a promise.

A ballot is ``(counter, proposer name)``: totally ordered, unique per proposer.

Ring changes
------------
A round is decided by the replicas its proposer sees for the key (:func:`replica_lists`: the preference
list, and during a join or leave that moves the key the future one too, each needing a majority). Two
nodes can see the ring differently — one has not heard of a join yet, or restarted with the cluster file's
members and not caught up — and a majority of the old list and one of the new need not meet. So every
prepare and propose carries the proposer's lists, and an acceptor whose own lists for the key differ
refuses it (``rerr`` ``ring_mismatch``: the proposer counts it as a failed replica). A round is then
decided only by a majority that shares its proposer's view of the key's replicas.

When a key moves, its acceptor state moves with it: a joining node streams it from every ring member
with the key states, and a leaving node pushes it to the key's future owners (:func:`absorb` merges it
into the receiver's). A source serves a joining node's stream only once it knows the node joins, and
from then on refuses rounds that do not include the joining node's list, so whatever an old-ring
majority decided before is in what it streams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from zkv.core.effects import Reply
from zkv.core.state import NodeState
from zkv.core.versions import EMPTY, KeyState, state_from_wire, state_to_wire
from zkv.errors import InvalidRequest

Ballot = tuple[int, str]
ZERO: Ballot = (0, "")
MAX_BALLOT_COUNTER = 2**62


def ballot_from_wire(obj: object) -> Ballot:
    """``[counter, node]`` from a peer, checked."""
    if (
        not isinstance(obj, list | tuple)
        or len(obj) != 2
        or type(obj[0]) is not int
        or not 0 <= obj[0] <= MAX_BALLOT_COUNTER
        or not isinstance(obj[1], str)
    ):
        raise InvalidRequest(f"malformed ballot {obj!r}")
    return (obj[0], obj[1])


def ballot_to_wire(ballot: Ballot) -> list[Any]:
    return [ballot[0], ballot[1]]


@dataclass(frozen=True, slots=True)
class AcceptorState:
    """What one replica has promised, accepted and committed for one key.

    ``value`` is the key state committed at ``committed`` (the chosen proposal itself): a prepare answers
    it instead of the ordinary copy, so versions no Paxos round ordered (a plain write's, on some copies
    only) stay invisible to serial requests. ``None``: nothing committed yet, or a state written before
    ``value`` existed (then the ordinary copy, which holds every commit, stands in for it)."""

    promised: Ballot = ZERO
    accepted: Ballot = ZERO
    proposal: KeyState | None = None  # the state accepted at ``accepted``
    committed: Ballot = ZERO  # the ballot of the last proposal this replica committed
    value: KeyState | None = None  # the state committed at ``committed``

    def to_bytes(self) -> bytes:
        proposal = None if self.proposal is None else state_to_wire(self.proposal)
        value: Any = None
        if self.value is not None:
            # usually the accepted proposal itself: stored once (True), not twice
            same = self.committed == self.accepted and (
                self.value is self.proposal or self.value == self.proposal
            )
            value = True if same else state_to_wire(self.value)
        return msgpack.packb(
            [*self.promised, *self.accepted, proposal, *self.committed, value], use_bin_type=True
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> AcceptorState:
        """Also reads the 7-field states written before ``value`` existed (as "nothing committed kept")."""
        fields = msgpack.unpackb(blob, raw=False)
        p0, p1, a0, a1, proposal_wire, c0, c1 = fields[:7]
        value_wire = fields[7] if len(fields) > 7 else None
        proposal = None if proposal_wire is None else state_from_wire(proposal_wire)
        if value_wire is True:
            value = proposal
        else:
            value = None if value_wire is None else state_from_wire(value_wire)
        return cls((p0, p1), (a0, a1), proposal, (c0, c1), value)

    def merge(self, other: AcceptorState) -> AcceptorState:
        """Both replicas' knowledge: the higher promise, the later acceptance, the later commit (with its
        state: a commit's ballot names one chosen state). Reporting a proposal another replica accepted
        is safe: a proposer takes the highest it is told of."""
        accepted = self if self.accepted >= other.accepted else other
        if self.committed != other.committed:
            committed = self if self.committed > other.committed else other
        else:  # the same commit: keep its state if either side has it (a state written before it)
            committed = self if self.value is not None else other
        return AcceptorState(
            max(self.promised, other.promised),
            accepted.accepted,
            accepted.proposal,
            committed.committed,
            committed.value,
        )

    def committed_with(self, ballot: Ballot, state: KeyState) -> AcceptorState:
        """After committing ``state`` chosen at ``ballot`` (an older commit arriving late changes nothing)."""
        if ballot > self.committed or (ballot == self.committed and self.value is None):
            return replace(self, committed=ballot, value=state)
        return self


Lists = tuple[tuple[str, ...], ...]


def replica_lists(state: NodeState, key: bytes) -> Lists:
    """The preference lists a serial round on ``key`` needs a majority of, as this node sees the ring:
    the current one, and the future one too while a join or leave moves the key (joint quorums)."""
    current = state.ring.preference_list(key)
    future_ring = state.future_ring
    if future_ring is state.ring:
        return (current,)
    future = future_ring.preference_list(key)
    return (current,) if set(future) == set(current) else (current, future)


def same_lists(a: Any, b: Lists) -> bool:
    """Do a peer's lists (from the wire) name the same replica sets as ``b``, in the same roles?"""
    if not isinstance(a, list | tuple) or len(a) != len(b):
        return False
    return all(isinstance(x, list | tuple) and set(x) == set(y) for x, y in zip(a, b, strict=True))


def lists_to_wire(lists: Lists) -> list[list[str]]:
    return [list(lst) for lst in lists]


def absorb(store: Any, key: bytes, blob: Any) -> None:
    """Merge acceptor state streamed or pushed from another replica (a moving range) into this one's."""
    if not isinstance(blob, bytes):
        raise InvalidRequest("acceptor state must be bytes")
    try:
        incoming = AcceptorState.from_bytes(blob)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise InvalidRequest(f"malformed acceptor state: {exc}") from exc
    mine = store.paxos_get(key)
    merged = incoming if mine is None else AcceptorState.from_bytes(mine).merge(incoming)
    store.paxos_put(key, merged.to_bytes())


class Acceptor:
    """This replica's side of every key's Paxos: answers to prepare, propose and commit."""

    def __init__(self, state: NodeState, merge_local: Any) -> None:
        self.state = state
        self.store = state.store
        self.health = state.storage_health
        self._merge_local = merge_local  # Replica.merge_local: commits go where every write goes
        self._out = state.effects
        # the proposer's hook: a commit here tells the requests it coordinates their fate
        self.commit_seen: Callable[[bytes, KeyState], None] | None = None
        self.ring_mismatches = 0  # rounds refused: the proposer saw other replicas for the key

    def load(self, key: bytes) -> AcceptorState:
        blob = self.store.paxos_get(key)
        return AcceptorState() if blob is None else AcceptorState.from_bytes(blob)

    def _save(self, key: bytes, acceptor: AcceptorState) -> None:
        if not self.health.writable:
            raise self.health.refusal()  # a promise that cannot be made durable is no promise
        self.store.paxos_put(key, acceptor.to_bytes())

    def is_serial(self, key: bytes) -> bool:
        """Has this replica taken part in a serial operation on ``key`` (plain writes get ordered)?"""
        return self.store.paxos_get(key) is not None

    # ---------------------------------------------------------------------------------- the three answers

    def prepare(self, key: bytes, ballot: Ballot) -> dict[str, Any]:
        acceptor = self.load(key)
        if ballot <= acceptor.promised:
            return {"op": "px_nack", "promised": ballot_to_wire(acceptor.promised)}
        self._save(key, replace(acceptor, promised=ballot))
        proposal = None if acceptor.proposal is None else state_to_wire(acceptor.proposal)
        reply: dict[str, Any] = {
            "op": "px_promise",
            "ballot": ballot_to_wire(ballot),
            "accepted": ballot_to_wire(acceptor.accepted),
            "proposal": proposal,
            "committed": ballot_to_wire(acceptor.committed),
        }
        if acceptor.value is not None:  # what was committed, not the ordinary copy (unordered versions)
            # in ``state``, where a proposer of the version before merges it as a copy (as safe)
            reply["state"], reply["kept"] = state_to_wire(acceptor.value), True
        else:  # nothing committed kept here: the ordinary copy stands in (zkv.core.serial, base_of)
            reply["state"] = state_to_wire(self.store.get(key) or EMPTY)
        return reply

    def propose(self, key: bytes, ballot: Ballot, proposal: KeyState) -> dict[str, Any]:
        acceptor = self.load(key)
        if ballot < acceptor.promised:
            return {"op": "px_nack", "promised": ballot_to_wire(acceptor.promised)}
        self._save(key, replace(acceptor, promised=ballot, accepted=ballot, proposal=proposal))
        return {"op": "px_accepted"}

    def commit(self, key: bytes, ballot: Ballot, proposal: KeyState) -> dict[str, Any]:
        self._merge_local(key, proposal)
        if self.commit_seen is not None:
            self.commit_seen(key, proposal)
        acceptor = self.load(key)
        updated = acceptor.committed_with(ballot, proposal)
        if updated is not acceptor:  # durable where the ballot is: in the acceptor's own record
            self._save(key, updated)
        return {"op": "px_committed"}

    # ---------------------------------------------------------------------------------- peer requests

    def on_prepare(self, peer: str, msg: dict[str, Any], now: float) -> None:
        key = _key(msg)
        refusal = self._ring_mismatch(key, msg)
        if refusal is not None:
            self._answer(peer, msg, refusal)
            return
        self._answer(peer, msg, self.prepare(key, ballot_from_wire(msg.get("ballot"))))

    def on_propose(self, peer: str, msg: dict[str, Any], now: float) -> None:
        key = _key(msg)
        refusal = self._ring_mismatch(key, msg)
        if refusal is not None:
            self._answer(peer, msg, refusal)
            return
        ballot = ballot_from_wire(msg.get("ballot"))
        self._answer(peer, msg, self.propose(key, ballot, state_from_wire(msg.get("state"))))

    def _ring_mismatch(self, key: bytes, msg: dict[str, Any]) -> dict[str, Any] | None:
        """A refusal when the proposer sees other replicas for ``key`` than this node does (a message
        without lists, from a proposer that does not send them, is judged as before)."""
        theirs = msg.get("lists")
        if theirs is None:
            return None
        mine = replica_lists(self.state, key)
        if same_lists(theirs, mine):
            return None
        self.ring_mismatches += 1
        return {
            "op": "rerr",
            "error": "ring_mismatch",
            "message": f"this replica sees {lists_to_wire(mine)} for the key, the proposer {theirs!r}",
        }

    def on_commit(self, peer: str, msg: dict[str, Any], now: float) -> None:
        ballot = ballot_from_wire(msg.get("ballot"))
        self._answer(peer, msg, self.commit(_key(msg), ballot, state_from_wire(msg.get("state"))))

    def _answer(self, peer: str, msg: dict[str, Any], reply: dict[str, Any]) -> None:
        reply["id"] = msg.get("id")
        # after the flush that makes the promise (or the acceptance) durable; withdrawn if it fails
        self.state.unflushed_acks.append(reply)
        self._out.append(Reply(peer.encode(), reply))


def _key(msg: dict[str, Any]) -> bytes:
    key = msg.get("key")
    if not isinstance(key, bytes):
        raise InvalidRequest("key must be bytes")
    return key
