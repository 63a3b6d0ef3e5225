"""A playwright page that records its console errors, and where the dashboard's screenshots go.

Screenshots go to ``$ZKV_SCREENSHOTS`` when it is set — to refresh docs/dashboard.md's pictures:
``ZKV_SCREENSHOTS=docs/dashboard-img .venv/bin/python -m pytest tests/dashboard/test_dashboard.py`` — and
otherwise to a folder of the test run (``$TMPDIR/zkv-dashboard-img``), so an ordinary ``make test`` does not
rewrite committed images (they differ in every run: times, ports, rates).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(os.environ.get("ZKV_SCREENSHOTS") or Path(tempfile.gettempdir()) / "zkv-dashboard-img")


class Page:
    """A playwright page plus what its console said: ``errors`` must stay empty."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)

    def screenshot_view(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
