"""The interactive loop: a prompt-toolkit prompt with completion, history, a live toolbar — and nothing else.

Parsing and running commands is the session's job and drawing results the renderer's; this module only
reads lines. The prompt and the toolbar read the shared :class:`~zkv_shell.health.Link`, which a
background :class:`~zkv_shell.health.HealthMonitor` keeps fresh, so typing never waits on the network.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style

from .commands import COMMANDS, LEVELS
from .health import HealthMonitor
from .render import Renderer
from .results import Failure, Message, Quit
from .session import Session

DEFAULT_HISTORY = "~/.zkv_history"

STYLE = Style.from_dict(
    {
        "prompt": "",
        "node": "bold ansicyan",
        "down": "bold ansired",
        "consistency": "ansiyellow",
        "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
        "bottom-toolbar.ok": "bg:#303030 ansigreen",
        "bottom-toolbar.bad": "bg:#303030 ansired bold",
    }
)


def history_path() -> Path:
    """``$ZKV_HISTORY`` or ``~/.zkv_history``."""
    return Path(os.path.expanduser(os.environ.get("ZKV_HISTORY") or DEFAULT_HISTORY))


def open_history(path: Path) -> History:
    """A persistent history; an in-memory one when the file cannot be written (read-only home...)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


class ShellCompleter(Completer):
    """Completes the word under the cursor from what fits that position of the command table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if not words or text[-1].isspace():
            index, prefix = len(words), ""
        else:
            index, prefix = len(words) - 1, words[-1]
        if index == 0:
            for name, command in COMMANDS.items():
                if name.startswith(prefix.lower()):
                    yield Completion(name, -len(prefix), display_meta=command.summary)
            return
        typed = COMMANDS.get(words[0].lower())
        if typed is None or index > typed.max_args:
            return
        for choice in self._choices(typed.args[index - 1]):
            if choice.startswith(prefix):
                yield Completion(shlex.quote(choice), -len(prefix))

    def _choices(self, kind: str) -> list[str]:
        if kind == "key":
            return list(reversed(self.session.keys))  # most recently used first
        if kind == "consistency":
            return list(LEVELS)
        if kind == "onoff":
            return ["on", "off"]
        if kind == "node":
            return self.session.node_names
        if kind == "command":
            return list(COMMANDS)
        return []


class Repl:
    """Reads commands until quit/exit/Ctrl-D; ``input``/``output`` let tests drive it through a pipe."""

    def __init__(
        self,
        session: Session,
        renderer: Renderer,
        history: History | None = None,
        input: Input | None = None,
        output: Output | None = None,
        monitor: HealthMonitor | None = None,
    ) -> None:
        self.session = session
        self.renderer = renderer
        self.monitor = monitor or HealthMonitor(
            lambda: session.node.address, session.link, options=session.client.options
        )
        self.prompt: PromptSession[str] = PromptSession(
            message=self.message,
            bottom_toolbar=self.toolbar,
            completer=ShellCompleter(session),
            complete_while_typing=False,
            auto_suggest=AutoSuggestFromHistory(),
            history=history if history is not None else open_history(history_path()),
            style=STYLE,
            refresh_interval=1.0,
            input=input,
            output=output,
        )
        session.link.on_change = self.redraw_soon  # called on the health thread

    def redraw_soon(self) -> None:
        """Ask the prompt on screen to redraw; safe from any thread, and a no-op between prompts.

        ``Application.invalidate`` called from another thread races the prompt's end: it checks that the
        app runs, marks a redraw pending, then reads ``app.loop`` again, which the ending prompt has set to
        None: ``RuntimeError: no running event loop`` in this thread, and the pending mark stays, so every
        later invalidate returns at once (a frozen toolbar). So the call is handed to the prompt's own
        loop, where it runs on the REPL thread and cannot overlap the prompt ending; a loop that closed
        meanwhile means there is no prompt left to redraw (the next one draws the fresh state)."""
        app = self.prompt.app
        loop = app.loop
        if loop is None or not app.is_running:
            return
        with contextlib.suppress(RuntimeError):  # "Event loop is closed": that prompt is gone
            loop.call_soon_threadsafe(app.invalidate)

    def message(self) -> FormattedText:
        """``zkv n1 [quorum]> ``, saying so when the node is not answering."""
        parts = [("class:prompt", "zkv "), ("class:node", self.session.node.name)]
        if not self.session.link.connected:
            parts.append(("class:down", " (disconnected)"))
        parts += [("class:consistency", f" [{self.session.consistency_label}]"), ("class:prompt", "> ")]
        return FormattedText(parts)

    def toolbar(self) -> FormattedText:
        """The connected node and cluster health, from the monitor's last observation (no network here)."""
        health = self.session.link.health
        node = self.session.node
        parts = [("class:bottom-toolbar", f" {node.name} {node.address}  │  ")]
        if not health.connected:
            parts.append(("class:bottom-toolbar.bad", f"{node.name} not answering, reconnecting…"))
        elif health.up is None:
            parts.append(("class:bottom-toolbar", "cluster: checking…"))
        else:
            style = "class:bottom-toolbar.ok" if health.up == health.total else "class:bottom-toolbar.bad"
            parts.append((style, f"{health.up}/{health.total} up"))
        parts.append(
            (
                "class:bottom-toolbar",
                f"  │  consistency {self.session.consistency_label}  │  help, Tab, Ctrl-R ",
            )
        )
        return FormattedText(parts)

    def run(self) -> int:
        """The loop; the exit status is 0 (failures were shown, and the user saw them)."""
        self.monitor.start()
        try:
            while True:
                try:
                    line = self.prompt.prompt()
                except KeyboardInterrupt:
                    continue  # Ctrl-C clears the line, like bash
                except EOFError:
                    break
                result = self.session.run(line)
                if result is None:
                    continue
                self.renderer.render(result)
                if isinstance(result, Quit):
                    break
                if isinstance(result, Failure | Message):  # a switch, or maybe a lost node: look now
                    self.monitor.poke()
        finally:
            self.monitor.stop()
        return 0
