"""Order relations on clocks and states, used by the property tests as oracles for ``merge`` and ``join``.

The core never needs them: it only asks whether a context covers a dot (``covers``) and merges states.
They live here so the lattice laws of the real functions can be stated: dominance is a partial order,
a join descends both inputs, a merged state supersedes both.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from zkv.core.versions import KeyState, merge


class Order(Enum):
    """How two clocks relate."""

    EQUAL = "equal"
    BEFORE = "before"
    AFTER = "after"
    CONCURRENT = "concurrent"


def compare(a: Mapping[str, int], b: Mapping[str, int]) -> Order:
    """The causal order of two clocks: a partial order, so two clocks may be concurrent."""
    a_bigger = b_bigger = False
    for actor in a.keys() | b.keys():
        x, y = a.get(actor, 0), b.get(actor, 0)
        if x > y:
            a_bigger = True
        elif y > x:
            b_bigger = True
    if a_bigger and b_bigger:
        return Order.CONCURRENT
    if a_bigger:
        return Order.AFTER
    if b_bigger:
        return Order.BEFORE
    return Order.EQUAL


def descends(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """Has ``a`` seen everything ``b`` has?"""
    return all(a.get(actor, 0) >= counter for actor, counter in b.items())


def supersedes(a: KeyState, b: KeyState) -> bool:
    """Would merging ``b`` into ``a`` change nothing? (``a`` already holds or replaced all of ``b``)."""
    return merge(a, b) == a
