"""The coordinator side of a node: client requests, from arrival to answer.

Theory of operation
-------------------
Requests follow Dynamo: the coordinator is a node of the key's preference list (any other node forwards
the request to one that is up, trying the next when one cannot be reached); it applies a write locally
under a fresh dot, sends the resulting key state to the other live replicas and answers after W
acknowledgements; for a read it merges the states of R replicas, answers, keeps listening until every
replica answered or the deadline passed, and sends the merged state to every replica that was behind
(read repair). Too few live replicas: ``unavailable`` at once; too few answers by the deadline:
``timeout``.

* **Sloppy quorum.** A down primary is stood in for by the next up node of the ring (a *fallback*), which
  keeps the write as a hint for the owner; hinted writes count toward ``one`` and ``quorum``, never
  toward ``all``. A down primary with no fallback gets its hint kept here, uncounted.
* **Speculative retry** (Cassandra). A read asks only as many other replicas as its consistency needs;
  when one fails, or all stay silent past ``speculative_retry_s``, it asks the rest. A sample of reads
  (``read_repair_chance``) asks every live replica, so read repair also reaches keys no read needed.
* **When a write is answered.** The reply leaves after the flush that makes the local copy durable
  (:mod:`zkv.core.turnplan`); a write decided by acknowledgements that came after such a flush promises
  nothing the next one adds, so its reply is marked ``before_flush``.

Every request in flight is one entry of the pending table, with a deadline; the table is bounded
(``overloaded`` past :data:`MAX_PENDING`) and so is each client's share of it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from zkv.core import receipt, writes
from zkv.core.effects import Reply, Send
from zkv.core.forwarding import Forwarder
from zkv.core.pending import Origin, Pending, PendingRead, PendingWrite
from zkv.core.quorum import Outcome, ReadQuorum, WriteQuorum, required
from zkv.core.replica import Replica
from zkv.core.serial import SerialCoordinator
from zkv.core.state import NodeState
from zkv.core.txn import INTENT_MAGIC, TxnRequest
from zkv.core.versions import EMPTY, state_from_wire, state_to_wire
from zkv.errors import InvalidRequest, Overloaded, StorageUnavailable, Timeout, Unavailable, ZkvError
from zkv.protocol import GetRequest, InfoRequest, PutRequest, Request, parse_request, request_id

MAX_PENDING = 20000
StoreFault = Callable[[int | str | None, str, float], None]


InfoHandler = Callable[[Origin, InfoRequest, float], None]


class Coordinator:
    """The pending table of one node and every decision about the requests in it."""

    def __init__(
        self, state: NodeState, replica: Replica, answer_info: InfoHandler, store_fault: StoreFault
    ) -> None:
        self.state = state
        self.replica = replica
        self.settings = state.settings
        self.name = state.name
        self.store = state.store
        self.membership = state.membership
        self.stats = state.stats
        self.health = state.storage_health
        self._answer_info = answer_info  # the front answers info requests (ping, nodes, status, ...)
        self._store_fault = store_fault  # the front judges a failed store (NodeCore.on_store_fault)
        self._out = state.effects
        self._flushes = 0  # flushes the runtime reported (on_flushed): what a write waited for
        self._pending: dict[int, Pending] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._speculations: list[tuple[float, int]] = []  # when a read asks its spare replicas
        self._in_flight: dict[bytes, int] = {}  # unanswered requests per client route
        self.serial: SerialCoordinator | None = None  # set by the front: serial requests go there
        self.forwarder = Forwarder(state, self._track)
        self.txn: Any = None  # the front's TxnCoordinator (zkv.core.txncoord): txn requests go there

    @property
    def in_flight(self) -> int:
        """Requests this node coordinates or forwarded that are not decided yet."""
        return len(self._pending)

    def client_in_flight(self, route: bytes) -> int:
        return self._in_flight.get(route, 0)

    def on_flushed(self) -> None:
        self._flushes += 1

    def on_local_copy_lost(self, error: str, now: float) -> None:
        """The flush failed: a write coordinated here whose local copy was not flushed stops counting it."""
        for iid, pending in list(self._pending.items()):
            if isinstance(pending, PendingWrite) and pending.flushes == self._flushes:
                q = pending.quorum
                if self.name in q.acked:
                    q.acked.discard(self.name)
                    q.failed[self.name] = error
                    self._decide_write(iid, pending, q.outcome(), now)

    # ------------------------------------------------------------------------------------------ timers

    def next_wakeup(self) -> float:
        wake = float("inf")
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._pending:
            heapq.heappop(deadlines)  # answered long ago: no reason to wake for it
        if deadlines:
            wake = deadlines[0][0]
        speculations = self._speculations
        while speculations and speculations[0][1] not in self._pending:
            heapq.heappop(speculations)
        if speculations:
            wake = min(wake, speculations[0][0])
        return wake

    def on_tick(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, iid = heapq.heappop(self._deadlines)
            pending = self._pending.pop(iid, None)
            if pending is not None:
                self._expire(iid, pending, now)
        while self._speculations and self._speculations[0][0] <= now:
            _, iid = heapq.heappop(self._speculations)
            read = self._pending.get(iid)
            if isinstance(read, PendingRead) and not read.replied:
                self._ask_spares(iid, read, len(read.spares))  # slow replicas: Cassandra's speculative retry

    # ------------------------------------------------------------------------------------------ requests

    def accept(self, route: bytes, request: Request, raw: dict[str, Any], now: float) -> None:
        """A client's parsed request, within its share of the pending table."""
        self._in_flight[route] = self._in_flight.get(route, 0) + 1
        self.handle(Origin(route, request.id), request, raw, now, may_forward=True)

    def handle(
        self, origin: Origin, request: Request, raw: dict[str, Any], now: float, may_forward: bool
    ) -> None:
        try:
            if isinstance(request, PutRequest | GetRequest) and request.consistency == "serial":
                self._coordinate_serial(origin, request, raw, now, may_forward)
            elif isinstance(request, PutRequest):
                self._coordinate_write(origin, request, raw, now, may_forward)
            elif isinstance(request, GetRequest):
                self._coordinate_read(origin, request, raw, now, may_forward)
            elif isinstance(request, TxnRequest):
                if self.txn is None:
                    raise InvalidRequest("this node does not serve transactions")
                self.txn.start(origin, request, now)
            else:
                self._answer_info(origin, request, now)
        except StorageUnavailable as exc:
            if self.health.writable:  # the store itself failed (not a refusal): judge it
                self._store_fault(exc.code, exc.message, now)
            if not (
                may_forward
                and isinstance(request, PutRequest | GetRequest)
                and self.forwarder.hand_over(
                    origin, raw, request, self._live_replicas(request.key, now)[1], now
                )
            ):
                self.finish(
                    origin, request.op, getattr(request, "consistency", None), now, now, exc.to_wire()
                )
        except ZkvError as exc:
            op = getattr(request, "op", "?")
            consistency = getattr(request, "consistency", None)
            self.finish(origin, op, consistency, now, now, exc.to_wire())

    def finish(
        self,
        origin: Origin,
        op: str,
        consistency: str | None,
        started: float,
        now: float,
        msg: dict[str, Any],
        before_flush: bool = False,
    ) -> None:
        """Answer a client request and count it (forwarded requests are counted where they arrived)."""
        error = None if msg.get("ok") else msg.get("error")
        self.stats.record(op, consistency, now - started, error)
        msg["id"] = origin.rid
        if origin.fwd_id is None:
            left = self._in_flight.get(origin.route, 0) - 1
            if left > 0:
                self._in_flight[origin.route] = left
            else:
                self._in_flight.pop(origin.route, None)
            self._out.append(Reply(origin.route, msg, before_flush))
        else:
            fwd = {"op": "fwd_reply", "id": origin.fwd_id, "reply": msg}
            self._out.append(Reply(origin.route, fwd, before_flush))

    def _track(self, pending: Pending, deadline: float) -> int:
        if len(self._pending) >= MAX_PENDING:
            raise Overloaded(f"{len(self._pending)} requests in flight on {self.name}; retry shortly")
        iid = next(self.state.ids)
        self._pending[iid] = pending
        heapq.heappush(self._deadlines, (deadline, iid))
        return iid

    def _live_replicas(self, key: bytes, now: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
        preference = self.state.ring.preference_list(key)
        is_up = self.membership.is_up
        return preference, tuple([n for n in preference if is_up(n, now)])

    def on_forwarded(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """``fwd``: a peer that holds no replica of the key hands this node a client's request."""
        fid = msg.get("id")
        raw = msg.get("req")
        if type(fid) is not int or not isinstance(raw, dict):
            raise InvalidRequest("malformed fwd")
        try:
            request = parse_request(raw, self.settings.limits)
        except ZkvError as exc:
            reply = {"id": request_id(raw), **exc.to_wire()}
            self._out.append(Reply(peer.encode(), {"op": "fwd_reply", "id": fid, "reply": reply}))
            return
        self.handle(Origin(peer.encode(), request.id, fid), request, raw, now, may_forward=False)

    # ------------------------------------------------------------------------------------------ writes

    def _coordinate_write(
        self, origin: Origin, req: PutRequest, raw: dict[str, Any], now: float, may_forward: bool
    ) -> None:
        preference, live = self._live_replicas(req.key, now)
        consistency = req.consistency or self.settings.write_consistency
        need = required(consistency, len(preference))
        if self.forwarder.forwarded(
            origin, raw, req.op, req.consistency, preference, live, need, now, may_forward
        ):
            return
        if self.serial is not None and self.serial.acceptor.is_serial(req.key):
            # a plain write to a key used serially is ordered: it goes through Paxos, unconditionally
            # (docs/transactions.md, "Mixing"), so it can never slip between a CAS's read and its write
            self._coordinate_serial(origin, req, raw, now, may_forward)
            return
        if not self.health.writable:  # a replica whose disk takes writes coordinates instead
            self.forwarder.to_writable(origin, raw, req.op, req.consistency, live, now, may_forward)
            return
        fallbacks = writes.fallbacks(self.state, req.key, preference, live, consistency, now)
        strict = consistency == "all" or not (
            self.settings.sloppy_quorum if req.sloppy is None else req.sloppy
        )
        writes.check_alive(consistency, need, preference, live, fallbacks, strict)
        local = self.store.get(req.key) or EMPTY
        context, state, new = writes.next_state(
            local, req, self.settings, self.membership, self.state.wall(now), self.state.minted
        )
        self.replica.put_local(req.key, state)
        self.state.minted = new.counter
        # strict: the fallbacks still get the write and keep it as a hint, but their acks do not count
        counted = live if strict else live + tuple(fallbacks)
        quorum = WriteQuorum(counted, need, now + self.settings.request_timeout_s)
        quorum.on_ack(self.name)
        # a down primary with no fallback to stand in for it: the coordinator keeps the hint itself
        # (as Cassandra does); it does not count toward W, but the owner gets the write when back
        covered = set(fallbacks.values())
        keep_for = (
            [o for o in preference if o not in live and o not in covered and self.state.hints_wanted(o, now)]
            if self.state.handoff is not None
            else []
        )
        hinted = frozenset() if strict else frozenset(fallbacks)
        write = PendingWrite(origin, req.op, consistency, now, quorum, self._flushes, strict, hinted)
        write.ctx = writes.written_context(context, new)
        if raw.get("trace") is True:
            write.receipt = receipt.write_receipt(
                self.name,
                req.op,
                consistency,
                req.context is None,
                context,
                local,
                state,
                new,
                fallbacks,
                len(keep_for),
            )
        if quorum.outcome() is Outcome.OK:
            answer = writes.write_ok(write, now, quorum="strict" if strict else "sloppy", hinted=0)
            self.state.unflushed_acks.append(answer)  # it counts the local copy: only after a good flush
            self.finish(origin, req.op, consistency, now, now, answer)
            iid = 0  # decided already: replica acks need no bookkeeping
        else:
            iid = self._track(write, quorum.deadline)
        writes.send_to_replicas(self.state, iid, req.key, state, preference, live, fallbacks, keep_for, now)

    def _coordinate_serial(
        self, origin: Origin, req: PutRequest | GetRequest, raw: dict[str, Any], now: float, may_forward: bool
    ) -> None:
        """A serial request (or an ordered plain write): a primary replica runs its Paxos rounds."""
        if self.serial is None:
            raise InvalidRequest("this node does not serve serial requests")
        preference, live = self._live_replicas(req.key, now)
        need = len(preference) // 2 + 1
        if self.forwarder.forwarded(origin, raw, req.op, "serial", preference, live, need, now, may_forward):
            return
        if isinstance(req, GetRequest):
            self.serial.start(origin, "get", req.key, now)
            return
        if not self.health.writable:  # its acceptor cannot promise: a replica whose disk works coordinates
            self.forwarder.to_writable(origin, raw, req.op, "serial", live, now, may_forward)
            return
        condition: tuple[str, bytes | None] | None = None
        if req.if_absent:
            condition = ("absent", None)
        elif req.if_value is not None:
            condition = ("value", req.if_value)
        context = None if req.context is None else dict(req.context)
        self.serial.start(origin, req.op, req.key, now, req.value, condition, context, req.ttl)

    def _decide_write(self, iid: int, write: PendingWrite, outcome: Outcome, now: float) -> None:
        if outcome is Outcome.PENDING:
            return
        del self._pending[iid]
        q = write.quorum
        # the local copy was synced by a flush since it was written: only the acks were awaited
        synced = write.flushes < self._flushes
        if outcome is Outcome.OK:
            hinted = len(q.acked & write.fallbacks)
            msg = writes.write_ok(write, now, quorum="strict" if write.strict else "sloppy", hinted=hinted)
            if not synced and self.name in q.acked:
                self.state.unflushed_acks.append(msg)
        else:
            msg = writes.failed_reply(write)
        self.finish(write.origin, write.op, write.consistency, write.started, now, msg, synced)

    # ------------------------------------------------------------------------------------------ reads

    def _coordinate_read(
        self, origin: Origin, req: GetRequest, raw: dict[str, Any], now: float, may_forward: bool
    ) -> None:
        preference, live = self._live_replicas(req.key, now)
        consistency = req.consistency or self.settings.read_consistency
        need = required(consistency, len(preference))
        if self.forwarder.forwarded(
            origin, raw, "get", req.consistency, preference, live, need, now, may_forward
        ):
            return
        if len(live) < need:
            raise Unavailable(
                f"{consistency} needs {need} of {len(preference)} replicas, {len(live)} alive",
                required=need,
                alive=len(live),
            )
        others = [node for node in live if node != self.name]
        if self.state.rng.random() < self.settings.read_repair_chance:
            asked, spares = others, []  # a sample of reads asks everyone, to repair the ones behind
        else:
            # the coordinator's own copy counts: ask only as many others as the consistency needs, and the
            # rest when one of them fails or stays silent past speculative_retry (Cassandra's
            # speculative retry); anti-entropy and the sampled reads repair what no read asks
            asked, spares = others[: need - 1], others[need - 1 :]
        quorum = ReadQuorum((self.name, *asked), need, now + self.settings.request_timeout_s)
        quorum.on_state(self.name, self.store.get(req.key) or EMPTY)
        read = PendingRead(origin, consistency, req.key, now, quorum, spares)
        if raw.get("trace") is True:
            read.receipt = receipt.read_receipt(self.name, consistency)
            receipt.on_answer(read.receipt, self.name, 0.0)
        iid = self._track(read, quorum.deadline)
        for node in asked:
            self._out.append(Send(node, {"op": "rget", "id": iid, "key": req.key}))
        if spares and need > 1:
            heapq.heappush(self._speculations, (now + self.settings.speculative_retry_s, iid))
        self._advance_read(iid, read, now)

    def _ask_spares(self, iid: int, read: PendingRead, count: int) -> None:
        """Widen a read to ``count`` more of the live replicas it did not ask."""
        asked, read.spares = read.spares[:count], read.spares[count:]
        if not asked:
            return
        read.quorum.targets += tuple(asked)
        for node in asked:
            self._out.append(Send(node, {"op": "rget", "id": iid, "key": read.key}))

    def _advance_read(self, iid: int, read: PendingRead, now: float) -> None:
        quorum = read.quorum
        outcome = quorum.outcome()
        if not read.replied and outcome is not Outcome.PENDING:
            read.replied = True
            merged = quorum.merged() if outcome is Outcome.OK else None
            if merged is not None and self.serial is not None and _holds_intent(merged):
                # a transaction's intent: its record decides what the key holds (read-atomic), so the
                # read goes through the serial layer, which resolves the intent first
                self.serial.start(read.origin, "get", read.key, now)
            elif merged is not None:
                reply = writes.read_reply(merged, self.state.wall(now))
                self.stats.siblings.observe(len(reply["values"]))
                if read.receipt is not None:
                    done = receipt.finish_read(read.receipt, quorum.states, quorum.merged())
                    reply["receipt"] = receipt.stamp(done, now - read.started)
                self.finish(read.origin, "get", read.consistency, read.started, now, reply)
            else:
                err = Unavailable(
                    f"{read.consistency} needs {quorum.required} replicas, "
                    f"{len(quorum.states)} answered and the rest failed",
                    required=quorum.required,
                    alive=len(quorum.states),
                )
                self.finish(read.origin, "get", read.consistency, read.started, now, err.to_wire())
        if quorum.complete:
            self._pending.pop(iid, None)
            self._repair(read)

    def _repair(self, read: PendingRead) -> None:
        merged, stale = read.quorum.stale_replicas()
        if not stale:
            return
        self.stats.read_repairs += len(stale)
        for node in stale:
            if node == self.name:
                if self.health.writable:
                    self.replica.merge_local(read.key, merged)
            else:
                self._out.append(
                    Send(node, {"op": "repair", "key": read.key, "state": state_to_wire(merged)})
                )

    # ------------------------------------------------------------------------------------------ outcomes

    def _expire(self, iid: int, pending: Pending, now: float) -> None:
        if isinstance(pending, PendingWrite):
            q = pending.quorum
            if q.on_deadline() is Outcome.TIMEOUT:
                err = Timeout(required=q.required, acknowledged=len(q.acked))
                self.finish(
                    pending.origin, pending.op, pending.consistency, pending.started, now, err.to_wire()
                )
        elif isinstance(pending, PendingRead):
            rq = pending.quorum
            if not pending.replied:
                pending.replied = True
                err = Timeout(required=rq.required, acknowledged=len(rq.states))
                self.finish(pending.origin, "get", pending.consistency, pending.started, now, err.to_wire())
            self._repair(pending)
        else:
            err = Timeout(
                f"forwarded request got no answer from a replica within {self.settings.request_timeout_s}s"
            )
            self.finish(pending.origin, pending.op, pending.consistency, pending.started, now, err.to_wire())

    def on_reply(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """``rput_ok`` / ``rget_ok`` / ``rerr`` / ``fwd_reply``: a peer answered a request of this node's."""
        iid = msg.get("id")
        if type(iid) is not int:
            return
        pending = self._pending.get(iid)
        if pending is None:
            return  # late answer to a request already decided
        op = msg["op"]
        if isinstance(pending, PendingWrite):
            q = pending.quorum
            if op == "rput_ok":
                receipt.on_answer(pending.receipt, peer, now - pending.started)
                outcome = q.on_ack(peer)
            else:
                receipt.on_failure(pending.receipt, peer, str(msg.get("error")))
                outcome = q.on_failure(peer, str(msg.get("error")))
            self._decide_write(iid, pending, outcome, now)
        elif isinstance(pending, PendingRead):
            if op == "rget_ok":
                pending.quorum.on_state(peer, state_from_wire(msg.get("state")))
                receipt.on_answer(pending.receipt, peer, now - pending.started)
            else:
                pending.quorum.on_failure(peer, str(msg.get("error")))
                receipt.on_failure(pending.receipt, peer, str(msg.get("error")))
                self._ask_spares(iid, pending, 1)  # in its place
            self._advance_read(iid, pending, now)
        elif op == "fwd_reply":
            reply = msg.get("reply")
            if isinstance(reply, dict):
                del self._pending[iid]
                self.finish(
                    pending.origin, pending.op, pending.consistency, pending.started, now, dict(reply)
                )

    def on_send_failed(self, peer: str, iid: int, now: float) -> None:
        """A request of this node's could not be handed to ``peer`` (no connection): that replica failed."""
        pending = self._pending.get(iid)
        if pending is None:
            return
        if isinstance(pending, PendingWrite):
            receipt.on_failure(pending.receipt, peer, "unreachable")
            self._decide_write(iid, pending, pending.quorum.on_failure(peer, "unreachable"), now)
        elif isinstance(pending, PendingRead):
            receipt.on_failure(pending.receipt, peer, "unreachable")
            pending.quorum.on_failure(peer, "unreachable")
            self._ask_spares(iid, pending, 1)
            self._advance_read(iid, pending, now)
        elif pending.candidates:
            self.forwarder.send(iid, pending)
        else:
            del self._pending[iid]
            err = Unavailable("no replica of the key could be reached", required=1, alive=0)
            self.finish(pending.origin, pending.op, pending.consistency, pending.started, now, err.to_wire())


def _holds_intent(state: Any) -> bool:
    return any(s.value is not None and s.value.startswith(INTENT_MAGIC) for s in state.siblings)
