"""The shell's pieces without a cluster: parsing, advice on errors, replica comparison, completion, looks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from zkv_shell.commands import UsageError, parse
from zkv_shell.formats import show_bytes
from zkv_shell.hints import explain
from zkv_shell.render import Renderer, make_console
from zkv_shell.repl import ShellCompleter, open_history
from zkv_shell.replicaview import replica_view
from zkv_shell.results import Failure, Read

from zkv.client import ReplicaState, StoredVersion
from zkv.errors import InternalError, NoNodeAvailable, Timeout, TooLarge, Unavailable


def test_parse_splits_shell_style_and_lowercases_levels() -> None:
    inv = parse("PUT 'my key' \"a b c\" QUORUM")
    assert inv is not None and inv.name == "put" and inv.args == ["my key", "a b c", "quorum"]
    assert parse("") is None and parse("# note") is None


@pytest.mark.parametrize(
    ("line", "code", "hint"),
    [
        ("gte a", "unknown_command", "did you mean 'get'?"),
        ("nodez", "unknown_command", "did you mean 'nodes'?"),
        ("xyzzy", "unknown_command", "type 'help' for the list"),
        ("get a qorum", "bad_consistency", "did you mean 'quorum'?"),
        ("put a b c", "bad_consistency", 'put k "a b"'),
        ("get", "usage", "get KEY [one|quorum|all]"),
        ("nodes extra", "usage", "nodes"),
        ("get ''", "usage", "get KEY"),
        ('get "a', "syntax", "close the quote"),
    ],
)
def test_parse_errors_name_the_problem_and_the_fix(line: str, code: str, hint: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(line)
    assert err.value.code == code and hint in err.value.hint


def test_errors_become_advice() -> None:
    others = ["n2", "n3"]
    down = explain("get", NoNodeAvailable("x"), "n1", "tcp://h:1", others)
    assert (down.code, down.message) == ("no_node_available", "n1 (tcp://h:1) is not answering")
    assert (
        down.hint == "'switch n2' to use another node (n2, n3), or wait: the shell reconnects when n1 is back"
    )
    short = explain(
        "put", Unavailable("quorum needs 2 of 3 replicas, 1 alive", required=2, alive=1), "n1", "", []
    )
    assert (short.message, short.hint) == (
        "quorum needs 2 of 3 replicas, 1 alive",
        "try 'one' or bring nodes back",
    )
    none = explain("put", Unavailable(required=1, alive=0), "n1", "", [])
    assert none.hint.startswith("bring nodes back")
    late = explain("put", Timeout(required=2, acknowledged=1), "n1", "", [])
    assert "may have landed" in late.hint
    assert "cluster.toml" in explain("put", TooLarge("value is big"), "n1", "", []).hint
    assert explain("get", InternalError("boom"), "n1", "", []).code == "internal"
    bug = explain("get", KeyError("k"), "n1", "", [])
    assert bug.code == "internal" and bug.message == "KeyError: 'k'" and "bug in zkv-shell" in bug.hint


def _state(versions: list[tuple[bytes | None, str, int]], clock: dict[str, int]) -> ReplicaState:
    return ReplicaState([StoredVersion(v, a, c, float(c)) for v, a, c in versions], clock)


def test_replica_view_tells_held_superseded_and_missing_apart() -> None:
    states = {
        "n1": _state([(b"new", "a", 2)], {"a": 2}),  # saw v1, replaced it
        "n2": _state([(b"old", "a", 1)], {"a": 1}),  # behind
        "n3": NoNodeAvailable("x"),
    }
    view = replica_view(b"k", states)
    assert [v.value for v in view.versions] == [b"new", b"old"]  # newest first
    assert view.cells == {"n1": ("held", "superseded"), "n2": ("missing", "held")}
    assert view.errors == {"n3": "not answering"} and view.diverged
    same = replica_view(
        b"k", {"n1": _state([(None, "a", 1)], {"a": 1}), "n2": _state([(None, "a", 1)], {"a": 1})}
    )
    assert not same.diverged and same.to_dict()["replicas"]["n1"]["versions"][0]["tombstone"]


def test_show_bytes_escapes_only_what_is_not_printable_text() -> None:
    assert show_bytes("héllo wörld".encode()) == "héllo wörld"
    assert show_bytes(b"a\tb") == r"'a\tb'"
    assert show_bytes(b"\x00\xff") == r"b'\x00\xff'"


def test_json_results_keep_binary_values_intact() -> None:
    data = Read("get", b"k", (b"\xff\x00", b"text"), (1.0, 0.5), "one").to_dict()
    assert data["values"] == [{"base64": "/wA="}, "text"] and data["siblings"] == 2


def test_plain_output_has_no_colour_codes_but_a_terminal_gets_them() -> None:
    failure = Failure("get", "unavailable", "quorum needs 2", "try 'one'")
    plain = io.StringIO()
    Renderer(make_console(plain)).render(failure)
    assert plain.getvalue() == "unavailable: quorum needs 2 — try 'one'\n"
    tty = io.StringIO()
    Renderer(make_console(tty, force_terminal=True)).render(failure)
    assert "\x1b[" in tty.getvalue() and "unavailable" in tty.getvalue()


def test_values_are_never_taken_for_markup() -> None:
    out = io.StringIO()
    Renderer(make_console(out)).render(Read("get", b"k", (b"[bold]x[/bold] [red]",), (1.0,), "one"))
    assert out.getvalue() == "[bold]x[/bold] [red]\n"


class _FakeSession:
    keys = {"alpha": None, "my key": None}
    node_names = ["n1", "n2", "n3"]


def _complete(text: str) -> list[str]:
    completer = ShellCompleter(_FakeSession())  # type: ignore[arg-type]
    return [
        c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))
    ]


def test_completion_fits_each_argument_position() -> None:
    assert _complete("") [:3] == ["put", "get", "delete"]  # fmt: skip
    assert _complete("sw") == ["switch"]
    assert _complete("get ") == ["'my key'", "alpha"]  # most recent key first, quoted when needed
    assert _complete("get a") == ["alpha"]
    assert _complete("put alpha 1 q") == ["quorum"]
    assert _complete("get alpha ") == ["one", "quorum", "all", "serial"]
    assert _complete("switch ") == ["n1", "n2", "n3"]
    assert _complete("status n") == ["n1", "n2", "n3"]
    assert _complete("help rep") == ["replicas"]
    assert _complete("put alpha ") == []  # values are the user's to type
    assert _complete("nodes ") == []


def test_history_is_a_file_and_falls_back_to_memory(tmp_path: Path) -> None:
    history = open_history(tmp_path / "sub" / "hist")
    assert isinstance(history, FileHistory) and (tmp_path / "sub" / "hist").exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert not isinstance(open_history(blocked / "hist"), FileHistory)
