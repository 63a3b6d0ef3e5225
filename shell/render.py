"""How results look: rich tables and colour on a terminal, plain text when piped, JSON lines for ``-o json``.

Values come from users and may hold anything, so they are always wrapped in :class:`rich.text.Text` (never
interpreted as markup), and bytes that are not printable UTF-8 are shown escaped like a Python bytes
literal. Rich drops colour by itself when the console is not a terminal; we also drop table borders
then, so the output is easy to ``grep`` and ``cut``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from zkv.core.status import NodeStatus

from .commands import COMMANDS
from .formats import ago, duration, show_bytes, size, when
from .results import (
    Failure,
    Help,
    Message,
    Nodes,
    Quit,
    Read,
    Replicas,
    Result,
    Scanned,
    Status,
    Where,
    Written,
)

_STATUS_STYLE = {"up": "green", "down": "red"}


def make_console(file: IO[str] | None = None, force_terminal: bool | None = None) -> Console:
    """A console that never treats values as markup or highlights numbers on its own."""
    console = Console(file=file, force_terminal=force_terminal, highlight=False, emoji=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # piped output: don't wrap tables at 80 columns
    return console


class Renderer:
    """Shows results on ``out``; failures go to ``err`` (stderr when scripting, the same console when not)."""

    def __init__(self, out: Console, err: Console | None = None, json_mode: bool = False) -> None:
        self.out = out
        self.err = err or out
        self.json_mode = json_mode
        self._box = box.SIMPLE if out.is_terminal else None
        self._by_type: dict[type, Callable[[Any], RenderableType | None]] = {
            Message: lambda r: Text(r.text),
            Help: self._help,
            Written: self._written,
            Read: self._read,
            Nodes: self._nodes,
            Status: self._status,
            Where: self._where,
            Replicas: self._replicas,
            Scanned: self._scanned,
            Quit: lambda r: None,
        }

    def render(self, result: Result) -> None:
        if self.json_mode:
            if not isinstance(result, Quit):
                self.out.file.write(json.dumps(result.to_dict(), default=str) + "\n")
                self.out.file.flush()
            return
        if isinstance(result, Failure):
            self.err.print(failure_line(result), soft_wrap=True)  # one line, however long
            return
        renderable = self._by_type[type(result)](result)
        if renderable is not None:
            self.out.print(renderable)
        trace = getattr(result, "trace", None)
        if trace is not None:
            self.out.print(Group(*receipt_lines(trace)))

    def _table(self, *columns: str, title: str | None = None, caption: str | None = None) -> Table:
        table = Table(
            box=self._box,
            title=title,
            caption=caption,
            title_justify="left",
            caption_justify="left",
            show_edge=False,
            pad_edge=False,
        )
        for name in columns:
            table.add_column(name)
        return table

    @staticmethod
    def _row(table: Table, *cells: str | RenderableType) -> None:
        """Add a row whose plain strings are shown as they are (``[one|all]`` is not rich markup)."""
        table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))

    # ------------------------------------------------------------------------------------------ data

    def _written(self, r: Written) -> Text:
        text = Text("OK", style="green")
        if r.with_context and r.resolved > 1:
            text.append(f"  (replaced the {r.resolved} siblings your get showed)", style="dim")
        if r.hinted:
            some = (
                "1 of the acknowledgements is a hint"
                if r.hinted == 1
                else f"{r.hinted} acknowledgements are hints"
            )
            text.append(f"  (sloppy quorum: {some} on a fallback)", style="yellow")
        elif r.quorum == "strict" and r.consistency != "all":
            text.append("  (strict quorum)", style="dim")
        return text

    def _read(self, r: Read) -> RenderableType:
        if not r.found:
            return Text("(not found)", style="dim")
        if len(r.values) == 1:
            return Text(show_bytes(r.values[0]))
        heading = f"{len(r.values)} siblings (concurrent writes), newest first by wall clock:"
        lines = [Text(heading, style="yellow")]
        stamps = list(r.timestamps) + [None] * (len(r.values) - len(r.timestamps))
        shown = [show_bytes(v) for v in r.values]
        width = min(40, max(len(v) for v in shown))  # line the timestamps up unless a value is long
        for i, (value, ts) in enumerate(zip(shown, stamps, strict=True), 1):
            line = Text(f"  {i}) ")
            line.append(value.ljust(width))
            if ts is not None:
                line.append(f"   written {when(ts)}", style="dim")
            lines.append(line)
        key = show_bytes(r.key)
        lines.append(
            Text(
                f"resolve: put {key} VALUE (or delete {key}) now — this shell sends this get's context, "
                "so the write replaces all of them",
                style="cyan",
            )
        )
        return Group(*lines)

    # ------------------------------------------------------------------------------------------ nodes

    def _nodes(self, r: Nodes) -> RenderableType:
        counts = Counter(row.status for row in r.rows)
        caption = ", ".join(
            [f"{counts.pop('up', 0)} up", f"{counts.pop('down', 0)} down"]
            + [f"{n} {status}" for status, n in sorted(counts.items())]
        )
        table = self._table(
            " ",
            "node",
            "address",
            "status",
            "heartbeat",
            "vnodes",
            "owns",
            "keys",
            title=f"cluster as {r.seen_by} sees it",
            caption=caption,
        )
        for row in r.rows:
            self._row(
                table,
                "*" if row.name == r.seen_by else "",
                row.name,
                row.address,
                # joining, leaving in yellow; a disk that refuses writes is said next to the status
                Text(row.status, style=_STATUS_STYLE.get(row.status, "yellow"))
                + (Text(f" disk {row.disk}", style="red") if row.disk != "ok" else ""),
                ago(row.heartbeat_age),
                str(row.vnodes),
                f"{row.ownership * 100:.1f}%",
                "?" if row.keys < 0 else str(row.keys),
            )
        return table

    def _status(self, r: Status) -> RenderableType:
        s = r.stats
        if s is None:
            return Text(f"{r.node}: no statistics", style="dim")
        parts: list[RenderableType] = []
        head = Text(r.node, style="bold")
        pid = s.pid if s.pid is not None else "?"
        head.append(f"  {s.address or ''}  pid {pid}  up {duration(s.uptime_s)}  {s.build or 'build ?'}")
        if s.member_status not in (None, "normal"):
            head.append(f"  {s.member_status}", style="yellow")
        parts.append(head)
        storage = s.storage
        peers = f"{s.peers_up}/{s.peers}"
        parts.append(
            Text(
                f"keys {s.keys}   storage {storage.engine}, {size(storage.bytes)} ({storage.flushes} flushes)"
                f"   peers up {peers}"
            )
        )
        parts.append(
            Text(
                f"in flight {s.in_flight}   forwarded {s.forwarded}   "
                f"read repairs {s.read_repairs}   bad messages {s.bad_messages}"
            )
        )
        disk = s.disk
        if disk is not None and disk.state != "ok":
            parts.append(
                Text(
                    f"disk {disk.state}: refusing writes for {duration(disk.since_s)} "
                    f"({disk.refused_writes} refused): {disk.error}",
                    style="red",
                )
            )
        clock = s.clock
        if clock is not None and clock.off_peers:
            offsets = clock.peer_offsets_s
            off = ", ".join(f"{p} {offsets.get(p, 0):+.0f} s" for p in clock.off_peers)
            whose = "this node's clock looks wrong" if clock.suspect_self else "peers' clocks are off"
            parts.append(Text(f"clock: {whose} (over {clock.max_skew_s:.0f} s): {off}", style="yellow"))
        if s.requests:
            table = self._table("op", "consistency", "requests", title="requests")
            for name, count in sorted(s.requests.items()):
                op, _, consistency = name.partition("/")
                self._row(table, op, consistency or "-", str(count))
            parts.append(table)
        if s.latency:
            table = self._table("op", "samples", "p50", "p99", "max", title="latency (recent)")
            for op, lat in sorted(s.latency.items()):
                self._row(
                    table,
                    op,
                    str(lat.count),
                    f"{lat.p50_ms:.2f} ms",
                    f"{lat.p99_ms:.2f} ms",
                    f"{lat.max_ms:.2f} ms",
                )
            parts.append(table)
        if s.errors:
            table = self._table("code", "count", title="errors")
            for code, count in sorted(s.errors.items()):
                self._row(table, Text(code, style="red"), str(count))
            parts.append(table)
        else:
            parts.append(Text("errors: none", style="dim"))
        parts.append(self._hints(s))
        parts.append(self._anti_entropy(s))
        transfer = self._transfer(s)
        if transfer is not None:
            parts.append(transfer)
        for key, value in sorted(s.extra.items()):
            parts.append(Text(f"{key.replace('_', ' ')}: {value}"))
        return Group(*parts)

    def _hints(self, s: NodeStatus) -> RenderableType:
        hints = s.hints
        if hints is None:
            return Text("hints: this node keeps none", style="dim")
        table = self._table("kept", "bytes", "delivered", "dropped", "in flight", "received", title="hints")
        kept = sum(hints.pending.values())
        self._row(
            table,
            str(kept),
            size(hints.bytes),
            str(hints.delivered),
            str(hints.dropped),
            str(hints.in_flight),
            str(s.hints_received),
        )
        if hints.pending:
            ages = hints.oldest_age_s

            def waiting(owner: str, n: int) -> str:
                age = ages.get(owner)
                return f"{owner} {n}" if age is None else f"{owner} {n} (oldest {age:.0f}s)"

            table.caption = "waiting: " + ", ".join(waiting(o, n) for o, n in sorted(hints.pending.items()))
        return table

    def _anti_entropy(self, s: NodeStatus) -> RenderableType:
        aae = s.anti_entropy
        title = "anti-entropy (indexing the keys on disk)" if aae.indexing else "anti-entropy"
        table = self._table("exchanges", "keys sent", "keys received", "tracked keys", title=title)
        self._row(
            table, str(aae.exchanges), str(aae.keys_sent), str(aae.keys_received), str(aae.tracked_keys)
        )
        differing = {peer: n for peer, n in aae.last_differences.items() if n}
        if differing:
            table.caption = "last differences: " + ", ".join(f"{p} {n}" for p, n in sorted(differing.items()))
        return table

    def _transfer(self, s: NodeStatus) -> RenderableType | None:
        t = s.transfer
        if not (t.keys_served or t.keys_pushed_in or t.join or t.leave or t.removal or t.cleanup):
            return None
        table = self._table("transfer", "keys", "progress", "retries", title="transfers")
        self._row(table, "served to joining nodes", str(t.keys_served), "-", "-")
        self._row(table, "pushed in by leaving nodes", str(t.keys_pushed_in), "-", "-")
        if t.join is not None:
            done = f"{len(t.join.done)}/{len(t.join.sources)} sources"
            self._row(table, "this node joining", str(t.join.keys_received), done, str(t.join.retries))
        if t.leave is not None:
            progress = f"{t.leave.position}/{t.leave.keys} keys"
            self._row(table, "this node leaving", str(t.leave.keys_sent), progress, str(t.leave.retries))
        for removed, pull in sorted(t.removal.items()):
            progress = "done" if pull.get("done") else f"{pull.get('sources_left')} sources left"
            self._row(table, f"ranges of removed {removed}", str(pull.get("keys_received")), progress, "-")
        if t.cleanup is not None:
            c = t.cleanup
            progress = ("done" if c.get("done") else f"{c.get('looked_at')}/{c.get('keys')} keys") + (
                f", {c.get('bytes_freed')} bytes freed, {c.get('kept')} kept"
            )
            self._row(table, "cleanup: keys dropped", str(c.get("dropped")), progress, "-")
        return table

    # ------------------------------------------------------------------------------------------ keys

    def _where(self, r: Where) -> RenderableType:
        table = self._table(
            "#", "node", "address", "role", "status", title=f"where {show_bytes(r.key)} lives"
        )
        for i, p in enumerate(r.placements, 1):
            self._row(
                table,
                str(i),
                p.node,
                p.address,
                p.role,
                Text("up" if p.up else "down", style="green" if p.up else "red"),
            )
        if r.coordinator is None:
            line = Text("coordinator: none — no replica of this key is up", style="red")
        elif r.coordinator == r.connected:
            line = Text(f"coordinator: {r.coordinator} (the connected node, a replica of this key)")
        else:
            line = Text(f"coordinator: {r.coordinator} ({r.connected} holds no replica and forwards to it)")
        return Group(table, line)

    def _scanned(self, r: Scanned) -> RenderableType:
        lines = [
            Text(show_bytes(k) + ("  " + " | ".join(show_bytes(v) for v in r.values[i]) if r.values else ""))
            for i, k in enumerate(r.keys)
        ]
        count = f"{len(r.keys)} key{'s' if len(r.keys) != 1 else ''} · {r.consistency}"
        more = "; more: scan --next (or --cursor " + r.cursor + ")" if r.cursor else " (end)"
        return Group(*lines, Text(count + more, style="dim"))

    def _replicas(self, r: Replicas) -> RenderableType:
        table = self._table("version", "dot", "written", *r.nodes, title=f"replicas of {show_bytes(r.key)}")
        styles = {"held": "green", "superseded": "dim", "missing": "red"}
        for i, v in enumerate(r.versions):
            value = Text("(tombstone)", style="dim") if v.value is None else Text(show_bytes(v.value))
            cells: list[RenderableType] = []
            for node in r.nodes:
                if node in r.errors:
                    cells.append(Text("?", style="red"))
                else:
                    state = r.cells[node][i]
                    cells.append(Text(state, style=styles[state]))
            self._row(table, value, f"{v.actor}:{v.counter}", when(v.timestamp), *cells)
        if not r.versions:
            self._row(table, Text("(no versions)", style="dim"), "", "", *["" for _ in r.nodes])
        self._row(
            table,
            Text("clock", style="dim"),
            "",
            "",
            *[Text("unreachable", style="red") if n in r.errors else _clock(r.clocks[n]) for n in r.nodes],
        )
        lines: list[RenderableType] = [table]
        for node, error in r.errors.items():
            lines.append(Text(f"{node}: {error}", style="red"))
        if r.diverged:
            lines.append(
                Text(
                    "replicas diverge: read repair (a get) or the next write brings them together",
                    style="yellow",
                )
            )
        else:
            reachable = len(r.nodes) - len(r.errors)
            lines.append(Text(f"replicas agree ({reachable} of {len(r.nodes)} answered)", style="green"))
        return Group(*lines)

    # ------------------------------------------------------------------------------------------ help

    def _help(self, r: Help) -> RenderableType:
        if r.topic is not None:
            command = COMMANDS[r.topic]
            return Group(Text(f"usage: {command.usage}", style="bold"), Text(command.help))
        table = self._table("command", "what it does")
        for command in COMMANDS.values():
            if command.name != "exit":
                self._row(table, command.usage, command.summary)
        tips = Text(
            "'help CMD' explains one · Tab completes commands, keys, nodes and consistencies · "
            "Ctrl-R searches history · Ctrl-D leaves",
            style="dim",
        )
        return Group(table, tips)


def receipt_lines(trace: Any) -> list[Text]:
    """A traced command's latency and the coordinator's consistency receipt, a few dim lines."""
    r = trace.receipt
    lines = [
        Text(
            f"trace: {trace.latency_ms:.2f} ms round trip · coordinator {r.get('coordinator', '?')} "
            f"({r.get('coordinator_ms', 0):.2f} ms) · {r.get('level', '?')}, {r.get('quorum', '?')} quorum",
            style="cyan",
        )
    ]
    answered = ", ".join(
        f"{n} {ms:.2f} ms" for n, ms in sorted(r.get("replicas", {}).items(), key=lambda x: x[1])
    )
    failed = ", ".join(f"{n} ({code})" for n, code in sorted(r.get("failed", {}).items()))
    lines.append(
        Text(f"  replicas answered: {answered or 'none'}" + (f" · failed: {failed}" if failed else ""))
    )
    fallbacks = r.get("fallbacks") or {}
    held = "".join(f", {f} holds {o}'s" for f, o in sorted(fallbacks.items()))
    if r.get("op") == "get":
        repairs = r.get("read_repairs") or []
        lines.append(
            Text(
                f"  siblings merged: {r.get('siblings_merged', 0)} (of {r.get('versions_seen', 0)} versions "
                f"seen) · read repairs: {len(repairs)}" + (f" ({', '.join(repairs)})" if repairs else "")
            )
        )
    else:
        kind = "blind" if r.get("blind") else "with context"
        lines.append(
            Text(
                f"  hints written: {r.get('hints', 0)}{held} · {kind}, replaced {r.get('replaced', 0)} "
                f"version(s), {r.get('siblings', 1)} now · dot {':'.join(map(str, r.get('dot', [])))}"
            )
        )
    for line in lines[1:]:
        line.stylize("dim")
    return lines


def failure_line(f: Failure) -> Text:
    """The one red line every error becomes: ``code: message — hint``."""
    text = Text(f"{f.code}: {f.message}", style="bold red")
    if f.hint:
        text.append(f" — {f.hint}", style="red")
    return text


def _clock(clock: dict[str, int]) -> str:
    return ", ".join(f"{a}:{c}" for a, c in sorted(clock.items())) or "{}"


def stdout_console() -> Console:
    return make_console(sys.stdout)
