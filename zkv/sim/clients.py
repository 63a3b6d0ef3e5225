"""Simulated clients: the shared workloads (:mod:`zkv.testing.workload`) speaking the wire protocol to sim
nodes.

A :class:`SimClient` drives one workload generator. It behaves like :class:`zkv.client.Client` where that
matters to what a history records: it sends a request to the first node of the key's preference list
that accepts a connection (sometimes, for variety, to a random node, which then forwards), waits up to
its timeout, re-sends a read to the next node after a timeout but never a write (a write that timed out
has an unknown outcome), and turns error replies into the :mod:`zkv.errors` exception they name.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from zkv.core.ring import Ring
from zkv.errors import NoNodeAvailable, Timeout, ZkvError, from_reply
from zkv.protocol import pack, unpack_frame
from zkv.sim.cluster import SimCluster
from zkv.sim.network import Scheduler
from zkv.testing.workload import Call

THINK_S = (0.0, 0.01)  # between one operation's end and the next call


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a get returned (the workload reads ``.values``; ``.context`` goes back with the write)."""

    values: list[bytes]
    context: bytes | None


class SimClient:
    """One client endpoint running ``steps`` against the cluster."""

    def __init__(
        self,
        name: str,
        steps: Generator[Call, Any, None],
        scheduler: Scheduler,
        cluster: SimCluster,
        ring: Ring,
        rng: random.Random,
        timeout: float,
        random_coordinator: float = 0.25,
    ) -> None:
        self.name = name
        self.steps = steps
        self.scheduler = scheduler
        self.cluster = cluster
        self.ring = ring
        self.rng = rng
        self.timeout = timeout
        self.random_coordinator = random_coordinator
        self.done = False
        self.requests = 0
        self._ids = itertools.count(1)
        self._started = False
        self._call: Call | None = None
        self._msg: dict[str, Any] = {}
        self._candidates: list[str] = []
        self._rid = 0  # the request id awaited; 0 when none
        self._last_error: ZkvError | None = None

    def start(self, delay: float = 0.0) -> None:
        self.scheduler.after(delay, self._advance, None)

    # ------------------------------------------------------------------------------------------ calls

    def _advance(self, result: Any) -> None:
        try:
            if self._started:
                call = self.steps.send(result)
            else:
                self._started = True
                call = next(self.steps)
        except StopIteration:
            self.done = True
            return
        self._issue(call)

    def _issue(self, call: Call) -> None:
        self._call = call
        msg: dict[str, Any] = {"op": call.op, "key": call.key.encode(), "cl": call.consistency}
        if call.value is not None:
            msg["value"] = call.value.encode()
        if call.op != "get" and call.context is not None and call.context.context is not None:
            msg["ctx"] = call.context.context
        if call.trace:
            msg["trace"] = True
        if call.if_absent:
            msg["if_absent"] = True
        if call.if_value is not None:
            msg["if_value"] = call.if_value.encode()
        if call.ttl is not None:
            msg["ttl"] = call.ttl
        if call.op == "txn":
            msg = {"op": "txn", "token": call.token, "ops": [_encoded(op) for op in call.ops]}
        self._msg = msg
        self._last_error = None
        self._candidates = self._route(call.key.encode())
        self._dispatch()

    def _route(self, key: bytes) -> list[str]:
        names = list(self.cluster.nodes)
        if self.rng.random() < self.random_coordinator:
            return self.rng.sample(names, len(names))
        preferred = [n for n in self.ring.preference_list(key) if n in self.cluster.nodes]
        return preferred + [n for n in names if n not in preferred]

    def _dispatch(self) -> None:
        while self._candidates:
            node = self._candidates.pop(0)
            rid = next(self._ids)
            if self.cluster.deliver_client(self.name, node, pack({**self._msg, "id": rid})):
                self.requests += 1
                self._rid = rid
                self.scheduler.after(self.timeout, self._expire, rid)
                return
        self._rid = 0
        self._finish(self._last_error or NoNodeAvailable("no zkv node answered"))

    def _expire(self, rid: int) -> None:
        if rid != self._rid:
            return
        assert self._call is not None
        self._last_error = Timeout(f"no answer from a node within {self.timeout:.1f}s")
        if self._call.op == "get":
            self._dispatch()  # reads are re-sent to the next node; writes are not (unknown outcome)
        else:
            self._rid = 0
            self._finish(self._last_error)

    def on_reply(self, payload: bytes) -> None:
        for reply in unpack_frame(payload):
            if reply.get("id") != self._rid or not self._rid:
                continue  # late: answered by another node, or timed out already
            self._rid = 0
            if not reply.get("ok"):
                self._finish(from_reply(reply))
            elif self._msg["op"] == "get":
                self._finish(ReadResult(list(reply.get("values", [])), reply.get("ctx")))
            elif self._msg["op"] == "txn":
                self._finish(reply)  # applied (``retry``: by an earlier request with the token)
            else:
                self._finish(reply.get("receipt"))  # None unless the call asked for a trace

    def _finish(self, result: Any) -> None:
        self.scheduler.after(self.rng.uniform(*THINK_S), self._advance, result)


def _encoded(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v.encode() if isinstance(v, str) and k != "op" else v for k, v in op.items()}


def scripted(calls: list[Call], results: list[Any]) -> Generator[Call, Any, None]:
    """A fixed list of calls; their results are appended to ``results`` (the final reads)."""
    for call in calls:
        results.append((yield call))


def client_router(clients: dict[str, SimClient]) -> Callable[[str, bytes], None]:
    """The cluster's hook for replies addressed to a client route."""

    def route(name: str, payload: bytes) -> None:
        client = clients.get(name)
        if client is not None:
            client.on_reply(payload)

    return route
