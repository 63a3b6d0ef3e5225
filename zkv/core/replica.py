"""The replica side of a node: what it does with the key states other nodes send it, and its own copy.

Theory of operation
-------------------
Every write to this node's copy of a key goes through :meth:`Replica.put_local` (so the Merkle leaves of
anti-entropy stay current, and a leaving node hands the write over too), and every state that arrives is
*merged* into the local one (:meth:`Replica.merge_local`): replication, read repair, hinted handoff,
anti-entropy and streams all converge the same way, by the version-vector merge of
:mod:`zkv.core.versions`, so the order in which they arrive does not matter (Dynamo's "always writeable").

Requests from peers, each answered by a reply the turn plan sends after the flush:

* ``rput`` — a coordinator's replica write (``rput_ok``); with a ``hint``, this node is a *fallback* and
  keeps the write for its down owner in the hint store (sloppy quorum);
* ``repair`` — read repair: merge, no answer; ``rget`` — a coordinator's replica read (``rget_ok``);
* ``handoff`` — hinted states for this node, now back (``handoff_ok``); ``stream`` — a joining node asks
  for the ranges it will own; ``stream_push`` — a leaving node hands its keys over (``stream_push_ok``);
* ``aae_tree`` / ``aae_tree_ok`` / ``aae_keys`` / ``aae_push`` / ``aae_keys_ok`` — anti-entropy
  (:mod:`zkv.core.antientropy`).

Between requests (:meth:`Replica.on_tick`) it offers hints to owners that are back, digests the keys found
on disk at start, starts anti-entropy exchanges, after a ring change hints the keys it no longer owns
to their owners, and retires and purges tombstones as :mod:`zkv.core.purge` decides.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

from zkv.core.effects import Reply, Send
from zkv.core.handoff import Handoff
from zkv.core.membership import NORMAL
from zkv.core.paxos import absorb
from zkv.core.purge import TombstonePurge
from zkv.core.removal import gained_by, ring_without
from zkv.core.state import NodeState
from zkv.core.transfer import StreamSource, decode_items, paxos_items
from zkv.core.versions import EMPTY, KeyState, merge, state_from_wire, state_to_wire
from zkv.errors import InvalidRequest

log = logging.getLogger("zkv.core.replica")

SLICE_KEYS = 2000  # keys digested (at start) or checked for strays (after a ring change) per tick
DEAD_SCAN_KEYS = 200  # keys found at start whose states the purge reads per tick
# background work done a slice per tick (digests at start, strays, a stream) asks for a tick at least this
# often; an idle node asks for none (the runtime's loop once woke every 200 ms whatever: issue #20)
BACKGROUND_TICK_S = 0.2


class Replica:
    """This node's copy of its keys and the peer requests that read or write it."""

    def __init__(self, state: NodeState) -> None:
        self.state = state
        self.name = state.name
        self.store = state.store
        self.aae = state.aae
        self.health = state.storage_health
        self._out = state.effects
        self.source = StreamSource(state.batch_bytes)
        store = self.store
        # keys already on disk get their digests in slices, between requests (see on_tick)
        self.unindexed: Iterator[bytes] | None = iter(list(store.keys())) if len(store) else None
        # an engine that digests every state it writes (the log engine) saves anti-entropy hashing it again
        self._kept_digest = getattr(store, "digest", None) if getattr(store, "keeps_digests", False) else None
        self._strays: Iterator[bytes] | None = None  # keys to check, after a ring change, for lost ownership
        self.on_write: Callable[[bytes], None] | None = None  # set while leaving: the write is handed over
        self.purge = TombstonePurge(state.settings.tombstone_grace_s)
        # which keys found on disk hold dead states: the purge reads each once, in small slices after the
        # digests (a value read from disk per key: at start it would delay serving)
        self._dead_scan: Iterator[bytes] | None = iter(list(store.keys())) if len(store) else None
        self._ticked = -math.inf  # when on_tick last ran

    @property
    def handoff(self) -> Handoff | None:
        return self.state.handoff  # read each time: a test may give the node a hint store later

    # ------------------------------------------------------------------------------------------ local copy

    def put_local(self, key: bytes, state: KeyState) -> None:
        """Every write to this replica goes here, so the Merkle leaves stay current (and none while the
        disk refuses writes: the caller gets the refusal)."""
        if not self.health.writable:
            raise self.health.refusal()
        self.store.put(key, state)
        if self._kept_digest is not None:
            self.aae.on_digest(key, self._kept_digest(key), self.state.ring)  # hashed once, by the store
        else:
            self.aae.on_change(key, state, self.state.ring)
        self.purge.on_write(key, state)
        if self.on_write is not None:
            self.on_write(key)  # leaving: hand this write over too before stopping

    def merge_local(self, key: bytes, incoming: KeyState) -> None:
        if not self.health.writable:
            raise self.health.refusal()  # even a no-op: what this node holds may not be on disk
        local = self.store.get(key)
        merged = incoming if local is None else merge(local, incoming)
        if merged != local:
            self.put_local(key, merged)

    def ack_write(self, route: bytes, msg: dict[str, Any]) -> None:
        """A reply acknowledging a write to this node's disk: it leaves only after a good flush."""
        self.state.unflushed_acks.append(msg)
        self._out.append(Reply(route, msg))

    def ring_changed(self) -> None:
        """The ring changed under a settled node: check every key it holds for ones it no longer owns."""
        if self.handoff is not None and len(self.store):
            self._strays = iter(list(self.store.keys()))

    # ------------------------------------------------------------------------------------------ requests

    def on_rput(self, peer: str, msg: dict[str, Any], now: float) -> None:
        if "hint" in msg:
            self._keep_hint(peer, msg, now)
            return
        self.merge_local(_bytes(msg.get("key")), state_from_wire(msg.get("state")))
        if msg.get("id"):  # id 0: the write was decided already, no one waits
            self.ack_write(peer.encode(), {"op": "rput_ok", "id": msg.get("id")})

    def on_repair(self, peer: str, msg: dict[str, Any], now: float) -> None:
        self.merge_local(_bytes(msg.get("key")), state_from_wire(msg.get("state")))

    def on_rget(self, peer: str, msg: dict[str, Any], now: float) -> None:
        state = self.store.get(_bytes(msg.get("key"))) or EMPTY
        self._out.append(
            Reply(peer.encode(), {"op": "rget_ok", "id": msg.get("id"), "state": state_to_wire(state)})
        )

    def _keep_hint(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """Be a fallback: keep the write for its down owner and acknowledge it."""
        owner = msg.get("hint")
        if self.handoff is None:
            raise InvalidRequest("this node keeps no hints")
        if not isinstance(owner, str) or self.state.membership.member(owner) is None or owner == self.name:
            raise InvalidRequest(f"hint for unknown node {owner!r}")
        if not self.health.writable:
            raise self.health.refusal()  # hints are written to this disk too
        self.handoff.keep(owner, _bytes(msg.get("key")), state_from_wire(msg.get("state")), now)
        self.ack_write(peer.encode(), {"op": "rput_ok", "id": msg.get("id")})

    def on_handoff(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """Be the owner coming back: merge the hinted states, acknowledge after the turn's flush."""
        items = msg.get("items")
        if not isinstance(items, list):
            raise InvalidRequest("handoff without items")
        wall = self.state.wall(now)
        for item in items:
            if not isinstance(item, list) or len(item) != 2:
                raise InvalidRequest("malformed handoff item")
            key, state = _bytes(item[0]), state_from_wire(item[1])
            if self.purge.stale_hint(state, wall) and self.store.get(key) is None:
                self.purge.stale_hints += 1  # older than the grace: see zkv.core.purge
                continue
            self.merge_local(key, state)
        self.state.stats.hints_received += len(items)
        self.ack_write(peer.encode(), {"op": "handoff_ok", "id": msg.get("id")})

    def on_handoff_ok(self, peer: str, msg: dict[str, Any], now: float) -> None:
        if self.handoff is not None and self.handoff.owns(msg.get("id")):
            self.handoff.on_delivered(msg["id"], now)

    def on_stream(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """A joining node asks for a batch of the ranges it will own."""
        store = self.store
        removed = msg.get("removed")
        wanted = None
        if isinstance(removed, str):  # a removed member's ranges the peer gained (zkv.core.removal)
            before = ring_without(self.state.ring, self.state.membership, removed, with_it=True)
            after = ring_without(self.state.ring, self.state.membership, removed, with_it=False)
            wanted = gained_by(peer, before, after)
        reply = self.source.on_stream(
            peer, msg, lambda: moving_keys(store), store.get, self.state.future_ring, store.paxos_get, wanted
        )
        self._out.append(Reply(peer.encode(), reply))

    def on_stream_push(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """A leaving node hands over a batch of keys this node will own."""
        for key, state in decode_items(msg):
            self.merge_local(key, state)
        for key, blob in paxos_items(msg):
            absorb(self.store, key, blob)
        self.state.stats.keys_streamed_in += len(msg["items"])
        self.ack_write(peer.encode(), {"op": "stream_push_ok", "id": msg.get("id")})

    def on_aae_tree(self, peer: str, msg: dict[str, Any], now: float) -> None:
        self._out.append(Reply(peer.encode(), self.aae.on_tree(peer, msg, self.state.ring, now)))

    def on_aae_tree_ok(self, peer: str, msg: dict[str, Any], now: float) -> None:
        for out in self.aae.on_tree_ok(peer, msg, self.state.ring, self.store.get, now):
            self._out.append(Send(peer, out))

    def on_aae_keys(self, peer: str, msg: dict[str, Any], now: float) -> None:
        self._out.append(Reply(peer.encode(), self.aae.on_keys(msg, self.store.get)))

    def on_aae_items(self, peer: str, msg: dict[str, Any], now: float) -> None:
        """``aae_push`` / ``aae_keys_ok``: states a peer found this node behind on."""
        if not self.health.writable:
            return  # nothing can be stored: the next exchange after recovery repairs it
        answer: list[list[Any]] = []
        for key, state in self.aae.received(msg):
            self.merge_local(key, state)
            if key in self.purge.retired:
                # a retired tombstone is out of the comparison, so the peer would never be sent it: the
                # peer holds something older (it was down), and gets the tombstone now (zkv.core.purge)
                local = self.store.get(key)
                if local is not None and local != state:
                    answer.append([key, state_to_wire(local)])
        if answer:
            self._out.append(Send(peer, {"op": "aae_push", "items": answer}))

    # ------------------------------------------------------------------------------------------ ticks

    def offer_hints(self, now: float) -> None:
        """Offer hints to owners that are up; drop those of owners down longer than the hint window."""
        handoff = self.handoff
        if handoff is None or not len(handoff.hints):
            return
        membership = self.state.membership
        for target, msg in handoff.offers(now, lambda n: membership.is_up(n, now), self.state.ids):
            self._out.append(Send(target, msg))
        for target in handoff.targets():
            if not self.state.hints_wanted(target, now):
                log.warning("dropping the hints for %s: down longer than the hint window", target)
                handoff.drop(target)

    def on_tick(self, now: float) -> None:
        """Background work in slices: strays after a ring change, digests at start, anti-entropy, purge."""
        self._ticked = now
        if self.unindexed is None:
            if self._dead_scan is not None:
                self._scan_for_dead()
            self._purge_some(now)
        if self._strays is not None:
            self._hand_off_strays(now)
        if self.unindexed is not None:
            self._index_some()
        elif self.state.membership.status_of(self.name) == NORMAL and now >= self.aae.next_wakeup():
            # only when an exchange is due: asking every member's detector on every turn is O(members)
            membership = self.state.membership
            up = [p for p in self.state.ring.members if p != self.name and membership.is_up(p, now)]
            started = self.aae.start(now, up, self.state.ids)
            if started is not None:
                self._out.append(Send(*started))

    def _hand_off_strays(self, now: float, count: int = SLICE_KEYS) -> None:
        """After a ring change, hint each key this node holds but no longer replicates to its owners.

        A node whose ring was stale (cut off while a join completed) may have taken a write for a key it
        no longer owns, after the new owner had streamed the key; no one else would ever pull it, and
        anti-entropy only compares keys both sides replicate (found by the simulator: a write acknowledged
        at ``one`` on a partitioned old owner was lost). Hinted handoff delivers such states durably;
        merging makes the usual case, an owner that has them already, a no-op. A slice per tick.
        """
        assert self._strays is not None and self.handoff is not None
        if not self.health.writable:
            return  # hints are written to this disk too: later
        done = 0
        ring = self.state.ring
        for key in itertools.islice(self._strays, count):
            done += 1
            owners = ring.preference_list(key)
            if self.name in owners:
                continue
            state = self.store.get(key)
            if state is None:
                continue
            for owner in owners:
                try:
                    self.handoff.keep(owner, key, state, now)
                except ValueError:
                    log.warning("a stray key's state is over the hint store's bound; it stays here only")
        if done < count:
            self._strays = None

    def next_wakeup(self) -> float:
        """When a tombstone retires or retired ones are checked next, or the next slice of background work
        is due (inf: none)."""
        retire = self.purge.due_at() - self.state.wall_offset_s
        wake = min(retire, self.purge.next_check())
        if self.unindexed is not None or self._strays is not None or self._dead_scan is not None:
            wake = min(wake, self._ticked + BACKGROUND_TICK_S)
        return wake

    def _purge_some(self, now: float) -> None:
        """Retire the tombstones whose grace ended; purge a slice of those every replica agreed on."""
        purge, ring = self.purge, self.state.ring
        for key in purge.retire_due(self.state.wall(now), now):
            self.aae.on_digest(key, 0, ring)
        if not self.health.writable:
            return  # a delete is a write too: later
        for key in purge.purgeable(now, self.name, ring.preference_list, self.aae.agreed_since):
            self.store.delete(key)
            purge.forget(key)
            purge.purged += 1

    def _scan_for_dead(self, count: int = DEAD_SCAN_KEYS) -> None:
        """Tell the purge about a slice of the keys found on disk at start (their states are read)."""
        assert self._dead_scan is not None
        done = 0
        for key in itertools.islice(self._dead_scan, count):
            done += 1
            state = self.store.get(key)
            if state is not None:
                self.purge.on_write(key, state)
        if done < count:
            self._dead_scan = None

    def _index_some(self, count: int = SLICE_KEYS) -> None:
        """Digest a slice of the keys found in the store at start (anti-entropy waits until all are)."""
        assert self.unindexed is not None
        done = 0
        known_digest = getattr(self.store, "digest", None)
        ring = self.state.ring
        for key in itertools.islice(self.unindexed, count):
            done += 1
            digest = known_digest(key) if known_digest is not None else None
            if digest is not None:
                self.aae.on_digest(key, digest, ring)
            else:
                state = self.store.get(key)
                if state is not None:
                    self.aae.on_change(key, state, ring)
        if done < count:
            self.unindexed = None


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidRequest("key must be bytes")
    return value


def moving_keys(store: Any) -> list[bytes]:
    """Every key a moving range may hold: those with a state, and those with only acceptor state (a
    serial write accepted but not yet committed here)."""
    keys = set(store.keys())
    keys.update(store.paxos_keys())
    return list(keys)
