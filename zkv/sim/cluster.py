"""N real node cores on simulated disks, driven the way :mod:`zkv.node.runtime` drives one.

Theory of operation
-------------------
Each :class:`SimNode` is one node process: a real :class:`zkv.core.nodecore.NodeCore`, a
:class:`~zkv.sim.storage.SimStore` and :class:`~zkv.sim.storage.SimHints` on its :class:`Disk`, the set of
peers it holds request connections to (DEALERs) and the publishers it subscribes to (SUB). A **turn** is
what one pass of the runtime's loop does: hand the core what arrived (one frame, possibly a batch), call
``on_tick``, then carry out the effects by the core's turn plan (:func:`zkv.core.turnplan.plan_turn`), the
one the runtime executes: peer requests leave first, one frame per peer (with the replies that ride along
when the turn wrote nothing), and the replies marked ``before_flush``; then the store and the hints are
flushed (group commit); then the other replies and acknowledgements leave. Publishes go to every
subscriber, ``Connect`` opens connections, ``Stop`` is a clean stop once the turn is carried out. After
the turn the node sleeps until the core's next wakeup, but no longer than the old poll cap (MAX_POLL_S).

Connections follow ZeroMQ's behaviour as the runtime configures it: a send to a peer whose connection is
down (``ZMQ_IMMEDIATE``) fails at once and the core hears ``on_send_failed``; a crashed process drops its
connections, so its peers hear ``on_connection(False)`` a moment later and ``True`` once it is back and
has reconnected; frames in flight on a connection that broke are lost. A partition does not break
connections (the fault filter drops silently). A paused process (SIGSTOP) keeps its connections: what is
sent to it waits, and it neither answers nor heartbeats until resumed.

A **crash** drops the process between turns, or (``torn``) inside its next turn after the peer requests
and early replies left and before the flush: the most unforgiving instant the runtime has. A restart
opens new engines on the same disk, takes a new incarnation by :func:`zkv.core.incarnation.incarnation`,
and connects anew.

Any exception a core handler raises is a bug: it is recorded (the runtime would log it and go on).
"""

from __future__ import annotations

import hashlib
import random
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from zkv.core.incarnation import incarnation
from zkv.core.nodecore import NodeCore, NodeSettings
from zkv.core.turnplan import CARRY_OUT_PASSES, plan_turn
from zkv.protocol import MAX_BATCH, PEER_OPS, pack, unpack_frame
from zkv.sim.network import Network, Scheduler
from zkv.sim.simnode import Bug, SimNode, address
from zkv.sim.storage import Disk, SimHints, SimStore

# the runtime's loop once woke at least every 200 ms (it has no floor now: a signal ends its poll, and the
# core asks for ticks while background work lasts). The simulator keeps the cap: its CI seeds, and the
# teeth tests' catches, were found under that schedule (without it, and with the core's grid and timer
# coalescing applied to a full mesh too, serial_read_skips_in_progress survived all 500 seeds), so a full
# mesh's simulated schedule stays exactly as it was. Re-tuning the seeds is issue #20's leftover
MAX_POLL_S = 0.2
MIN_SLEEP_S = 0.001  # the runtime rounds a poll timeout up to whole milliseconds
CONNECT_DELAY_S = (0.001, 0.01)  # a handshake after a connect
RECONNECT_DELAY_S = (0.05, 0.15)  # ZeroMQ's reconnect interval (100 ms) when a peer comes back
DISCONNECT_DELAY_S = (0.0005, 0.005)  # a peer noticing that a process died
TORN_CRASH_GRACE_S = 0.1  # a torn crash waits this long for a turn to tear, then crashes anyway


class SimCluster:
    """The nodes of one simulation, wired through a :class:`Network`."""

    def __init__(
        self,
        scheduler: Scheduler,
        network: Network,
        rng: random.Random,
        names: list[str],
        on_client_reply: Callable[[str, bytes], None] | None = None,
        **settings: Any,
    ) -> None:
        self.scheduler = scheduler
        self.network = network
        self.rng = rng
        self.settings = settings
        self.nodes: dict[str, SimNode] = {}
        self.members = {name: address(name) for name in names}
        self.subscribers: dict[str, dict[str, None]] = {}  # publisher -> nodes subscribed to it
        self.bugs: list[Bug] = []
        self.counts: dict[str, int] = {"turns": 0, "busy_wakeups": 0}
        # node -> [messages sent, bytes sent, messages received, bytes received] between nodes (a frame
        # published reaches each subscriber as its own copy): what gossip costs (:func:`gossip_cost`)
        self.traffic: dict[str, list[int]] = {}
        self.on_client_reply = on_client_reply
        self.wall_ms = 1_700_000_000_000  # the simulated wall clock at time 0 (generations come from it)
        for name in names:
            self.add(name, dict(self.members))

    # ------------------------------------------------------------------------------------------ lifecycle

    def add(self, name: str, members: dict[str, tuple[str, str]], joining: bool = False) -> SimNode:
        """A node with its own disk and seeded core randomness (not started)."""
        settings = NodeSettings(name=name, actor=name, members=members, joining=joining, **self.settings)
        node = SimNode(name, settings, Disk(), random.Random(self.rng.getrandbits(64)))
        self.nodes[name] = node
        return node

    def start(self, name: str) -> None:
        """Start (or restart) a node process on its disk: a new incarnation, fresh connections.

        A node that joined is started with ``--join`` every time (as a supervisor restarting it would):
        it announces itself again and streams its ranges again before it serves them.
        """
        node = self.nodes[name]
        assert not node.alive, f"{name} is already running"
        now = self.scheduler.now
        node.life += 1
        node.starts += 1
        node.alive = True
        node.paused_until = 0.0
        node.timer_at = float("inf")
        node.torn_crash = False
        store, hints = SimStore(node.disk), SimHints(node.disk)
        wall_ms = self.wall_ms + int(now * 1000)
        generation, actor, meta = incarnation(name, store.load_meta(), wall_ms, durable=True)
        store.save_meta(meta)
        settings = replace(node.settings, generation=generation, actor=actor, minted=meta["minted"])
        node.core = NodeCore(settings, store, now, hints=hints, rng=random.Random(node.rng.getrandbits(64)))
        node.dealers = {}
        node.peer_routes = {}
        node.connected = {}
        for peer in settings.members:
            self._open(node, peer)
        node.seeds = list(node.join_seeds)
        node.sub_epoch = -1
        self.scheduler.record("start", name, generation, actor)
        self._turn(node, [])
        # peers that hold a connection to this node reconnect once it listens again
        for other in self.nodes.values():
            if other.alive and name in other.dealers:
                self._later_connection(other, name, True, RECONNECT_DELAY_S)

    def crash(self, name: str, torn: bool = False) -> None:
        """Kill the process: between turns, or (``torn``) inside its next turn, before the flush."""
        node = self.nodes[name]
        if not node.alive:
            return
        if torn and node.paused_until <= self.scheduler.now:
            node.torn_crash = True
            self.scheduler.after(TORN_CRASH_GRACE_S, self._crash_if_torn, node, node.life)
            return
        self._die(node, clean=False)

    def _crash_if_torn(self, node: SimNode, life: int) -> None:
        if node.life == life and node.alive and node.torn_crash:
            self._die(node, clean=False)

    def _die(self, node: SimNode, clean: bool) -> None:
        core = node.core
        assert core is not None
        store, hints = core.store, core.handoff.hints if core.handoff else None
        if clean:
            store.flush()
            if hints is not None:
                hints.flush()
            store.save_meta({**store.load_meta(), "clean_stop": True, "minted": core.state.minted})
            node.clean_stops += 1
        else:
            assert isinstance(store, SimStore)
            store.crash()
        node.alive = False
        node.torn_crash = False
        node.core = None
        self.scheduler.record("stop" if clean else "crash", node.name)
        for other in self.nodes.values():
            if other.alive and node.name in other.dealers:
                self._later_connection(other, node.name, False, DISCONNECT_DELAY_S)

    def stop(self, name: str) -> None:
        """A clean stop (SIGTERM): flush, mark the metadata clean, close."""
        node = self.nodes[name]
        if node.alive:
            self._die(node, clean=True)

    def leave(self, name: str) -> None:
        """An operator's ``leave`` request: the node streams its data away, turns removed and stops."""
        node = self.nodes[name]
        if node.alive:
            self.scheduler.record("leave", name)
            self.deliver_client("operator", name, pack({"op": "leave", "id": 1}))

    def pause(self, name: str, seconds: float) -> None:
        """SIGSTOP for ``seconds``: nothing is handled, nothing is sent; connections stay up."""
        node = self.nodes[name]
        if node.alive:
            node.paused_until = max(node.paused_until, self.scheduler.now + seconds)
            self.scheduler.record("pause", name, seconds)

    def wipe(self, name: str) -> None:
        """Crash the node and replace its disk with an empty one (it comes back knowing nothing)."""
        self.crash(name)
        self.nodes[name].disk.wipe()

    def join(self, name: str, seeds: list[str]) -> None:
        """A new node joins through ``seeds`` (it knows the cluster file's members plus itself)."""
        members = {**self.members, name: address(name)}
        self.add(name, members, joining=True).join_seeds = list(seeds)
        self.start(name)

    # ------------------------------------------------------------------------------------------ connections

    def _open(self, node: SimNode, peer: str) -> None:
        """The runtime's ``_connect_peer``: a DEALER and a SUB to ``peer``, reported down until handshake."""
        if peer == node.name or peer in node.dealers:
            return
        node.dealers[peer] = None
        node.peer_routes[peer.encode()] = peer
        node.connected[peer] = False
        assert node.core is not None
        if node.core.membership.full_mesh:  # a full mesh hears every peer from its connect on
            self._hear(node, peer)
        node.core.on_connection(peer, False, self.scheduler.now)
        target = self.nodes.get(peer)
        if target is not None and target.alive:
            self._later_connection(node, peer, True, CONNECT_DELAY_S)

    def _subscribe(self, node: SimNode) -> None:
        """The runtime's ``PeerLinks.subscribe``: past a full mesh, hear the monitored peers only; a full
        mesh hears every peer it connected to and never stops (the schedule it always had)."""
        assert node.core is not None
        membership = node.core.membership
        node.sub_epoch = membership.monitors_epoch
        if membership.full_mesh:
            want = list(node.dealers)
        else:
            monitored = membership.monitored()
            want = [p for p in node.dealers if p in monitored]  # in connection order: deterministic
            for peer in sorted(set(node.subscribed) - set(want)):
                self.subscribers.get(peer, {}).pop(node.name, None)
                del node.subscribed[peer]
        for peer in want:
            self._hear(node, peer)

    def _hear(self, node: SimNode, peer: str) -> None:
        """Subscribe ``node`` to ``peer``'s heartbeats (once)."""
        if peer not in node.subscribed:
            self.subscribers.setdefault(peer, {})[node.name] = None
            node.subscribed[peer] = None

    def _later_connection(self, node: SimNode, peer: str, up: bool, delay: tuple[float, float]) -> None:
        when = self.scheduler.now + self.rng.uniform(*delay)
        self.scheduler.at(when, self._connection_event, node, node.life, peer, up)

    def _connection_event(self, node: SimNode, life: int, peer: str, up: bool) -> None:
        if node.life != life or not node.alive:
            return
        target = self.nodes.get(peer)
        if up and (target is None or not target.alive):
            return  # it died again before the handshake
        if node.paused_until > self.scheduler.now:
            self.scheduler.at(node.paused_until, self._connection_event, node, life, peer, up)
            return
        node.connected[peer] = up
        self._turn(node, [("on_connection", (peer, up))])

    # ------------------------------------------------------------------------------------------ turns

    def _turn(self, node: SimNode, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        """One pass of the runtime loop for ``node``: hand over the input, tick, carry out the effects.

        ``calls``: core handlers and their arguments (``now`` is appended), one per message that arrived.
        """
        core = node.core
        assert core is not None
        now = self.scheduler.now
        self.counts["turns"] += 1
        for handler, args in calls:
            self._guard(node, handler, *args, now)
        if node.seeds:
            self._announce(node, now)
        self._guard(node, "on_tick", now)
        if node.alive:
            self._carry_out(node, now)
        if node.alive and node.core is not None and node.core.membership.monitors_epoch != node.sub_epoch:
            self._subscribe(node)
        if node.alive:
            self._sleep(node, now)

    def _guard(self, node: SimNode, handler: str, *args: Any) -> None:
        try:
            getattr(node.core, handler)(*args)
        except Exception as exc:  # a bug: recorded, and the node keeps serving (as the runtime's _guard)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            error = f"{type(exc).__name__}: {exc} at {where.filename}:{where.lineno}"
            self.bugs.append(Bug(node.name, self.scheduler.now, handler, error))

    def _announce(self, node: SimNode, now: float) -> None:
        """The runtime's ``_announce``: until taken in, tell every seed about this joining node."""
        core = node.core
        assert core is not None
        if core.joined:
            node.seeds = []
            return
        announcement = core.announcement_due(now)
        if announcement is None:
            return
        payload = pack(announcement)
        for seed in node.seeds:
            self.network.transmit(
                node.name, seed, payload, self._delivery(node.name, seed, "join"), filtered=False
            )

    def _sleep(self, node: SimNode, now: float) -> None:
        core = node.core
        assert core is not None
        wake = min(core.next_wakeup(), now + MAX_POLL_S)
        if node.seeds:
            wake = min(wake, core.rebalance.next_announce)
        if wake <= now:
            self.counts["busy_wakeups"] += 1  # the real loop would poll(0) and spin
            wake = now + MIN_SLEEP_S
        if wake < node.timer_at or node.timer_at <= now:
            node.timer_at = wake
            self.scheduler.at(wake, self._timer, node, node.life, wake)

    def _timer(self, node: SimNode, life: int, wake: float) -> None:
        if node.life != life or not node.alive or node.timer_at != wake:
            return
        node.timer_at = float("inf")
        if node.paused_until > self.scheduler.now:
            self.scheduler.at(node.paused_until, self._timer, node, life, node.paused_until)
            node.timer_at = node.paused_until
            return
        self._turn(node, [])

    def _carry_out(self, node: SimNode, now: float) -> None:
        """The runtime's ``_carry_out``: the core's turn plan (:func:`zkv.core.turnplan.plan_turn`)."""
        core = node.core
        assert core is not None
        effects = core.take_effects()
        if not effects:
            self._flush(core)
            return
        for _ in range(CARRY_OUT_PASSES):
            if not effects:
                return
            hints = core.handoff.hints if core.handoff is not None else None
            wrote = core.store.needs_flush() or (hints is not None and hints.needs_flush())
            plan = plan_turn(effects, wrote, node.peer_routes)
            for msg in plan.publishes:
                self._publish(node, msg)
            for connect in plan.connects:
                self._open(node, connect.node)
            for peer, msgs in plan.before.items():
                self._send_peer(node, peer, msgs, now)
            for route, msgs in plan.early.items():
                self._send_reply(node, route, msgs)
            if node.torn_crash and (plan.before or plan.early):
                self._die(node, clean=False)  # after the requests and early replies left, before the flush
                return
            self._flush(core)
            for route, msgs in plan.after.items():
                self._send_reply(node, route, msgs)
            if plan.stop:
                self._die(node, clean=True)  # the runtime's loop ends after this turn, and closes cleanly
                return
            effects = core.take_effects()

    def _flush(self, core: NodeCore) -> None:
        core.store.flush()
        if core.handoff is not None:
            core.handoff.hints.flush()
        core.on_flushed()

    def _send_peer(self, node: SimNode, peer: str, msgs: list[dict], now: float) -> None:
        core = node.core
        assert core is not None
        for start in range(0, len(msgs), MAX_BATCH):
            chunk = msgs[start : start + MAX_BATCH]
            if not node.connected.get(peer):
                for msg in chunk:  # ZMQ_IMMEDIATE: no connection, the send fails at once
                    if msg.get("op") in PEER_OPS:  # a reply riding along is lost, as in the runtime
                        self._guard(node, "on_send_failed", peer, msg, now)
                continue
            payload = pack(chunk if len(chunk) > 1 else chunk[0])
            self._count(node.name, peer, len(payload))
            self.network.transmit(node.name, peer, payload, self._delivery(node.name, peer, "peer"))

    def _send_reply(self, node: SimNode, route: bytes, msgs: list[dict]) -> None:
        for start in range(0, len(msgs), MAX_BATCH):
            chunk = msgs[start : start + MAX_BATCH]
            payload = pack(chunk if len(chunk) > 1 else chunk[0])
            dst = route.decode(errors="replace")
            if dst.startswith("join~"):
                dst = dst[5:]
                self.network.transmit(
                    node.name, dst, payload, self._delivery(node.name, dst, "join_ok"), filtered=False
                )
            elif dst in self.nodes:
                self._count(node.name, dst, len(payload))
                self.network.transmit(node.name, dst, payload, self._delivery(node.name, dst, "peer"))
            elif self.on_client_reply is not None:
                deliver = lambda p, d=dst, cb=self.on_client_reply: cb(d, p)  # noqa: E731
                self.network.transmit(node.name, dst, payload, deliver, filtered=False)

    def _publish(self, node: SimNode, msg: dict[str, Any]) -> None:
        """PUB/SUB: one frame to every subscriber, decoded once and shared (handlers only read it)."""
        payload = pack(msg)
        decoded = unpack_frame(payload)
        digest = hashlib.blake2b(payload, digest_size=8).digest()
        for subscriber in self.subscribers.get(node.name, {}):
            self._count(node.name, subscriber, len(payload))
            deliver = self._delivery(node.name, subscriber, "gossip", decoded, digest)
            self.network.transmit(node.name, subscriber, payload, deliver)

    def _count(self, src: str, dst: str, size: int) -> None:
        sent = self.traffic.setdefault(src, [0, 0, 0, 0])
        sent[0] += 1
        sent[1] += size
        received = self.traffic.setdefault(dst, [0, 0, 0, 0])
        received[2] += 1
        received[3] += size

    # ------------------------------------------------------------------------------------------ arrival

    def _delivery(
        self, src: str, dst: str, kind: str, decoded: list | None = None, digest: bytes | None = None
    ) -> Callable[[bytes], None]:
        """A callback for a frame from ``src`` to ``dst``, void if either process restarted meanwhile."""
        src_node, dst_node = self.nodes.get(src), self.nodes.get(dst)
        src_life = src_node.life if src_node else 0
        dst_life = dst_node.life if dst_node else 0
        return lambda payload: self._arrive(src, src_life, dst, dst_life, kind, payload, decoded, digest)

    def _arrive(
        self,
        src: str,
        src_life: int,
        dst: str,
        dst_life: int,
        kind: str,
        payload: bytes,
        decoded: list | None = None,
        digest: bytes | None = None,
    ) -> None:
        node = self.nodes[dst]
        if not node.alive or node.life != dst_life:
            return  # the connection broke with the process it was for
        src_node = self.nodes.get(src)
        if kind != "gossip" and src_node is not None and src_node.life != src_life:
            return
        now = self.scheduler.now
        if node.paused_until > now:
            args = (src, src_life, dst, dst_life, kind, payload, decoded, digest)
            self.scheduler.at(node.paused_until, self._arrive, *args)
            return
        self.scheduler.record(kind, src, dst, digest or payload)
        msgs = decoded if decoded is not None else unpack_frame(payload)
        if kind == "peer":
            self._turn(node, [("on_peer", (src, msg)) for msg in msgs])
        elif kind == "gossip":
            self._turn(node, [("on_heartbeat", (msg,)) for msg in msgs])
        elif kind == "join":
            route = f"join~{src}".encode()
            self._turn(node, [("on_join", (route, msg)) for msg in msgs if msg.get("op") == "join"])
        else:
            self._turn(node, [("on_join_ok", (msg,)) for msg in msgs if msg.get("op") == "join_ok"])

    def deliver_client(self, client: str, dst: str, payload: bytes) -> bool:
        """A client's request frame to node ``dst``; False when it cannot connect (the node is down)."""
        node = self.nodes.get(dst)
        if node is None or not node.alive:
            return False
        life = node.life

        def arrive(p: bytes) -> None:
            target = self.nodes[dst]
            if not target.alive or target.life != life:
                return
            if target.paused_until > self.scheduler.now:
                self.scheduler.at(target.paused_until, arrive, p)
                return
            self.scheduler.record("client", client, dst, p)
            route = client.encode()
            self._turn(target, [("on_client", (route, msg)) for msg in unpack_frame(p)])

        self.network.transmit(client, dst, payload, arrive, filtered=False)
        return True

    # ------------------------------------------------------------------------------------------ looking

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]
