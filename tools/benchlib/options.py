"""The command line of tools/bench.py: every option, its help, and the checks argparse cannot do."""

from __future__ import annotations

import argparse
from typing import Any

MATRIX_CONCURRENCY = (1, 64)
MATRIX_OPS = ("get", "put")
LEVELS = ("one", "quorum", "all")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except for flags and options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/bench.py",
        description="Load a zkv cluster from several client processes and report ops/s and latency "
        "percentiles per operation, each also as a fraction of a bare pyzmq echo measured in the same run.",
        epilog="Output: a table on stdout (rich on a terminal, plain text otherwise), progress on stderr. "
        "Columns: ops/s of ceiling = the row's requests/s over the echo's requests/s at the same number in "
        "flight; p50 / echo p50 = the row's median over the echo's median round trip (1 in flight only); "
        "client CPU = percent of one core used by the client processes (the load generator); server CPU "
        "and server us/op = CPU of all nodes (of the echo server on an echo row) in percent of one core "
        "and in microseconds per request; other CPU = the rest of the machine meanwhile (noise). "
        "Exit status: 0 ok, 1 the run failed or requests met errors, 2 bad arguments, 130 interrupted. "
        "Method and numbers: docs/performance.md.",
        formatter_class=_Formatter,
    )
    w = p.add_argument_group("workload")
    w.add_argument(
        "--op",
        type=_choices("put", "get", "mixed", "cas", "txn"),
        default="put",
        metavar="OP[,OP...]",
        help="operation: put, get (of pre-loaded keys) or mixed (see --read-ratio); a comma list runs one "
        "row per item (and per --consistency and --concurrency item); cas alone: serial compare-and-set, "
        "uncontended and contended on one key, next to quorum put (tools/benchlib/cas.py); txn alone: "
        "3-key transactions next to quorum put and uncontended CAS",
    )
    w.add_argument(
        "--read-ratio", type=float, default=0.5, metavar="R", help="with --op mixed, the share of gets (0..1)"
    )
    w.add_argument(
        "--consistency",
        type=_choices(*LEVELS),
        default="quorum",
        metavar="LEVEL[,LEVEL...]",
        help="consistency level of every request: one, quorum or all (a comma list runs each)",
    )
    w.add_argument("--value-size", type=int, default=100, metavar="BYTES", help="bytes per value")
    w.add_argument("--keys", type=int, default=10000, metavar="N", help="number of distinct keys")
    w.add_argument(
        "--distribution",
        choices=("uniform", "zipfian"),
        default="uniform",
        help="key popularity; zipfian is YCSB's (theta 0.99), hottest key first",
    )
    w.add_argument(
        "--concurrency",
        type=_positive_ints,
        default="64",
        metavar="C[,C...]",
        help="requests in flight in total, spread over the client processes (a comma list runs each)",
    )
    length = w.add_mutually_exclusive_group()
    length.add_argument(
        "--duration",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="measured seconds per row (after --warmup)",
    )
    length.add_argument("--ops", type=int, metavar="N", help="issue exactly N requests per row instead")
    w.add_argument(
        "--warmup",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="seconds of load before each measured window, not counted (duration runs only)",
    )
    w.add_argument(
        "--processes",
        type=int,
        default=2,
        metavar="P",
        help="client processes generating load (at most C are used)",
    )
    w.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a request unanswered this long counts as error client_timeout",
    )
    w.add_argument("--seed", type=int, default=1, help="seed of key and operation choices")
    w.add_argument(
        "--matrix",
        action="store_true",
        help="run the docs table in one go: the same as --op get,put --consistency one,quorum,all "
        "--concurrency 1,64",
    )
    c = p.add_argument_group("cluster")
    c.add_argument("--nodes", type=int, default=3, help="nodes of the local cluster to start")
    c.add_argument(
        "--replication-factor",
        type=int,
        default=3,
        metavar="N",
        help="N of the local cluster (at most --nodes)",
    )
    c.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="always",
        help="fsync policy of the local cluster (no effect with the memory engine)",
    )
    c.add_argument(
        "--engine",
        choices=("memory", "log", "redis"),
        default=None,
        help="storage engine of the local cluster (default: the cluster.toml default, memory)",
    )
    c.add_argument(
        "--config",
        metavar="FILE",
        help="target the running cluster of this cluster.toml instead of starting one "
        "(--nodes, --replication-factor, --fsync and --engine are then ignored)",
    )
    w.add_argument(
        "--blind-puts",
        action="store_true",
        help="send puts without a context, as Client.put does: every put of a key is then concurrent with "
        "the ones before it and the key collects siblings (by default each put carries the context of "
        "the previous put of its key, so keys keep one version)",
    )
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="also write every result, setting and ceiling to FILE")
    o.add_argument("--no-ceiling", action="store_true", help="skip the echo ceiling (no ratios then)")
    o.add_argument(
        "--ceiling-once",
        action="store_true",
        help="measure each echo ceiling only before its rows (by default also after them, and the better "
        "of the two runs is the ceiling)",
    )
    o.add_argument(
        "--ceiling-duration",
        type=float,
        metavar="SECONDS",
        help="measured seconds of each echo ceiling (default: --duration, or 1 s with --ops)",
    )
    return p


def _choices(*allowed: str) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)} (comma-separated)")
        return list(dict.fromkeys(items))

    return parse


def _positive_ints(text: str) -> list[int]:
    try:
        items = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every item must be at least 1")
    return list(dict.fromkeys(items))


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0.0 <= args.read_ratio <= 1.0:
        parser.error("--read-ratio must be between 0 and 1")
    if args.matrix:
        args.op, args.consistency, args.concurrency = list(MATRIX_OPS), list(LEVELS), list(MATRIX_CONCURRENCY)
    for name in ("value_size", "keys", "processes", "nodes", "replication_factor"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.ops is not None and args.ops < 1:
        parser.error("--ops must be at least 1")
    if args.duration <= 0 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--duration and --timeout must be positive, --warmup not negative")
    if args.keys < args.processes:
        parser.error("--keys must be at least --processes (each client process writes its own keys)")
    if args.replication_factor > args.nodes and not args.config:
        parser.error("--replication-factor cannot be more than --nodes")
