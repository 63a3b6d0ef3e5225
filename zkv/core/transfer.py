"""Range transfers for join and leave: resumable, checksummed batches of key states.

Theory of operation
-------------------
**Join.** A node that joins announces itself as ``joining``; the others keep it out of the ring but send
it every write for a key it *will* replicate (its pending ranges). It pulls, from every ring member, the
keys it will replicate: ``stream`` {after, limit} asks a member for the next batch in key order after the
cursor ``after``; the member answers ``stream_ok`` {items, next, crc} from a sorted snapshot of its keys.
A batch whose CRC does not match is asked again; a lost one is asked again after the deadline; the
cursor makes every pull resumable. When every member said ``next = nil`` the node turns ``normal`` and
the ring takes it in. Pulling from every member rather than one replica per range costs more bytes but
hands the joining node the merge of all replicas.

**Leave.** A leaving node keeps serving while it pushes every key it holds to the nodes that replicate
the key once it is gone (``stream_push`` {items, crc} → ``stream_push_ok``), one batch at a time, then
turns ``removed`` and stops. Meanwhile coordinators send writes to those future owners too.

Pure: rings, stores and time are arguments; this module returns messages.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from zkv.core.ring import Ring
from zkv.core.versions import KeyState, state_from_wire, state_to_wire, wire_size
from zkv.protocol import BATCH_BYTES

BATCH_KEYS = 500
SCAN_KEYS = 5000  # keys a source looks at per stream request, so one request never stalls its loop


def checksum(items: list) -> int:
    return zlib.crc32(msgpack.packb(items, use_bin_type=True))


def decode_items(msg: dict[str, Any]) -> list[tuple[bytes, KeyState]]:
    """The checked items of a ``stream_ok`` / ``stream_push``; ValueError when malformed or corrupt."""
    items = msg.get("items")
    if not isinstance(items, list) or checksum(items) != msg.get("crc"):
        raise ValueError("transfer batch failed its checksum")
    paxos_items(msg)
    return parse_items(items)


def paxos_items(msg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The checked acceptor states riding with a batch (``paxos`` [[key, blob], ...], ``pcrc``): a moving
    range takes its Paxos state along (zkv.core.paxos, "Ring changes"); ValueError when corrupt."""
    found = msg.get("paxos")
    if found is None:
        return []
    if not isinstance(found, list) or checksum(found) != msg.get("pcrc"):
        raise ValueError("acceptor states failed their checksum")
    out = []
    for item in found:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)):
            raise ValueError("malformed [key, acceptor state] item")
        if not isinstance(item[1], bytes):
            raise ValueError("malformed [key, acceptor state] item")
        out.append((item[0], item[1]))
    return out


def with_paxos(msg: dict[str, Any], found: list[list[Any]]) -> dict[str, Any]:
    if found:
        msg["paxos"], msg["pcrc"] = found, checksum(found)
    return msg


def parse_items(items: Any) -> list[tuple[bytes, KeyState]]:
    """``[[key, state], ...]`` from a peer (transfers, anti-entropy), every state validated."""
    if not isinstance(items, list):
        raise ValueError("expected a list of [key, state] items")
    out = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], bytes):
            raise ValueError("malformed [key, state] item")
        out.append((item[0], state_from_wire(item[1])))
    return out


class StreamSource:
    """Serves ``stream`` requests of joining nodes from sorted key snapshots."""

    def __init__(self, batch_bytes: int = BATCH_BYTES) -> None:
        self._snapshots: dict[str, list[bytes]] = {}
        self.keys_sent = 0
        self.batch_bytes = batch_bytes  # soft cap per message: under ZMQ_MAXMSGSIZE however large values are

    def on_stream(
        self,
        requester: str,
        msg: dict[str, Any],
        keys: Callable[[], Iterable[bytes]],
        local: Callable[[bytes], KeyState | None],
        future_ring: Ring,
        paxos: Callable[[bytes], bytes | None] = lambda key: None,
        wanted: Callable[[bytes], bool] | None = None,
    ) -> dict[str, Any]:
        """The next batch for ``requester``; ``paxos`` gives a key's acceptor state (sent along);
        ``wanted``: of the keys it asks for, a removed member's ranges it gained (:mod:`zkv.core.removal`;
        default: the keys it will replicate).

        A requester this node does not know joins is told to ask again (``wait``): answering with nothing
        would end its stream from here with none of the ranges, and a node that knows of the join refuses
        the old ring's serial rounds from then on (zkv.core.paxos, "Ring changes")."""
        after = msg.get("after")
        if wanted is None and requester not in future_ring.members:  # (a removal's puller is no joiner)
            return {
                "op": "stream_ok",
                "id": msg.get("id"),
                "items": [],
                "crc": checksum([]),
                "next": after,
                "wait": True,
            }
        if after is not None and not isinstance(after, bytes):
            raise ValueError("stream cursor must be bytes or nil")
        if wanted is None:
            wanted = lambda key: requester in future_ring.preference_list(key)  # noqa: E731
        removed = msg.get("removed")
        pull = requester if removed is None else f"{requester}\x00{removed}"  # a join and a removal at once
        snapshot = self._snapshots.get(pull)
        if snapshot is None or after is None:
            snapshot = self._snapshots[pull] = sorted(keys())
        start = 0 if after is None else bisect.bisect_right(snapshot, after)
        items: list[list[Any]] = []
        found: list[list[Any]] = []
        end = start
        size = 0
        while end < len(snapshot) and end - start < SCAN_KEYS and len(items) < BATCH_KEYS:
            key = snapshot[end]
            if wanted(key):
                blob = paxos(key)
                if blob is not None:
                    found.append([key, blob])
                state = local(key)
                if state is not None:
                    if items and size + wire_size(state) > self.batch_bytes:
                        break  # large values: fewer keys per message; this one starts the next
                    size += wire_size(state)
                    items.append([key, state_to_wire(state)])
            end += 1
        done = end >= len(snapshot)
        if done:
            del self._snapshots[pull]
        self.keys_sent += len(items)
        reply = {
            "op": "stream_ok",
            "id": msg.get("id"),
            "items": items,
            "crc": checksum(items),
            "next": None if done else snapshot[end - 1],
            "left": len(snapshot) - end,  # keys still to look at: the puller's progress
        }
        return with_paxos(reply, found)


@dataclass(slots=True)
class JoinStream:
    """The joining node's pulls: one cursor per source, one request in flight per source."""

    sources: list[str]
    timeout: float
    cursors: dict[str, bytes | None] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    in_flight: dict[int, tuple[str, float]] = field(default_factory=dict)
    keys_received: int = 0
    retries: int = 0

    @property
    def complete(self) -> bool:
        return set(self.sources) <= self.done

    def requests(
        self, now: float, is_up: Callable[[str], bool], ids: itertools.count
    ) -> list[tuple[str, dict]]:
        for rid, (_, deadline) in list(self.in_flight.items()):
            if deadline <= now:
                del self.in_flight[rid]
                self.retries += 1
        busy = {source for source, _ in self.in_flight.values()}
        out = []
        for source in self.sources:
            if source in self.done or source in busy or not is_up(source):
                continue
            rid = next(ids)
            self.in_flight[rid] = (source, now + self.timeout)
            out.append(
                (source, {"op": "stream", "id": rid, "after": self.cursors.get(source), "limit": BATCH_KEYS})
            )
        return out

    def drop_departed(self, members: Iterable[str]) -> None:
        """Stop waiting for sources that left the ring: they have nothing more to give.

        A member that leaves pushes its keys to their future owners (this node among them) before it
        goes; without this a join that began while a member was leaving waited for it forever (found
        by the simulator: a node stuck ``joining`` after a concurrent leave).
        """
        current = set(members)
        for source in self.sources:
            if source not in current and source not in self.done:
                self.done.add(source)
                for rid, (asked, _) in list(self.in_flight.items()):
                    if asked == source:
                        del self.in_flight[rid]

    def owns(self, rid: Any) -> bool:
        return rid in self.in_flight

    def on_stream_ok(self, source: str, msg: dict[str, Any]) -> list[tuple[bytes, KeyState]]:
        """The batch's states (to merge); advances the cursor. A corrupt batch is dropped and asked again;
        a source that does not know this node joins yet (``wait``) is asked again after the timeout."""
        if msg.get("wait"):
            return []
        self.in_flight.pop(msg.get("id"), None)  # type: ignore[arg-type]
        try:
            items = decode_items(msg)
        except ValueError:
            self.retries += 1
            return []
        nxt = msg.get("next")
        if nxt is None:
            self.done.add(source)
        elif isinstance(nxt, bytes):
            self.cursors[source] = nxt
        self.keys_received += len(items)
        return items

    def on_failed(self, rid: Any) -> None:
        if self.in_flight.pop(rid, None) is not None:
            self.retries += 1


@dataclass(slots=True)
class LeaveStream:
    """The leaving node's pushes: batches of keys to their future owners, one batch in flight."""

    keys: list[bytes]
    timeout: float
    position: int = 0
    batch_end: int = 0
    waiting: dict[int, str] = field(default_factory=dict)  # push id -> target
    deadline: float = 0.0
    keys_sent: int = 0
    retries: int = 0
    batch_bytes: int = BATCH_BYTES  # soft cap per push message
    acked: set[str] = field(default_factory=set)  # targets that took the batch in flight
    again: dict[bytes, None] = field(default_factory=dict)  # written during the leave: push once more

    @property
    def complete(self) -> bool:
        return self.position >= len(self.keys) and not self.waiting and not self.again

    def touch(self, key: bytes) -> None:
        """A local write during the leave: the key is pushed (again) before the leave completes.

        Coordinators also send such writes to the future owners, but those sends can be lost; without
        this a write the leaving node took after its key was pushed could stop with the node (found by
        the simulator: an acknowledged write lost after a clean leave under a partition).
        """
        self.again[key] = None

    def pushes(
        self,
        now: float,
        ring: Ring,
        future_ring: Ring,
        local: Callable[[bytes], KeyState | None],
        ids: itertools.count,
        paxos: Callable[[bytes], bytes | None] = lambda key: None,
    ) -> list[tuple[str, dict]]:
        """The next batch's pushes (or the current batch again once its deadline passed).

        ``ring`` (the current ring) is not consulted any more: every future owner gets the batch.
        """
        if self.waiting:
            if now < self.deadline:
                return []
            self.waiting.clear()  # lost or refused: push the same batch again, to who did not take it
            self.retries += 1
        for _ in range(20):  # batches with nothing to move are skipped, a bounded number per call
            if self.position >= len(self.keys):
                if not self.again:
                    return []
                self.keys.extend(self.again)  # the keys written since: one more round for them
                self.again.clear()
            self.batch_end = min(len(self.keys), self.position + BATCH_KEYS)
            by_target: dict[str, list[list[Any]]] = {}
            acceptors: dict[str, list[list[Any]]] = {}  # target -> [[key, acceptor state], ...]
            size = 0
            for index in range(self.position, self.batch_end):
                key = self.keys[index]
                state = local(key)
                blob = paxos(key)
                if blob is not None:  # a serial key's acceptor state goes with it (zkv.core.paxos)
                    for target in future_ring.preference_list(key):
                        if target not in self.acked:
                            acceptors.setdefault(target, []).append([key, blob])
                            by_target.setdefault(target, [])
                if state is None:
                    continue
                if size and size + wire_size(state) > self.batch_bytes:
                    self.batch_end = index  # large values: a shorter batch, under the message limit
                    break
                size += wire_size(state)
                # every future owner, not only the new ones: a current replica may lack writes this node
                # holds (it was down, or cut off, when they were made), and after this node is gone it
                # may be their only other copy (found by the simulator: a quorum write acknowledged by
                # this node and one replica whose disk was then lost). Merging makes repeats harmless.
                for target in future_ring.preference_list(key):
                    if target not in self.acked:  # (the leaving node is in no future preference list)
                        by_target.setdefault(target, []).append([key, state_to_wire(state)])
            if not by_target:
                self.position = self.batch_end
                self.acked.clear()
                continue
            out = []
            for target, items in by_target.items():
                pid = next(ids)
                self.waiting[pid] = target
                self.keys_sent += len(items)
                push = {"op": "stream_push", "id": pid, "items": items, "crc": checksum(items)}
                out.append((target, with_paxos(push, acceptors.get(target, []))))
            self.deadline = now + self.timeout
            return out
        return []

    def owns(self, pid: Any) -> bool:
        return pid in self.waiting

    def on_push_ok(self, pid: int) -> None:
        target = self.waiting.pop(pid, None)
        if target is not None:
            self.acked.add(target)
        if not self.waiting:
            self.position = self.batch_end
            self.acked.clear()

    def on_failed(self, pid: Any) -> None:
        """The push could not be sent (no connection to the target): it is pushed again at the deadline.

        Not at once: retrying on the next tick re-sent the whole batch to every target on every loop
        turn while one target was down, and the other targets' answers made more turns (a flood the
        simulator found: a million messages a second for as long as the target stayed down).
        """
