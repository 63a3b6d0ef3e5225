"""A few zkv clients, each owned by one thread, so aiohttp's event loop never waits on ZeroMQ.

The zkv client is synchronous and not thread-safe. The gateway hands every cluster call to a small thread
pool where each thread keeps its own client (its own sockets and learned ring): the loop keeps parsing
and answering other requests while a call waits for its coordinator, and pyzmq releases the GIL while a
thread waits, so the threads overlap. Measured in docs/http.md (Performance).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from zkv.client import Client

T = TypeVar("T")

DEFAULT_THREADS = 16


class ClientPool:
    """``await pool.run(lambda client: client.get(key))`` runs the call on a pooled thread's client."""

    def __init__(self, make_client: Callable[[], Client], threads: int = DEFAULT_THREADS) -> None:
        self._make_client = make_client
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="zkv-http-client")

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, fn: Callable[[Client], T]) -> T:
        return fn(self._client())

    async def run(self, fn: Callable[[Client], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
