"""The command table: names, arguments, help texts, and parsing a typed line into an :class:`Invocation`.

Everything the shell knows about its commands' *syntax* lives here as data, so ``help``, tab completion
and the parser all read the same table and cannot disagree. Executing a command is
:mod:`zkv_shell.session`'s job.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field

from zkv.core.scan import MAX_SCAN_LIMIT

LEVELS = ("one", "quorum", "all", "serial")
SCAN_PAGE = 50  # keys a shell scan shows at a time unless told otherwise (a screenful)


TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """``30``, ``30s``, ``5m``, ``2h``, ``1d`` as seconds; a :class:`UsageError` for anything else.

    The range (more than 0, at most 10 years) is the node's to check: it says so in its own words."""
    number, scale = (text[:-1], TTL_UNITS[text[-1]]) if text[-1:] in TTL_UNITS else (text, 1)
    try:
        seconds = float(number) * scale
    except ValueError:
        raise UsageError(
            "bad_ttl", f"--ttl {text!r} is not a duration", "give seconds or 30s, 5m, 2h, 1d"
        ) from None
    return seconds


class UsageError(Exception):
    """The line is not a valid command; ``code`` and ``hint`` feed the one-line error the user sees."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Command:
    """One command's syntax: ``args`` names each position's kind (key, value, consistency, node,
    command), and the first ``required`` of them must be given."""

    name: str
    args: tuple[str, ...]
    required: int
    summary: str
    help: str
    usage: str
    options: tuple[
        str, ...
    ] = ()  # flags it takes anywhere after its name: "--sibling", "--context=" (a value)

    @property
    def max_args(self) -> int:
        return len(self.args)


def _cmd(
    name: str,
    usage: str,
    args: tuple[str, ...],
    required: int,
    summary: str,
    help: str,
    options: tuple[str, ...] = (),
) -> Command:
    return Command(name, args, required, summary, help.strip(), usage, options)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        _cmd(
            "put",
            "put KEY VALUE [one|quorum|all|serial] [--context TOKEN] [--sibling] [--ttl 30s]"
            " [--strict|--sloppy] [--if-absent] [--if-value V]",
            ("key", "value", "consistency"),
            2,
            "store a value",
            """
Store VALUE under KEY, acknowledged by as many replicas as the consistency asks (default: the session's
consistency). Quote values with spaces or special characters shell-style: put greeting "hello world".

Context: if you ran `get KEY` earlier in this shell, the put sends that get's context, so the new value
replaces exactly the versions the get showed you. That is how you resolve siblings: `get KEY`, look at
them, then `put KEY MERGED`. --context TOKEN sends a context a script kept (the "context" of
`zkv-shell -o json -c "get KEY"`). A put with no context replaces every version its coordinator holds.
--sibling writes the value next to whatever the key holds (Dynamo's raw behaviour: a new sibling).
--ttl 30s makes the value expire (seconds, or with s, m, h, d; at most 10 years): then it reads as not
found. A put without --ttl on an expiring key makes it permanent again.
--strict counts only the key's own replicas toward the consistency (a strict quorum: a strict quorum read
after it is sure to see it); --sloppy lets hinted writes on fallback nodes count (the cluster's
sloppy_quorum decides when neither is given). The answer says when a strict quorum was used or when
fallbacks counted: "OK  (sloppy quorum: 1 of the acknowledgements is a hint on a fallback)".
At serial the put is decided by consensus among the key's replicas (docs/transactions.md); with
--if-absent it is written only if the key has no value, with --if-value V only if its one value is V
(else: "condition failed", showing the current value, and nothing is written).
""",
            ("--context=", "--sibling", "--ttl=", "--strict", "--sloppy", "--if-absent", "--if-value="),
        ),
        _cmd(
            "get",
            "get KEY [one|quorum|all]",
            ("key", "consistency"),
            1,
            "read a key (all siblings)",
            """
Read KEY from as many replicas as the consistency asks (default: the session's consistency). When concurrent
writes left several versions (siblings), each is printed numbered, newest first; resolve them with a
`put KEY VALUE` (or `delete KEY`) right after, which sends this get's context.
""",
        ),
        _cmd(
            "delete",
            "delete KEY [one|quorum|all] [--context TOKEN] [--strict|--sloppy]",
            ("key", "consistency"),
            1,
            "delete a key",
            """
Delete KEY (replicas keep a tombstone). After a `get KEY` in this shell (or with --context TOKEN) the
delete removes exactly the versions that get showed; without a context it removes every version its
coordinator holds. Versions written concurrently elsewhere survive either way. --strict / --sloppy as
for put.
""",
            ("--context=", "--strict", "--sloppy"),
        ),
        _cmd(
            "cas",
            "cas KEY EXPECTED NEW",
            ("key", "expected", "new"),
            3,
            "compare-and-set (serial)",
            """
Write NEW under KEY only if the key's one current value is EXPECTED, decided by consensus among the
key's replicas (consistency serial). If the value is something else, nothing is written and the answer
shows the current value. "outcome unknown" means the write may or may not have been applied: a
`get KEY serial` tells.
""",
        ),
        _cmd(
            "begin",
            "begin [TOKEN]",
            ("token",),
            0,
            "start a multi-key transaction (then check/put/delete, commit)",
            """
Start a transaction: the check, put and delete lines that follow are queued, not sent, until `commit`
sends them as one all-or-nothing transaction (or `abort` drops them). TOKEN (default: a fresh one) makes
it idempotent: a commit sent again with the same token applies at most once (docs/transactions.md).
  begin order-991
  check stock 9
  put stock 8
  put order:991 paid
  delete cart:alice
  commit
""",
        ),
        _cmd(
            "check",
            "check KEY EXPECTED | check KEY --absent",
            ("key", "expected"),
            1,
            "in a transaction: commit only if KEY holds EXPECTED",
            """
In a transaction (after `begin`): the transaction commits only if KEY's one value is EXPECTED (with
--absent: if KEY has no value). In a transaction, put also takes --if-value V / --if-absent.
""",
            ("--absent",),
        ),
        _cmd(
            "commit",
            "commit",
            (),
            0,
            "send the open transaction",
            """
Send the transaction `begin` opened. One line tells the outcome: applied (every write took effect at
once), rejected (a check or condition did not hold, shown with the key's current value, or another
transaction holds a key: nothing was written) or unknown (it may have been applied; the transaction stays
open and `commit` again, with the same token, applies it at most once and tells).
""",
        ),
        _cmd(
            "abort",
            "abort",
            (),
            0,
            "drop the open transaction",
            "Drop the open transaction (nothing is sent).",
        ),
        _cmd(
            "scan",
            "scan [PREFIX] [LIMIT] [one|quorum|all] [--values] [--cursor TOKEN] [--next]",
            ("prefix", "limit", "consistency"),
            0,
            "list keys in order, a page at a time",
            f"""
List the live keys that start with PREFIX (default: every key) in byte order, LIMIT at a time (default
{SCAN_PAGE}, at most {MAX_SCAN_LIMIT}); deleted and expired keys are not shown. Every node is asked for its
part, and each range of the ring must answer from as many replicas as the consistency asks. When more
keys follow, the page ends with how to go on: `scan --next` continues this shell's last scan, --cursor
TOKEN continues from a cursor a script kept (the "cursor" of `-o json`). --values shows each key's
values too. `scan "" 50` lists every key, 50 at a time.
""",
            ("--values", "--cursor=", "--next"),
        ),
        _cmd(
            "switch",
            "switch NODE|ADDRESS",
            ("node",),
            1,
            "make another node the coordinator",
            """
Send the following commands to NODE (a name such as n2, or an address tcp://HOST:PORT). That node
coordinates them; for a key it holds no replica of, it forwards the request to one that does.
""",
        ),
        _cmd(
            "nodes",
            "nodes",
            (),
            0,
            "the cluster as the connected node sees it",
            """
Every node as the connected node sees it: address, status (up/down), age of its last heartbeat, vnodes,
the share of the key space it holds a replica of, and how many keys it stores. The connected node is
marked with *. Like `nodetool status`.
""",
        ),
        _cmd(
            "views",
            "views",
            (),
            0,
            "every node's view of the cluster, side by side",
            """
Ask every node how it sees every other one and show the answers side by side: one row per node, one
column per node asked. Disagreement shows a partition or a node that is slow to notice a failure.
""",
        ),
        _cmd(
            "decommission",
            "decommission NODE",
            ("node",),
            1,
            "make a node hand its data over and leave",
            """
Ask NODE to leave the cluster, like `nodetool decommission`: it streams every key it holds to the nodes
that replicate the key without it, then stops. The cluster keeps serving meanwhile; `nodes` shows it as
leaving, then removed. (`zkv-node leave --config FILE --node NAME` does the same from a terminal.)
""",
        ),
        _cmd(
            "removenode",
            "removenode NODE",
            ("node",),
            1,
            "remove a node that is gone for good; the others re-replicate its ranges",
            """
Remove NODE, a member that is down for good (its disk lost, the machine retired), like `nodetool
removenode`: the connected node decides it and gossip spreads it; every other node pulls the ranges it
gained from the surviving replicas until each key is back at N copies. `nodes` shows NODE as removed
and each node's progress in `status`. A live node, an unknown name or the last node is refused. A
removed node that comes back is refused too: it must join anew (empty data dir, --join). (`zkv-node
removenode NODE --config FILE` does the same from a terminal and waits until it is done.)
""",
        ),
        _cmd(
            "status",
            "status [NODE]",
            ("node",),
            0,
            "one node's statistics",
            """
Statistics of NODE (default: the connected node): uptime, keys, requests by operation and
consistency, p50/p99 latency, errors by code, storage engine and size, and any other counters it reports.
""",
        ),
        _cmd(
            "consistency",
            "consistency [one|quorum|all]",
            ("consistency",),
            0,
            "show or set the session's default consistency",
            """
With no argument, show the consistency used by put/get/delete that name none. With one, set it:
one (fastest, one replica), quorum (a majority of the key's replicas) or all (every replica).
""",
        ),
        _cmd(
            "trace",
            "trace [on|off]",
            ("onoff",),
            0,
            "show each request's latency and consistency receipt",
            """
With `trace on`, every put, get and delete is followed by its round-trip latency and the coordinator's
consistency receipt: which node coordinated, which replicas answered and how fast, which failed, strict
or sloppy quorum (a fallback stood in for a down primary), hints written, and for a read the siblings
merged and the read repairs sent; for a write whether it was blind and what it replaced. `trace off`
stops it; `trace` says which it is. Like cqlsh's TRACING ON.
""",
        ),
        _cmd(
            "where",
            "where KEY",
            ("key",),
            1,
            "the key's preference list and coordinator",
            """
The nodes that hold KEY (its preference list, primaries first, then fallbacks standing in for down
primaries), whether each is up, and which node coordinates a request for KEY sent from this shell.
""",
        ),
        _cmd(
            "replicas",
            "replicas KEY",
            ("key",),
            1,
            "each replica's versions of the key",
            """
Ask every replica of KEY directly (no read repair) what it stores, and show the versions side by side:
held, superseded (the replica saw a newer write) or missing (it never saw it). Replicas that disagree
are marked; read repair or a later write brings them together.
""",
        ),
        _cmd(
            "help",
            "help [COMMAND]",
            ("command",),
            0,
            "list commands, or explain one",
            "List the commands, or explain COMMAND.",
        ),
        _cmd("quit", "quit", (), 0, "leave the shell (also exit, Ctrl-D)", "Leave the shell (Ctrl-D too)."),
        _cmd("exit", "exit", (), 0, "leave the shell", "Leave the shell (Ctrl-D too)."),
    )
}


@dataclass(frozen=True, slots=True)
class Invocation:
    command: Command
    args: list[str]
    options: dict[str, str | bool] = field(default_factory=dict)  # "--context" -> TOKEN, "--sibling" -> True

    @property
    def name(self) -> str:
        return self.command.name


def nearest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest choice to a mistyped word, if any is close enough to be a useful suggestion."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def split(line: str) -> list[str]:
    """Shell-style words; an unclosed quote is a usage error, not an exception."""
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:  # "No closing quotation"
        raise UsageError("syntax", f"{str(exc).lower()} in {line.strip()!r}", "close the quote") from None


def check_consistency(word: str, after_value: bool = False) -> str:
    """``word`` when it is a consistency (one, quorum, all); ``after_value``: it followed a put's value,
    so a value with spaces that was not quoted is the likely mistake, and the hint says how to quote."""
    if word in LEVELS:
        return word
    guess = nearest(word, LEVELS)
    did_you_mean = f"did you mean '{guess}'? " if guess else ""
    quoting = ' (quote values with spaces: put k "a b")' if after_value else ""
    raise UsageError(
        "bad_consistency",
        f"unknown consistency {word!r}",
        f"{did_you_mean}use one, quorum, all or serial{quoting}",
    )


def parse(line: str) -> Invocation | None:
    """The invocation a line asks for; None for a blank line or a comment; UsageError when it is wrong."""
    words = split(line)
    if not words or words[0].startswith("#"):
        return None
    name, args = words[0].lower(), words[1:]
    command = COMMANDS.get(name)
    if command is None:
        guess = nearest(name, list(COMMANDS))
        hint = f"did you mean '{guess}'? " if guess else ""
        raise UsageError(
            "unknown_command", f"unknown command {words[0]!r}", hint + "type 'help' for the list"
        )
    args, options = _options(command, args)
    if not command.required <= len(args) <= command.max_args:
        raise UsageError("usage", f"{command.name} takes {_count(command)}", command.usage)
    for kind, arg in zip(command.args, args, strict=False):
        if kind == "consistency":
            check_consistency(arg.lower(), after_value="value" in command.args)
        elif kind == "command" and arg.lower() not in COMMANDS:
            guess = nearest(arg.lower(), list(COMMANDS))
            hint = f"did you mean '{guess}'? " if guess else ""
            raise UsageError("unknown_command", f"no command {arg!r}", hint + "type 'help' for the list")
        elif kind == "onoff" and arg.lower() not in ("on", "off"):
            raise UsageError("usage", f"trace takes on or off, not {arg!r}", command.usage)
        elif kind == "limit" and not (arg.isdigit() and 1 <= int(arg) <= MAX_SCAN_LIMIT):
            raise UsageError(
                "bad_limit", f"limit {arg!r} is not a number from 1 to {MAX_SCAN_LIMIT}", command.usage
            )
        elif kind == "key" and not arg:
            raise UsageError("usage", "the key must not be empty", command.usage)
    args = [
        a.lower() if k in ("consistency", "command", "onoff") else a
        for k, a in zip(command.args, args, strict=False)
    ]
    return Invocation(command, args, options)


def _options(command: Command, words: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    """Take the command's ``--flags`` out of its words (``--context TOKEN`` or ``--context=TOKEN``).

    Only words of the form ``--name`` that the command declares are options, so any other value, even
    one starting with dashes, stays an argument (and ``--`` ends the options: ``put k -- --sibling``)."""
    declared = {o.rstrip("="): o.endswith("=") for o in command.options}
    args: list[str] = []
    options: dict[str, str | bool] = {}
    rest = iter(words)
    for word in rest:
        if word == "--" and declared:
            args += list(rest)
            break
        flag, eq, inline = word.partition("=")
        if not declared or not word.startswith("--") or flag not in declared:
            args.append(word)
            continue
        if not declared[flag]:
            options[flag] = True
            continue
        value = inline if eq else next(rest, None)
        if not value:
            raise UsageError("usage", f"{flag} needs a value", command.usage)
        options[flag] = value
    return args, options


def _count(command: Command) -> str:
    if command.max_args == 0:
        return "no arguments"
    if command.required == command.max_args:
        return f"{command.required} argument{'s' if command.required > 1 else ''}"
    return f"{command.required} to {command.max_args} arguments"
