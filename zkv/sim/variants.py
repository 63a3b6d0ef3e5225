"""Deliberately broken cores, to prove the simulator's checker has teeth.

Each variant patches one rule of the real core for the duration of a run and is undone afterwards:

* ``w_minus_1`` — a write is acknowledged after W-1 replicas (a ``quorum`` write after one: just the
  coordinator). Caught when the only copy of an acknowledged write is lost with a wiped disk.
* ``no_siblings`` — replicas keep one sibling (the newest by timestamp) instead of every concurrent one,
  last-writer-wins style. Caught as lost acknowledged writes under concurrent updates.
* ``blind_overreach`` — a blind write supersedes more than its coordinator saw: its context claims a
  thousand more writes of every actor the key's clock names, so concurrent writes its coordinator had
  not received (context-carrying ones included) vanish when its state meets theirs. Caught by the blind
  workload's checker: an acknowledged write gone with no write that saw it, or a blind write claiming
  to supersede a write made after it was answered.
* ``serial_read_skips_in_progress`` — a serial read answers with what a majority has committed, without
  completing a proposal accepted above the last commit (CASSANDRA-12126). Caught by the serial
  workload's linearizability checker: a chosen value read, then not read, then read again. It shows
  only when an acknowledged write's commit reached a minority (its coordinator cut off between accept and
  commit), which the CI seeds rarely make: see tests/sim/test_teeth.py.
* ``serial_skips_in_progress`` — every serial request (writes too) ignores in-progress proposals: a CAS
  decides on a state that misses a chosen value, and two conflicting writes both apply. Caught by the
  same checker.
* ``serial_ignores_ring`` — acceptors answer a round whatever replicas its proposer sees for the key
  (no ``ring_mismatch``): a node restarted with the cluster file's members, not yet told of a join,
  decides with the old replicas while the new ones decide too. Caught by the serial checker with joins.
* ``serial_reads_copies`` — acceptors answer a prepare with their ordinary copy of the key instead of
  the state they committed (serial rounds before issue #22's fix): a plain version on some copies only
  is seen through one majority and not through the next. Caught by the serial checker once the
  workload mixes plain writes in (a plain value read, then the value before it again).
* ``txn_resolve_without_record`` — whoever meets a transaction's intent takes it as committed and resolves
  it (and every key it names) to its new value, without reading the transaction's record: a transfer
  refused or aborted on one key takes effect on the others. Caught by the bank checker (:mod:`zkv.sim.bank`):
  half a transaction committed, the total changed, an answer "refused" for a transfer that took effect.
* ``txn_plain_read_skips_record`` — a plain read that meets an intent answers its old value instead of
  asking the transaction's record (the serial read it should become): once a transfer committed and one
  of its keys is resolved, a plain read of another still shows the value from before. Caught by the bank
  checker's read-atomic rule (a fractured read).
* ``purge_on_timer`` — a tombstone is purged once its grace is over, without waiting for every replica
  to agree (what Cassandra's gc_grace_seconds alone does). Caught as a resurrected value: a replica that
  missed the delete hands its old version out again once the others forgot the tombstone.
* ``ttl_ignored`` — reads ignore the expiry of a version. Caught by the TTL checker: a value read, or
  still there at the end, after its TTL passed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from zkv.core import (
    coordinator,
    paxos,
    purge,
    quorum,
    replica,
    serial,
    serialop,
    txn,
    txncoord,
    versions,
    writes,
)

VARIANTS = (
    "w_minus_1",
    "no_siblings",
    "blind_overreach",
    "serial_read_skips_in_progress",
    "serial_skips_in_progress",
    "serial_ignores_ring",
    "serial_reads_copies",
    "purge_on_timer",
    "ttl_ignored",
    "txn_resolve_without_record",
    "txn_plain_read_skips_record",
)


@contextlib.contextmanager
def variant(name: str | None) -> Iterator[None]:
    """Apply the named broken variant (None: the real core) while the block runs."""
    if name is None:
        yield
        return
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    patches: list[tuple[object, str, object]] = []

    def patch(target: object, attr: str, value: object) -> None:
        patches.append((target, attr, getattr(target, attr)))
        setattr(target, attr, value)

    if name == "w_minus_1":
        real = quorum.WriteQuorum

        def weak_quorum(targets: tuple[str, ...], required: int, deadline: float) -> quorum.WriteQuorum:
            return real(targets, max(1, required - 1), deadline)

        patch(coordinator, "WriteQuorum", weak_quorum)
    elif name == "blind_overreach":

        def overreach(local: versions.KeyState) -> dict[str, int]:
            return {actor: counter + 1000 for actor, counter in local.clock.items()}

        patch(writes, "blind_context", overreach)
    elif name in ("serial_read_skips_in_progress", "serial_skips_in_progress"):
        real_promised = serial.SerialCoordinator._promised
        reads_only = name == "serial_read_skips_in_progress"

        def skipping(self: serial.SerialCoordinator, sop: serialop.SerialOp, now: float) -> Any:
            if sop.op == "get" or not reads_only:
                for promise in sop.promises:
                    promise["proposal"] = None  # as if nothing were in progress
            return real_promised(self, sop, now)

        patch(serial.SerialCoordinator, "_promised", skipping)
    elif name == "serial_ignores_ring":
        patch(paxos.Acceptor, "_ring_mismatch", lambda self, key, msg: None)
    elif name == "serial_reads_copies":
        real_prepare = paxos.Acceptor.prepare

        def from_copies(self: paxos.Acceptor, key: bytes, ballot: paxos.Ballot) -> dict[str, Any]:
            reply = real_prepare(self, key, ballot)
            if reply.pop("kept", False):
                reply["state"] = versions.state_to_wire(self.store.get(key) or versions.EMPTY)
            return reply

        patch(paxos.Acceptor, "prepare", from_copies)
    elif name == "purge_on_timer":
        real_purgeable = purge.TombstonePurge.purgeable

        def on_timer(
            self: purge.TombstonePurge,
            now: float,
            me: str,
            replicas: Callable[[bytes], Iterable[str]],
            agreed_since: Callable[[str, bytes], float],
        ) -> list[bytes]:
            return real_purgeable(self, now, me, replicas, lambda peer, key: float("inf"))

        patch(purge.TombstonePurge, "purgeable", on_timer)
    elif name == "txn_resolve_without_record":

        def blind_recover(
            self: txncoord.TxnCoordinator,
            key: bytes,
            intent: txn.Intent,
            then: Any,
            now: float,
            *_: Any,
            **__: Any,
        ) -> None:
            self._finish_intent(key, intent, True, then, now)

        patch(txncoord.TxnCoordinator, "recover", blind_recover)
    elif name == "txn_plain_read_skips_record":
        real_reply = writes.read_reply

        def old_values(state: versions.KeyState, wall: float) -> dict[str, object]:
            reply = real_reply(state, wall)
            if txn.find_intent(state, wall) is not None:
                reply["values"] = txn.visible_values(state, wall)
                reply["timestamps"] = reply["timestamps"][: len(reply["values"])]
            return reply

        patch(coordinator, "_holds_intent", lambda state: False)
        patch(writes, "read_reply", old_values)
    elif name == "ttl_ignored":
        real_read_reply = writes.read_reply

        def ignoring(state: versions.KeyState, wall: float) -> dict[str, object]:
            return real_read_reply(state, -math.inf)

        patch(writes, "read_reply", ignoring)
    else:
        real_merge = versions.merge

        def lww_merge(a: versions.KeyState, b: versions.KeyState) -> versions.KeyState:
            merged = real_merge(a, b)
            if len(merged.siblings) <= 1:
                return merged
            newest = max(merged.siblings, key=lambda s: (s.timestamp, s.dot))
            return versions.KeyState((newest,), merged.clock)

        patch(replica, "merge", lww_merge)
        patch(versions, "merge", lww_merge)
    try:
        yield
    finally:
        for target, attr, value in reversed(patches):
            setattr(target, attr, value)
