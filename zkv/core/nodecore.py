"""The decisions of one zkv node, free of I/O: coordinate client requests, serve as a replica, heartbeat.

Theory of operation
-------------------
The runtime feeds the core three kinds of input, each with the current time ``now``:

* ``on_client(route, msg)`` — a request from a client (``route`` is its ROUTER identity);
* ``on_peer(peer, msg)`` — a request from a peer node (``rput``/``rget``/``repair``/``fwd``) or a reply to
  one of ours (``rput_ok``/``rget_ok``/``rerr``/``fwd_reply``);
* ``on_heartbeat(msg)``, ``on_send_failed(peer, msg)`` and ``on_tick()``.

The core reads and writes its local replica through a :class:`zkv.storage.Store` and queues **effects**
(:mod:`zkv.core.effects`) that the runtime collects with :meth:`NodeCore.take_effects` and carries out
after flushing the store, so nothing leaves the node before what it acknowledges is durable.

Requests follow Dynamo: the coordinator is a node of the key's preference list (any other node forwards
the request to one that is up); it applies a write locally under a fresh dot, sends the resulting key
state to the other live replicas and answers after W acknowledgements; for a read it merges the states of
R replicas, answers, keeps listening until every replica answered or the deadline passed, and sends the
merged state to every replica that was behind (read repair). Too few live replicas: ``unavailable`` at
once; too few answers by the deadline: ``timeout``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

from zkv.core import admin, receipt
from zkv.core.antientropy import AntiEntropy
from zkv.core.clocks import DEFAULT_MAX_SKEW_S, ClockSkew
from zkv.core.effects import Connect, Effect, Publish, Reply, Send
from zkv.core.handoff import Handoff, Hints
from zkv.core.membership import JOINING, NORMAL, Membership
from zkv.core.quorum import Outcome, ReadQuorum, WriteQuorum, required
from zkv.core.rebalance import RebalanceMixin
from zkv.core.ring import Ring, ring_of
from zkv.core.stats import RequestStats
from zkv.core.storagehealth import StorageHealth
from zkv.core.transfer import JoinStream, LeaveStream, StreamSource
from zkv.core.versions import (
    BATCH_BYTES,
    EMPTY,
    MAX_CONTEXT_ENTRIES,
    KeyState,
    merge,
    state_from_wire,
    state_to_wire,
    update,
)
from zkv.core.views import ViewsMixin
from zkv.errors import (
    ContextTooLarge,
    InvalidRequest,
    Overloaded,
    StorageError,
    StorageFull,
    StorageUnavailable,
    Timeout,
    TooManyRequests,
    TooManySiblings,
    Unavailable,
    ZkvError,
)
from zkv.protocol import GetRequest, InfoRequest, Limits, PutRequest, Request, ok, parse_request, request_id

log = logging.getLogger(__name__)

MAX_PENDING = 20000
_REPLY_OPS = frozenset({"rput_ok", "rget_ok", "rerr", "fwd_reply"})  # answers to this node's requests
_STORAGE_CODES = {
    StorageFull.code: StorageFull,
    StorageError.code: StorageError,
    StorageUnavailable.code: StorageUnavailable,
}
_REFUSED = {
    StorageFull.code: "disk full",
    StorageError.code: "disk failing",
    StorageUnavailable.code: "storage unavailable",
}


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Everything the core needs to know about its cluster, as plain values."""

    name: str
    actor: str  # the id this node mints dots under (name plus incarnation)
    members: dict[str, tuple[str, str]]  # name -> (address, gossip)
    replication_factor: int = 3
    vnodes: int = 64
    read_level: str = "quorum"
    write_level: str = "quorum"
    request_timeout: float = 2.0
    heartbeat_interval: float = 0.5
    failure_timeout: float = 3.0
    phi_threshold: float = 8.0
    handoff_interval: float = 1.0
    max_hint_window: float = 10800.0  # hints only for owners down less than this (Cassandra's hint window)
    anti_entropy_interval: float = 10.0
    read_repair_chance: float = 0.1  # share of reads that ask every live replica, for read repair
    speculative_retry: float = 0.02  # seconds before a read whose asked replicas are silent asks the rest
    joining: bool = False  # start as a joining member: stream the ranges it will own before serving them
    generation: int = 1
    wall_offset: float = 0.0  # wall clock minus ``now`` at start (the runtime keeps NodeCore.wall_offset)
    max_clock_skew: float = DEFAULT_MAX_SKEW_S  # a peer's wall clock further off than this is warned of
    sloppy_quorum: bool = True  # hinted writes on fallbacks count toward W (a request may say otherwise)
    limits: Limits = Limits()


class Origin(NamedTuple):
    """Where a request's answer goes: a client, or (``fwd_id`` set) the peer that forwarded it."""

    route: bytes
    rid: int
    fwd_id: int | None = None


@dataclass(slots=True)
class _Write:
    origin: Origin
    op: str
    level: str
    started: float
    quorum: WriteQuorum
    flushes: int  # the runtime's flushes before the local write: any later one made it durable
    strict: bool = False  # only preference-list replicas count toward W
    fallbacks: frozenset[str] = frozenset()  # fallbacks whose hinted acks count (a sloppy quorum)
    receipt: dict[str, Any] | None = None  # kept only when the request asked for a trace


@dataclass(slots=True)
class _Read:
    origin: Origin
    level: str
    key: bytes
    started: float
    quorum: ReadQuorum
    spares: list[str]  # live replicas not asked (yet): asked when an asked one fails or is slow
    replied: bool = False
    receipt: dict[str, Any] | None = None  # kept only when the request asked for a trace


@dataclass(slots=True)
class _Forward:
    origin: Origin
    request: dict[str, Any]
    op: str
    level: str | None
    candidates: list[str]
    started: float
    deadline: float


class NodeCore(RebalanceMixin, ViewsMixin):
    """One node's state machine. Not thread-safe: the runtime drives it from one loop."""

    def __init__(
        self,
        settings: NodeSettings,
        store: Any,
        now: float,
        hints: Hints | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.rng = rng if rng is not None else random.Random(settings.name)  # all the core's randomness
        self.name = settings.name
        self.store = store
        # without a hint store there is no sloppy quorum: writes count only live primaries
        self.handoff = (
            Handoff(hints, settings.handoff_interval, settings.request_timeout) if hints is not None else None
        )
        self.started = now
        self.membership = Membership(
            settings.name,
            settings.members,
            settings.generation,
            settings.heartbeat_interval,
            settings.failure_timeout,
            now,
            phi_threshold=settings.phi_threshold,
            vnodes=settings.vnodes,
            status=JOINING if settings.joining else NORMAL,
        )
        self.ring = self._build_ring()
        self.future_ring = self._build_ring(future=True)
        # states per node-to-node message: well under ZMQ_MAXMSGSIZE, whatever the value sizes
        batch_bytes = min(BATCH_BYTES, settings.limits.max_message_bytes // 2)
        if self.handoff is not None:
            self.handoff.batch_bytes = batch_bytes
        self.source = StreamSource(batch_bytes)
        self.join_stream: JoinStream | None = None
        self._join_after: float | None = None
        self.leave_stream: LeaveStream | None = None
        self._stop_at: float | None = None
        self.aae = AntiEntropy(settings.name, settings.anti_entropy_interval, settings.request_timeout, now)
        self.aae.batch_bytes = batch_bytes
        # keys already on disk get their digests in slices, between requests (see on_tick)
        self._unindexed = iter(list(store.keys())) if len(store) else None
        # an engine that digests every state it writes (the log engine) saves anti-entropy hashing it again
        self._kept_digest = store.digest if getattr(store, "keeps_digests", False) else None
        self._strays: Any = None  # keys to check, after a ring change, for ones this node no longer owns
        self.stats = RequestStats()
        self._effects: list[Effect] = []
        self._flushes = 0  # flushes the runtime reported (on_flushed): what a write waited for
        self._ids = itertools.count(1)
        self._pending: dict[int, _Write | _Read | _Forward] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._speculations: list[tuple[float, int]] = []  # when a read asks its spare replicas
        self.status_extra: dict[str, Any] = {}  # facts only the runtime knows (pid, addresses)
        self.storage_health = StorageHealth(now)
        # wall clock minus ``now``: sibling timestamps (display order only) and the clock-skew check
        self.wall_offset = settings.wall_offset
        self.clocks = ClockSkew(settings.name, settings.max_clock_skew)
        self._raised_to = 0  # the generation gossip last raised this node to (logged once)
        # replies that acknowledge a write not flushed yet: withdrawn if the flush fails (on_store_fault)
        self._unflushed_acks: list[dict[str, Any]] = []
        self._peer_disk: dict[str, str] = {}  # a peer's disk state when it is not ok, from its heartbeat
        self._in_flight: dict[bytes, int] = {}  # unanswered requests per client route
        self._connected: set[str] = set()  # peers whose request connection is up (for logging changes)

    # ------------------------------------------------------------------------------------------ driving

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def on_flushed(self) -> None:
        """The runtime flushed the store (and the hints): every write made so far is as durable as the
        fsync policy makes it. Replies that depend on no later write may now leave before a flush."""
        self._flushes += 1
        if self._unflushed_acks:
            self._unflushed_acks.clear()

    # ------------------------------------------------------------------------------------------ disk

    def on_store_fault(self, code: int | str | None, message: str, now: float) -> None:
        """The runtime's flush (or a metadata save) failed with ``errno`` ``code``: stop taking writes.

        Every acknowledgement that depended on that flush is withdrawn before it leaves (the runtime
        sends replies only after the flush): a client's ``ok`` becomes the refusal, a replica's
        ``rput_ok`` an ``rerr``, a handoff or stream ack an ``rerr`` its sender ignores (it retries).
        A write this node coordinates whose local copy was not flushed stops counting that copy.
        """
        health = self.storage_health
        was_writable = health.writable
        health.on_fault(code, message, now)
        if was_writable:
            log.error("storage: %s; this node refuses writes until it recovers", message)
        refusal = health.refusal().to_wire()
        for msg in self._unflushed_acks:
            rid = msg.get("id")
            op = msg.get("op")
            msg.clear()
            if op is None:  # a client's (or a forwarding peer's) answer
                msg.update({"id": rid, **refusal})
            else:
                msg.update({"op": "rerr", "id": rid, "error": refusal["error"]})
                msg["message"] = refusal["message"]
        self._unflushed_acks.clear()
        for iid, pending in list(self._pending.items()):
            if isinstance(pending, _Write) and pending.flushes == self._flushes:
                q = pending.quorum
                if self.name in q.acked:
                    q.acked.discard(self.name)
                    q.failed[self.name] = refusal["error"]
                    self._decide_write(iid, pending, q.outcome(), now)

    def take_raised_generation(self) -> int | None:
        """The generation gossip raised this node to, once (the runtime saves it in the metadata)."""
        if not self.membership.generation_raised:
            return None
        self.membership.generation_raised = False
        return self.membership.generation

    def storage_probe_due(self, now: float) -> bool:
        """Should the runtime retry its flush and measure the free space now (:meth:`on_storage_probe`)?"""
        return self.storage_health.probe_due(now)

    def on_storage_probe(self, free_bytes: int | None, now: float) -> None:
        """A probe flushed everything that was buffered and found ``free_bytes`` free."""
        health = self.storage_health
        if not health.writable and health.on_probe(free_bytes, now):
            log.warning("storage: writable again (%s bytes free)", free_bytes)
        elif health.writable:
            health.free_bytes = free_bytes

    def _ack_write(self, route: bytes, msg: dict[str, Any]) -> None:
        """A reply acknowledging a write to this node's disk: it leaves only after a good flush."""
        self._unflushed_acks.append(msg)
        self._effects.append(Reply(route, msg))

    def next_wakeup(self) -> float:
        wake = min(self.membership.next_wakeup(), self.storage_health.next_probe)
        if self.handoff is not None:
            wake = min(wake, self.handoff.next_wakeup())
        wake = min(wake, self.aae.next_wakeup())
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._pending:
            heapq.heappop(deadlines)  # answered long ago: no reason to wake for it
        if deadlines:
            wake = min(wake, deadlines[0][0])
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
            if isinstance(read, _Read) and not read.replied:
                self._ask_spares(iid, read, len(read.spares))  # slow replicas: Cassandra's speculative retry
        if self.membership.heartbeat_due(now):
            heartbeat = self.membership.make_heartbeat(now, len(self.store))
            heartbeat["wall"] = int((now + self.wall_offset) * 1000)
            if not self.storage_health.writable:
                heartbeat["disk"] = self.storage_health.state  # peers show it in their node lists
            self._effects.append(Publish(heartbeat))
        if self.handoff is not None and len(self.handoff.hints):
            for target, msg in self.handoff.offers(now, lambda n: self.membership.is_up(n, now), self._ids):
                self._effects.append(Send(target, msg))
            for target in self.handoff.targets():
                if not self._hints_wanted(target, now):
                    log.warning("dropping the hints for %s: down longer than the hint window", target)
                    self.handoff.drop(target)
        self._advance_transfers(now)
        if self._strays is not None:
            self._hand_off_strays()
        if self._unindexed is not None:
            self._index_some()
        elif self.membership.status_of(self.name) == NORMAL and now >= self.aae.next_wakeup():
            # only when an exchange is due: asking every member's detector on every turn is O(members)
            up = [p for p in self.ring.members if p != self.name and self.membership.is_up(p, now)]
            started = self.aae.start(now, up, self._ids)
            if started is not None:
                self._effects.append(Send(*started))

    def _hand_off_strays(self, count: int = 2000) -> None:
        """After a ring change, hint each key this node holds but no longer replicates to its owners.

        A node whose ring was stale (cut off while a join completed) may have taken a write for a key it
        no longer owns, after the new owner had streamed the key; no one else would ever pull it, and
        anti-entropy only compares keys both sides replicate (found by the simulator: a write acknowledged
        at ``one`` on a partitioned old owner was lost). Hinted handoff delivers such states durably;
        merging makes the usual case, an owner that has them already, a no-op. A slice per tick.
        """
        assert self._strays is not None and self.handoff is not None
        if not self.storage_health.writable:
            return  # hints are written to this disk too: later
        done = 0
        for key in itertools.islice(self._strays, count):
            done += 1
            owners = self.ring.preference_list(key)
            if self.name in owners:
                continue
            state = self.store.get(key)
            if state is None:
                continue
            for owner in owners:
                try:
                    self.handoff.keep(owner, key, state)
                except ValueError:
                    log.warning("a stray key's state is over the hint store's bound; it stays here only")
        if done < count:
            self._strays = None

    def _index_some(self, count: int = 2000) -> None:
        """Digest a slice of the keys found in the store at start (anti-entropy waits until all are)."""
        assert self._unindexed is not None
        done = 0
        known_digest = getattr(self.store, "digest", None)
        for key in itertools.islice(self._unindexed, count):
            done += 1
            digest = known_digest(key) if known_digest is not None else None
            if digest is not None:
                self.aae.on_digest(key, digest, self.ring)
            else:
                state = self.store.get(key)
                if state is not None:
                    self.aae.on_change(key, state, self.ring)
        if done < count:
            self._unindexed = None

    def on_connection(self, peer: str, connected: bool, now: float) -> None:
        """The runtime's word that the request connection to ``peer`` came up or dropped.

        Only a connection that was up can be lost: at start-up every peer is reported unconnected, and
        logging that as "lost" sent operators hunting for a failure that never happened."""
        if connected and peer not in self._connected:
            self._connected.add(peer)
            log.info("connection to %s up", peer)
        elif not connected and peer in self._connected:
            self._connected.discard(peer)
            log.info("connection to %s lost", peer)
        self.membership.on_connection(peer, connected)

    def on_heartbeat(self, msg: dict[str, Any], now: float) -> None:
        sender, disk, wall = msg.get("node"), msg.get("disk"), msg.get("wall")
        if isinstance(sender, str) and sender != self.name:
            if isinstance(disk, str):
                self._peer_disk[sender] = disk
            else:
                self._peer_disk.pop(sender, None)
            if type(wall) is int:
                self.clocks.on_heartbeat(sender, wall, now + self.wall_offset)
        if self.membership.on_heartbeat(msg, now):
            log.info("%s restarted (generation %s)", msg.get("node"), msg.get("gen"))
        if self.membership.generation_raised and self._raised_to != self.membership.generation:
            self._raised_to = self.membership.generation
            log.warning(
                "peers remember %s under a later generation (a clock that was ahead, or set back since): "
                "now generation %d",
                self.name,
                self.membership.generation,
            )
        self._membership_changed()

    def _membership_changed(self) -> None:
        """Connect to members learned of, and rebuild the rings when who owns tokens changed."""
        for member in self.membership.take_learned():
            log.info("learned of %s (%s) at %s", member.name, member.status, member.address)
            self._effects.append(Connect(member.name, member.address, member.gossip))
        if self.membership.take_changed():
            ring = self._build_ring()
            settled = self.membership.status_of(self.name) == NORMAL  # a joining node holds future keys
            if self.handoff is not None and ring is not self.ring and settled and len(self.store):
                self._strays = iter(list(self.store.keys()))
            self.ring = ring
            self.future_ring = self._build_ring(future=True)
            self.aae.rebuild(self.ring)

    def _build_ring(self, future: bool = False) -> Ring:
        """The ring of the members that own tokens (``future``: as it will be once joins and leaves end).

        Tokens are a pure function of a member's name and vnodes, so every node builds the same ring.
        """
        members = self.membership.future_ring_members() if future else self.membership.ring_members()
        return ring_of(tuple(sorted(members.items())), self.settings.replication_factor)

    # ------------------------------------------------------------------------------------------ clients

    def on_client(self, route: bytes, msg: dict[str, Any], now: float) -> None:
        try:
            request = parse_request(msg, self.settings.limits)
        except ZkvError as exc:
            self.stats.bad_messages += 1
            self.stats.errors[exc.code] += 1
            self._effects.append(Reply(route, {"id": request_id(msg), **exc.to_wire()}))
            return
        in_flight = self._in_flight.get(route, 0)
        limit = self.settings.limits.max_in_flight_per_client
        if in_flight >= limit:
            # one client pipelining without bound must not take the node's whole pending table
            refusal = TooManyRequests(
                f"{in_flight} requests of this client unanswered (limit {limit})", limit=limit
            )
            self.stats.errors[refusal.code] += 1
            self._effects.append(Reply(route, {"id": request.id, **refusal.to_wire()}))
            return
        self._in_flight[route] = in_flight + 1
        self._handle(Origin(route, request.id), request, msg, now, may_forward=True)

    def _handle(
        self, origin: Origin, request: Request, raw: dict[str, Any], now: float, may_forward: bool
    ) -> None:
        try:
            if isinstance(request, PutRequest):
                self._coordinate_write(origin, request, raw, now, may_forward)
            elif isinstance(request, GetRequest):
                self._coordinate_read(origin, request, raw, now, may_forward)
            else:
                self._answer_info(origin, request, now)
        except StorageUnavailable as exc:
            if self.storage_health.writable:  # the store itself failed (not a refusal): judge it
                self.on_store_fault(exc.code, exc.message, now)
            if not (
                may_forward
                and isinstance(request, PutRequest | GetRequest)
                and self._hand_over(origin, request, raw, now)
            ):
                self._finish(origin, request.op, getattr(request, "level", None), now, now, exc.to_wire())
        except ZkvError as exc:
            op = getattr(request, "op", "?")
            level = getattr(request, "level", None)
            self._finish(origin, op, level, now, now, exc.to_wire())

    def _hand_over(self, origin: Origin, request: PutRequest | GetRequest, raw: dict, now: float) -> bool:
        """This coordinator's storage cannot be read (its Redis is gone; nothing was sent yet): another
        live replica whose storage works coordinates instead. False when there is none."""
        live = self._live_replicas(request.key, now)[1]
        others = tuple(n for n in live if n != self.name and n not in self._peer_disk)
        if not others:
            return False
        self.stats.errors[StorageUnavailable.code] += 1
        self._forward(origin, raw, request.op, request.level, others, now)
        return True

    def _reply(self, origin: Origin, msg: dict[str, Any], before_flush: bool = False) -> None:
        msg["id"] = origin.rid
        if origin.fwd_id is None:
            left = self._in_flight.get(origin.route, 0) - 1
            if left > 0:
                self._in_flight[origin.route] = left
            else:
                self._in_flight.pop(origin.route, None)
            self._effects.append(Reply(origin.route, msg, before_flush))
        else:
            fwd = {"op": "fwd_reply", "id": origin.fwd_id, "reply": msg}
            self._effects.append(Reply(origin.route, fwd, before_flush))

    def _finish(
        self,
        origin: Origin,
        op: str,
        level: str | None,
        started: float,
        now: float,
        msg: dict,
        before_flush: bool = False,
    ) -> None:
        """Answer a client request and count it (forwarded requests are counted where they arrived)."""
        error = None if msg.get("ok") else msg.get("error")
        self.stats.record(op, level, now - started, error)
        self._reply(origin, msg, before_flush)

    def _track(self, pending: _Write | _Read | _Forward, deadline: float) -> int:
        if len(self._pending) >= MAX_PENDING:
            raise Overloaded(f"{len(self._pending)} requests in flight on {self.name}; retry shortly")
        iid = next(self._ids)
        self._pending[iid] = pending
        heapq.heappush(self._deadlines, (deadline, iid))
        return iid

    def _live_replicas(self, key: bytes, now: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
        preference = self.ring.preference_list(key)
        is_up = self.membership.is_up
        return preference, tuple([n for n in preference if is_up(n, now)])

    def _forward(
        self, origin: Origin, raw: dict, op: str, level: str | None, live: tuple[str, ...], now: float
    ):
        """This node holds no replica of the key: hand the request to one that does."""
        if not live:
            need = required(level or self.settings.write_level, self.ring.replication_factor)
            raise Unavailable(required=need, alive=0)
        deadline = now + self.settings.request_timeout
        fwd = _Forward(origin, {**raw, "id": origin.rid}, op, level, list(live), now, deadline)
        iid = self._track(fwd, deadline)
        self._send_forward(iid, fwd)

    def _forwarded(
        self,
        origin: Origin,
        raw: dict,
        op: str,
        level: str | None,
        preference: tuple[str, ...],
        live: tuple[str, ...],
        need: int,
        now: float,
        may_forward: bool,
    ) -> bool:
        """Hand the request to a replica when this node holds none; True when it did."""
        if self.name in preference:
            return False
        if not may_forward:
            raise Unavailable("ring changed while the request was forwarded; retry", required=need, alive=0)
        self._forward(origin, raw, op, level, live, now)
        return True

    def _send_forward(self, iid: int, fwd: _Forward) -> None:
        target = fwd.candidates.pop(0)
        self.stats.forwarded += 1
        self._effects.append(Send(target, {"op": "fwd", "id": iid, "req": fwd.request}))

    def _coordinate_write(
        self, origin: Origin, req: PutRequest, raw: dict, now: float, may_forward: bool
    ) -> None:
        preference, live = self._live_replicas(req.key, now)
        level = req.level or self.settings.write_level
        need = required(level, len(preference))
        if self._forwarded(origin, raw, req.op, req.level, preference, live, need, now, may_forward):
            return
        if not self.storage_health.writable:
            # this disk refuses writes: a replica whose disk takes them coordinates instead (a coordinator
            # must store the dot it mints, or it could mint it again)
            others = tuple(n for n in live if n != self.name and n not in self._peer_disk)
            if not (may_forward and others):
                raise self.storage_health.refusal()
            self._forward(origin, raw, req.op, req.level, others, now)
            return
        fallbacks = self._fallbacks(req.key, preference, live, level, now)
        strict = level == "all" or not (self.settings.sloppy_quorum if req.sloppy is None else req.sloppy)
        if strict and level != "all" and len(live) < need:  # (all takes no fallbacks anyway: below)
            raise Unavailable(
                f"strict {level} needs {need} of the key's {len(preference)} replicas, {len(live)} alive "
                "(hints on fallbacks do not count; a sloppy quorum would take them)",
                required=need,
                alive=len(live),
            )
        if len(live) + len(fallbacks) < need:
            raise Unavailable(
                f"{level} needs {need} of {len(preference)} replicas, {len(live)} alive",
                required=need,
                alive=len(live) + len(fallbacks),
            )
        local = self.store.get(req.key) or EMPTY
        if req.context is None:
            context: dict[str, int] = blind_context(local)
        else:
            context = _plausible(self._known_actors(req.context, local.clock), local.clock)
        try:
            wall = now + self.wall_offset
            expires = None if req.ttl is None else wall + req.ttl
            state, new = update(local, self.settings.actor, context, req.value, wall, expires)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if len(state.clock) > MAX_CONTEXT_ENTRIES:
            raise ContextTooLarge(
                f"the key's causal context would have {len(state.clock)} entries "
                f"(limit {MAX_CONTEXT_ENTRIES})",
                limit=MAX_CONTEXT_ENTRIES,
            )
        if len(state.siblings) > self.settings.limits.max_siblings:
            raise TooManySiblings(
                f"key has {len(state.siblings) - 1} siblings (limit {self.settings.limits.max_siblings}); "
                "get it and put with its context to resolve them",
                limit=self.settings.limits.max_siblings,
            )
        self._put_local(req.key, state)
        # strict: the fallbacks still get the write and keep it as a hint, but their acks do not count
        counted = live if strict else live + tuple(fallbacks)
        quorum = WriteQuorum(counted, need, now + self.settings.request_timeout)
        quorum.on_ack(self.name)
        # a down primary with no fallback to stand in for it: the coordinator keeps the hint itself
        # (as Cassandra does); it does not count toward W, but the owner gets the write when back
        covered = set(fallbacks.values())
        keep_for = (
            [o for o in preference if o not in live and o not in covered and self._hints_wanted(o, now)]
            if self.handoff is not None
            else []
        )
        hinted = frozenset() if strict else frozenset(fallbacks)
        write = _Write(origin, req.op, level, now, quorum, self._flushes, strict, hinted)
        if raw.get("trace") is True:
            write.receipt = receipt.write_receipt(
                self.name,
                req.op,
                level,
                req.context is None,
                context,
                local,
                state,
                new,
                fallbacks,
                len(keep_for),
            )
        if quorum.outcome() is Outcome.OK:
            answer = self._write_ok(write, now, quorum="strict" if strict else "sloppy", hinted=0)
            self._unflushed_acks.append(answer)  # it counts the local copy: only after a good flush
            self._finish(origin, req.op, level, now, now, answer)
            iid = 0  # decided already: replica acks need no bookkeeping
        else:
            iid = self._track(write, quorum.deadline)
        wire = state_to_wire(state)
        for node in live:
            if node != self.name:
                self._effects.append(Send(node, {"op": "rput", "id": iid, "key": req.key, "state": wire}))
        for node, owner in fallbacks.items():
            msg = {"op": "rput", "id": iid, "key": req.key, "state": wire, "hint": owner}
            self._effects.append(Send(node, msg))
        future = () if self.future_ring is self.ring else self.future_ring.preference_list(req.key)
        for node in future:
            # a join or leave in progress: the key's future replicas get the write too (not counted in W)
            if node not in preference and node not in fallbacks and self.membership.is_up(node, now):
                self._effects.append(Send(node, {"op": "rput", "id": iid, "key": req.key, "state": wire}))
        if self.handoff is not None:
            for owner in keep_for:
                self.handoff.keep(owner, req.key, state)

    def _write_ok(self, write: _Write, now: float, **fields: Any) -> dict[str, Any]:
        """The success reply of a write, with its receipt when the request asked for one."""
        if write.receipt is None:
            return ok(write.origin.rid, **fields)
        # the receipt says how the write was counted, as the reply does: strict or sloppy, hinted acks
        write.receipt.update(fields)
        return ok(write.origin.rid, receipt=receipt.stamp(write.receipt, now - write.started), **fields)

    def _hints_wanted(self, owner: str, now: float) -> bool:
        """Hints are kept only for an owner down less than the hint window; past it, anti-entropy repairs."""
        return self.membership.silence(owner, now) <= self.settings.max_hint_window

    def _fallbacks(
        self, key: bytes, preference: tuple[str, ...], live: tuple[str, ...], level: str, now: float
    ) -> dict[str, str]:
        """Sloppy quorum: an up fallback node for each down primary, as ``{fallback: owner}``.

        Hinted writes count toward ``one`` and ``quorum``; ``all`` promises every primary holds the
        write, so it takes none.
        """
        if self.handoff is None or level == "all" or len(live) == len(preference):
            return {}
        down = [node for node in preference if node not in live and self._hints_wanted(node, now)]
        placed = [p.node for p in self.ring.placements(key, lambda n: self.membership.is_up(n, now))]
        spare = [node for node in placed if node not in preference]
        return dict(zip(spare, down, strict=False))

    def _known_actors(self, context: dict[str, int], clock: Any) -> dict[str, int]:
        """Drop context entries of actors that are no node of this cluster (forged, or a node long gone).

        An actor already in this replica's ``clock`` of the key is kept even when this node does not know
        its node (yet): a node restarted from its config learns of members that joined since only through
        gossip, and dropping their entries kept the very siblings the client's write superseded (found by
        the simulator). Such an entry adds nothing to the clock's size, so it cannot be used to bloat it.
        Claiming less than the client saw is safe: at worst a superseded sibling stays (a false conflict).
        """
        if not context:
            return context  # a first write, or a blind one
        known = self.membership.member
        if all(known(actor.partition("~")[0]) or actor in clock for actor in context):
            return context
        if self.membership.peers() and not self.membership.heard_any():
            # just started from its config and not yet told who joined since: the unknown actors may be
            # real members, and dropping their entries would keep what the client's write superseded
            # (found by the simulator, after a crash and restart). Refuse until the first heartbeat.
            raise Unavailable(
                "this node just started and does not know every member the context names yet; retry shortly",
                required=1,
                alive=0,
            )
        return {a: c for a, c in context.items() if known(a.partition("~")[0]) or a in clock}

    def _coordinate_read(
        self, origin: Origin, req: GetRequest, raw: dict, now: float, may_forward: bool
    ) -> None:
        preference, live = self._live_replicas(req.key, now)
        level = req.level or self.settings.read_level
        need = required(level, len(preference))
        if self._forwarded(origin, raw, "get", req.level, preference, live, need, now, may_forward):
            return
        if len(live) < need:
            raise Unavailable(
                f"{level} needs {need} of {len(preference)} replicas, {len(live)} alive",
                required=need,
                alive=len(live),
            )
        others = [node for node in live if node != self.name]
        if self.rng.random() < self.settings.read_repair_chance:
            asked, spares = others, []  # a sample of reads asks everyone, to repair the ones behind
        else:
            # the coordinator's own copy counts: ask only as many others as the level needs, and the
            # rest when one of them fails or stays silent past speculative_retry (Cassandra's
            # speculative retry); anti-entropy and the sampled reads repair what no read asks
            asked, spares = others[: need - 1], others[need - 1 :]
        quorum = ReadQuorum((self.name, *asked), need, now + self.settings.request_timeout)
        quorum.on_state(self.name, self.store.get(req.key) or EMPTY)
        read = _Read(origin, level, req.key, now, quorum, spares)
        if raw.get("trace") is True:
            read.receipt = receipt.read_receipt(self.name, level)
            receipt.on_answer(read.receipt, self.name, 0.0)
        iid = self._track(read, quorum.deadline)
        for node in asked:
            self._effects.append(Send(node, {"op": "rget", "id": iid, "key": req.key}))
        if spares and need > 1:
            heapq.heappush(self._speculations, (now + self.settings.speculative_retry, iid))
        self._advance_read(iid, read, now)

    def _ask_spares(self, iid: int, read: _Read, count: int) -> None:
        """Widen a read to ``count`` more of the live replicas it did not ask."""
        asked, read.spares = read.spares[:count], read.spares[count:]
        if not asked:
            return
        read.quorum.targets += tuple(asked)
        for node in asked:
            self._effects.append(Send(node, {"op": "rget", "id": iid, "key": read.key}))

    def _advance_read(self, iid: int, read: _Read, now: float) -> None:
        quorum = read.quorum
        outcome = quorum.outcome()
        if not read.replied and outcome is not Outcome.PENDING:
            read.replied = True
            if outcome is Outcome.OK:
                reply = _read_reply(quorum.merged(), now + self.wall_offset)
                self.stats.siblings.observe(len(reply["values"]))
                if read.receipt is not None:
                    done = receipt.finish_read(read.receipt, quorum.states, quorum.merged())
                    reply["receipt"] = receipt.stamp(done, now - read.started)
                self._finish(read.origin, "get", read.level, read.started, now, reply)
            else:
                err = Unavailable(
                    f"{read.level} needs {quorum.required} replicas, "
                    f"{len(quorum.states)} answered and the rest failed",
                    required=quorum.required,
                    alive=len(quorum.states),
                )
                self._finish(read.origin, "get", read.level, read.started, now, err.to_wire())
        if quorum.complete:
            self._pending.pop(iid, None)
            self._repair(read)

    def _repair(self, read: _Read) -> None:
        merged, stale = read.quorum.stale_replicas()
        if not stale:
            return
        self.stats.read_repairs += len(stale)
        for node in stale:
            if node == self.name:
                if self.storage_health.writable:
                    self._merge_local(read.key, merged)
            else:
                self._effects.append(
                    Send(node, {"op": "repair", "key": read.key, "state": state_to_wire(merged)})
                )

    def _expire(self, iid: int, pending: _Write | _Read | _Forward, now: float) -> None:
        if isinstance(pending, _Write):
            q = pending.quorum
            if q.on_deadline() is Outcome.TIMEOUT:
                err = Timeout(required=q.required, acknowledged=len(q.acked))
                self._finish(pending.origin, pending.op, pending.level, pending.started, now, err.to_wire())
        elif isinstance(pending, _Read):
            rq = pending.quorum
            if not pending.replied:
                pending.replied = True
                err = Timeout(required=rq.required, acknowledged=len(rq.states))
                self._finish(pending.origin, "get", pending.level, pending.started, now, err.to_wire())
            self._repair(pending)
        else:
            err = Timeout(
                f"forwarded request got no answer from a replica within {self.settings.request_timeout}s"
            )
            self._finish(pending.origin, pending.op, pending.level, pending.started, now, err.to_wire())

    # ------------------------------------------------------------------------------------------ peers

    def on_peer(self, peer: str, msg: dict[str, Any], now: float) -> None:
        op = msg.get("op")
        try:
            # the ops of every request first: replies, replica writes, replica reads
            if op in _REPLY_OPS:
                self._on_peer_reply(peer, msg, now)
            elif (op == "rput" and "hint" not in msg) or op == "repair":
                self._merge_local(_bytes(msg.get("key")), state_from_wire(msg.get("state")))
                if op == "rput" and msg.get("id"):  # id 0: the write was decided already, no one waits
                    self._ack_write(peer.encode(), {"op": "rput_ok", "id": msg.get("id")})
            elif op == "rget":
                state = self.store.get(_bytes(msg.get("key"))) or EMPTY
                reply = {"op": "rget_ok", "id": msg.get("id"), "state": state_to_wire(state)}
                self._effects.append(Reply(peer.encode(), reply))
            elif op == "rput":
                self._keep_hint(peer, msg)
            elif op == "handoff":
                self._take_handoff(peer, msg)
            elif op == "aae_tree":
                self._effects.append(Reply(peer.encode(), self.aae.on_tree(peer, msg, self.ring)))
            elif op == "aae_tree_ok":
                for out in self.aae.on_tree_ok(peer, msg, self.ring, self.store.get, now):
                    self._effects.append(Send(peer, out))
            elif op == "aae_keys":
                self._effects.append(Reply(peer.encode(), self.aae.on_keys(msg, self.store.get)))
            elif op in ("stream", "stream_ok", "stream_push", "stream_push_ok"):
                self._on_transfer(peer, op, msg, now)
            elif op in ("aae_push", "aae_keys_ok"):
                if not self.storage_health.writable:
                    return  # nothing can be stored: the next exchange after recovery repairs it
                for key, state in self.aae.received(msg):
                    self._merge_local(key, state)
            elif op == "handoff_ok":
                if self.handoff is not None and self.handoff.owns(msg.get("id")):
                    self.handoff.on_delivered(msg["id"], now)
            elif op == "fwd":
                self._on_forwarded(peer, msg, now)
            else:
                raise InvalidRequest(f"unknown peer op {op!r}")
        except (ValueError, ZkvError) as exc:
            code = exc.code if isinstance(exc, ZkvError) else "invalid_request"
            if isinstance(exc, StorageUnavailable) and self.storage_health.writable:
                self.on_store_fault(code, exc.message, now)  # the store itself failed (not a refusal)
            if code in _STORAGE_CODES:
                self.stats.errors[code] += 1
            else:
                self.stats.bad_messages += 1
                log.warning("bad %s message from %s: %s", op, peer, exc)
            if op in ("rput", "rget") and type(msg.get("id")) is int:
                reply = {"op": "rerr", "id": msg["id"], "error": code, "message": str(exc)}
                self._effects.append(Reply(peer.encode(), reply))

    def _keep_hint(self, peer: str, msg: dict[str, Any]) -> None:
        """Be a fallback: keep the write for its down owner and acknowledge it."""
        owner = msg.get("hint")
        if self.handoff is None:
            raise InvalidRequest("this node keeps no hints")
        if not isinstance(owner, str) or self.membership.member(owner) is None or owner == self.name:
            raise InvalidRequest(f"hint for unknown node {owner!r}")
        if not self.storage_health.writable:
            raise self.storage_health.refusal()  # hints are written to this disk too
        self.handoff.keep(owner, _bytes(msg.get("key")), state_from_wire(msg.get("state")))
        self._ack_write(peer.encode(), {"op": "rput_ok", "id": msg.get("id")})

    def _take_handoff(self, peer: str, msg: dict[str, Any]) -> None:
        """Be the owner coming back: merge the hinted states, acknowledge after the turn's flush."""
        items = msg.get("items")
        if not isinstance(items, list):
            raise InvalidRequest("handoff without items")
        for item in items:
            if not isinstance(item, list) or len(item) != 2:
                raise InvalidRequest("malformed handoff item")
            self._merge_local(_bytes(item[0]), state_from_wire(item[1]))
        self.stats.hints_received += len(items)
        self._ack_write(peer.encode(), {"op": "handoff_ok", "id": msg.get("id")})

    def _put_local(self, key: bytes, state: KeyState) -> None:
        """Every write to this replica goes here, so the Merkle leaves stay current (and none while the
        disk refuses writes: the caller gets the refusal)."""
        if not self.storage_health.writable:
            raise self.storage_health.refusal()
        self.store.put(key, state)
        if self._kept_digest is not None:
            self.aae.on_digest(key, self._kept_digest(key), self.ring)  # hashed once, by the store
        else:
            self.aae.on_change(key, state, self.ring)
        if self.leave_stream is not None:
            self.leave_stream.touch(key)  # leaving: hand this write over too before stopping

    def _merge_local(self, key: bytes, incoming: KeyState) -> None:
        if not self.storage_health.writable:
            raise self.storage_health.refusal()  # even a no-op: what this node holds may not be on disk
        local = self.store.get(key)
        merged = incoming if local is None else merge(local, incoming)
        if merged != local:
            self._put_local(key, merged)

    def _on_forwarded(self, peer: str, msg: dict[str, Any], now: float) -> None:
        fid = msg.get("id")
        raw = msg.get("req")
        if type(fid) is not int or not isinstance(raw, dict):
            raise InvalidRequest("malformed fwd")
        try:
            request = parse_request(raw, self.settings.limits)
        except ZkvError as exc:
            reply = {"id": request_id(raw), **exc.to_wire()}
            self._effects.append(Reply(peer.encode(), {"op": "fwd_reply", "id": fid, "reply": reply}))
            return
        self._handle(Origin(peer.encode(), request.id, fid), request, raw, now, may_forward=False)

    def _on_peer_reply(self, peer: str, msg: dict[str, Any], now: float) -> None:
        iid = msg.get("id")
        if type(iid) is not int:
            return
        pending = self._pending.get(iid)
        if pending is None:
            return  # late answer to a request already decided
        op = msg["op"]
        if isinstance(pending, _Write):
            q = pending.quorum
            if op == "rput_ok":
                receipt.on_answer(pending.receipt, peer, now - pending.started)
                outcome = q.on_ack(peer)
            else:
                receipt.on_failure(pending.receipt, peer, str(msg.get("error")))
                outcome = q.on_failure(peer, str(msg.get("error")))
            self._decide_write(iid, pending, outcome, now)
        elif isinstance(pending, _Read):
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
                self._finish(pending.origin, pending.op, pending.level, pending.started, now, dict(reply))

    def _decide_write(self, iid: int, write: _Write, outcome: Outcome, now: float) -> None:
        if outcome is Outcome.PENDING:
            return
        del self._pending[iid]
        q = write.quorum
        # the local copy was synced by a flush since it was written: only the acks were awaited
        synced = write.flushes < self._flushes
        refused = [code for code in q.failed.values() if code in _STORAGE_CODES]
        if outcome is Outcome.OK:
            hinted = len(q.acked & write.fallbacks)
            msg = self._write_ok(write, now, quorum="strict" if write.strict else "sloppy", hinted=hinted)
            if not synced and self.name in q.acked:
                self._unflushed_acks.append(msg)
        elif refused:
            full = [node for node, code in q.failed.items() if code in _STORAGE_CODES]
            disk = _REFUSED[refused[0]]
            msg = _STORAGE_CODES[refused[0]](
                f"{write.level} needs {q.required} replicas, {len(q.acked)} acknowledged; "
                f"{', '.join(sorted(full))} refused the write: {disk}"
                " (the write may be visible on those that acknowledged)",
                required=q.required,
                acknowledged=len(q.acked),
            ).to_wire()
        else:
            why = ", ".join(f"{node}: {code}" for node, code in sorted(q.failed.items()))
            msg = Unavailable(
                f"{write.level} needs {q.required} replicas, {len(q.acked)} acknowledged and "
                f"{len(q.failed)} failed ({why}; the write may be visible on those that acknowledged)",
                required=q.required,
                alive=len(q.targets) - len(q.failed),
                acknowledged=len(q.acked),
            ).to_wire()
        self._finish(write.origin, write.op, write.level, write.started, now, msg, synced)

    def on_send_failed(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """The runtime could not hand ``msg`` to ``peer`` (no connection): that replica failed."""
        iid = msg.get("id")
        if type(iid) is not int:
            return  # not a request of this node's (every one it sends has an int id)
        if msg.get("op") == "handoff" and self.handoff is not None:
            self.handoff.on_failed(iid)
            return
        if msg.get("op") == "aae_tree":
            self.aae.on_failed(iid)
            return
        if msg.get("op") == "stream" and self.join_stream is not None:
            self.join_stream.on_failed(iid)
            return
        if msg.get("op") == "stream_push" and self.leave_stream is not None:
            self.leave_stream.on_failed(iid)
            return
        pending = self._pending.get(iid)
        if pending is None:
            return
        if isinstance(pending, _Write):
            receipt.on_failure(pending.receipt, peer, "unreachable")
            self._decide_write(iid, pending, pending.quorum.on_failure(peer, "unreachable"), now)
        elif isinstance(pending, _Read):
            receipt.on_failure(pending.receipt, peer, "unreachable")
            pending.quorum.on_failure(peer, "unreachable")
            self._ask_spares(iid, pending, 1)
            self._advance_read(iid, pending, now)
        elif pending.candidates:
            self._send_forward(iid, pending)
        else:
            del self._pending[iid]
            err = Unavailable("no replica of the key could be reached", required=1, alive=0)
            self._finish(pending.origin, pending.op, pending.level, pending.started, now, err.to_wire())

    # ------------------------------------------------------------------------------------------ info

    def _answer_info(self, origin: Origin, req: InfoRequest, now: float) -> None:
        if req.op == "ping":
            body = ok(req.id, node=self.name, generation=self.membership.generation)
        elif req.op == "nodes":
            body = ok(req.id, node=self.name, nodes=self.nodes_view(now))
        elif req.op == "ring":
            body = ok(req.id, **self.ring_view())
        elif req.op == "status":
            body = ok(req.id, **self.status_view(now))
        elif req.op == "leave":
            self._start_leaving()
            body = ok(req.id, node=self.name, status=self.membership.status_of(self.name))
        elif req.op == "local_get":
            state = self.store.get(req.args["key"]) or EMPTY
            body = ok(req.id, node=self.name, state=state_to_wire(state))
        elif req.op == "repair_now":
            body = ok(req.id, node=self.name, **admin.repair_now(self, now))
        elif req.op == "merge_states":
            body = ok(req.id, node=self.name, **admin.merge_states(self, req.args))
        else:
            raise InvalidRequest(f"{req.op!r} is not served by this node")
        self._finish(origin, req.op, None, now, now, body)


def blind_context(local: KeyState) -> dict[str, int]:
    """What a blind write (one without a context) supersedes: every version the coordinator holds or has
    seen of the key, as a user of any other store expects of a put or delete.

    Only what the coordinator has is superseded: a concurrent write it has not received yet survives as a
    sibling, so no acknowledged write is dropped unseen (see docs/architecture.md, "Blind writes"). The
    coordinator is always a replica of the key (other nodes forward), so its copy is the freshest it can
    have without asking; asking the other replicas first would cost a round trip on every put.
    """
    return dict(local.clock)


MAX_UNSEEN_WRITES = 2**32  # a real context is never this far ahead of a replica of the key


def _plausible(context: dict[str, int], clock: Any) -> dict[str, int]:
    """Cap entries of a client's context that claim absurdly more than this replica has seen.

    A real context can be ahead of the coordinator only by the writes still on their way to it. A forged
    one claiming an actor's counter near the ceiling would make the key unwritable through that actor
    (its next dot would overflow); such an entry is cut back to what this replica saw. Claiming less is
    safe: at worst a sibling stays.
    """
    if not context or all(c - clock.get(a, 0) <= MAX_UNSEEN_WRITES for a, c in context.items()):
        return context
    seen = {a: clock.get(a, 0) for a in context}
    capped = {a: c if c - seen[a] <= MAX_UNSEEN_WRITES else seen[a] for a, c in context.items()}
    return {a: c for a, c in capped.items() if c > 0}


def _read_reply(state: KeyState, wall: float) -> dict[str, Any]:
    """The reply to a read: live values newest first (an expired one reads as deleted), the context."""
    live = [s for s in state.siblings if not s.expired(wall)]
    return ok(
        0,
        values=[s.value for s in live],
        timestamps=[s.timestamp for s in live],
        # always a context, the empty one for a key never written: a write with it supersedes nothing,
        # which is what a read-modify-write that found nothing means (no context would be a blind write)
        ctx=state.context(),
    )


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidRequest("key must be bytes")
    return value
