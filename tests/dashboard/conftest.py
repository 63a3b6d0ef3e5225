"""A real browser for the dashboard tests: Debian's chromium driven by playwright (no browser download).

The tests skip, saying why, only when chromium or playwright is missing on a developer's machine; with
``CI=true`` (where ``.ci/run`` installs both) a missing browser fails the run instead of skipping it.
Every page records its console errors and uncaught exceptions; a test that leaves any fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_browser import Page

VIEWPORT = {"width": 1280, "height": 640}  # screenshots grow to the page (full_page)


def _missing(what: str) -> None:
    message = f"{what} (apt-get install chromium; pip install playwright — .ci/run does both)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser tests: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per test module, not per session: playwright's sync API keeps an asyncio loop
    running in this thread while it is open, and the shell tests that run after the dashboard's call
    ``asyncio.run`` (prompt-toolkit), which refuses to start inside a running loop."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    executable = shutil.which("chromium")
    if executable is None:
        _missing("chromium is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    wrapped = Page(context.new_page())
    try:
        yield wrapped
    finally:
        context.close()
    assert not wrapped.errors, "the page logged errors:\n" + "\n".join(wrapped.errors)
