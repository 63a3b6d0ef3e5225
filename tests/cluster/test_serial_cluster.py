"""Serial requests on real node processes: compare-and-set counters while nodes are killed (-9) and
restarted, conditional writes through the Python client, acceptor state that survives a kill."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zkv.errors import ConditionFailed, ZkvError
from zkv.testing.localcluster import LocalCluster, wait_until

WORKER = Path(__file__).with_name("cas_worker.py")
CLIENTS = 3
SECONDS = 8.0
CHAOS_SECONDS = 12.0


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


def test_cas_counter_loses_and_doubles_nothing_under_partitions_and_kills(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    """Random partitions (a node isolated both ways, one way, a link cut) through the nodes' fault
    filters, as tools/partition.py installs them, and kill -9 with restart, while the clients CAS."""
    cluster = make_cluster(3, engine="log")
    names = cluster.names
    with cluster.client() as db:
        db.put("counter", b"0", consistency="serial", if_absent=True)
    addresses = ",".join(cluster.addresses[n] for n in names)
    rng = random.Random(22)
    shapes: list[str] = []

    def set_cuts(cuts: dict[str, set[str]]) -> None:
        """``cuts``: receiver -> the senders it drops everything from (the others: none)."""
        with cluster.client() as admin:
            for name in names:
                with contextlib.suppress(ZkvError):  # a killed node has no filter to set
                    drop = {sender: 1.0 for sender in cuts.get(name, set())}
                    admin.faults(cluster.addresses[name], drop_in=drop, drop_out={}, delay_in={})

    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), addresses, str(CHAOS_SECONDS)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(CLIENTS)
    ]
    try:
        started = time.monotonic()
        step = 0
        while time.monotonic() - started < CHAOS_SECONDS - 2.0:
            step += 1
            wait_until(lambda s=step: time.monotonic() - started >= 0.8 * s, 30, "the next fault")
            kind = rng.choice(["isolate", "one_way", "link", "kill", "heal"])
            victim, other = rng.sample(names, 2)
            shapes.append(f"{kind} {victim}")
            if kind == "isolate":
                set_cuts({victim: set(names) - {victim}, **{n: {victim} for n in names if n != victim}})
            elif kind == "one_way":
                set_cuts({n: {victim} for n in names if n != victim})  # the victim's sends are lost
            elif kind == "link":
                set_cuts({victim: {other}, other: {victim}})
            elif kind == "kill":
                set_cuts({})
                cluster.kill(victim)
                cluster.start(victim)
            else:
                set_cuts({})
        set_cuts({})
        results = [json.loads(w.communicate(timeout=CHAOS_SECONDS + 60)[0]) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    applied = sum(r["applied"] for r in results)
    unknown = sum(r["unknown"] for r in results)
    with cluster.client() as db:
        final = int(
            wait_until(lambda: db.get("counter", consistency="serial"), 30, "a serial read").values[0]
        )
    print(f"\nfaults={shapes}\napplied={applied} unknown={unknown} final={final} results={results}")
    assert applied > 20, results  # progress through the faults
    assert sum(r["refused"] for r in results) > 0  # contended: the back-off made progress, not a livelock
    # every applied increment is there (none lost) and none applied twice: the unknown ones at most once
    assert applied <= final <= applied + unknown, (applied, unknown, final)


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
