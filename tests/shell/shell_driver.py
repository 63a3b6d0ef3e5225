"""Drive the real prompt-toolkit REPL through a pipe and collect what it printed."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_toolkit.application import create_app_session
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from zkv_shell.render import Renderer, make_console
from zkv_shell.repl import Repl
from zkv_shell.session import Session

SHELL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "zkv-shell"


@dataclass
class Driven:
    """What a REPL run printed, and the exit status it returned."""

    output: str
    status: int
    repl: Repl

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.output.splitlines()]

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output.splitlines() if line.strip()]


def drive(session: Session, text: str, json_mode: bool = False, history: History | None = None) -> Driven:
    """Type ``text`` into a real prompt-toolkit REPL (through a pipe) until it runs out, then Ctrl-D."""
    buf = io.StringIO()
    renderer = Renderer(make_console(buf), json_mode=json_mode)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(text)
        pipe.send_text("\x04")  # Ctrl-D on an empty line: leave
        repl = Repl(session, renderer, history=history or InMemoryHistory(), input=pipe, output=DummyOutput())
        status = repl.run()
    return Driven(buf.getvalue(), status, repl)
