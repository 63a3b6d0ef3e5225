"""The decisions of one zkv node, free of I/O: the front that the runtime (and the simulator) drives.

Theory of operation
-------------------
The runtime feeds the core these inputs, each with the current time ``now``:

* ``on_client(route, msg)`` — a request from a client (``route`` is its ROUTER identity);
* ``on_peer(peer, msg)`` — a request from a peer node or a reply to one of ours;
* ``on_heartbeat(msg)``, ``on_connection(peer, up)``, ``on_send_failed(peer, msg)``, ``on_join`` /
  ``on_join_ok`` and ``on_tick()``; ``on_flushed()`` after each flush of the store.

It answers with **effects** (:mod:`zkv.core.effects`) that the runtime collects with
:meth:`NodeCore.take_effects` and carries out by the turn plan (:mod:`zkv.core.turnplan`), so nothing
leaves the node before what it acknowledges is durable.

The node is three roles, composed here and sharing one :class:`~zkv.core.state.NodeState`: the
:class:`~zkv.core.coordinator.Coordinator` (client requests: quorums, forwarding, read repair), the
:class:`~zkv.core.replica.Replica` (what peers send: replica writes and reads, hints, anti-entropy,
streams) and :class:`~zkv.core.rebalance.Rebalance` (joining and leaving). This front only dispatches:
peer messages through :attr:`NodeCore.peer_ops`, a table of ``{op: handler}`` (like the shell's command
table), info requests through another; membership changes rebuild the rings here, in one place.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from zkv.core.admission import Admission, admit
from zkv.core.antientropy import AntiEntropy
from zkv.core.clocks import ClockSkew
from zkv.core.coordinator import Coordinator, Origin
from zkv.core.effects import Connect, Effect, Publish, Reply, Send
from zkv.core.handoff import Handoff, Hints
from zkv.core.info import info_answers
from zkv.core.membership import JOINING, NORMAL, Membership
from zkv.core.paxos import Acceptor
from zkv.core.readiness import Readiness
from zkv.core.rebalance import Rebalance
from zkv.core.replica import Replica
from zkv.core.ring import Ring
from zkv.core.serial import SerialCoordinator
from zkv.core.settings import NodeSettings
from zkv.core.state import NodeState
from zkv.core.stats import RequestStats
from zkv.core.status import NodeStatus
from zkv.core.storagehealth import StorageHealth
from zkv.core.txncoord import TxnCoordinator
from zkv.core.views import node_status, readiness
from zkv.core.writes import STORAGE_CODES
from zkv.errors import InvalidRequest, StorageUnavailable, TooManyRequests, Unauthorized, ZkvError
from zkv.protocol import BATCH_BYTES, InfoRequest, parse_request, request_id
from zkv.storage.base import Store

__all__ = ["NodeCore", "NodeSettings"]

log = logging.getLogger(__name__)

PeerHandler = Callable[[str, dict[str, Any], float], None]


class NodeCore:
    """One node's state machine. Not thread-safe: the runtime drives it from one loop."""

    def __init__(
        self,
        settings: NodeSettings,
        store: Store,
        now: float,
        hints: Hints | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.store = store
        self.started = now
        self.membership = Membership(
            settings.name,
            settings.members,
            settings.generation,
            settings.heartbeat_interval_s,
            settings.failure_timeout_s,
            now,
            phi_threshold=settings.phi_threshold,
            vnodes=settings.vnodes,
            status=JOINING if settings.joining else NORMAL,
        )
        # without a hint store there is no sloppy quorum: writes count only live primaries
        handoff = (
            Handoff(hints, settings.handoff_interval_s, settings.request_timeout_s)
            if hints is not None
            else None
        )
        # states per node-to-node message: well under ZMQ_MAXMSGSIZE, whatever the value sizes
        batch_bytes = min(BATCH_BYTES, settings.limits.max_message_bytes // 2)
        if handoff is not None:
            handoff.batch_bytes = batch_bytes
        self.aae = AntiEntropy(
            settings.name, settings.anti_entropy_interval_s, settings.request_timeout_s, now
        )
        self.aae.batch_bytes = batch_bytes
        self.storage_health = StorageHealth(now)
        self.state = NodeState(
            settings,
            store,
            self.membership,
            rng if rng is not None else random.Random(settings.name),
            self.aae,
            handoff,
            batch_bytes,
            self.storage_health,
        )
        self.stats: RequestStats = self.state.stats
        self._effects = self.state.effects
        self.replica = Replica(self.state)
        self.coordinator = Coordinator(self.state, self.replica, self._answer_info, self.on_store_fault)
        self.acceptor = Acceptor(self.state, self.replica.merge_local)
        self.serial = SerialCoordinator(self.state, self.acceptor, self.coordinator.finish)
        self.coordinator.serial = self.serial
        self.txn = TxnCoordinator(self.state, self.serial, self.coordinator.finish)
        self.coordinator.txn = self.txn
        self.rebalance = Rebalance(self.state, self.replica, self._membership_changed)
        self.status_extra: dict[str, Any] = {}  # facts only the runtime knows (pid, addresses)
        self.clocks = ClockSkew(settings.name, settings.max_clock_skew_s)
        self._raised_to = 0  # the generation gossip last raised this node to (logged once)
        self._connected: set[str] = set()  # peers whose request connection is up (for logging changes)
        replica, coordinator, rebalance = self.replica, self.coordinator, self.rebalance
        acceptor, serial = self.acceptor, self.serial
        self.peer_ops: dict[str, PeerHandler] = {
            # answers to this node's requests
            "rput_ok": coordinator.on_reply,
            "rget_ok": coordinator.on_reply,
            "rerr": self._on_rerr,
            "px_promise": serial.on_reply,
            "px_accepted": serial.on_reply,
            "px_committed": serial.on_reply,
            "px_nack": serial.on_reply,
            "fwd_reply": coordinator.on_reply,
            # requests of peers
            "rput": replica.on_rput,
            "rget": replica.on_rget,
            "repair": replica.on_repair,
            "fwd": coordinator.on_forwarded,
            "handoff": replica.on_handoff,
            "handoff_ok": replica.on_handoff_ok,
            "aae_tree": replica.on_aae_tree,
            "aae_tree_ok": replica.on_aae_tree_ok,
            "aae_keys": replica.on_aae_keys,
            "aae_push": replica.on_aae_items,
            "aae_keys_ok": replica.on_aae_items,
            "stream": replica.on_stream,
            "stream_ok": rebalance.on_stream_ok,
            "stream_push": replica.on_stream_push,
            "stream_push_ok": rebalance.on_stream_push_ok,
            "ccheck": rebalance.on_ccheck,
            "ccheck_ok": rebalance.on_ccheck_ok,
            # gossip catching up: a peer's heartbeat showed a view unlike this node's
            "vpull": self._on_view_pull,
            "vview": self._on_view,
            # serial (Paxos): this node as an acceptor of a key it replicates
            "px_prepare": acceptor.on_prepare,
            "px_propose": acceptor.on_propose,
            "px_commit": acceptor.on_commit,
        }
        self._info_ops = info_answers(self)

    # ------------------------------------------------------------------------------------------ state

    @property
    def ring(self) -> Ring:
        return self.state.ring

    @property
    def future_ring(self) -> Ring:
        return self.state.future_ring

    @property
    def handoff(self) -> Handoff | None:
        """The hints this node keeps for down owners (None: no hint store, no sloppy quorum)."""
        return self.state.handoff

    @handoff.setter
    def handoff(self, handoff: Handoff | None) -> None:
        self.state.handoff = handoff

    @property
    def rng(self) -> random.Random:
        return self.state.rng

    @property
    def wall_offset_s(self) -> float:
        """Wall clock minus ``now``: sibling timestamps (display order only), TTLs, the clock-skew check."""
        return self.state.wall_offset_s

    @wall_offset_s.setter
    def wall_offset_s(self, offset: float) -> None:
        self.state.wall_offset_s = offset

    def take_raised_generation(self) -> int | None:
        """The generation gossip raised this node to, once (the runtime saves it in the metadata)."""
        if not self.membership.generation_raised:
            return None
        self.membership.generation_raised = False
        return self.membership.generation

    # ------------------------------------------------------------------------------------------ driving

    def take_effects(self) -> list[Effect]:
        effects = self._effects
        if not effects:
            return []
        taken = effects.copy()
        effects.clear()  # the roles append to this one list
        return taken

    def on_flushed(self) -> None:
        """The runtime flushed the store (and the hints): every write made so far is as durable as the
        fsync policy makes it. Replies that depend on no later write may now leave before a flush."""
        self.coordinator.on_flushed()
        if self.state.unflushed_acks:
            self.state.unflushed_acks.clear()

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
        for msg in self.state.unflushed_acks:
            rid = msg.get("id")
            op = msg.get("op")
            msg.clear()
            if op is None:  # a client's (or a forwarding peer's) answer
                msg.update({"id": rid, **refusal})
            else:
                msg.update({"op": "rerr", "id": rid, "error": refusal["error"]})
                msg["message"] = refusal["message"]
        self.state.unflushed_acks.clear()
        self.coordinator.on_local_copy_lost(refusal["error"], now)

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

    def next_wakeup(self) -> float:
        """When the runtime should tick next. Past a full mesh, periodic duties that may run a little late
        (anti-entropy, hint offers, the storage probe) ride along with the next heartbeat when it is at
        most an interval later, rather than waking the loop on their own (issue #20: an idle node's cost
        is its wake-ups; a full mesh keeps its schedule, under which the simulator's seeds were found)."""
        wake = min(
            self.membership.next_wakeup(),
            self.coordinator.next_wakeup(),
            self.serial.next_wakeup(),
            self.replica.next_wakeup(),
            self.rebalance.next_wakeup(),
        )
        lazy = min(self.aae.next_wakeup(), self.storage_health.next_probe)
        if self.handoff is not None:
            lazy = min(lazy, self.handoff.next_wakeup())
        if self.membership.full_mesh or wake - lazy > self.settings.heartbeat_interval_s:
            return min(wake, lazy)  # (one due or overdue while the next is far: on its own)
        return wake

    def on_tick(self, now: float) -> None:
        self.coordinator.on_tick(now)
        self.serial.on_tick(now)
        self.membership.check_peers(now)
        if self.membership.heartbeat_due(now):
            wall = self.state.wall(now)
            heartbeat = self.membership.make_heartbeat(now, len(self.store), wall)
            heartbeat["wall"] = int(wall * 1000)
            if not self.storage_health.writable:
                heartbeat["disk"] = self.storage_health.state  # peers show it in their node lists
            self._effects.append(Publish(heartbeat))
        self.replica.offer_hints(now)
        self.rebalance.on_tick(now)
        self.replica.on_tick(now)

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
                self.state.peer_disk[sender] = disk
            else:
                self.state.peer_disk.pop(sender, None)
            if type(wall) is int:
                self.clocks.on_heartbeat(sender, wall, self.state.wall(now))
        if self.membership.on_heartbeat(msg, now):
            log.info("%s restarted (generation %s)", msg.get("node"), msg.get("gen"))
        pull = self.membership.take_pull(now)
        if pull is not None:
            self._effects.append(Send(pull, {"op": "vpull"}))
        if self.membership.generation_raised and self._raised_to != self.membership.generation:
            self._raised_to = self.membership.generation
            log.warning(
                "peers remember %s under a later generation (a clock that was ahead, or set back since): "
                "now generation %d",
                self.name,
                self.membership.generation,
            )
        self._membership_changed()

    def _on_view_pull(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """A peer whose view differs from this node's asks for all of it."""
        view: dict[str, Any] = {"op": "vview", "view": self.membership.view_entries()}
        notices = self.membership.notices()
        if notices:
            view["dead"] = notices
        self._effects.append(Reply(peer.encode(), view))

    def _on_view(self, peer: str, msg: dict[str, Any], now: float) -> None:
        self.membership.merge_view(msg["view"])
        if isinstance(msg.get("dead"), list):
            self.membership.merge_notices(msg["dead"])
        self._membership_changed()

    def _membership_changed(self) -> None:
        """Connect to members learned of, and rebuild the rings when who owns tokens changed."""
        for member in self.membership.take_learned():
            log.info("learned of %s (%s) at %s", member.name, member.status, member.address)
            self._effects.append(Connect(member.name, member.address, member.gossip))
        if self.membership.take_changed():
            state = self.state
            ring = state.build_ring()
            settled = self.membership.status_of(self.name) == NORMAL  # a joining node holds future keys
            if ring is not state.ring and settled:
                self.replica.ring_changed()
            state.ring = ring
            state.future_ring = state.build_ring(future=True)
            self.aae.rebuild(ring)
            self.rebalance.members_changed()

    # ------------------------------------------------------------------------------------------ joining

    def on_join(self, route: bytes, msg: dict[str, Any], now: float) -> None:
        self.rebalance.on_join(route, msg, now)

    def on_join_ok(self, msg: dict[str, Any], now: float) -> None:
        self.rebalance.on_join_ok(msg, now)

    def announcement(self) -> dict[str, Any]:
        return self.rebalance.announcement()

    def announcement_due(self, now: float) -> dict[str, Any] | None:
        """What a joining node sends each of its seeds now, if anything (see :class:`Rebalance`)."""
        return self.rebalance.announcement_due(now)

    @property
    def joined(self) -> bool:
        return self.rebalance.joined

    # ------------------------------------------------------------------------------------------ admission

    def admit(self, route: bytes, msg: dict[str, Any], role: str) -> Admission:
        """Which way a message from a route that is no peer's goes (:func:`zkv.core.admission.admit`);
        a refused one is answered and counted here."""
        way = admit(route, msg, role)
        if way is Admission.REFUSED:
            refusal = Unauthorized(f"{msg.get('op')!r} needs an admin key")
            self.count_rejected(refusal.code)
            self._effects.append(Reply(route, {"id": request_id(msg), **refusal.to_wire()}))
        return way

    def count_rejected(self, code: str | None, malformed: bool = False) -> None:
        """The runtime dropped a message before it reached a handler (an impostor, a frame it could not
        decode, a handler's bug): count it where ``status`` shows it."""
        if malformed:
            self.stats.bad_messages += 1
        if code is not None:
            self.stats.errors[code] += 1

    def on_malformed(self, sender: str, msg: dict[str, Any], error: ZkvError) -> None:
        """A node message that failed its schema check: counted, logged and dropped (a replica request
        with a usable id gets an ``rerr``, so its coordinator need not wait for the deadline)."""
        self.count_rejected(error.code, malformed=True)
        log.warning("dropped a malformed message from %s: %s", sender, error)
        if self.membership.member(sender) is not None and sender != self.name:
            self._refuse_replica_request(sender, msg, error.code, error.message)

    def _refuse_replica_request(self, peer: str, msg: dict[str, Any], code: str, message: str) -> None:
        """Answer an ``rput`` / ``rget`` that could not be served with ``rerr`` (other ops: nothing)."""
        if (
            msg.get("op") in ("rput", "rget", "px_prepare", "px_propose", "px_commit")
            and type(msg.get("id")) is int
        ):
            reply = {"op": "rerr", "id": msg["id"], "error": code, "message": message}
            self._effects.append(Reply(peer.encode(), reply))

    # ------------------------------------------------------------------------------------------ clients

    def on_client(self, route: bytes, msg: dict[str, Any], now: float) -> None:
        try:
            request = parse_request(msg, self.settings.limits)
        except ZkvError as exc:
            self.stats.bad_messages += 1
            self.stats.errors[exc.code] += 1
            self._effects.append(Reply(route, {"id": request_id(msg), **exc.to_wire()}))
            return
        in_flight = self.coordinator.client_in_flight(route)
        limit = self.settings.limits.max_in_flight_per_client
        if in_flight >= limit:
            # one client pipelining without bound must not take the node's whole pending table
            refusal = TooManyRequests(
                f"{in_flight} requests of this client unanswered (limit {limit})", limit=limit
            )
            self.stats.errors[refusal.code] += 1
            self._effects.append(Reply(route, {"id": request.id, **refusal.to_wire()}))
            return
        self.coordinator.accept(route, request, msg, now)

    def _answer_info(self, origin: Origin, req: InfoRequest, now: float) -> None:
        answer = self._info_ops.get(req.op)
        if answer is None:
            raise InvalidRequest(f"{req.op!r} is not served by this node")
        self.coordinator.finish(origin, req.op, None, now, now, answer(req, now))

    def status(self, now: float) -> NodeStatus:
        """This node's statistics (the ``status`` request's answer)."""
        return node_status(self, now)

    def readiness(self, now: float) -> Readiness:
        """Can this node serve ``quorum`` for every range it holds (see :mod:`zkv.core.readiness`)?"""
        return readiness(self, now)

    # ------------------------------------------------------------------------------------------ peers

    def on_peer(self, peer: str, msg: dict[str, Any], now: float) -> None:
        op = msg.get("op")
        try:
            handler = self.peer_ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise InvalidRequest(f"unknown peer op {op!r}")
            handler(peer, msg, now)
        except (ValueError, ZkvError) as exc:
            code = exc.code if isinstance(exc, ZkvError) else "invalid_request"
            if isinstance(exc, StorageUnavailable) and self.storage_health.writable:
                self.on_store_fault(code, exc.message, now)  # the store itself failed (not a refusal)
            if code in STORAGE_CODES:
                self.stats.errors[code] += 1
            else:
                self.stats.bad_messages += 1
                log.warning("bad %s message from %s: %s", op, peer, exc)
            self._refuse_replica_request(peer, msg, code, str(exc))

    def _on_rerr(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """A peer could not serve a request of this node's: a Paxos round's, or a quorum's."""
        iid = msg.get("id")
        if type(iid) is int and self.serial.owns(iid):
            self.serial.on_reply(peer, msg, now)
        else:
            self.coordinator.on_reply(peer, msg, now)

    def on_send_failed(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """The runtime could not hand ``msg`` to ``peer`` (no connection): that replica failed."""
        iid = msg.get("id")
        if type(iid) is not int:
            return  # not a request of this node's (every one it sends has an int id)
        op = msg.get("op")
        if op == "handoff":
            if self.handoff is not None:
                self.handoff.on_failed(iid)
        elif op == "aae_tree":
            self.aae.on_failed(iid)
        elif op in ("stream", "stream_push"):
            self.rebalance.on_send_failed(peer, msg, now)
        elif op in ("px_prepare", "px_propose", "px_commit"):
            self.serial.on_send_failed(peer, iid, now)
        else:
            self.coordinator.on_send_failed(peer, iid, now)
