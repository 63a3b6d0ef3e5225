"""Serial requests on real node processes: compare-and-set counters while nodes are killed (-9) and
restarted, conditional writes through the Python client, acceptor state that survives a kill."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zkv.errors import ConditionFailed
from zkv.testing.localcluster import LocalCluster, wait_until

WORKER = Path(__file__).with_name("cas_worker.py")
CLIENTS = 3
SECONDS = 8.0


def test_cas_counter_loses_and_doubles_nothing_across_kills(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(3, engine="log")
    with cluster.client() as db:
        db.put("counter", b"0", consistency="serial", if_absent=True)
    addresses = ",".join(cluster.addresses[n] for n in cluster.names)
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), addresses, str(SECONDS)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(CLIENTS)
    ]
    try:
        started = time.monotonic()
        for victim, at in (("n2", 1.5), ("n3", 4.5)):
            wait_until(lambda at=at: time.monotonic() - started >= at, 30, f"{at}s into the run")
            cluster.kill(victim)
            time.sleep(0.8)  # down for a moment while the clients keep going (not a synchronisation)
            cluster.start(victim)
        results = [json.loads(w.communicate(timeout=SECONDS + 60)[0]) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    applied = sum(r["applied"] for r in results)
    unknown = sum(r["unknown"] for r in results)
    with cluster.client() as db:
        final = int(db.get("counter", consistency="serial").values[0])
        plain = db.get("counter", consistency="all").values
    print(f"\napplied={applied} unknown={unknown} final={final} results={results}")
    assert applied > 20, results  # the clients made progress through the kills
    assert sum(r["refused"] for r in results) > 0  # they contended
    # every applied increment is there (none lost) and none applied twice: the unknown ones at most once
    assert applied <= final <= applied + unknown, (applied, unknown, final)
    assert plain == [str(final).encode()]  # one version, committed to every replica


def test_conditional_writes_and_acceptor_state_survive_a_kill(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(3, engine="log")
    with cluster.client() as db:
        db.put("seat", "alice", consistency="serial", if_absent=True)
        with pytest.raises(ConditionFailed) as refused:
            db.put("seat", "bob", consistency="serial", if_absent=True)
        assert refused.value.values == [b"alice"] and refused.value.context
        for name in cluster.names:
            cluster.kill(name)
        cluster.start(*cluster.names)
    with cluster.client() as db:
        wait_until(
            lambda: db.get("seat", consistency="serial").values == [b"alice"], 30, "the seat after restarts"
        )
        db.put("seat", "carol", consistency="serial", if_value="alice")
        with pytest.raises(ConditionFailed):
            db.put("seat", "dave", consistency="serial", if_value="alice")
        assert db.get("seat", consistency="quorum").values == [b"carol"]
    for name in cluster.names:  # each replica's acceptor state is on its disk
        assert (cluster.workdir / "data" / name / "paxos.acceptors").stat().st_size > 0
