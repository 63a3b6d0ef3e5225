"""The client's connection to the cluster: sockets, routing by the ring, pipelining, retries.

It sends each keyed request straight to a node of the key's preference list (its natural coordinator),
so requests are not forwarded inside the cluster. When a node cannot be reached (no connection) the next
node of the list is tried at once. When a node stays silent for ``timeout`` seconds, a read is sent to
the next one; a write is not (it fails with :class:`~zkv.errors.Timeout`: it may or may not have landed),
because sent again it could be stored twice, as two siblings with the same value; ``retry_writes=True``
trades that for availability. A node that answers ``stopping``, or ``unavailable`` before it attempted
anything, passes the request to another node of the preference list (:mod:`zkv.client.retry`); every
request has one deadline, however many nodes it tries. Many requests can be in flight at once: every
request carries an id and the reply echoes it. The user-facing operations are
:class:`zkv.client.Client`'s; this module only moves requests and replies.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import zmq

from zkv.client.results import RingInfo, ring_from_reply
from zkv.client.retry import BUDGET_WAITS, next_candidates
from zkv.errors import (
    BadAddress,
    ClientClosed,
    MessageTooLarge,
    NodeStopping,
    NoNodeAvailable,
    Timeout,
    ZkvError,
    from_reply,
)
from zkv.protocol import pack, unpack_frame
from zkv.security import KeyPair, make_curve_client

RING_TTL_S = 5.0  # how long a learned ring is trusted before it is asked for again (joins, leaves)
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 1000
CONNECT_PATIENCE_S = 1.0  # how long a connection that is not up yet may take before the next node is tried
UNREACHABLE_BACKOFF_S = 2.0  # how long a node that refused a connection goes to the back of the line
STOPPING_BACKOFF_S = 10.0  # ... and one that said it is stopping (its drain, its stop and restart)
WRITE_OPS = ("put", "delete")
HWM = 100_000  # messages queued per connection before a send would block (never, in practice)


def route(ring_info: RingInfo | None, key: bytes | None, seeds: list[str]) -> list[str]:
    """Where a request goes, in order: the key's preference list (its natural coordinators, so nothing is
    forwarded inside the cluster), then every other node of the ring, then the seeds. Without a ring (not
    learned yet), the seeds. Shared by this client and the HTTP gateway's loop client."""
    return routes(ring_info, key, seeds)[0]


def routes(
    ring_info: RingInfo | None, key: bytes | None, seeds: list[str]
) -> tuple[list[str], tuple[str, ...]]:
    """:func:`route`, and the addresses of the key's preference list (empty without a ring or a key):
    the nodes an ``unavailable`` may be retried on (:mod:`zkv.client.retry`)."""
    known = list(dict.fromkeys(seeds))
    if ring_info is None:
        return known, ()
    addresses = ring_info.addresses
    preferred = [addresses[n] for n in ring_info.preference_list(key)] if key is not None else []
    rest = [a for a in [*addresses.values(), *known] if a not in preferred]
    return list(dict.fromkeys(preferred + rest)), tuple(preferred)


def dealer(
    ctx: zmq.Context, address: str, curve_key: KeyPair | None, server_keys: dict[str, bytes]
) -> zmq.Socket | None:
    """A connected DEALER to the node at ``address`` (CURVE when ``curve_key`` is set); None under CURVE
    when the node's public key is unknown (a node that joined after the key file was written).

    ``IMMEDIATE``: a send to a node that is not connected fails at once (``zmq.Again``), so the caller
    can try the next node instead of queueing for a dead one."""
    server_key = server_keys.get(address)
    if curve_key is not None and server_key is None:
        return None
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve_key is not None and server_key is not None:
        make_curve_client(sock, curve_key, server_key)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    try:
        sock.connect(address)
    except zmq.ZMQError as exc:  # a host name that does not resolve, and the like
        sock.close(linger=0)
        raise BadAddress(f"cannot connect to {address}: {exc}", address=address) from None
    return sock


@dataclass(slots=True)
class Job:
    """One request on its way: the message, the addresses still to try, and (once done) its result."""

    msg: dict[str, Any]
    candidates: list[str]  # addresses still to try, in order
    result: Any = None
    done: bool = False
    deadline: float = 0.0
    last_error: ZkvError | None = None
    resend_on_timeout: bool = True  # False for writes: a re-sent put may land twice, as two versions
    slot: int = -1  # its place in the batch being run
    preferred: tuple[str, ...] = ()  # the key's preference list: where an ``unavailable`` may go next
    write: bool = False
    final: float = 0.0  # the request's one deadline, set at its first send (0: not sent yet)


class Transport:
    """Sockets to the nodes (one DEALER each), the learned ring, and the loop that runs jobs."""

    def __init__(
        self,
        seeds: list[str],
        timeout: float | None = None,
        pinned: bool = False,
        retry_writes: bool = False,
        curve_key: KeyPair | None = None,
        server_keys: dict[str, bytes] | None = None,
    ) -> None:
        self.seeds = seeds
        self.curve_key = curve_key  # None: plaintext
        self.server_keys = dict(server_keys or {})  # node address -> its CURVE public key
        self.pinned = pinned  # send every request to the seeds, in order, instead of routing by the ring
        # A write that timed out may still have landed; sending it again to another node would store it
        # a second time under a new dot (a duplicate sibling). Like Cassandra's drivers with
        # non-idempotent statements, writes are only re-sent after a timeout when asked to.
        self.retry_writes = retry_writes
        self.fixed_timeout = timeout
        self._ctx = zmq.Context()
        self._sockets: dict[str, zmq.Socket] = {}
        self._address_of: dict[zmq.Socket, str] = {}
        self._poller = zmq.Poller()
        self._ids = itertools.count(1)
        self.ring_info: RingInfo | None = None
        self._ring_at = 0.0
        self._unreachable_until: dict[str, float] = {}
        # the cluster's limits, learned with the ring (these defaults are the nodes' defaults)
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self.max_in_flight = DEFAULT_MAX_IN_FLIGHT
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._ctx.destroy(linger=0)

    @property
    def timeout(self) -> float:
        """Seconds to wait for one node before trying the next."""
        if self.fixed_timeout is not None:
            return self.fixed_timeout
        return (self.ring_info.request_timeout if self.ring_info else 2.0) + 0.5

    @contextlib.contextmanager
    def timeout_of(self, timeout: float | None) -> Iterator[None]:
        """Wait at most ``timeout`` for each node inside the block (None: the usual timeout)."""
        saved = self.fixed_timeout
        if timeout is not None:
            self.fixed_timeout = timeout
        try:
            yield
        finally:
            self.fixed_timeout = saved

    def ring(self, refresh: bool = False) -> RingInfo:
        """The ring as a node told it (asked again with ``refresh``), and the cluster's limits with it."""
        if self.ring_info is None or refresh:
            reply = self.call({"op": "ring"}, None)
            self._ring_at = time.monotonic()
            self.ring_info = ring_from_reply(reply)
            limits = reply.get("limits")
            if isinstance(limits, dict):
                self.max_message_bytes = int(limits.get("max_message_bytes", self.max_message_bytes))
                self.max_in_flight = max(1, int(limits.get("max_in_flight_per_client", self.max_in_flight)))
        return self.ring_info

    def candidates(self, key: bytes | None) -> list[str]:
        """Where to send: the key's preference list first, then every other known node."""
        return self.routed(key)[0]

    def routed(self, key: bytes | None) -> tuple[list[str], tuple[str, ...]]:
        """:meth:`candidates`, and the key's preference list (empty for a pinned client or no key)."""
        if self.pinned:
            return list(dict.fromkeys(self.seeds)), ()
        if key is not None and (self.ring_info is None or time.monotonic() - self._ring_at > RING_TTL_S):
            with contextlib.suppress(ZkvError):
                self.ring(refresh=True)
        return routes(self.ring_info, key, self.seeds)

    def keyed_job(self, msg: dict) -> Job:
        """A job for ``msg`` routed by its key (None or no key: any node)."""
        candidates, preferred = self.routed(msg.get("key"))
        job = self.job(msg, candidates)
        job.preferred = preferred
        return job

    def call_keyed(self, msg: dict) -> dict:
        """Send ``msg`` to its key's coordinator (or the next that answers); its reply, or raise."""
        result = self.run_jobs([self.keyed_job(msg)])[0]
        if isinstance(result, ZkvError):
            raise result
        return result

    def call(self, msg: dict, candidates: list[str] | None) -> dict:
        """Send ``msg`` to the first of ``candidates`` that answers (None: any node); its reply, or raise."""
        result = self.run_jobs([self.job(msg, candidates or self.candidates(None))])[0]
        if isinstance(result, ZkvError):
            raise result
        return result

    def run(self, msgs: list[dict]) -> list[Any]:
        """Send ``msgs`` pipelined, each routed by its key; one reply or :class:`ZkvError` per message."""
        return self.run_jobs([self.keyed_job(m) for m in msgs])

    def job(self, msg: dict, candidates: list[str]) -> Job:
        write = msg.get("op") in WRITE_OPS
        return Job(msg, candidates, resend_on_timeout=self.retry_writes or not write, write=write)

    def run_jobs(self, jobs: list[Job]) -> list[Any]:
        """Run ``jobs`` pipelined, at most ``max_in_flight`` unanswered at a time (the node's limit)."""
        if self.closed:
            raise ClientClosed("this client was closed; open a new one")
        by_id: dict[int, Job] = {}
        deadlines: list[tuple[float, int]] = []
        waiting = iter(range(len(jobs)))
        active = 0
        while True:
            while active < self.max_in_flight:
                i = next(waiting, None)
                if i is None:
                    break
                jobs[i].slot = i
                self._dispatch(jobs[i], by_id)
                if not jobs[i].done:
                    active += 1
                    heapq.heappush(deadlines, (jobs[i].deadline, i))
            if not deadlines:
                break
            deadline, i = deadlines[0]
            job = jobs[i]
            if job.done or job.deadline != deadline:
                heapq.heappop(deadlines)  # answered, or re-sent with a later deadline
                continue
            ready = self._poller.poll(int(max(0.0, (deadline - time.monotonic()) * 1000)))  # as pyzmq would
            for sock, _ in ready:
                active -= self._drain(sock, by_id, deadlines)
            now = time.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, i = heapq.heappop(deadlines)
                job = jobs[i]
                if job.done or job.deadline > now:
                    continue
                job.last_error = Timeout(f"no answer from a node within {self.timeout:.1f}s")
                if job.resend_on_timeout and now < job.final:
                    self._dispatch(job, by_id)
                elif not job.write:
                    job.done, job.result = True, job.last_error  # its one deadline has passed
                else:
                    job.done, job.result = (
                        True,
                        Timeout(
                            f"no answer from a node within {self.timeout:.1f}s; the write may or may not "
                            "have been applied (read before writing again)"
                        ),
                    )
                if job.done:
                    active -= 1
                else:
                    heapq.heappush(deadlines, (job.deadline, i))
        return [j.result for j in jobs]

    def _socket(self, address: str) -> zmq.Socket | None:
        """The connection to ``address``; None under CURVE when the node's public key is unknown."""
        sock = self._sockets.get(address)
        if sock is None:
            sock = dealer(self._ctx, address, self.curve_key, self.server_keys)
            if sock is None:
                return None
            self._sockets[address] = sock
            self._address_of[sock] = address
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def _dispatch(self, job: Job, by_id: dict[int, Job]) -> None:
        """Send ``job`` to its next candidate; mark it failed when none is left."""
        if self._unreachable_until:
            # nodes that recently refused a connection go last, so a dead node costs nothing per request
            now = time.monotonic()
            job.candidates.sort(key=lambda a: self._unreachable_until.get(a, 0.0) > now)
        while job.candidates:
            address = job.candidates.pop(0)
            sock = self._socket(address)
            if sock is None:
                continue  # a node this client has no CURVE key for (joined after the file was written)
            rid = next(self._ids)
            payload = pack({**job.msg, "id": rid})
            if len(payload) > self.max_message_bytes:
                # the node would drop the connection without a word (ZMQ_MAXMSGSIZE): refuse here
                job.done = True
                job.result = MessageTooLarge(
                    f"request is {len(payload)} bytes, the cluster's limit is {self.max_message_bytes}",
                    limit=self.max_message_bytes,
                )
                return
            try:
                sock.send(payload, zmq.NOBLOCK)
            except zmq.Again:
                # not connected: a fresh socket may just need a moment, a node that is down never accepts
                if not self._wait_connected(address, sock):
                    self._unreachable_until[address] = time.monotonic() + UNREACHABLE_BACKOFF_S
                    continue
                sock.send(payload, zmq.NOBLOCK)
            self._unreachable_until.pop(address, None)
            by_id[rid] = job
            now = time.monotonic()
            if not job.final:
                job.final = now + BUDGET_WAITS * self.timeout
            job.deadline = min(job.final, now + self.timeout)
            return
        job.done = True
        job.result = job.last_error or NoNodeAvailable("no zkv node answered; is the cluster running?")

    def _wait_connected(self, address: str, sock: zmq.Socket) -> bool:
        """Give a connection that is not up yet a short while (less for a node that just failed us)."""
        patience = CONNECT_PATIENCE_S if address not in self._unreachable_until else 0.05
        deadline = time.monotonic() + min(patience, self.timeout)
        while True:
            if sock.poll(10, zmq.POLLOUT):
                return True
            if time.monotonic() >= deadline:
                return False

    def _drain(self, sock: zmq.Socket, by_id: dict[int, Job], deadlines: list[tuple[float, int]]) -> int:
        """Take every reply waiting on ``sock``; how many jobs that finished.

        A node that is stopping answers ``stopping`` without doing anything: the request, a write too,
        goes to the next candidate at once (its new deadline joins ``deadlines``), and that node goes
        to the back of the line for a while. An ``unavailable`` that attempted nothing goes to the next
        node of the key's preference list (:func:`zkv.client.retry.next_candidates`).
        """
        finished = 0
        while True:
            try:
                payload = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return finished
            try:
                replies = unpack_frame(payload)
            except ZkvError:
                continue
            for reply in replies:
                job = by_id.pop(reply.get("id"), None)  # type: ignore[arg-type]
                if job is None or job.done:
                    continue
                rest = (
                    None
                    if reply.get("ok")
                    else next_candidates(reply, job.write, job.candidates, job.preferred)
                )
                if rest is not None and time.monotonic() < job.final:
                    if reply.get("error") == NodeStopping.code:
                        self._unreachable_until[self._address_of[sock]] = (
                            time.monotonic() + STOPPING_BACKOFF_S
                        )
                    job.candidates = rest
                    job.last_error = from_reply(reply)
                    self._dispatch(job, by_id)
                    if not job.done:
                        heapq.heappush(deadlines, (job.deadline, job.slot))
                        continue
                    finished += 1
                    continue
                job.done = True
                job.result = reply if reply.get("ok") else from_reply(reply)
                finished += 1
