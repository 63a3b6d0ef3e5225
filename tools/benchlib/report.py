"""The report: a rich table on a terminal (plain aligned text otherwise) and the targets we steer by.

Rows are the JSON dicts ``tools/bench.py`` writes with ``--json``, so what is printed and what is saved
cannot disagree.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

COLUMNS = (
    "op",
    "level",
    "in flight",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "errors",
    "ops/s of ceiling",
    "p50 / echo p50",
    "client CPU",
    "server CPU",
    "server us/op",
    "other CPU",
)
RIGHT = {
    "in flight",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "ops/s of ceiling",
    "p50 / echo p50",
    "server us/op",
}

# The targets of issue #18 (3 nodes, N=3, 100-byte values).
MIN_QUORUM_SHARE_OF_CEILING = {"put": 0.25, "get": 0.40}  # quorum, 64 in flight
MAX_SEQUENTIAL_P50_VS_ECHO = {"put": 3.0, "get": 2.5}  # sequential quorum
MAX_SEQUENTIAL_P99_MS = 2.0
MAX_PUT_P999_MS = 25.0  # quorum put, 64 in flight
MIN_ONE_VS_QUORUM = 1.5

DISTURBED_PCT = 25.0  # other work on the machine took more than this share of a core while a row ran
DISTURBED_NOTE = (
    "* other work took more than 25% of a core while this row ran: its ops/s are low (and when it is an "
    "echo row, the ratios of the rows after it are high)"
)


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}%"


def _other(x: float | None) -> str:
    return _pct(x) + ("*" if x is not None and x > DISTURBED_PCT else "")


def disturbed(rows: list[dict[str, Any]]) -> bool:
    return any(((r.get("cpu") or {}).get("other_pct") or 0.0) > DISTURBED_PCT for r in rows)


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _errors(errors: dict[str, int]) -> str:
    return " ".join(f"{code}:{n}" for code, n in sorted(errors.items())) or "-"


def _cells(row: dict[str, Any], stats: dict[str, Any], op: str, main: bool) -> list[str]:
    ceiling = row.get("ceiling") or {}
    cpu = row.get("cpu") or {}
    share = ratio = ""
    if ceiling.get("ops_per_s"):
        share = f"{stats['ops_per_s'] / ceiling['ops_per_s']:.1%}"
        if row["concurrency"] == 1 and ceiling.get("p50_ms") and stats["ok"]:
            ratio = f"{stats['p50_ms'] / ceiling['p50_ms']:.2f}x"
    return [
        op,
        row["consistency"] if row["op"] != "echo" else row.get("when", "-"),
        str(row["concurrency"]),
        f"{stats['ops_per_s']:,.0f}",
        _ms(stats["p50_ms"]),
        _ms(stats["p99_ms"]),
        _ms(stats["p999_ms"]),
        _errors(stats["errors"]),
        share if row["op"] != "echo" else ("(ceiling)" if row.get("ceiling_used", True) else "(not used)"),
        ratio,
        _pct(cpu.get("clients_pct")) if main else "",
        _pct(cpu.get("server_pct")) if main else "",
        _us(cpu.get("server_us_per_op")) if main else "",
        _other(cpu.get("other_pct")) if main else "",
    ]


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """One line per row (per op for a mixed workload, then its total), echo ceilings included."""
    out = []
    for row in rows:
        if row["op"] == "mixed":
            for op, stats in row["per_op"].items():
                out.append(_cells(row, stats, f"mixed:{op}", False))
            out.append(_cells(row, row["total"], "mixed", True))
        else:
            out.append(_cells(row, row["total"], row["op"], True))
    return out


def render(console: Console, title: str, rows: list[dict[str, Any]], notes: list[str]) -> None:
    lines = table_rows(rows)
    if disturbed(rows):
        notes = [*notes, DISTURBED_NOTE]
    if console.is_terminal:
        table = Table(title=title, box=box.SIMPLE_HEAVY, caption="\n".join(notes) or None)
        for col in COLUMNS:
            table.add_column(col, justify="right" if col in RIGHT else "left", no_wrap=True)
        for line in lines:
            table.add_row(*line)
        console.print(table)
        return
    widths = [
        max(len(c), *(len(line[i]) for line in lines)) if lines else len(c) for i, c in enumerate(COLUMNS)
    ]

    def fmt(cells: list[str] | tuple[str, ...]) -> str:
        parts = [
            cell.rjust(w) if COLUMNS[i] in RIGHT else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    text = [title, fmt(COLUMNS), *(fmt(line) for line in lines), *notes]
    console.file.write("\n".join(text) + "\n")  # not console.print: no wrapping at 80 columns


# ---------------------------------------------------------------------------------------------- targets


def _find(rows: list[dict[str, Any]], op: str, level: str, concurrency: int) -> dict[str, Any] | None:
    for row in rows:
        if row["op"] == op and row["consistency"] == level and row["concurrency"] == concurrency:
            return row
    return None


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, for the rows this run has (a target whose rows are missing is skipped)."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float, limit: float, met: bool, unit: str = "") -> None:
        out.append({"target": name, "value": round(value, 4), "limit": limit, "unit": unit, "met": met})

    for op in ("put", "get"):
        row = _find(rows, op, "quorum", 64)
        if row and row.get("ceiling"):
            share = row["total"]["ops_per_s"] / row["ceiling"]["ops_per_s"]
            least = MIN_QUORUM_SHARE_OF_CEILING[op]
            add(f"quorum {op}, 64 in flight: share of echo ceiling req/s", share, least, share >= least)
        if row and op == "put":
            p999 = row["total"]["p999_ms"]
            add("quorum put, 64 in flight: p99.9", p999, MAX_PUT_P999_MS, p999 < MAX_PUT_P999_MS, "ms")
    for op in ("get", "put"):
        row = _find(rows, op, "quorum", 1)
        if row and row.get("ceiling"):
            ratio = row["total"]["p50_ms"] / row["ceiling"]["p50_ms"]
            most = MAX_SEQUENTIAL_P50_VS_ECHO[op]
            add(f"sequential quorum {op}: p50 / echo p50", ratio, most, ratio <= most, "x")
        if row:
            p99 = row["total"]["p99_ms"]
            add(f"sequential quorum {op}: p99", p99, MAX_SEQUENTIAL_P99_MS, p99 < MAX_SEQUENTIAL_P99_MS, "ms")
    for concurrency in (64, 1):
        for op in ("put", "get"):
            one, quorum = _find(rows, op, "one", concurrency), _find(rows, op, "quorum", concurrency)
            if one and quorum and quorum["total"]["ops_per_s"]:
                ratio = one["total"]["ops_per_s"] / quorum["total"]["ops_per_s"]
                add(
                    f"{op} one / quorum req/s, {concurrency} in flight",
                    ratio,
                    MIN_ONE_VS_QUORUM,
                    ratio >= MIN_ONE_VS_QUORUM,
                    "x",
                )
    return out


def render_targets(console: Console, targets: list[dict[str, Any]]) -> None:
    if not targets:
        return
    _say(console, "targets (3 nodes, N=3, 100-byte values):")
    for t in targets:
        if t["unit"] == "x":
            value, limit = f"{t['value']:.2f}x", f"{t['limit']}x"
        elif t["unit"] == "ms":
            value, limit = f"{t['value']:.3f} ms", f"{t['limit']} ms"
        else:
            value, limit = f"{t['value']:.1%}", f"{t['limit']:.0%}"
        bound = "at least" if "share" in t["target"] or "one / quorum" in t["target"] else "at most"
        if t["unit"] == "ms":
            bound = "under"
        verdict = "met" if t["met"] else "NOT met"
        _say(console, f"  {t['target']}: {value} ({bound} {limit}): {verdict}")


def _say(console: Console, line: str) -> None:
    if console.is_terminal:
        console.print(line, markup=False, highlight=False)
    else:
        console.file.write(line + "\n")
