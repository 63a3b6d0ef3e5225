"""The pipelined group commit: nothing is sent before its turn's fsync, and replies keep turn order."""

from __future__ import annotations

import select
import threading

from zkv.node.commit import PipelinedCommit
from zkv.storage.base import Commit


class Disk:
    """fsyncs that finish only when the test says so."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.gates: dict[int, threading.Event] = {}
        self.durable: list[int] = []

    def commit(self, n: int) -> Commit:
        gate = self.gates[n] = threading.Event()

        def sync() -> None:
            self.started.append(n)
            assert gate.wait(10)

        return Commit(sync, lambda: self.durable.append(n))


def _wake(pc: PipelinedCommit) -> None:
    assert select.select([pc.wake_fd], [], [], 10)[0], "the helper thread never woke the loop"
    pc.on_wake()


def test_replies_wait_for_their_fsync_and_keep_turn_order() -> None:
    sent: list[str] = []
    disk = Disk()
    pc = PipelinedCommit(lambda replies: sent.extend(replies))
    try:
        pc.turn(disk.commit(1), ["ack-w1"])
        pc.turn(None, ["read-after-w1"])  # a read may have seen w1: it waits for w1's fsync
        pc.turn(disk.commit(2), ["ack-w2"])  # asked while fsync 1 runs
        pc.turn(disk.commit(3), ["ack-w3"])  # ...and so is this: both share the next fsync
        assert sent == [] and pc.busy
        disk.gates[1].set()
        _wake(pc)
        assert sent == ["ack-w1", "read-after-w1"] and disk.durable == [1]
        disk.gates[3].set()
        _wake(pc)
        assert sent == ["ack-w1", "read-after-w1", "ack-w2", "ack-w3"]
        assert disk.started == [1, 3], "one fsync covered the two writes that came during the first"
        pc.turn(None, ["idle-read"])  # nothing pending: straight out
        assert sent[-1] == "idle-read" and not pc.busy
    finally:
        for gate in disk.gates.values():
            gate.set()
        pc.drain()
        pc.close()


def test_drain_finishes_what_was_asked_before_stopping() -> None:
    sent: list[str] = []
    disk = Disk()
    pc = PipelinedCommit(lambda replies: sent.extend(replies))
    pc.turn(disk.commit(1), ["a"])
    pc.turn(disk.commit(2), ["b"])
    for gate in list(disk.gates.values()):
        gate.set()
    threading.Timer(0.05, lambda: [g.set() for g in disk.gates.values()]).start()
    pc.drain()
    pc.close()
    assert sent == ["a", "b"] and disk.durable == [1, 2]
