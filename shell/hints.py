"""Turn an error into one line a person can act on: the code, what happened, and what to do next.

Kept apart from the session so every error path (zkv errors, usage errors, bugs) ends in the same
:class:`~zkv_shell.results.Failure` shape, and so the advice can be tested without a cluster.
"""

from __future__ import annotations

from zkv.errors import (
    InvalidRequest,
    NoNodeAvailable,
    Overloaded,
    ProtocolError,
    Timeout,
    TooLarge,
    TooManySiblings,
    Unauthorized,
    Unavailable,
    ZkvError,
)

from .results import Failure


def explain(command: str, exc: BaseException, node: str, address: str, others: list[str]) -> Failure:
    """The Failure to show for ``exc`` raised while ``node`` (at ``address``) coordinated ``command``."""
    if isinstance(exc, NoNodeAvailable):
        return Failure(command, exc.code, f"{node} ({address}) is not answering", _elsewhere(node, others))
    if isinstance(exc, Unavailable):
        if exc.alive == 0:
            hint = "bring nodes back ('nodes' shows which are down)"
        elif exc.required > 1:
            hint = "try 'one' or bring nodes back"
        else:
            hint = "bring nodes back ('nodes' shows which are down)"
        return Failure(command, exc.code, exc.message, hint)
    if isinstance(exc, Timeout):
        if exc.required and command == "get":
            hint = "too few replicas answered in time; retry, or read at a lower consistency (one)"
        elif exc.required:
            hint = "a write may have landed on some replicas; retry, or use a lower consistency (one)"
        else:
            hint = f"{node} is slow or stuck; retry, or {_switch_hint(node, others)}"
        return Failure(command, exc.code, exc.message, hint)
    if isinstance(exc, TooManySiblings):
        hint = "'get KEY' shows the siblings; 'put KEY MERGED' right after resolves them"
        return Failure(command, exc.code, exc.message, hint)
    if isinstance(exc, Unauthorized):
        return Failure(command, exc.code, exc.message, "start the shell with --key and an admin's key file")
    if isinstance(exc, TooLarge):
        return Failure(command, exc.code, exc.message, "store less, or raise the limit in cluster.toml")
    if isinstance(exc, InvalidRequest):
        return Failure(command, exc.code, exc.message, f"see 'help {command}'")
    if isinstance(exc, Overloaded):
        return Failure(command, exc.code, exc.message, "the node is shedding load; wait a moment and retry")
    if isinstance(exc, ProtocolError):
        return Failure(
            command, exc.code, exc.message, "the node and this shell may be different zkv versions"
        )
    if isinstance(exc, ZkvError):
        return Failure(command, exc.code, exc.message, "see the node's log for details")
    if isinstance(exc, KeyboardInterrupt):
        return Failure(command, "interrupted", "stopped waiting for the answer", "a write may still land")
    return Failure(
        command,
        "internal",
        f"{type(exc).__name__}: {exc}",
        "this is a bug in zkv-shell; please report it with the command you ran",
    )


def _switch_hint(node: str, others: list[str]) -> str:
    names = [n for n in others if n != node]
    if not names:
        return "start more nodes"
    return f"'switch {names[0]}' to use another node ({', '.join(names)})"


def _elsewhere(node: str, others: list[str]) -> str:
    return f"{_switch_hint(node, others)}, or wait: the shell reconnects when {node} is back"
