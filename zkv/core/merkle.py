"""Merkle trees over key digests: find the keys two replicas disagree on by exchanging a few hashes.

Every key hashes to one of ``2**LEAF_BITS`` leaves (the top bits of its ring position, so a leaf is a slice
of the ring). A leaf's hash is the XOR of the digests of the keys in it, a digest being a 64-bit hash of
the key and its canonical state. XOR makes a leaf updatable in O(1) when one key changes (XOR the old
digest out and the new one in), so a node keeps its trees current on every write instead of rebuilding
them. Inner nodes hash their children; two trees are compared top-down and only differing subtrees are
descended, down to the leaves whose keys must be exchanged.

Pure: hashing only.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from hashlib import blake2b

import msgpack

from zkv.core.ring import hash64
from zkv.core.versions import KeyState, pack_state

LEAF_BITS = 10
LEAVES = 1 << LEAF_BITS
FANOUT = 32


def leaf_of(key: bytes) -> int:
    """The leaf a key belongs to: the top bits of its position on the ring."""
    return hash64(key) >> (64 - LEAF_BITS)


def state_digest(key: bytes, state: KeyState) -> int:
    """A 64-bit digest of a key's state that is equal on two replicas exactly when their states are."""
    return packed_digest(key, pack_state(state))


def packed_digest(key: bytes, packed: bytes) -> int:
    """:func:`state_digest` from the state's ``versions.pack_state`` bytes (what an engine stores).

    The digest hashes the msgpack of ``[key, siblings, sorted clock]``; ``pack_state`` is the msgpack of
    ``[siblings, sorted clock]`` (canonical), so the same bytes are a 3-array header, the key and the
    packed state after its 2-array header: no second encoding of the state.
    """
    if packed[0] != _PAIR:
        raise ValueError("not a packed key state")
    canonical = b"\x93" + msgpack.packb(key, use_bin_type=True) + packed[1:]
    digest = int.from_bytes(blake2b(canonical, digest_size=8).digest(), "big")
    return digest or 1  # 0 means "no key" in a leaf


_PAIR = 0x92  # msgpack fixarray of two: how every packed state starts


def _combine(children: Sequence[int]) -> int:
    data = struct.pack(f">{len(children)}Q", *children)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class MerkleTree:
    """A tree over fixed leaves; level 0 is the leaves, the last level the root."""

    __slots__ = ("levels",)

    def __init__(self, leaves: Sequence[int]) -> None:
        if len(leaves) != LEAVES:
            raise ValueError(f"a tree has {LEAVES} leaves, not {len(leaves)}")
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([_combine(below[i : i + FANOUT]) for i in range(0, len(below), FANOUT)])
        self.levels = levels

    @property
    def root(self) -> int:
        return self.levels[-1][0]

    def diff(self, other: MerkleTree) -> list[int]:
        """Indices of the leaves where the two trees differ, found by descending differing subtrees only."""
        suspects = [0] if self.root != other.root else []
        for depth in range(len(self.levels) - 1, 0, -1):
            below_mine, below_theirs = self.levels[depth - 1], other.levels[depth - 1]
            children = []
            for index in suspects:
                for child in range(index * FANOUT, min((index + 1) * FANOUT, len(below_mine))):
                    if below_mine[child] != below_theirs[child]:
                        children.append(child)
            suspects = children
        return suspects


def pack_leaves(leaves: Sequence[int]) -> bytes:
    # struct, not a to_bytes per leaf: an exchange packs and unpacks 1024 of them on both sides
    return struct.pack(f">{len(leaves)}Q", *leaves)


def unpack_leaves(data: bytes) -> list[int]:
    """Leaves from the wire; raises ValueError when the size is wrong."""
    if not isinstance(data, bytes) or len(data) != 8 * LEAVES:
        raise ValueError("a Merkle tree is 1024 leaves of 8 bytes")
    return list(struct.unpack(f">{LEAVES}Q", data))
