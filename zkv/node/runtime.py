"""The event loop of one zkv node: ZeroMQ sockets in, core calls, effects out.

One thread, one epoll set over its sockets (DESIGN.md §3a; :mod:`zkv.node.sockets`: a turn costs what
the ready sockets cost, not what every peer's idle DEALER would): each turn drains every ready socket
without blocking, hands every message to the core, runs the core's timers, and carries out what the
core queued by the core's turn plan (:mod:`zkv.core.turnplan`): requests first, one flush of the store
(group commit), then the replies, everything bound for one destination batched into one message. The
core decides what a message means, who may send it (:mod:`zkv.core.admission`), when a joining node
announces itself and what a malformed message gets back; the runtime moves bytes, checks the wire
schema, runs the fault filter and reports what the disk and the sockets said.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import signal
import time
from typing import Any

import zmq

from zkv import compiled
from zkv.config import ClusterConfig
from zkv.core.admission import Admission
from zkv.core.monitoring import FULL_MESH_MEMBERS
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.turnplan import CARRY_OUT_PASSES, plan_turn
from zkv.errors import InternalError, InvalidRequest, NodeStopping, ProtocolError
from zkv.node import admin
from zkv.node.curve import connection_user, load_curve
from zkv.node.disk import NodeDisk
from zkv.node.faults import FaultFilter, HeldMessages
from zkv.node.intake import GossipIntake
from zkv.node.listeners import make_socket, open_listeners
from zkv.node.outbox import Outbox
from zkv.node.peers import PeerLinks
from zkv.node.seeds import JOIN_OK_OPS, JoinSeeds
from zkv.node.sockets import SocketPoller
from zkv.protocol import PEER_OPS, PEER_REPLY_OPS, check_node_message, request_id, unpack_frame
from zkv.security import NODE, AccessPolicy, KeyPair, ZkvAuthenticator

log = logging.getLogger(__name__)

DRAIN_LIMIT = 1000  # messages taken from one socket per turn, so one busy peer cannot starve the rest
PEER_MESSAGE_OPS = (PEER_OPS | PEER_REPLY_OPS) - {"join_ok"}  # what peers send each other
JOIN_OPS, GOSSIP_OPS = frozenset({"join"}), frozenset({"hb"})
# heartbeats are taken in batches at most this often (zkv/node/intake.py): at 30 nodes a turn per
# heartbeat cost ~170 us each, 90% of it the turn
GOSSIP_BATCH_S = 0.05
READY_CHECK_S = 0.05  # how often a node that is not ready yet asks its core whether it is
COMPACTION_SLICE_S = 0.004


class NodeRuntime:
    """Binds and connects the sockets of node ``name`` of ``config`` and runs its loop."""

    def __init__(self, config: ClusterConfig, name: str, join: str | None = None) -> None:
        self.config = config
        self.spec = config.node(name)
        self.name = name
        self.faults = FaultFilter()
        self._delayed = HeldMessages()  # messages held by a delay_in fault
        self._ready_logged = False
        self._next_ready_check = 0.0
        self._stopping = False
        self._published = False  # this turn published a heartbeat (its peers' will follow it in)
        self._drain_until: float | None = None  # set by a restart request: refuse new work, then stop
        self.exit_status = 0
        self.ctx = zmq.Context()
        self.ctx.setsockopt(zmq.LINGER, 0)
        self.auth: ZkvAuthenticator | None = None
        self.keys: KeyPair | None = None
        self.policy = AccessPolicy()
        self.node_keys: dict[str, bytes] = {}  # node name -> CURVE public key
        if config.security.curve:
            self.keys, self.node_keys, self.policy = load_curve(config, name)
            self.auth = ZkvAuthenticator(self.ctx, self.policy)
            self.auth.begin()
        try:
            self.router, self.pub = open_listeners(self.ctx, config, self.spec, self.keys)
        except OSError:
            self.close()
            raise
        # one epoll set over every socket: a poll costs what the ready sockets cost (zkv/node/sockets.py)
        self.poller = SocketPoller()
        self.poller.register(self.router, always=True)
        self.links = PeerLinks(name, self._socket, self.poller, self.keys, self.node_keys)
        self.dealers, self.sub, self._peer_routes = self.links.dealers, self.links.sub, self.links.routes
        full_mesh = len(config.nodes) <= FULL_MESH_MEMBERS  # hears every peer from the start
        for member in config.nodes:
            self.links.connect(member.name, member.address, member.gossip, hear=full_mesh)
        # a joining node announces itself to its seeds on sockets of their own (zkv/node/seeds.py)
        self._seeds: JoinSeeds | None = None
        if join is not None:
            try:
                self._seeds = JoinSeeds(
                    config, name, join, self._socket, self.poller, self.keys, self.node_keys
                )
            except OSError:
                self.close()
                raise
        self.disk = NodeDisk(config, name)
        self.store, self.hints = self.disk.store, self.disk.hints
        generation, actor, minted = self.disk.incarnation()
        now = time.monotonic()
        settings = NodeSettings.from_config(
            config, name, actor, generation, joining=join is not None, wall_offset_s=time.time() - now
        )
        settings = dataclasses.replace(settings, minted=minted)
        self.core = NodeCore(settings, self.store, now, hints=self.hints, rng=random.Random())
        self.core.status_extra.update(
            pid=os.getpid(), address=self.spec.address, gossip=self.spec.gossip, build=compiled.describe()
        )
        self.core.status_extra["gossip_traffic"] = self.links.traffic
        self.core.status_extra["sockets"] = self.poller.stats
        # turns of the loop and what woke each (timer, signal, or the kinds of sockets that were ready)
        self.wakeups: dict[str, int] = {"turns": 0, "timer": 0, "signal": 0}
        self.core.status_extra["wakeups"] = self.wakeups
        for peer in self.dealers:
            self.core.on_connection(peer, False, now)
        self.outbox = Outbox(
            self.router, self.dealers, self._peer_routes, self.faults, self.core, config.max_message_bytes
        )
        if self.disk.unsaved_meta is not None:
            self.core.on_store_fault(*self.disk.meta_error, now)  # start read-only

    def _impostor(self, route: bytes, user: str) -> bool:
        """A routing identity that names a node, on a connection without that node's key (the access
        policy decides: :meth:`AccessPolicy.impostor`)."""
        claimed = self.policy.impostor(route, user)
        if claimed is None:
            return False
        self.core.count_rejected("unauthorized")
        log.warning("dropped a message from %s posing as node %s", user, claimed)
        return True

    def _socket(self, kind: int) -> zmq.Socket:
        return make_socket(self.ctx, self.config, kind)

    # ------------------------------------------------------------------------------------------ loop

    def stop(self, *_: Any) -> None:
        """Stop after this turn (a signal handler: the signal's wake-up descriptor ends the poll)."""
        self._stopping = True

    def _kind(self, sock: zmq.Socket) -> str:
        """What kind of socket woke a turn (the ``wakeups`` counters in status)."""
        if sock is self.router:
            return "router"
        if sock is self.sub:
            return "gossip"
        if sock in self.links.monitors:
            return "monitor"
        return "dealer"

    def run(self) -> None:
        """Serve until :meth:`stop` (SIGTERM / SIGINT when run by the CLI)."""
        poller = self.poller
        log.info("serving on %s (gossip %s), pid %d", self.spec.address, self.spec.gossip, os.getpid())
        core, disk = self.core, self.disk
        compacting = False
        next_compaction = 0.0
        batch_s = min(GOSSIP_BATCH_S, self.config.heartbeat_interval_ms / 10_000)  # a tenth of an interval
        intake = GossipIntake(poller, self.sub, batch_s)
        wakeups = self.wakeups
        while not self._stopping:
            # round up: pyzmq truncates a fraction of a millisecond to 0, which would spin the loop
            wake = core.next_wakeup()
            if self._delayed:
                wake = min(wake, self._delayed.next_due())
            if self.outbox.unconnected:
                wake = min(wake, self.outbox.next_deadline())
            wake = min(wake, intake.deadline())
            if self._seeds:
                wake = min(wake, core.rebalance.next_announce)
            if not self._ready_logged:
                wake = min(wake, self._next_ready_check)
            if self._drain_until is not None:
                wake = min(wake, self._drain_until)
            # no floor: a stop request (a signal) ends the poll itself (SocketPoller.wake_on_signals)
            delay_ms = max(0.0, (wake - time.monotonic()) * 1000) if wake < math.inf else -1.0
            writable = core.storage_health.writable
            if compacting:
                delay_ms = 0
            elif writable and disk.needs_flush():
                interval = self.config.fsync_interval_ms
                delay_ms = interval if delay_ms < 0 else min(delay_ms, interval)
            ready = poller.poll(math.ceil(delay_ms) if delay_ms >= 0 else -1)
            now = time.monotonic()
            wakeups["turns"] += 1
            if not ready:
                wakeups["signal" if poller.signalled else "timer"] += 1
            for sock in ready:
                kind = self._kind(sock)
                wakeups[kind] = wakeups.get(kind, 0) + 1
            if not intake.sort(ready, now):
                continue  # only heartbeats woke this turn, and their batch is not due
            core.wall_offset_s = time.time() - now  # follows a wall clock set while running
            for sock in ready:
                if sock is self.router:
                    self._drain_router(now)
                elif sock is self.sub:
                    self._drain_sub(now)
                elif sock in self.links.monitors:
                    self._drain_monitor(sock, now)
                elif self._seeds is not None and sock in self._seeds:
                    for msg, seed in self._seeds.drain(sock):
                        if self._valid(msg, JOIN_OK_OPS, seed):
                            self._guard(self.core.on_join_ok, msg, now)
                else:
                    self._drain_dealer(sock, now)
            if self._seeds:
                self._seeds.announce(self.core, now)
            if self._delayed:
                self._release_delayed(now)
            if self.outbox.unconnected:
                self.outbox.expire(now)
            if not self._ready_logged and now >= self._next_ready_check:
                self._log_ready(now)
            core.on_tick(now)
            raised = core.take_raised_generation()
            if raised is not None:
                disk.save_generation(core, raised, now)
            if core.storage_probe_due(now):
                disk.probe(core, now)
            self._published = False
            self._carry_out(now)
            if self._published:
                intake.published(now)  # the peers' heartbeats follow this node's: one batch
            self.links.follow_monitors(core.membership)  # hear the monitored peers only
            if self._drain_until is not None and now >= self._drain_until:
                self._stopping = True
            if disk.needs_flush():
                disk.flush(core, now)  # the interval policy's timer: an idle node must still fsync
            # compaction in small slices: whenever idle, and a short one every 50 ms under load (none
            # while the disk refuses writes: it needs room for its output before it frees any)
            if not core.storage_health.writable:
                compacting = False
            elif not ready:
                compacting = disk.compact(core, COMPACTION_SLICE_S, now)
            elif now >= next_compaction:
                compacting = disk.compact(core, COMPACTION_SLICE_S / 2, now)
                next_compaction = now + 0.05
        log.info("stopping")
        self.close()

    def close(self) -> None:
        links = getattr(self, "links", None)
        if links is not None:
            links.close()
        disk = getattr(self, "disk", None)
        if disk is not None:
            core = getattr(self, "core", None)
            disk.close(clean=core is not None, minted=core.state.minted if core is not None else 0)
        if self.auth is not None:
            self.auth.stop()
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.close()
        self.ctx.destroy(linger=0)

    # ------------------------------------------------------------------------------------------ input

    def _recv_frames(self) -> list[bytes]:
        """One ROUTER message as frames, read with plain ``recv`` calls: ``recv_multipart`` costs 5 µs a
        message where two ``recv`` and one RCVMORE check cost 3 (every client request comes this way)."""
        recv, more = self.router.recv, self.router.getsockopt
        frames = [recv(zmq.NOBLOCK), recv(zmq.NOBLOCK)]  # a ROUTER message is never its identity alone
        while more(zmq.RCVMORE):
            frames.append(recv(zmq.NOBLOCK))
        return frames

    def _drain_router(self, now: float) -> None:
        curve = self.auth is not None
        for _ in range(DRAIN_LIMIT):
            try:
                if curve:
                    parts = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                else:
                    frames = self._recv_frames()
            except zmq.Again:
                return
            role = NODE  # plaintext: everyone on the (loopback) network is trusted
            if curve:
                user = connection_user(parts[-1])
                role = user.split(":", 1)[0]
                frames = [f.bytes for f in parts]
                if self._impostor(frames[0], user):
                    continue
            if len(frames) != 2:
                self.core.count_rejected(None, malformed=True)
                self.outbox.reply_error(
                    frames[0], None, ProtocolError("expected exactly one frame per message")
                )
                continue
            route, payload = frames
            peer = self._peer_routes.get(route)
            try:
                messages = unpack_frame(payload)
            except ProtocolError as exc:
                self.core.count_rejected(None, malformed=True)
                if peer is None:
                    self.outbox.reply_error(route, None, exc)
                continue
            if peer is not None:
                if not (self.faults.active and self.faults.drops_in(peer)):
                    self._from_peer(peer, messages, now)
            else:
                for msg in messages:
                    way = self.core.admit(route, msg, role)  # a refused one is answered by the core
                    if way is Admission.FAULTS:
                        self._on_faults(route, msg)
                    elif way is Admission.RUNTIME:
                        self._on_admin(route, msg, now)
                    elif self._drain_until is not None and msg.get("op") in admin.DATA_OPS:
                        self.outbox.reply_error(
                            route, request_id(msg), NodeStopping(f"{self.name} is restarting")
                        )
                    elif way is Admission.JOIN:
                        if self._valid(msg, JOIN_OPS, route.decode("utf-8", "replace")):
                            self._guard(self.core.on_join, route, msg, now)
                    elif way is Admission.CLIENT and not self._guard(self.core.on_client, route, msg, now):
                        self.outbox.reply_error(
                            route, request_id(msg), InternalError("the node hit a bug; see its log")
                        )

    def _drain_dealer(self, sock: zmq.Socket, now: float) -> None:
        peer = self.links.dealer_peer[sock]
        for _ in range(DRAIN_LIMIT):
            try:
                payload = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if self.faults.active and self.faults.drops_in(peer):
                continue
            try:
                messages = unpack_frame(payload)
            except ProtocolError as exc:
                log.warning("bad reply from %s: %s", peer, exc)
                continue
            self._from_peer(peer, messages, now)

    def _from_peer(self, peer: str, messages: list[dict[str, Any]], now: float) -> None:
        """Check and hand to the core what a peer sent (requests on the ROUTER, replies on a DEALER).

        The hot path of every replica write and read: the per-message work is inlined here.
        """
        on_peer = self.core.on_peer
        delayed = self.faults.active and self.faults.delay(peer) > 0
        for msg in messages:
            try:
                check_node_message(msg, PEER_MESSAGE_OPS)
            except ProtocolError as exc:
                self._invalid(msg, peer, exc)
                continue
            if delayed:
                self._held(peer, on_peer, (peer, msg), now)
                continue
            try:
                on_peer(peer, msg, now)
            except Exception:
                self._bug()

    def _valid(self, msg: dict[str, Any], allowed: frozenset[str], sender: str) -> bool:
        """Check a node message against its schema; a bad one is counted, logged and dropped (a replica
        request with a usable id gets an ``rerr``, so its coordinator need not wait for the deadline)."""
        try:
            check_node_message(msg, allowed)
            return True
        except ProtocolError as exc:
            self._invalid(msg, sender, exc)
            return False

    def _invalid(self, msg: dict[str, Any], sender: str, exc: ProtocolError) -> None:
        """A malformed node message: the core counts it, logs it and answers it if it should."""
        self.core.on_malformed(sender, msg, exc)

    def _held(self, peer: str, handler: Any, args: tuple, now: float) -> bool:
        """A ``delay_in`` fault: keep what arrived from ``peer`` and hand it to the core later."""
        delay = self.faults.delay(peer) if self.faults.active else 0.0
        if delay <= 0:
            return False
        self._delayed.hold(now + delay, handler, args)
        return True

    def _release_delayed(self, now: float) -> None:
        for handler, args in self._delayed.take_due(now):
            self._guard(handler, *args, now)

    def _guard(self, handler: Any, *args: Any) -> bool:
        """Run one core handler; a bug in it is logged and counted, and the node keeps serving."""
        try:
            handler(*args)
            return True
        except Exception:
            self._bug()
            return False

    def _bug(self) -> None:
        """Log the exception being handled and count it; the caller goes on with the next message."""
        log.exception("bug while handling a message; the node keeps serving")
        self.core.count_rejected("internal")

    def _drain_monitor(self, sock: zmq.Socket, now: float) -> None:
        for peer, up in self.links.connection_events(sock):
            self.core.on_connection(peer, up, now)
            if up and peer in self.outbox.unconnected:
                self.outbox.release(peer, now)
                self.poller.touched(self.dealers[peer])

    def _drain_sub(self, now: float) -> None:
        for msg in self.links.heartbeats(DRAIN_LIMIT):
            sender = msg.get("node")
            if not self._valid(msg, GOSSIP_OPS, str(sender)):
                continue
            if (
                self.faults.active
                and isinstance(sender, str)
                and (self.faults.drops_in(sender) or self._held(sender, self.core.on_heartbeat, (msg,), now))
            ):
                continue
            self._guard(self.core.on_heartbeat, msg, now)

    def _on_faults(self, route: bytes, msg: dict[str, Any]) -> None:
        """The admin request that sets the fault filter (:func:`zkv.node.admin.configure_faults`)."""
        rid = request_id(msg)
        try:
            body = admin.configure_faults(self.faults, msg, set(self.dealers), self.core.status_extra)
        except InvalidRequest as exc:
            self.outbox.reply_error(route, rid, exc)
            return
        self.outbox.send_reply(route, [{"id": rid, "node": self.name, **body}])

    def _on_admin(self, route: bytes, msg: dict[str, Any], now: float) -> None:
        """An admin request about this node's process or files (:mod:`zkv.node.admin`), answered at once."""
        rid = request_id(msg)
        if msg.get("op") == "restart":
            if self._drain_until is None:
                self._drain_until = now + self.config.request_timeout_ms / 1000 + admin.DRAIN_EXTRA_S
                self.exit_status = admin.EXIT_RESTART
                log.warning("restart requested: draining, then stopping")
            self.outbox.send_reply(route, [{"id": rid, "ok": True, "node": self.name, "status": "stopping"}])
            return
        try:
            body = admin.snapshot_reply(self.store, self.name, self.config.name, msg)
        except (InvalidRequest, InternalError) as exc:
            self.outbox.reply_error(route, rid, exc)
            return
        log.info("snapshot of %d keys into %s", body.get("keys", 0), msg.get("dir"))
        self.outbox.send_reply(route, [{"id": rid, **body}])

    # ------------------------------------------------------------------------------------------ output

    def _carry_out(self, now: float) -> None:
        """Carry out what the core queued, in the order of the core's turn plan
        (:func:`zkv.core.turnplan.plan_turn`, which says why): requests to peers and the replies that
        need not wait, the flush (group commit), then every other reply, one batch per destination."""
        effects = self.core.take_effects()
        for _ in range(CARRY_OUT_PASSES):
            if not effects:
                return
            plan = plan_turn(effects, self.disk.needs_flush(), self._peer_routes)
            for msg in plan.publishes:
                self.links.publish(self.pub, msg)
                self._published = True
            for connect in plan.connects:
                self.links.connect(
                    connect.node, connect.address, connect.gossip, self.core.membership.full_mesh
                )
            if plan.stop:
                self._stopping = True
                if self.core.rebalance.refused:
                    self.exit_status = admin.EXIT_REMOVED
            outbox = self.outbox
            for peer, msgs in plan.before.items():
                outbox.send_peer(peer, msgs, now)
                dealer = self.dealers.get(peer)
                if dealer is not None:
                    self.poller.touched(dealer)
            for route, msgs in plan.early.items():
                outbox.send_reply(route, msgs)
            self.disk.flush(self.core, now)  # if it fails, the core made the acks in plan.after refusals
            for route, msgs in plan.after.items():
                outbox.send_reply(route, msgs)
            effects = self.core.take_effects()

    def _log_ready(self, now: float) -> None:
        """Say "ready" once, when the node first can serve quorum for every range it holds."""
        self._next_ready_check = now + READY_CHECK_S
        state = self.core.readiness(now)
        if state.ready:
            self._ready_logged = True
            log.info("ready: %s", state.reason)


def serve(config: ClusterConfig, name: str, join: str | None = None) -> int:
    """Run one node until SIGTERM/SIGINT (or until it left the cluster); the exit status for the CLI
    (:data:`zkv.node.admin.EXIT_RESTART` after a restart request).

    ``join``: None for a member of the cluster.toml cluster; "" to join through the other nodes of the
    file; an address to join through that node.
    """
    runtime = NodeRuntime(config, name, join)
    signal.signal(signal.SIGTERM, runtime.stop)
    signal.signal(signal.SIGINT, runtime.stop)
    runtime.poller.wake_on_signals()
    runtime.run()
    return runtime.exit_status
