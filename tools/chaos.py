"""Run Jepsen-style fault schedules against real 5-node clusters and check every history.

    python tools/chaos.py --schedules 50 --seconds 30          # soak
    python tools/chaos.py --seed 1234 --schedules 1            # replay one schedule
    sudo python tools/chaos.py --netns --schedules 10 --seconds 120   # real partitions (root, Linux)
    sudo python tools/chaos.py --netns --sloppy ...            # the same with sloppy quorums

Prints one summary line; a failing schedule prints its seed (replay it with --seed) and what broke.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from zkv.testing.chaos import describe_failure, run_schedule, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schedules", type=int, default=5, help="how many fault schedules (default 5)")
    parser.add_argument("--seconds", type=float, default=30.0, help="workload time per schedule (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first schedule; the next add 1")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument(
        "--netns",
        action="store_true",
        help="nodes in network namespaces, partitions with nftables (root, Linux; zkv/testing/netchaos.py)",
    )
    parser.add_argument("--sloppy", action="store_true", help="with --netns: sloppy quorums (default strict)")
    args = parser.parse_args(argv)
    if args.netns:
        return _netns(args)
    results = []
    failed = False
    for i in range(args.schedules):
        seed = args.seed + i
        with tempfile.TemporaryDirectory(prefix=f"zkv-chaos-{seed}-") as workdir:
            result = run_schedule(Path(workdir), seed, args.seconds, clients=args.clients)
        results.append(result)
        status = "ok" if result.report.ok and not result.diverged else "FAILED"
        print(
            f"seed {seed}: {status} ops={result.report.ops} faults={dict(result.faults)} "
            f"converged in {result.converge_s:.2f}s",
            file=sys.stderr,
        )
        if status != "ok":
            failed = True
            print(json.dumps(describe_failure(result), indent=2), file=sys.stderr)
            print(f"replay with: python tools/chaos.py --seed {seed} --schedules 1", file=sys.stderr)
    print(summary(results))
    return 1 if failed else 0


def _netns(args: argparse.Namespace) -> int:
    """Schedules on the network-namespace lab; one JSON line each, then the totals."""
    from zkv.testing.netchaos import run_netns_schedule, supported

    why = supported()
    if why is not None:
        print(f"--netns {why}", file=sys.stderr)
        return 2
    totals = dict.fromkeys(
        ("ops", "acknowledged", "quorum_reads", "stale_quorum_reads", "blind_quorum_reads", "bad"), 0
    )
    totals["stale_blind_quorum_reads"] = 0
    converge = []
    for i in range(args.schedules):
        seed = args.seed + i
        with tempfile.TemporaryDirectory(prefix=f"zkv-netns-{seed}-") as workdir:
            r = run_netns_schedule(
                Path(workdir), seed, args.seconds, strict=not args.sloppy, clients=args.clients
            )
        print(json.dumps(r), file=sys.stderr)
        for key in ("ops", "acknowledged", "quorum_reads", "stale_quorum_reads", "blind_quorum_reads"):
            totals[key] += r[key]
        totals["stale_blind_quorum_reads"] += r["stale_blind_quorum_reads"]
        totals["bad"] += r["lost_count"] + r["phantom_count"] + r["resurrected_count"] + r["diverged"]
        converge.append(r["converge_s"])
        if r["lost_count"] or r["phantom_count"] or r["resurrected_count"] or r["diverged"]:
            print(f"replay with: python tools/chaos.py --netns --seed {seed} --schedules 1", file=sys.stderr)
    stale = totals["stale_quorum_reads"] + totals["stale_blind_quorum_reads"]
    reads = totals["quorum_reads"] + totals["blind_quorum_reads"]
    print(
        f"netns schedules={args.schedules} quorum={'sloppy' if args.sloppy else 'strict'} "
        f"ops={totals['ops']} acknowledged={totals['acknowledged']} "
        f"lost/phantom/resurrected/diverged={totals['bad']} "
        f"stale quorum reads: sets {totals['stale_quorum_reads']}/{totals['quorum_reads']}, "
        f"counters {totals['stale_blind_quorum_reads']}/{totals['blind_quorum_reads']} "
        f"({stale / max(1, reads):.2%} of all) converge_max={max(converge, default=0):.2f}s"
    )
    # stale reads are a failure only for strict quorums; for sloppy ones they are the figure to report
    return 1 if totals["bad"] or (stale and not args.sloppy) else 0


if __name__ == "__main__":
    sys.exit(main())
