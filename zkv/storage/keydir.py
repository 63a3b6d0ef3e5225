"""The in-memory key directory that the disk-backed engines (log, redis) keep.

Each keeps one packed int per stored key, with the state's digest inside, so counting keys, listing them,
testing membership and answering anti-entropy's digests never touch the disk (or Redis). Only where the
digest sits in the int differs between the engines.
"""

from __future__ import annotations

from collections.abc import Iterator

from zkv.core.scan import first_keys


class KeyDirectory:
    """``keys``, ``scan``, ``len``, ``in`` and ``digest`` of an engine, answered from its ``keydir`` alone."""

    keydir: dict[bytes, int]  # key -> the engine's packed entry for it (digest included)

    @staticmethod
    def entry_digest(e: int) -> int:
        """The ``zkv.core.merkle.state_digest`` packed into the entry ``e``."""
        raise NotImplementedError

    keeps_digests = True  # put() hashes every state: digest() is a lookup, not a hash

    def digest(self, key: bytes) -> int | None:
        """``zkv.core.merkle.state_digest`` of ``key``'s stored state, from memory; None if absent.

        Anti-entropy can build its Merkle leaves from this without reading a single value.
        """
        e = self.keydir.get(key)
        return None if e is None else self.entry_digest(e)

    def keys(self) -> Iterator[bytes]:
        return iter(list(self.keydir))

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[bytes]:
        """The first ``limit`` keys after ``after`` starting with ``prefix``, in order (a key scan's page),
        from memory and holding ``limit`` keys at a time (no copy of the directory)."""
        return first_keys(self.keydir, prefix, after, limit)

    def __len__(self) -> int:
        return len(self.keydir)

    def __contains__(self, key: object) -> bool:
        return key in self.keydir
