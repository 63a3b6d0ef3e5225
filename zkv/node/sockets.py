"""Which of a node's sockets have input, at a cost that grows with the sockets that do, not with all of them.

A node holds a DEALER and a connection monitor per peer: 300 sockets at 150 nodes. ``zmq.Poller`` hands
every registered socket to ``zmq_poll`` on every call, and a node's loop turns at every heartbeat it
hears, so at 30 nodes half of an idle node's CPU went to ``Poller.poll`` (py-spy; docs/scale.md). Here the
sockets' ``ZMQ_FD`` descriptors sit in one ``epoll`` set, which reports only the ready ones.

ZeroMQ's descriptor only says "look at ``ZMQ_EVENTS``", and a ``send`` or ``recv`` on the socket may
consume that signal while a message waits (the ZMQ_FD contract). So every socket that was drained in the
last turn, or sent on (:meth:`touched`), or marked ``always`` (the ROUTER, which sends replies, the SUB),
has its ``ZMQ_EVENTS`` checked at the next poll whatever ``epoll`` says: a few sockets per turn, the
active ones. This is the pattern of pyzmq's own asyncio integration (DESIGN.md §3a: "asyncio
``add_reader`` on the zmq FD, same draining").
"""

from __future__ import annotations

import select
import signal
import socket

import zmq


class SocketPoller:
    """A stand-in for ``zmq.Poller`` (POLLIN only) for many mostly idle sockets."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._by_fd: dict[int, zmq.Socket] = {}
        self._fds: dict[zmq.Socket, int] = {}
        self._always: dict[zmq.Socket, None] = {}
        self._recheck: dict[zmq.Socket, None] = {}
        self._muted: set[zmq.Socket] = set()
        # what it costs, for status (tools/scale.py): sockets registered, polls, sockets looked at
        self.stats = {"registered": 0, "polls": 0, "checked": 0}
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self.signalled = False  # the last poll was woken by a signal (see :meth:`wake_on_signals`)

    def __len__(self) -> int:
        """How many sockets are registered (what ``zmq_poll`` would have walked on every call)."""
        return len(self._fds)

    def register(self, sock: zmq.Socket, always: bool = False) -> None:
        """Watch ``sock`` for input; ``always``: check its events at every poll (a socket sent on often)."""
        fd = int(sock.getsockopt(zmq.FD))
        self._by_fd[fd] = sock
        self._fds[sock] = fd
        self._epoll.register(fd, select.EPOLLIN)
        self.stats["registered"] = len(self._fds)
        if always:
            self._always[sock] = None
        self._recheck[sock] = None  # a message may be there already

    def unregister(self, sock: zmq.Socket) -> None:
        fd = self._fds.pop(sock, None)
        if fd is None:
            return
        self._by_fd.pop(fd, None)
        self._epoll.unregister(fd)
        self._always.pop(sock, None)
        self._recheck.pop(sock, None)
        self._muted.discard(sock)
        self.stats["registered"] = len(self._fds)

    def touched(self, sock: zmq.Socket) -> None:
        """``sock`` was sent on: its descriptor's signal may be gone, so check it at the next poll."""
        if sock in self._fds:
            self._recheck[sock] = None

    def mute(self, sock: zmq.Socket) -> None:
        """Report ``sock`` no more until :meth:`unmute` (its input waits to be taken in a batch).

        Its descriptor leaves the epoll set meanwhile: its signal stays raised while nobody reads its
        events, and a level-triggered epoll would return at once, every time (a spinning loop)."""
        fd = self._fds.get(sock)
        if fd is None or sock in self._muted:
            return
        self._muted.add(sock)
        self._recheck.pop(sock, None)
        self._epoll.modify(fd, 0)

    def unmute(self, sock: zmq.Socket) -> None:
        fd = self._fds.get(sock)
        if fd is None or sock not in self._muted:
            return
        self._muted.discard(sock)
        self._epoll.modify(fd, select.EPOLLIN)
        self._recheck[sock] = None

    def wake_on_signals(self) -> None:
        """Let a signal end a poll at once (``signal.set_wakeup_fd``): the loop then need not wake every
        few hundred milliseconds just to see whether a stop was asked (SIGTERM's handler sets a flag).

        Only from the main thread (Python runs signal handlers there, and ``set_wakeup_fd`` insists)."""
        if self._wakeup is not None:
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._wakeup = (reader, writer)
        self._epoll.register(reader.fileno(), select.EPOLLIN)

    def _drain_wakeup(self) -> None:
        assert self._wakeup is not None
        try:
            while self._wakeup[0].recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def poll(self, timeout_ms: float) -> list[zmq.Socket]:
        """The sockets with input, waiting at most ``timeout_ms`` for one (not at all if one has);
        ``timeout_ms`` < 0 waits until one has (or a signal came, with :meth:`wake_on_signals`)."""
        ready: dict[zmq.Socket, None] = {}
        looked = (*self._always, *self._recheck)
        muted = self._muted
        for sock in looked:
            if sock not in muted and _readable(sock):
                ready[sock] = None
        self._recheck.clear()
        events = self._epoll.poll(0 if ready else (timeout_ms / 1000 if timeout_ms >= 0 else -1))
        stats = self.stats
        stats["polls"] += 1
        stats["checked"] += len(looked) + len(events)
        self.signalled = False
        wakeup = self._wakeup[0].fileno() if self._wakeup is not None else -1
        for fd, _ in events:
            if fd == wakeup:
                self.signalled = True
                self._drain_wakeup()
                continue
            found = self._by_fd.get(fd)
            if found is not None and found not in ready and found not in muted and _readable(found):
                ready[found] = None
        self._recheck.update(ready)  # drained now (perhaps only up to a limit): look again next time
        return list(ready)

    def close(self) -> None:
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)  # (set from the main thread, so closed from it: serve())
            for sock in self._wakeup:
                sock.close()
            self._wakeup = None
        self._epoll.close()


_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: ``&`` on pyzmq's enums builds a Flag


def _readable(sock: zmq.Socket) -> bool:
    """Has ``sock`` a message to read? (Reading ``ZMQ_EVENTS`` also resets its descriptor's signal.)"""
    return bool(int(sock.getsockopt(_EVENTS)) & _POLLIN)
