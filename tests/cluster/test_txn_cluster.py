"""Multi-key transactions on real node processes: bank transfers by several client processes while
nodes are killed (-9) and restarted and a node is cut off from the others: the total never changes, and
every transfer is applied at most once (its log key and the balances agree)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from zkv.client import Client
from zkv.testing.localcluster import LocalCluster, wait_until

WORKER = Path(__file__).with_name("bank_worker.py")
ACCOUNTS = [f"acct{i}" for i in range(5)]
CLIENTS = 3
SECONDS = 10.0
START = 100


def _isolate(db: Client, cluster: LocalCluster, victim: str) -> None:
    """Cut ``victim`` off both ways through the nodes' fault filters (tools/partition.py's way)."""
    others = [n for n in cluster.names if n != victim]
    db.faults(cluster.addresses[victim], drop_in={n: 1.0 for n in others}, drop_out={}, delay_in={})
    for n in others:
        db.faults(cluster.addresses[n], drop_in={victim: 1.0}, drop_out={}, delay_in={})


def _heal(db: Client, cluster: LocalCluster) -> None:
    for n in cluster.names:
        db.faults(cluster.addresses[n], drop_in={}, drop_out={}, delay_in={})


def test_bank_transfers_keep_the_total_across_kills_and_a_partition(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(3, engine="log")
    with cluster.client() as db:
        for account in ACCOUNTS:
            db.put(account, str(START), consistency="serial", if_absent=True)
    addresses = ",".join(cluster.addresses[n] for n in cluster.names)
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), addresses, str(SECONDS), f"w{i}"], stdout=subprocess.PIPE, text=True
        )
        for i in range(CLIENTS)
    ]
    try:
        started = time.monotonic()
        with cluster.client() as admin:
            for victim, at in (("n2", 1.5), ("n3", 4.0)):
                wait_until(lambda at=at: time.monotonic() - started >= at, 30, f"{at}s into the run")
                cluster.kill(victim)
                time.sleep(0.8)  # down for a moment while the clients keep going (not a synchronisation)
                cluster.start(victim)
            wait_until(lambda: time.monotonic() - started >= 6.5, 30, "6.5s into the run")
            _isolate(admin, cluster, "n1")
            time.sleep(1.5)  # cut off for a while (not a synchronisation)
            _heal(admin, cluster)
        results = [json.loads(w.communicate(timeout=SECONDS + 120)[0]) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    applied = [t for r in results for t in r["applied"]]
    unknown = [t for r in results for t in r["unknown"]]
    print(
        f"\napplied={len(applied)} refused={sum(len(r['refused']) for r in results)} unknown={len(unknown)}"
    )
    assert len(applied) > 10, results  # progress through the kills and the partition
    with cluster.client() as db:
        balances = {a: int(db.get(a, consistency="serial").values[0]) for a in ACCOUNTS}
        assert sum(balances.values()) == START * len(ACCOUNTS), balances  # the total never changes
        # every transfer whose log key is there was applied exactly once: replaying the logs on the
        # starting balances gives the final ones; every acknowledged transfer's log key is there
        replay = dict.fromkeys(ACCOUNTS, START)
        tokens = [f"w{i}-{n}" for i, r in enumerate(results) for n in range(1, r["issued"] + 1)]
        logged = set()
        for token, got in zip(
            tokens, db.get_many([f"xfer:{t}" for t in tokens], consistency="serial"), strict=True
        ):
            assert not isinstance(got, Exception), got
            if got.values:
                (entry,) = got.values
                src, rest = entry.decode().split(">")
                dst, amount = rest.split(":")
                replay[src] -= int(amount)
                replay[dst] += int(amount)
                logged.add(token)
        assert set(applied) <= logged, set(applied) - logged  # none lost
        assert replay == balances, (replay, balances)  # none doubled, none half-applied
        # plain reads agree once everything is resolved (read-atomic: never half a transfer)
        assert {a: int(db.get(a, consistency="quorum").values[0]) for a in ACCOUNTS} == balances
