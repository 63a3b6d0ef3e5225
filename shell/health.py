"""Whether the shell's node answers, and how much of the cluster is up — kept fresh off the input thread.

The prompt and the bottom toolbar are redrawn on every keystroke, so they must never wait on the network.
A :class:`HealthMonitor` thread pings the connected node every ``interval`` seconds with its own client (a
:class:`zkv.Client` is not thread-safe) and records the answer in a :class:`Link`, which the prompt reads.
Commands also report into the same Link, so a failed request shows "disconnected" at once, and the next
successful ping (the node is back) shows it reconnected without the user doing anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from zkv.client import Client
from zkv.errors import ZkvError

from .connection import ClientOptions, open_client

HEALTH_INTERVAL_S = 2.0
PING_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Health:
    """What the shell last learnt: is its node answering, and how many nodes does that node see up."""

    connected: bool
    up: int | None = None
    total: int | None = None


class Link:
    """The shared, lock-protected health of the shell's connection (REPL thread and monitor thread)."""

    def __init__(self, connected: bool = True) -> None:
        self._lock = threading.Lock()
        self._health = Health(connected)
        self.on_change: Callable[[], None] | None = None

    @property
    def health(self) -> Health:
        with self._lock:
            return self._health

    @property
    def connected(self) -> bool:
        return self.health.connected

    def mark(self, connected: bool, up: int | None = None, total: int | None = None) -> None:
        """Record a fresh observation; counts not given are kept from the last one."""
        with self._lock:
            old = self._health
            if connected and up is None:
                up, total = old.up, old.total
            self._health = Health(connected, up, total)
            changed = self._health != old
        if changed and self.on_change is not None:
            self.on_change()


class HealthMonitor:
    """Pings ``target()`` (the connected node's address) every ``interval`` s and records it in ``link``."""

    def __init__(
        self,
        target: Callable[[], str],
        link: Link,
        interval: float = HEALTH_INTERVAL_S,
        options: ClientOptions | None = None,
    ) -> None:
        self.target = target
        self.link = link
        self.interval = interval
        self.options = options  # the shell's CURVE keys
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zkv-shell-health", daemon=True)

    def start(self) -> HealthMonitor:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Check now instead of at the next tick (after a failure or a switch)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def check(self, client: Client) -> None:
        """One observation of the current target."""
        address = self.target()
        try:
            nodes = client.nodes(address)
        except ZkvError:
            if address == self.target():  # a switch during the check makes the answer moot
                self.link.mark(False)
            return
        if address == self.target():
            members = [n for n in nodes if n.status != "removed"]  # a node that left is not missing
            self.link.mark(True, sum(1 for n in members if n.status == "up"), len(members))

    def _run(self) -> None:
        with open_client([self.target()], self.options, timeout=PING_TIMEOUT_S) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                self.check(client)
                self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
                self._wake.clear()
