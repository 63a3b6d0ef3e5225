"""Quorum bookkeeping for one client request: who answered, when the request is decided, what to repair.

Theory of operation
-------------------
The coordinator opens a :class:`WriteQuorum` or :class:`ReadQuorum` per client request with the replicas it
sent to, the number it needs (W or R) and a deadline. Each replica answer or failure goes in; the object
says when the request is *decided* (enough answers: success; too many failures: unavailable; the deadline:
timeout). A decided request may stay open until every replica answered (or the deadline) so that a read
can repair the replicas that were behind.

Pure: it counts; the coordinator in :mod:`zkv.core.nodecore` sends and replies.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum

from zkv.core.versions import EMPTY, KeyState, merge_all


def required(consistency: str, n: int) -> int:
    """Replicas that must answer at a consistency level for a key held by ``n`` replicas."""
    if consistency == "one":
        return 1
    if consistency == "quorum" or consistency == "serial":  # serial: a majority of the primaries
        return n // 2 + 1
    if consistency == "all":
        return n
    raise ValueError(f"unknown consistency level {consistency!r}")


class Outcome(Enum):
    PENDING = "pending"
    OK = "ok"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"


@dataclass(slots=True)
class _Quorum:
    """What writes and reads count alike: answers, failures, the deadline."""

    targets: tuple[str, ...]
    required: int
    deadline: float
    failed: dict[str, str] = field(default_factory=dict)

    def _answers(self) -> Collection[str]:
        raise NotImplementedError

    @property
    def outstanding(self) -> int:
        return len(self.targets) - len(self._answers()) - len(self.failed)

    def on_failure(self, node: str, code: str) -> Outcome:
        if node in self.targets and node not in self._answers():
            self.failed[node] = code
        return self.outcome()

    def outcome(self) -> Outcome:
        answered = len(self._answers())
        if answered >= self.required:
            return Outcome.OK
        if answered + self.outstanding < self.required:
            return Outcome.UNAVAILABLE
        return Outcome.PENDING

    def on_deadline(self) -> Outcome:
        outcome = self.outcome()
        return Outcome.TIMEOUT if outcome is Outcome.PENDING else outcome

    @property
    def complete(self) -> bool:
        return self.outstanding == 0


@dataclass(slots=True)
class WriteQuorum(_Quorum):
    """Acknowledgements of one write."""

    acked: set[str] = field(default_factory=set)

    def _answers(self) -> Collection[str]:
        return self.acked

    def on_ack(self, node: str) -> Outcome:
        if node in self.targets and node not in self.failed:
            self.acked.add(node)
        return self.outcome()


@dataclass(slots=True)
class ReadQuorum(_Quorum):
    """Replica states gathered for one read; the merge is the answer and the yardstick for repair."""

    states: dict[str, KeyState] = field(default_factory=dict)
    _merged: KeyState = EMPTY  # merge of the first ``_merged_of`` states: the reply's, reused for repair
    _merged_of: int = 0

    def _answers(self) -> Collection[str]:
        return self.states

    def on_state(self, node: str, state: KeyState) -> Outcome:
        if node in self.targets and node not in self.failed and node not in self.states:
            self.states[node] = state  # a replica's first answer counts; a repeat is ignored
        return self.outcome()

    def merged(self) -> KeyState:
        if self._merged_of != len(self.states):  # states only ever arrive: the count names the merge
            self._merged = merge_all(self.states.values())
            self._merged_of = len(self.states)
        return self._merged

    def stale_replicas(self) -> tuple[KeyState, list[str]]:
        """The merged state and the replicas that answered with less than it (read repair targets)."""
        merged = self.merged()
        stale = [node for node, state in self.states.items() if state != merged]
        return merged, stale
