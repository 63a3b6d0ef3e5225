"""The token ring: where a key lives.

Every node owns ``vnodes`` tokens on a 64-bit ring. A key hashes to a point on the ring; its **preference
list** is the first N *distinct* nodes met walking clockwise from that point (skipping further tokens of a
node already chosen). The nodes after them on the same walk are the key's **fallbacks**, where writes go
while a primary is down (sloppy quorum).

Tokens come from hashing ``"<node>#<i>"``, so every process computes the same ring from the same member
list with no coordination; a node's tokens never change while its name does not, which keeps the ranges
that move on a join or leave to the ones the new node takes over.

Pure: no sockets, clocks or disk; the set of up nodes is an argument wherever it matters.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

RING_SIZE = 2**64


@functools.lru_cache(maxsize=1 << 16)
def hash64(data: bytes) -> int:
    """A stable 64-bit position on the ring (blake2b: well mixed, the same on every platform).

    Memoized: one request asks for its key's position several times (preference list, future ring,
    Merkle leaf), and a cache hit costs a fifth of a blake2b.
    """
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def node_tokens(name: str, vnodes: int) -> list[int]:
    """The tokens a node claims: a pure function of its name, so every member agrees on them."""
    return sorted(hash64(f"{name}#{i}".encode()) for i in range(vnodes))


@functools.lru_cache(maxsize=32)
def ring_of(members: tuple[tuple[str, int], ...], replication_factor: int) -> Ring:
    """The ring of these ``(name, vnodes)`` members, memoized.

    Rings are immutable and a pure function of their members, and a node asks for the same few again and
    again (its current and future rings are equal outside joins and leaves; gossip repeats news). Building
    one costs a hash per token and a walk per range, which at a hundred members is milliseconds.
    """
    return Ring({name: node_tokens(name, vnodes) for name, vnodes in members}, replication_factor)


@dataclass(frozen=True, slots=True)
class Placement:
    """One node of a key's walk: ``primary`` for the first N distinct nodes, else ``fallback``."""

    node: str
    role: str


class Ring:
    """Immutable token ring; build a new one when membership changes."""

    __slots__ = ("replication_factor", "_tokens", "_owners", "_members", "_by_token")

    def __init__(self, tokens: Mapping[str, Iterable[int]], replication_factor: int) -> None:
        if replication_factor < 1:
            raise ValueError("replication_factor must be at least 1")
        points = sorted((token, node) for node, toks in tokens.items() for token in toks)
        self._tokens = [t for t, _ in points]
        self._owners = [n for _, n in points]
        self._members = tuple(sorted({n for _, n in points}))  # a node with no tokens owns nothing
        self.replication_factor = min(replication_factor, len(self._members))
        # the preference list of every range, computed once: a lookup is a hash, a bisect and an index
        self._by_token = [self._walk_from(i) for i in range(len(self._tokens))]

    @classmethod
    def from_nodes(cls, names: Iterable[str], vnodes: int, replication_factor: int) -> Ring:
        return cls({name: node_tokens(name, vnodes) for name in names}, replication_factor)

    @property
    def members(self) -> tuple[str, ...]:
        return self._members

    def tokens(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {name: [] for name in self._members}
        for token, node in zip(self._tokens, self._owners, strict=True):
            out[node].append(token)
        return out

    def walk(self, key: bytes) -> Iterator[str]:
        """Every member once, in ring order from the key's position."""
        if not self._tokens:
            return
        start = bisect.bisect_left(self._tokens, hash64(key))
        seen: set[str] = set()
        count = len(self._tokens)
        for i in range(count):
            node = self._owners[(start + i) % count]
            if node not in seen:
                seen.add(node)
                yield node
                if len(seen) == len(self._members):
                    return

    def _walk_from(self, start: int) -> tuple[str, ...]:
        out: list[str] = []
        count = len(self._tokens)
        for i in range(count):
            node = self._owners[(start + i) % count]
            if node not in out:
                out.append(node)
                if len(out) == self.replication_factor:
                    break
        return tuple(out)

    def preference_list(self, key: bytes) -> tuple[str, ...]:
        """The N distinct nodes that hold ``key``, the first one the key's natural coordinator."""
        if not self._tokens:
            return ()
        index = bisect.bisect_left(self._tokens, hash64(key))
        return self._by_token[index % len(self._tokens)]

    def preference_lists(self) -> set[tuple[str, ...]]:
        """Every distinct preference list of the ring (one per token range, duplicates merged)."""
        return set(self._by_token)

    def placements(self, key: bytes, is_up: Callable[[str], bool]) -> list[Placement]:
        """Sloppy-quorum targets: the up primaries, plus one up fallback for every down primary."""
        primaries = self.preference_list(key)
        down = sum(1 for node in primaries if not is_up(node))
        out = [Placement(node, "primary") for node in primaries if is_up(node)]
        if down:
            for node in self.walk(key):
                if node in primaries or not is_up(node):
                    continue
                out.append(Placement(node, "fallback"))
                down -= 1
                if not down:
                    break
        return out

    def ownership(self) -> dict[str, float]:
        """Share of the key space each node holds as a replica (sums to N over all nodes)."""
        share = dict.fromkeys(self._members, 0.0)
        count = len(self._tokens)
        if not count:
            return share
        for i in range(count):
            # keys in (token[i-1], token[i]] start their walk at token i
            width = _width(self._tokens, i)
            replicas: list[str] = []
            j = i
            while len(replicas) < self.replication_factor:
                node = self._owners[j % count]
                if node not in replicas:
                    replicas.append(node)
                j += 1
            for node in replicas:
                share[node] += width / RING_SIZE
        return share

    def primary_ownership(self) -> dict[str, float]:
        """Share of the key space each node is the first replica of."""
        share = dict.fromkeys(self._members, 0.0)
        count = len(self._tokens)
        for i in range(count):
            width = _width(self._tokens, i)
            share[self._owners[i]] += width / RING_SIZE
        return share


def _width(tokens: list[int], i: int) -> int:
    """Size of the range ending at token ``i``; the whole ring when there is a single token."""
    if len(tokens) == 1:
        return RING_SIZE
    return (tokens[i] - tokens[i - 1]) % RING_SIZE


def moved_keys(before: Ring, after: Ring, keys: Sequence[bytes]) -> list[bytes]:
    """The keys whose preference list differs between two rings (what a join or leave must stream)."""
    return [k for k in keys if before.preference_list(k) != after.preference_list(k)]
