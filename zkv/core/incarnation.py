"""A node's incarnation at start: its generation and the actor id it mints dots under.

Decided here, not in the runtime, so that the simulator restarts nodes by the same rule
(:mod:`zkv.node.runtime` reads the metadata and the clock, then asks :func:`incarnation`).

The generation must exceed every earlier one (gossip lets the higher generation win, so a restarted node
supersedes what was said of its previous life): the wall clock in milliseconds, or the last one plus one
if the clock went back. An actor id must never mint a dot twice, so it is kept across a restart only when
the node stopped cleanly and its engine keeps what it wrote (every dot it minted is then on its disk);
after a crash, a wiped data dir or with the memory engine the node takes a fresh one. A dot that left in
a replica write just before a crash, and never reached this disk, can then not be minted again for
another write. A kept actor also keeps ``minted``, the highest counter it minted (saved at the clean
stop): new dots go above it, since a purged key's dots are no longer on the disk to count on from.
"""

from __future__ import annotations

from typing import Any


def b36(n: int) -> str:
    """``n`` in base 36 (short actor-id suffixes)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def incarnation(name: str, meta: dict[str, Any], wall_ms: int, durable: bool) -> tuple[int, str, dict]:
    """``(generation, actor, meta to save before serving)`` for node ``name`` starting with ``meta``.

    ``durable``: the engine keeps writes across a restart (the log engine; not the memory engine).
    The saved meta says ``clean_stop: False`` until the runtime stops cleanly and says otherwise.
    """
    generation = max(wall_ms, int(meta.get("generation", 0)) + 1)
    actor = meta.get("actor")
    minted = meta.get("minted", 0)
    if not isinstance(actor, str) or not durable or meta.get("clean_stop") is not True:
        actor, minted = f"{name}~{b36(generation)}", 0
    if type(minted) is not int or minted < 0:
        actor, minted = f"{name}~{b36(generation)}", 0
    saved = {"generation": generation, "actor": actor, "clean_stop": False, "minted": minted}
    return generation, actor, {**meta, **saved}
