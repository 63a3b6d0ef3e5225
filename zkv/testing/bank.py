"""The bank checker: histories of transfers between accounts, judged for atomicity, the total, at most
once per token, and fractured reads.

Every account value is ``"<balance>:<token>"``: the token names the transaction that wrote it, and every
transfer puts each of its accounts ``if_value`` the value it read (the first transaction, ``open``,
puts them all ``if_absent``). So each account's values form a chain, each value naming its predecessor,
and the final value of an account walks back through every transaction committed on it.
:func:`check_bank` then judges, from the history alone:

* **atomicity** — a transaction in one account's chain is in the chain of each of its accounts;
* **the total** — the final balances (and every applied audit's) add up to the opening total;
* **outcomes** — an acknowledged transaction is in the chains; one answered ``condition_failed``, or that
  wrote nothing by its answer (a conflict, unavailable), is in none; the same token never gets two
  different definite answers (applied at most once, and a retry tells the truth);
* **no dirty reads** — every value a read returned is in its account's chain (no aborted write seen);
* **no fractured reads** (read-atomic) — once a read (plain or serial) returned a value, or a transaction
  was acknowledged, every read that starts later sees, on each other account, at least every transaction
  that came before it on its own chain, and on the same account at least what the earlier read saw; an
  applied audit (a transaction of checks on every account) saw one consistent cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

APPLIED, REFUSED, NOT_WRITTEN, UNKNOWN = "applied", "refused", "not_written", "unknown"
SIBLINGS = "<siblings>"  # a read of more than one value: no account may ever hold that


@dataclass(frozen=True, slots=True)
class Txn:
    """One token's transaction as its clients saw it: what it wrote over what, and every answer."""

    token: str
    writes: dict[str, str]  # account -> the value it puts
    prev: dict[str, str | None]  # account -> the value it required (None: absent)
    outcomes: tuple[str, ...]  # the answer of each client that sent the token (applied, refused, ...)
    invoked: float
    completed: float


@dataclass(frozen=True, slots=True)
class Read:
    client: str
    key: str
    value: str | None  # None: absent; SIBLINGS: more than one value
    invoked: float
    completed: float
    serial: bool


@dataclass(frozen=True, slots=True)
class Audit:
    """An applied transaction of checks only: the accounts held ``values`` together at its commit point."""

    values: dict[str, str]
    invoked: float
    completed: float


@dataclass(slots=True)
class BankReport:
    problems: list[str] = field(default_factory=list)
    committed: int = 0  # transactions in the chains
    acknowledged: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def balance(value: str) -> int:
    return int(value.split(":", 1)[0])


def token_of(value: str) -> str:
    return value.split(":", 1)[1]


def outcome(answers: Iterable[str]) -> str:
    """What a token's answers (one per request its clients sent, in any order) say it did: applied or
    refused if any request said so (definite: they are about the token); otherwise unknown if any request
    may have written; not written only if every request said it wrote nothing (a conflict, unavailable:
    those are about the request, so another request with the token may still have applied it)."""
    answers = set(answers)
    for definite in (APPLIED, REFUSED, UNKNOWN):
        if definite in answers:
            return definite
    return NOT_WRITTEN


def check_bank(
    txns: list[Txn],
    reads: list[Read],
    audits: list[Audit],
    final: dict[str, str | None],
    total: int,
) -> BankReport:
    report = BankReport()
    problems = report.problems
    by_token = {t.token: t for t in txns}
    writer = {(key, value): t for t in txns for key, value in t.writes.items()}
    # every account's chain, oldest first, from its final value back
    chains: dict[str, list[str]] = {}
    for key, value in final.items():
        chain: list[str] = []
        while value is not None:
            t = writer.get((key, value))
            if t is None or value in chain:
                problems.append(f"{key} holds {value!r}, which no transaction wrote there")
                break
            chain.append(value)
            value = t.prev.get(key)
        chains[key] = chain[::-1]
    pos = {key: {v: i for i, v in enumerate(chain)} for key, chain in chains.items()}
    committed = {key: {token_of(v) for v in chain} for key, chain in chains.items()}
    in_chains = set().union(*committed.values()) if committed else set()
    report.committed = len(in_chains)
    for token in sorted(in_chains):
        t = by_token[token]
        missing = sorted(k for k in t.writes if token not in committed.get(k, ()))
        if missing:
            problems.append(
                f"fractured commit: {token} took effect on {sorted(set(t.writes) - set(missing))} "
                f"but not on {missing}"
            )
    for t in txns:
        if {APPLIED, REFUSED} <= set(t.outcomes):
            problems.append(f"token {t.token} was answered both applied and refused")
        got = outcome(t.outcomes)
        report.acknowledged += got == APPLIED
        if got == APPLIED and t.token not in in_chains:
            problems.append(f"lost: {t.token} was acknowledged, and is on no account's chain")
        if got in (REFUSED, NOT_WRITTEN) and t.token in in_chains:
            problems.append(f"{t.token} was answered {got}, yet it took effect")
    if chains and all(chains[k] for k in final):
        held = sum(balance(chains[k][-1]) for k in final)
        if held != total:
            problems.append(f"the total changed: the final balances add up to {held}, not {total}")
    for read in reads:
        if read.value == SIBLINGS:
            problems.append(f"{read.client} read siblings on {read.key} at {read.invoked:.3f}s")
        elif read.value is not None and read.value not in pos.get(read.key, {}):
            problems.append(
                f"dirty read: {read.client} read {read.value!r} on {read.key} at {read.invoked:.3f}s, "
                "a value that never committed"
            )
    for audit in audits:
        if sum(balance(v) for v in audit.values.values()) != total:
            problems.append(f"an applied audit saw the total {audit.values}, not {total}")
    problems += _fractured(chains, pos, by_token, reads, audits, txns)
    return report


def _fractured(
    chains: dict[str, list[str]],
    pos: dict[str, dict[str, int]],
    by_token: dict[str, Txn],
    reads: list[Read],
    audits: list[Audit],
    txns: list[Txn],
) -> list[str]:
    """Reads that saw part of what an earlier observation proves committed (see the module doc)."""
    keys = sorted(chains)
    # need[a][i][b]: the chain position on b of the latest transaction up to a's i-th value that wrote b
    need: dict[str, list[dict[str, int]]] = {}
    for a in keys:
        rows, latest = [], dict.fromkeys(keys, -1)
        for value in chains[a]:
            for b, written in by_token[token_of(value)].writes.items():
                if b in pos and written in pos[b]:
                    latest[b] = max(latest[b], pos[b][written])
            rows.append(dict(latest))
        need[a] = rows
    # observations: (when it ended, what it proves for each account, what it was)
    seen: list[tuple[float, dict[str, int], str]] = []
    for r in reads:
        p = pos.get(r.key, {}).get(r.value, -1) if r.value is not None else -1
        if p >= 0:
            proves = need[r.key][p]
            seen.append(
                (r.completed, proves, f"{r.client}'s read of {r.key} ({r.value}) ending {r.completed:.3f}s")
            )
    for t in txns:
        if APPLIED in t.outcomes:
            proves = dict.fromkeys(keys, -1)
            for a, written in t.writes.items():
                if written in pos.get(a, {}):
                    for b, p in need[a][pos[a][written]].items():
                        proves[b] = max(proves[b], p)
            seen.append((t.completed, proves, f"{t.token} acknowledged at {t.completed:.3f}s"))
    seen.sort(key=lambda s: s[0])
    out: list[str] = []
    for key in keys:
        later = sorted((r for r in reads if r.key == key and r.value != SIBLINGS), key=lambda r: r.invoked)
        best, why, i = -1, "", 0
        for r in later:
            while i < len(seen) and seen[i][0] < r.invoked:
                if seen[i][1][key] > best:
                    best, why = seen[i][1][key], seen[i][2]
                i += 1
            got = pos[key].get(r.value, -2) if r.value is not None else -1
            if got == -2:
                continue  # a dirty read, reported already
            if got < best:
                out.append(
                    f"fractured read: {r.client} read {r.value!r} on {key} at {r.invoked:.3f}s "
                    f"({'serial' if r.serial else 'plain'}), after {why} proved "
                    f"{chains[key][best]!r} committed"
                )
    for audit in audits:
        for a, value in audit.values.items():
            if value not in pos.get(a, {}):
                out.append(f"an applied audit saw {value!r} on {a}, a value that never committed")
                continue
            for b, p in need[a][pos[a][value]].items():
                if b in audit.values and pos[b].get(audit.values[b], -1) < p:
                    out.append(f"fractured audit: it saw {value!r} on {a} and {audit.values[b]!r} on {b}")
    return out
