"""What a bench run asks the cluster besides the load: how many versions written keys hold afterwards
(blind puts to one key become siblings, which a reader of the table must be told)."""

from __future__ import annotations

import random
from typing import Any

from zkv.client import Client
from zkv.errors import ZkvError

SIBLING_SAMPLE = 200


def sample_siblings(client: Client | None, namespace: bytes, index: int, keys: int) -> dict[str, Any]:
    """How many versions the written keys now hold, over a sample of them."""
    assert client is not None
    rng = random.Random(index)
    sample = [namespace + b"%08d" % rng.randrange(keys) for _ in range(SIBLING_SAMPLE)]
    counts = []
    for result in client.get_many(sample, consistency="quorum"):
        if not isinstance(result, ZkvError) and result.values:
            counts.append(len(result.values))
    if not counts:
        return {"sampled": 0}
    return {"sampled": len(counts), "mean": round(sum(counts) / len(counts), 2), "max": max(counts)}
