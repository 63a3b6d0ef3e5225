"""How single values read in the shell: bytes, ages, durations, sizes and times, each one short string.

Apart from the renderer so that every table and line formats them the same way, and so they are tested
alone.
"""

from __future__ import annotations

import time


def show_bytes(data: bytes) -> str:
    """Printable UTF-8 as itself; text with control characters escaped; other bytes as ``b'\\x00'``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return text if text.isprintable() else repr(text)


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return duration(seconds)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n] or ["0s"]
    return " ".join(shown[:2])


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def when(timestamp: float, now: float | None = None) -> str:
    """A write's local wall-clock time to the millisecond; the date only when it is not today."""
    local = time.localtime(timestamp)
    today = time.localtime(time.time() if now is None else now)[:3] == local[:3]
    return (
        time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S", local)
        + f".{int(timestamp * 1000) % 1000:03d}"
    )
