"""`begin ... commit` / `abort` in the shell on a real cluster: queued lines, one outcome line each
(applied / rejected with the current values / unknown), and mistakes answered with a readable line."""

from __future__ import annotations

from zkv_shell.connection import Endpoint
from zkv_shell.results import Failure, Message
from zkv_shell.session import Session

from zkv.client.txn import TxnResult
from zkv.errors import NoNodeAvailable, OutcomeUnknown


def lines(shell: Session, *typed: str) -> list[object]:
    return [shell.run(line) for line in typed]


def test_a_block_commits_every_write_at_once(shell: Session) -> None:
    assert shell.run("put stock 9 serial --if-absent").ok
    assert shell.run("put cart:alice book serial --if-absent").ok
    begun, *queued = lines(
        shell, "begin order-991", "check stock 9", "put stock 8", "put order:991 paid", "delete cart:alice"
    )
    assert isinstance(begun, Message) and "order-991" in begun.text
    assert all(isinstance(q, Message) and q.text.startswith("queued ") for q in queued), queued
    assert shell.run("get stock serial").values == (b"9",)  # nothing sent before commit
    done = shell.run("commit")
    assert isinstance(done, Message) and done.text.startswith("applied: transaction order-991"), done
    assert "put stock" in done.text and "delete cart:alice" in done.text
    assert shell.run("get stock serial").values == (b"8",)
    assert shell.run("get order:991 quorum").values == (b"paid",)
    assert shell.run("get cart:alice serial").values == ()
    # the same token again: applied at most once, and the line says so
    lines(shell, "begin order-991", "check stock 9", "put stock 8")
    again = shell.run("commit")
    assert isinstance(again, Message) and "earlier commit with this token had applied it" in again.text
    assert shell.run("get stock serial").values == (b"8",)


def test_a_failed_check_is_rejected_with_the_current_value_and_writes_nothing(shell: Session) -> None:
    assert shell.run("put a 1 serial --if-absent").ok
    lines(shell, "begin", "check a 2", "put b x", "put c y --if-absent")
    refused = shell.run("commit")
    assert isinstance(refused, Failure) and refused.code == "condition_failed", refused
    assert refused.message.startswith("rejected: ") and "a does not hold, it holds '1'" in refused.message
    assert "nothing was written" in refused.message
    assert shell.run("get b serial").values == () and shell.run("get c serial").values == ()
    assert isinstance(shell.run("commit"), Failure)  # the block is closed
    lines(shell, "begin", "check a --absent", "put b x")
    assert shell.run("commit").code == "condition_failed"


def test_abort_drops_the_block_and_mistakes_get_readable_lines(shell: Session) -> None:
    lines(shell, "begin t-abort", "put k v")
    dropped = shell.run("abort")
    assert isinstance(dropped, Message) and "nothing was sent" in dropped.text
    assert shell.run("get k serial").values == ()
    assert shell.run("commit").code == "no_transaction"
    assert shell.run("check k v").code == "no_transaction"
    assert shell.run("begin").ok
    assert shell.run("begin").code == "in_transaction"
    assert shell.run("commit").code == "usage"  # empty
    assert shell.run("check k").code == "usage"  # neither EXPECTED nor --absent
    assert shell.run("put k v quorum").code == "usage"  # a transaction is serial
    assert shell.run("put k v").ok
    assert shell.run("put k w").code == "usage"  # one write per key
    assert shell.run("get k serial").ok  # other commands run as usual inside a block
    assert shell.run("commit").ok
    assert shell.run("get k serial").values == (b"v",)


class _UnknownOnce:
    """A client whose first commit ends unknown and whose second (the same token) finds it applied."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def ring(self, refresh: bool = False) -> None:
        raise NoNodeAvailable("a fake client knows no ring")

    def transaction(self, token: str) -> object:
        client = self

        class Tx:
            def check(self, *a: object, **k: object) -> None: ...
            def put(self, *a: object, **k: object) -> None: ...
            def delete(self, *a: object, **k: object) -> None: ...

            def commit(self) -> TxnResult:
                client.tokens.append(token)
                if len(client.tokens) == 1:
                    raise OutcomeUnknown("the commit was proposed but not seen chosen")
                return TxnResult(token, retry=True)

        return Tx()


def test_an_unknown_outcome_keeps_the_block_and_commit_again_sends_the_same_token() -> None:
    client = _UnknownOnce()
    shell = Session(client, Endpoint("n1", "127.0.0.1:1"))  # type: ignore[arg-type]
    lines(shell, "begin t-u", "put a 1")
    unknown = shell.run("commit")
    assert isinstance(unknown, Failure) and unknown.code == "outcome_unknown", unknown
    assert unknown.message.startswith("unknown: transaction t-u may or may not have been applied")
    again = shell.run("commit")
    assert isinstance(again, Message) and again.text.startswith("applied: transaction t-u"), again
    assert client.tokens == ["t-u", "t-u"]
