"""The health thread's redraw request racing the end of a prompt (shell/repl.py, ``Link.on_change``).

prompt_toolkit's ``Application.invalidate`` is not safe against the prompt ending on the REPL thread in
the middle of it: having checked that the app runs and set ``_invalidated``, it reads ``app.loop`` again,
and once the prompt has ended that is None, so its ``call_soon_threadsafe`` asks for the running loop in
the health thread and raises ``RuntimeError: no running event loop``. ``_invalidated`` then stays True
and every later ``invalidate`` returns at once: the toolbar froze. The interleaving is made exact here
with a loop that ends the prompt (clears ``app.loop``) the moment the first callback is queued on it.
"""

from __future__ import annotations

import asyncio
import threading

from prompt_toolkit.application import Application, create_app_session
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from zkv_shell.render import Renderer, make_console
from zkv_shell.repl import Repl
from zkv_shell.session import Session

from zkv.testing.localcluster import free_ports


class EndsThePromptLoop(asyncio.SelectorEventLoop):
    """A prompt's loop that ends the prompt (as the REPL thread does) when something is queued on it."""

    def __init__(self, app: Application) -> None:
        super().__init__()
        self.app = app
        self.queued = 0

    def call_soon_threadsafe(self, callback, *args, context=None):  # type: ignore[no-untyped-def, override]
        self.queued += 1
        self.app._is_running = False  # the prompt ended right now, on the REPL thread
        self.app.loop = None
        return super().call_soon_threadsafe(callback, *args, context=context)


def test_a_health_change_while_the_prompt_ends_raises_nothing_and_leaves_redraws_possible() -> None:
    (port,) = free_ports(1)
    session = Session.connect(f"tcp://127.0.0.1:{port}")  # nothing listens: the session starts offline
    errors: list[BaseException] = []
    try:
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            repl = Repl(
                session, Renderer(make_console()), InMemoryHistory(), input=pipe, output=DummyOutput()
            )
            app = repl.prompt.app
            loop = EndsThePromptLoop(app)
            app._is_running, app.loop = True, loop  # a prompt on screen
            health = threading.Thread(target=session.link.mark, args=(True, 3, 3))  # the monitor's news
            previous = threading.excepthook
            threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment]
            try:
                health.start()
                health.join(10)
            finally:
                threading.excepthook = previous
            loop.close()
    finally:
        session.close()
    assert errors == [], f"the health thread raised: {errors!r}"
    assert loop.queued >= 1  # the change did ask for a redraw
    assert not app._invalidated, "a redraw is marked pending that will never come: the toolbar is frozen"
