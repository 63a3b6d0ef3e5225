"""Active anti-entropy: replicas compare Merkle trees and exchange only the keys that differ.

Theory of operation
-------------------
A node keeps, for every peer, the leaf hashes (:mod:`zkv.core.merkle`) of the keys the two of them both
replicate, and updates them on every local write (XOR the key's old digest out, the new one in), so a
tree is always current and costs nothing to produce. Every ``interval`` the node starts one exchange with
the next up peer, round robin:

1. ``aae_tree`` A → B: A's leaves for B (8 KiB).
2. B diffs them against its own leaves for A and answers ``aae_tree_ok`` with the differing leaves and
   the ``(key, digest)`` pairs it holds in them (at most ``max_keys``; the rest waits for the next round).
3. A compares with its own keys in those leaves: it pushes its state of every key that differs or that B
   lacks (``aae_push``) and asks for B's state of every key that differs or that A lacks (``aae_keys`` →
   ``aae_keys_ok``). Both merge what they receive, so both end with the merge of the two.

An exchange that found differences is followed at once by another with the same peer (bounded by
``max_keys`` per round and one exchange in flight), so a wiped replica refills quickly; an exchange that
found none moves on to the next peer after ``interval``. Tombstones are states like any other and travel
the same way, until the purge retires them (:mod:`zkv.core.purge`): a digest of 0 means "nothing here", so
a retired tombstone and a key never held compare equal.

Each exchange also tells both sides which leaves *agreed* with the peer, and when (:meth:`AntiEntropy.
agreed_since`): the initiator as of the moment it sent its leaves, the responder as of the moment it
compared them. That is how a node learns that a replica holds nothing that differs from its own copy of a
key, which the purge needs for every replica of a tombstone before it may drop it.

Pure: the ring, the store and time are arguments; this module returns messages.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from zkv.core.merkle import LEAVES, MerkleTree, leaf_of, pack_leaves, state_digest, unpack_leaves
from zkv.core.ring import Ring
from zkv.core.status import AntiEntropyStatistics, FullPassStatistics
from zkv.core.transfer import parse_items
from zkv.core.versions import KeyState, state_to_wire, wire_size
from zkv.protocol import BATCH_BYTES

MAX_KEYS_PER_ROUND = 2000
FOLLOW_UP_S = 0.02  # pause between rounds while replicas still differ: leaves room for client requests


@dataclass(slots=True)
class _Exchange:
    peer: str
    deadline: float
    started: float


class AntiEntropy:
    """Merkle-tree state and exchange schedule of one node."""

    def __init__(self, me: str, interval: float, timeout: float, now: float) -> None:
        self.me = me
        self.interval = interval
        self.timeout = timeout
        self.max_keys = MAX_KEYS_PER_ROUND
        self.batch_bytes = BATCH_BYTES  # soft cap per message; NodeCore fits it to its limits
        self._digests: dict[bytes, int] = {}
        self._leaf_keys: list[set[bytes]] = [set() for _ in range(LEAVES)]
        self._leaves: dict[str, list[int]] = {}
        self._next = now + min(interval, 1.0)  # a node that just (re)started checks its replicas soon
        self._turn = 0
        self._in_flight: dict[int, _Exchange] = {}
        self._follow_up: str | None = None
        self.exchanges = 0
        self.keys_sent = 0
        self.keys_received = 0
        self.last_differences: dict[str, int] = {}
        self.pass_peers: list[str] = []  # an on-demand full pass (zkv-node repair): peers still to agree with
        self.pass_total = 0
        self.passes = 0  # full passes finished
        self.last_leaves: dict[str, int] = {}  # Merkle leaves that differed in the last round, per peer
        self.round_at: dict[str, float] = {}  # when the last round with each peer completed (its now)
        self._agreed: dict[str, list[float]] = {}  # peer -> per leaf, when it last agreed with this node

    # ------------------------------------------------------------------------------------------ digests

    def _peer_leaves(self, peer: str) -> list[int]:
        leaves = self._leaves.get(peer)
        if leaves is None:
            leaves = self._leaves[peer] = [0] * LEAVES
        return leaves

    def on_change(self, key: bytes, state: KeyState, ring: Ring) -> None:
        """A local write: keep the digest and every affected peer's leaf current (O(N))."""
        self.on_digest(key, state_digest(key, state), ring)

    def on_digest(self, key: bytes, new: int, ring: Ring) -> None:
        """As :meth:`on_change`, from a digest the store already knows (no value read from disk).

        ``new`` 0: the key is out of the comparison (purged, or a retired tombstone).
        """
        old = self._digests.get(key, 0)
        if old == new:
            return
        leaf = leaf_of(key)
        if new:
            self._digests[key] = new
            self._leaf_keys[leaf].add(key)
        else:
            del self._digests[key]
            self._leaf_keys[leaf].discard(key)
        for node in ring.preference_list(key):
            if node != self.me:
                self._peer_leaves(node)[leaf] ^= old ^ new

    def rebuild(self, ring: Ring) -> None:
        """Recompute every peer's leaves from the digests (after the ring changed).

        What peers agreed on is forgotten: it was about the keys the old ring had them share.
        """
        self._leaves = {}
        self._agreed = {}
        for key, digest in self._digests.items():
            leaf = leaf_of(key)
            for node in ring.preference_list(key):
                if node != self.me:
                    self._peer_leaves(node)[leaf] ^= digest

    def _shared_keys(self, peer: str, leaves: Iterable[int], ring: Ring) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for leaf in leaves:
            # in key order, not the set's (which follows PYTHONHASHSEED): the message, and which keys a
            # truncated exchange carries, must not depend on the process (tests/sim/test_determinism.py)
            for key in sorted(self._leaf_keys[leaf]):
                preference = ring.preference_list(key)
                if peer in preference and self.me in preference:
                    out[key] = self._digests[key]
        return out

    # ------------------------------------------------------------------------------------------ exchanges

    def next_wakeup(self) -> float:
        return self._next

    def request_pass(self, peers: Iterable[str], now: float) -> None:
        """Compare with every peer in ``peers`` now, one after another, each until no key differs
        (``zkv-node repair``); the periodic schedule resumes after it."""
        self.pass_peers = sorted(set(peers) - {self.me})
        self.pass_total = len(self.pass_peers)
        self._next = min(self._next, now)

    def start(self, now: float, up_peers: list[str], ids: itertools.count) -> tuple[str, dict] | None:
        """The exchange to begin now, if one is due: ``(peer, aae_tree message)``."""
        for eid, exchange in list(self._in_flight.items()):
            if exchange.deadline <= now:
                del self._in_flight[eid]
        if now < self._next:
            return None
        if self._in_flight or not up_peers:
            # nothing can start now: wake when the exchange in flight expires, or look for a peer again
            # soon. Leaving ``_next`` in the past would make next_wakeup() say "now" on every turn, and
            # the runtime's loop spin (found by the simulator: an isolated node busy-looped)
            retry = now + min(self.interval, 1.0)
            self._next = min([e.deadline for e in self._in_flight.values()] + [retry])
            return None
        waiting = [p for p in self.pass_peers if p in up_peers]
        if self._follow_up in up_peers:
            peer = self._follow_up
        elif waiting:
            peer = waiting[0]
        else:
            peer = sorted(up_peers)[self._turn % len(up_peers)]
            self._turn += 1
        self._follow_up = None
        self._next = now + (FOLLOW_UP_S if self.pass_peers else self.interval)
        eid = next(ids)
        self._in_flight[eid] = _Exchange(peer, now + self.timeout, now)
        self.exchanges += 1
        return peer, {"op": "aae_tree", "id": eid, "leaves": pack_leaves(self._peer_leaves(peer))}

    def on_tree(self, peer: str, msg: dict[str, Any], ring: Ring, now: float) -> dict[str, Any]:
        """B's side of step 2: the leaves that differ and the keys B holds in them."""
        theirs = MerkleTree(unpack_leaves(msg.get("leaves")))  # type: ignore[arg-type]
        mine = MerkleTree(self._peer_leaves(peer))
        differing = mine.diff(theirs)
        self._note_agreement(peer, differing, now)
        keys = self._shared_keys(peer, differing, ring)
        truncated = len(keys) > self.max_keys
        items = [[k, d] for k, d in itertools.islice(keys.items(), self.max_keys)]
        return {
            "op": "aae_tree_ok",
            "id": msg.get("id"),
            "leaves": differing,
            "keys": items,
            "truncated": truncated,
        }

    def on_tree_ok(
        self,
        peer: str,
        msg: dict[str, Any],
        ring: Ring,
        local: Callable[[bytes], KeyState | None],
        now: float,
    ) -> list[dict[str, Any]]:
        """A's side of step 3: what to push to the peer and what to ask of it."""
        exchange = self._in_flight.pop(msg.get("id"), None)  # type: ignore[arg-type]
        if exchange is None or exchange.peer != peer:
            return []
        leaves = [x for x in msg.get("leaves", []) if type(x) is int and 0 <= x < LEAVES]
        theirs: dict[bytes, int] = {}
        for item in msg.get("keys", []):
            if (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], bytes)
                and type(item[1]) is int
            ):
                theirs[item[0]] = item[1]
        mine = self._shared_keys(peer, leaves, ring)
        push = [k for k, d in mine.items() if theirs.get(k) != d][: self.max_keys]
        pull = [k for k, d in theirs.items() if mine.get(k) != d][: self.max_keys]
        self.last_differences[peer] = len(set(push) | set(pull))
        self._note_agreement(peer, leaves, exchange.started)
        self.last_leaves[peer] = len(leaves)
        self.round_at[peer] = now
        if push or pull or msg.get("truncated"):
            self._follow_up = peer  # still differ: go again soon, same peer
            self._next = now + FOLLOW_UP_S
        elif peer in self.pass_peers:  # a full pass: this peer agrees on every shared key
            self.pass_peers.remove(peer)
            if not self.pass_peers:
                self.passes += 1
            self._next = now + (FOLLOW_UP_S if self.pass_peers else self.interval)
        out: list[dict[str, Any]] = []
        if push:
            items: list[list[Any]] = []
            size = 0
            for key in push:
                state = local(key)
                if state is None:
                    continue
                if items and size + wire_size(state) > self.batch_bytes:
                    break  # the rest goes in the follow-up round
                items.append([key, state_to_wire(state)])
                size += wire_size(state)
            self.keys_sent += len(items)
            out.append({"op": "aae_push", "items": items})
        if pull:
            out.append({"op": "aae_keys", "id": 0, "keys": pull})
        return out

    def on_keys(self, msg: dict[str, Any], local: Callable[[bytes], KeyState | None]) -> dict[str, Any]:
        """Answer ``aae_keys``: this node's states of the asked keys."""
        keys = msg.get("keys")
        if not isinstance(keys, list) or len(keys) > self.max_keys:
            raise ValueError("aae_keys needs a list of at most max_keys keys")
        items: list[list[Any]] = []
        size = 0
        for key in keys:
            state = local(key) if isinstance(key, bytes) else None
            if state is None:
                continue
            if items and size + wire_size(state) > self.batch_bytes:
                break  # the rest is asked for again in the follow-up round
            items.append([key, state_to_wire(state)])
            size += wire_size(state)
        self.keys_sent += len(items)
        return {"op": "aae_keys_ok", "id": msg.get("id"), "items": items}

    def received(self, msg: dict[str, Any]) -> list[tuple[bytes, KeyState]]:
        """The states carried by ``aae_push`` or ``aae_keys_ok``, validated."""
        out = parse_items(msg.get("items"))
        self.keys_received += len(out)
        return out

    def _note_agreement(self, peer: str, differing: Iterable[int], when: float) -> None:
        """Every leaf but ``differing`` held the same on both sides as of ``when``."""
        agreed = self._agreed.get(peer)
        if agreed is None:
            agreed = self._agreed[peer] = [-math.inf] * LEAVES
        skip = set(differing)
        for leaf in range(LEAVES):
            if leaf not in skip and agreed[leaf] < when:
                agreed[leaf] = when

    def agreed_since(self, peer: str, key: bytes) -> float:
        """When ``peer`` last held the same as this node in ``key``'s leaf (-inf: not since the ring)."""
        agreed = self._agreed.get(peer)
        return -math.inf if agreed is None else agreed[leaf_of(key)]

    def on_failed(self, exchange_id: Any) -> None:
        self._in_flight.pop(exchange_id, None)

    def statistics(self) -> AntiEntropyStatistics:
        return AntiEntropyStatistics(
            exchanges=self.exchanges,
            keys_sent=self.keys_sent,
            keys_received=self.keys_received,
            last_differences=dict(self.last_differences),
            leaves_differing=dict(self.last_leaves),
            tracked_keys=len(self._digests),
            full_pass=FullPassStatistics(
                peers=self.pass_total,
                done=self.pass_total - len(self.pass_peers),
                remaining=list(self.pass_peers),
                passes=self.passes,
            ),
        )
