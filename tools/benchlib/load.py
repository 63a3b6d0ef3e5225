"""Loading keys into a benchmark's cluster: every item acknowledged, in batches, retrying what timed out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

BATCH = 500  # puts in flight per put_many
TRIES = 5  # a busy shared machine times some out: those are written again


def write_all(
    call: Callable[..., list[Any]],
    items: Iterable[Any],
    what: str = "load",
    consistency: str = "quorum",
    batch: int = BATCH,
) -> None:
    """Send every item through ``call`` (``client.put_many`` with ``(key, value)`` items, or
    ``client.delete_many`` with keys) at ``consistency``, ``batch`` at a time; exit with the first error
    of a batch still failing after :data:`TRIES` sends."""
    pending: list[Any] = []
    for item in items:
        pending.append(item)
        if len(pending) == batch:
            _write_batch(call, pending, what, consistency)
            pending = []
    if pending:
        _write_batch(call, pending, what, consistency)


def _write_batch(call: Callable[..., list[Any]], items: Sequence[Any], what: str, consistency: str) -> None:
    errors: list[Any] = []
    for _ in range(TRIES):
        errors = call(items, consistency)
        items = [item for item, error in zip(items, errors, strict=True) if error is not None]
        if not items:
            return
    raise SystemExit(f"{what} failed: {next(e for e in errors if e is not None)!r}")
