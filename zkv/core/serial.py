"""The proposer side of ``serial`` operations: compare-and-set, conditional and ordered writes, serial reads.

Theory of operation
-------------------
A serial request is coordinated by a primary replica of its key (others forward it, as any request). Its
coordinator runs rounds of single-decree Paxos (:mod:`zkv.core.paxos`) with a fresh ballot each:

1. **prepare** to every primary; a majority of promises is needed (during a join or leave that moves the
   key, a majority of the current *and* of the future preference list: joint quorums). The lists go with
   the messages: an acceptor that sees other replicas for the key refuses (``ring_mismatch``, counted as
   a failed replica), so a round is decided only by a majority sharing its proposer's view
   (:mod:`zkv.core.paxos`, "Ring changes"). Any ``px_nack`` ends the round.
2. If a promise shows a proposal accepted above the last commit any promiser reports, it is *in
   progress*: propose it again under this ballot, commit it, and start a new round (reads too).
3. Otherwise the state committed at the highest commit ballot a promiser reports is the key's current
   value (:func:`base_of`; the key's first serial request, with nothing committed yet, merges the
   promisers' ordinary copies instead, and a read or a refusal commits them before it answers, so that
   every later round reads the same). A read answers it. A write
   checks its condition (``if_absent``: no live value; ``if_value``: exactly that one value); refused,
   it answers ``condition_failed`` with the current values and context. Else it proposes the new state
   (a fresh version that supersedes the current one), and once a majority accepted it — it is chosen —
   commits it to every primary and answers *applied* after a majority committed.

A round that meets a higher ballot backs off for a random time that doubles with each attempt (capped),
so contending proposers do not livelock, and tries again until the request's deadline. A write whose
proposal was sent but not seen chosen ends **unknown** (``outcome_unknown``) at the deadline: it may be
completed later by whoever finds it. A later round of the same request that finds its own version in
the key's state knows it was applied; one that finds its condition false while its own proposal may still
be accepted somewhere answers unknown, never "refused" (it could still be completed).

Pure: ``now`` comes in, effects go out through the node's outbox; backoff timers go through
:meth:`SerialCoordinator.next_wakeup` / :meth:`SerialCoordinator.on_tick`.
"""

from __future__ import annotations

import heapq
from typing import Any

from zkv.core.effects import Send
from zkv.core.paxos import Acceptor, Ballot, ballot_from_wire, ballot_to_wire, lists_to_wire, replica_lists
from zkv.core.pending import Origin
from zkv.core.serialop import (
    Compute,
    Done,
    Finish,
    IntentHook,
    RecentRequests,
    SerialOp,
    holds,
    live_values,
    own_fate,
    read_reply,
)
from zkv.core.state import NodeState
from zkv.core.versions import (
    EMPTY,
    KeyState,
    covers,
    merge,
    merge_all,
    state_from_wire,
    state_to_wire,
    update,
)
from zkv.errors import ConditionFailed, InvalidRequest, OutcomeUnknown, Timeout, Unavailable, ZkvError
from zkv.protocol import ok

BACKOFF_BASE_S = 0.002
BACKOFF_MAX_S = 0.1


class SerialCoordinator:
    """Every serial request this node coordinates."""

    def __init__(self, state: NodeState, acceptor: Acceptor, finish: Finish) -> None:
        self.state = state
        self.name = state.name
        self.acceptor = acceptor
        self._finish = finish
        self._out = state.effects
        self._ops: dict[int, SerialOp] = {}  # by the current round's id (answers find their request)
        self._live: dict[int, SerialOp] = {}  # by the request's own id (timers find their request)
        self._timers: list[tuple[float, int, int]] = []  # (when, request id, attempt; -1: the deadline)
        self._counter = 0  # the highest ballot counter seen: the next ballot goes above it
        self._last_stamp = 0.0  # the timestamp of the last version this node proposed
        self._recent = RecentRequests()  # a copy of a client's request started lately is dropped (start)
        self.copies_dropped = 0
        acceptor.commit_seen = self._seen_committed
        self.on_intent: IntentHook | None = None  # set by the transaction coordinator

    def _seen_committed(self, key: bytes, proposal: KeyState) -> None:
        """This node's acceptor committed ``proposal``: a request whose version it is was applied; one
        whose version has the same dot but is another is dead (the dot's one chosen version is this).
        Learning it now, rather than at the request's next round, keeps the fate of a contended write
        known after later writes supersede it."""
        committed = set(proposal.siblings)
        dots = {s.dot for s in committed}
        for sop in self._live.values():
            if sop.key == key and sop.owns:
                if any(o in committed for o in sop.owns):
                    sop.chosen = True
                else:
                    sop.owns = [o for o in sop.owns if o.dot not in dots]

    @property
    def in_flight(self) -> int:
        return len(self._live)

    # ------------------------------------------------------------------------------------------ start

    def start(
        self,
        origin: Origin,
        op: str,
        key: bytes,
        now: float,
        value: bytes | None = None,
        condition: tuple[str, bytes | None] | None = None,
        context: dict[str, int] | None = None,
        expires_in: float | None = None,
        compute: Compute | None = None,
        on_done: Done | None = None,
        deadline: float | None = None,
    ) -> SerialOp | None:
        """Begin a serial request (the caller checked this node is a primary replica of ``key``; an
        internal one, with ``compute`` and ``on_done``, may run anywhere: a proposer need not be an
        acceptor).

        A copy of a client's request already started here (a duplicated client or forwarded message) is
        dropped: run twice, an unconditional write would be applied twice, the copy after a later write
        had superseded the first (found by the simulator with joins and leaves: a leaving node forwarded a
        write over a duplicating link, and a serial read after a later write saw the earlier value back).
        The first run's answer goes to the same origin."""
        token = (origin.route, origin.rid, origin.fwd_id, op, key, value)
        keep_s = 2 * self.state.settings.request_timeout_s
        if compute is None and self._recent.is_copy(token, now, keep_s):
            self.copies_dropped += 1
            return None
        deadline = min(deadline or float("inf"), now + self.state.settings.request_timeout_s)
        sop = SerialOp(origin, op, key, value, condition, context, expires_in, now, deadline)
        sop.compute, sop.on_done = compute, on_done
        sop.sid = next(self.state.ids)
        self._live[sop.sid] = sop
        heapq.heappush(self._timers, (deadline, sop.sid, -1))
        self._new_round(sop, now)
        return sop

    # ------------------------------------------------------------------------------------------ take-over
    # the transaction layer parks a client request whose key holds an intent, and resumes it (a new
    # round), ends it, or lets it back off once the intent is resolved or found undecided

    def park(self, sop: SerialOp) -> None:
        sop.phase = "parked"
        self._ops.pop(sop.iid, None)

    def is_live(self, sop: SerialOp) -> bool:
        return sop.sid in self._live

    def resume(self, sop: SerialOp, now: float) -> None:
        if sop.sid in self._live:
            self._new_round(sop, now)

    def answer(self, sop: SerialOp, msg: dict[str, Any], now: float) -> None:
        self._end(sop, msg, now)

    def retry_later(self, sop: SerialOp, now: float) -> None:
        if sop.sid in self._live:
            self._back_off(sop, now)

    def _new_round(self, sop: SerialOp, now: float) -> None:
        sop.lists = replica_lists(self.state, sop.key)
        sop.targets = tuple(dict.fromkeys(n for lst in sop.lists for n in lst))
        is_up = self.state.membership.is_up
        for lst in sop.lists:
            alive = sum(1 for n in lst if n == self.name or is_up(n, now))
            if alive < len(lst) // 2 + 1:
                err = Unavailable(
                    f"serial needs a majority ({len(lst) // 2 + 1}) of the key's {len(lst)} replicas, "
                    f"{alive} alive (fallbacks never count for serial)",
                    required=len(lst) // 2 + 1,
                    alive=alive,
                )
                self._end(sop, self._unknown_or(sop, err), now)
                return
        # above every ballot seen, and near the wall clock in microseconds (Cassandra's timestamp ballots),
        # so that proposers rarely meet each other's higher ballot on first contact
        self._counter = max(self._counter + 1, int(self.state.wall(now) * 1_000_000))
        sop.ballot = (self._counter, self.name)
        sop.phase, sop.promises, sop.completing = "prepare", [], False
        msg = {"op": "px_prepare", "key": sop.key, "ballot": ballot_to_wire(sop.ballot)}
        msg["lists"] = lists_to_wire(sop.lists)  # an acceptor that sees other replicas refuses
        self._send_round(sop, msg, now)

    def _send_round(self, sop: SerialOp, msg: dict[str, Any], now: float) -> None:
        """A new phase: a new id, so answers to the last one are ignored; the local acceptor answers now."""
        self._ops.pop(sop.iid, None)
        sop.iid = next(self.state.ids)
        self._ops[sop.iid] = sop
        sop.answered, sop.failed = set(), set()
        msg["id"] = sop.iid
        is_up = self.state.membership.is_up
        for node in sop.targets:
            if node != self.name:
                if is_up(node, now):
                    self._out.append(Send(node, dict(msg)))
                else:
                    sop.failed.add(node)
        if self.name in sop.targets:
            reply = self._local(msg)
            reply["id"] = sop.iid
            self.on_reply(self.name, reply, now)

    def _local(self, msg: dict[str, Any]) -> dict[str, Any]:
        try:
            if msg["op"] == "px_prepare":
                return self.acceptor.prepare(msg["key"], sop_ballot(msg))
            if msg["op"] == "px_propose":
                return self.acceptor.propose(msg["key"], sop_ballot(msg), state_from_wire(msg["state"]))
            return self.acceptor.commit(msg["key"], sop_ballot(msg), state_from_wire(msg["state"]))
        except ZkvError as exc:  # this node's disk refuses writes: its acceptor cannot answer
            return {"op": "rerr", "error": exc.code, "message": exc.message}

    # ------------------------------------------------------------------------------------------ answers

    def owns(self, iid: int) -> bool:
        return iid in self._ops

    def on_reply(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """``px_promise`` / ``px_accepted`` / ``px_committed`` / ``px_nack`` / ``rerr`` for a round."""
        sop = self._ops.get(msg.get("id"))  # type: ignore[arg-type]
        if sop is None or peer not in sop.targets or peer in sop.answered or peer in sop.failed:
            return
        op = msg.get("op")
        if op == "px_nack":
            promised = ballot_from_wire(msg.get("promised"))
            self._counter = max(self._counter, promised[0])
            self._back_off(sop, now)
            return
        expected = {"prepare": "px_promise", "propose": "px_accepted", "commit": "px_committed"}
        if op != expected.get(sop.phase):
            sop.failed.add(peer)
        else:
            sop.answered.add(peer)
            if op == "px_promise":
                sop.promises.append(msg)
        self._advance(sop, now)

    def on_send_failed(self, peer: str, iid: int, now: float) -> None:
        sop = self._ops.get(iid)
        if sop is not None and peer in sop.targets and peer not in sop.answered:
            sop.failed.add(peer)
            self._advance(sop, now)

    def _majority(self, sop: SerialOp, nodes: set[str]) -> bool:
        return all(sum(1 for n in lst if n in nodes) >= len(lst) // 2 + 1 for lst in sop.lists)

    def _advance(self, sop: SerialOp, now: float) -> None:
        if self._majority(sop, sop.answered):
            {"prepare": self._promised, "propose": self._chosen, "commit": self._committed}[sop.phase](
                sop, now
            )
        elif not self._majority(sop, set(sop.targets) - sop.failed):
            self._back_off(sop, now)  # too many replicas failed this round: try again while time remains

    def _promised(self, sop: SerialOp, now: float) -> None:
        promises = sop.promises
        committed = max(ballot_from_wire(p["committed"]) for p in promises)
        self._counter = max(self._counter, *(ballot_from_wire(p["accepted"])[0] for p in promises))
        current, settled = base_of(promises, committed)
        # once per request: acceptors of the version before never keep a state, and answering from
        # the merged copies, as that version did, beats committing them over and over to the deadline
        settled = settled or sop.settled_copies
        in_progress = max(
            (p for p in promises if p.get("proposal") is not None),
            key=lambda p: ballot_from_wire(p["accepted"]),
            default=None,
        )
        if in_progress is not None and ballot_from_wire(in_progress["accepted"]) > committed:
            sop.completing = True  # complete it first (a read too), then start over
            self._propose(sop, state_from_wire(in_progress["proposal"]), now)
            return
        if sop.chosen:
            self._end(sop, self._applied(sop, current, now), now)
            return
        if sop.owns:
            fate = own_fate(sop.owns, current)
            if fate == "applied":  # an earlier round's proposal was chosen (and completed)
                self._end(sop, self._applied(sop, current, now), now)
                return
            if fate == "unknown":
                err = OutcomeUnknown("the write's version was superseded before its fate was seen")
                self._end(sop, err.to_wire(), now)
                return
            sop.owns = [o for o in sop.owns if not covers(current.clock, o.dot)]  # the rest are dead
        wall = self.state.wall(now)
        if sop.compute is not None:
            decision = sop.compute(current, wall)
            if isinstance(decision, dict):
                if not settled:
                    self._settle(sop, current, now)
                    return
                if sop.owns:  # an earlier round's proposal may still be chosen: it cannot say more
                    decision = OutcomeUnknown("an earlier proposal of this step may yet be chosen").to_wire()
                self._end(sop, decision, now)
                return
            sop.value = decision.value
            self._write(sop, current, now, self._stamp(now), decision.expires)
            return
        if self.on_intent is not None and self.on_intent(sop, current, now):
            return  # the key holds a transaction's intent: the transaction layer decides first
        if not settled and (sop.op == "get" or not holds(sop.condition, current, wall)):
            self._settle(sop, current, now)  # an answer from unordered copies: order them first
            return
        if sop.op == "get":
            self._end(sop, read_reply(current, wall), now)
            return
        if not holds(sop.condition, current, wall):
            refused = ConditionFailed(
                "the condition does not hold: the key's current value is in 'values'",
                values=live_values(current, self.state.wall(now)),
                ctx=current.context(),
            )
            self._end(sop, self._unknown_or(sop, refused), now)
            return
        stamp = self._stamp(now)
        self._write(sop, current, now, stamp, None if sop.expires_in is None else stamp + sop.expires_in)

    def _settle(self, sop: SerialOp, current: KeyState, now: float) -> None:
        """No promiser keeps a committed state (the key's first serial request, or states written before
        they kept one): a round that would answer from the merged ordinary copies commits them first, as
        they are, and starts over. Its answer then comes from a committed state every later round reads,
        so a plain version seen now is seen from now on (a write needs no such step: what it commits is
        computed from these copies and becomes the committed state)."""
        sop.completing = sop.settled_copies = True
        self._propose(sop, current, now)

    def _stamp(self, now: float) -> float:
        # a timestamp no other proposal of this node has: two requests writing the same value in one
        # turn (two CAS 5 -> 6) must mint different versions, or each would take the other's for its own
        self._last_stamp = max(self.state.wall(now), self._last_stamp + 1e-6)
        return self._last_stamp

    def _write(
        self, sop: SerialOp, current: KeyState, now: float, stamp: float, expires: float | None
    ) -> None:
        """Propose ``sop.value`` as the key's new version (timestamp ``stamp``), superseding ``current``."""
        # An earlier proposal of this request that was not seen here is dead once this one is chosen:
        # it can never again be the highest accepted proposal a majority reports. The new dot counts on
        # from the state the proposal supersedes and above the node's dot floor (``state.minted``: a
        # purged key's old dots are gone, ``versions.update``); the floor takes a request's dots only
        # when it ends, so two proposals that mint the same dot were computed from the same state and
        # the same floor, and at most one of them is ever chosen.
        local = self.state.store.get(sop.key) or EMPTY
        base = merge(current, local)
        context = dict(base.clock) if sop.context is None else dict(sop.context)
        actor = self.state.settings.actor
        try:
            proposal, new = update(base, actor, context, sop.value, stamp, expires, self.state.minted)
        except ValueError as exc:
            self._end(sop, InvalidRequest(str(exc)).to_wire(), now)
            return
        sop.minted = max(sop.minted, new.counter)
        sop.owns.append(new)
        self._propose(sop, proposal, now)

    def _propose(self, sop: SerialOp, proposal: KeyState, now: float) -> None:
        sop.phase, sop.proposal = "propose", proposal
        msg = {"op": "px_propose", "key": sop.key, "ballot": ballot_to_wire(sop.ballot)}
        msg["state"] = _wire(proposal)
        msg["lists"] = lists_to_wire(sop.lists)
        self._send_round(sop, msg, now)

    def _chosen(self, sop: SerialOp, now: float) -> None:
        sop.phase = "commit"
        msg = {"op": "px_commit", "key": sop.key, "ballot": ballot_to_wire(sop.ballot)}
        msg["state"] = _wire(sop.proposal)
        self._send_round(sop, msg, now)

    def _committed(self, sop: SerialOp, now: float) -> None:
        if sop.completing:
            self._new_round(sop, now)  # the in-progress proposal is done: now this request's own round
        else:
            self._end(sop, self._applied(sop, sop.proposal, now), now)

    # ------------------------------------------------------------------------------------------ endings

    def _applied(self, sop: SerialOp, state: KeyState, now: float) -> dict[str, Any]:
        if sop.op == "get":
            return read_reply(state, self.state.wall(now))
        return ok(sop.origin.rid, applied=True, ctx=state.context())

    def _unknown_or(self, sop: SerialOp, err: ZkvError) -> dict[str, Any]:
        """``err``, unless this request's own proposal was sent and may yet be chosen: then unknown."""
        if not sop.owns:
            return err.to_wire()
        return OutcomeUnknown(
            f"the write was proposed but not seen chosen ({err.code}: {err.message}); "
            "a serial read tells whether it was applied",
        ).to_wire()

    def _back_off(self, sop: SerialOp, now: float) -> None:
        if sop.phase == "commit":
            # chosen already (a majority accepted it): only the commit's answers are missing
            if sop.completing:
                self._new_round(sop, now)
            else:
                self._end(sop, self._applied(sop, sop.proposal, now), now)
            return
        sop.attempts += 1
        delay = self.state.rng.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**sop.attempts))
        if now + delay >= sop.deadline:
            self._expire(sop, now)
            return
        sop.phase = "backoff"
        self._ops.pop(sop.iid, None)  # answers still coming to this round are ignored
        heapq.heappush(self._timers, (now + delay, sop.sid, sop.attempts))

    def _expire(self, sop: SerialOp, now: float) -> None:
        if sop.phase == "commit" and not sop.completing:
            self._end(sop, self._applied(sop, sop.proposal, now), now)
            return
        err = Timeout(
            f"serial {sop.op} not decided within {self.state.settings.request_timeout_s}s "
            f"({sop.attempts} rounds met a higher ballot or too few replicas)"
        )
        if sop.owns or (sop.phase == "propose" and not sop.completing):
            self._end(sop, self._unknown_or(sop, err), now)
        else:
            self._end(sop, err.to_wire(), now)

    def _end(self, sop: SerialOp, msg: dict[str, Any], now: float) -> None:
        self.state.minted = max(self.state.minted, sop.minted)
        self._ops.pop(sop.iid, None)
        if self._live.pop(sop.sid, None) is None:
            return  # ended already
        if sop.on_done is not None:
            sop.on_done(msg, now)
        else:
            self._finish(sop.origin, sop.op, "serial", sop.started, now, msg)

    # ------------------------------------------------------------------------------------------ timers

    def next_wakeup(self) -> float:
        timers = self._timers
        while timers and timers[0][1] not in self._live:
            heapq.heappop(timers)
        return timers[0][0] if timers else float("inf")

    def on_tick(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, sid, attempt = heapq.heappop(timers)
            sop = self._live.get(sid)
            if sop is None:
                continue
            if attempt < 0:
                self._expire(sop, now)
            elif sop.phase == "backoff" and sop.attempts == attempt:
                self._new_round(sop, now)


def base_of(promises: list[dict[str, Any]], committed: Ballot) -> tuple[KeyState, bool]:
    """The key's current serial state by a majority's promises, and whether it is a committed state.

    It is the state committed at the highest commit ballot any promiser reports (``committed``): with
    nothing in progress above that ballot, it is the last chosen state. Promisers' ordinary copies are
    not read, so a plain version on some copies only is not seen through one majority and missed through
    the next. When no promiser at ``committed`` keeps its state (``kept``: nothing committed yet, an
    acceptor record written before the state was kept, or a node of the version before), the promisers'
    states merged stand in, as before: each replica's copy holds every commit it applied, the highest
    among them."""
    for p in promises:
        if p.get("kept") is True and ballot_from_wire(p["committed"]) == committed:
            return state_from_wire(p["state"]), True
    return merge_all(state_from_wire(p["state"]) for p in promises), False


def sop_ballot(msg: dict[str, Any]) -> Ballot:
    return ballot_from_wire(msg.get("ballot"))


def _wire(state: KeyState) -> list[Any]:
    return state_to_wire(state)
