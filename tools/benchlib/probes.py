"""What a bench run asks the cluster besides the load: the actor id each node writes under (chained puts
need it to build their contexts), and how many versions written keys hold afterwards (blind puts to one
key become siblings, which a reader of the table must be told)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from benchlib.pool import BenchFailed
from zkv.client import Client
from zkv.errors import ZkvError

SIBLING_SAMPLE = 200


def learn_actors(client: Client | None, names: Iterable[str], ring: Any, prefix: bytes) -> dict[str, str]:
    """The actor id each node mints versions under: put a probe key coordinated by each node."""
    assert client is not None
    actors: dict[str, str] = {}
    wanted = set(names)
    for i in range(100000):
        key = prefix + b"%d" % i
        coordinator = ring.preference_list(key)[0]
        if coordinator in actors:
            continue
        client.put(key, b"probe", consistency="all")
        state = client.replicas(key)[coordinator]
        if isinstance(state, ZkvError) or not state.versions:
            raise BenchFailed(f"cannot read back the probe key from {coordinator}: {state}")
        actors[coordinator] = state.versions[0].actor
        if set(actors) == wanted:
            return actors
    raise BenchFailed("no probe key found for every node")


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
