"""A throwaway cluster of real ``zkv-node`` processes on free loopback ports.

Tests, tools/bench.py and the fault tools use it to run real clusters: it writes a cluster.toml into a work
folder, starts one process per node (``python -m zkv.cli --node NAME``), waits until every node serves and
sees its peers, and on :meth:`LocalCluster.close` ends every process it started, by PID, reporting any
that had to be killed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zkv.client import Client, curve_options
from zkv.config import load_config, split_listen
from zkv.errors import ZkvError

START_TIMEOUT_S = 20.0


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (held open together so they are distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; after ``timeout`` fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (ZkvError, AssertionError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


class LocalCluster:
    """``nodes`` real node processes described by a generated cluster.toml in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        nodes: int = 3,
        initial: int | None = None,
        curve: bool = False,
        http: bool = False,
        hosts: dict[str, str] | None = None,
        http_tls: bool = False,
        base_port: int | None = None,
        **cluster: Any,
    ) -> None:
        """``initial``: how many of the nodes form the cluster at first; the others are started with
        ``--join`` later (they get a file listing every node, the first ones a file listing only them).

        ``curve``: CURVE on, with keys made in ``workdir/keys``: one per node, a client ``alice`` (in
        ``keys/clients``) and an admin ``admin`` (in ``keys/admins``, used by :meth:`client` by default).

        ``http``: every node gets an ``http`` key, and :meth:`start` starts its gateway (``zkv-http``) too;
        :meth:`url` is where it listens.

        With both ``curve`` and ``http``, the gateways need bearer tokens: :attr:`tokens` holds an admin's
        (``"admin"``) and a client's (``"alice"``). ``http_tls``: the gateways serve HTTPS with a
        self-signed certificate made here (``openssl``); :meth:`url` says ``https``.

        ``base_port``: take ports ``base_port`` upwards (3 per node) instead of free ones from the kernel
        (a manual run on a shared machine keeps to its own range).

        ``hosts``: the IP each node listens on, by name (default 127.0.0.1; the network-namespace chaos
        test gives each node its own, :mod:`zkv.testing.netchaos`)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.curve = curve
        self.keys = self.workdir / "keys"
        if curve:
            from zkv.security import keygen

            for n in self.names:
                keygen(self.keys, n)
            keygen(self.keys / "clients", "alice")
            keygen(self.keys / "admins", "admin")
        self.tokens: dict[str, str] = {}
        if curve and http:
            from zkv.http.auth import new_token

            self.tokens = {
                "admin": new_token(self.workdir / "http_tokens", "admin", "admin"),
                "alice": new_token(self.workdir / "http_tokens", "client", "alice"),
            }
        self.http_tls = http_tls
        if http_tls:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
                + ["-subj", "/CN=127.0.0.1", "-keyout", str(self.workdir / "http.key")]
                + ["-out", str(self.workdir / "http.crt")],
                check=True,
                capture_output=True,
            )
        ports = free_ports(3 * nodes) if base_port is None else list(range(base_port, base_port + 3 * nodes))
        ip = {n: (hosts or {}).get(n, "127.0.0.1") for n in self.names}
        self.addresses = {n: f"tcp://{ip[n]}:{ports[3 * i]}" for i, n in enumerate(self.names)}
        self.gossip = {n: f"tcp://{ip[n]}:{ports[3 * i + 1]}" for i, n in enumerate(self.names)}
        self.http = {n: f"127.0.0.1:{ports[3 * i + 2]}" for i, n in enumerate(self.names)} if http else {}
        settings = {
            "name": "test",
            "replication_factor": min(3, nodes),
            "heartbeat_interval_ms": 100,
            "failure_timeout_ms": 2000,
            "engine": "memory",  # tests that need disk say engine="log"; a restart here starts empty
            **cluster,
        }
        self.initial = self.names[: initial or nodes]
        self.config_path = self.workdir / "cluster.toml"
        self.config_path.write_text(self._config_text(settings, self.names))
        self.initial_config_path = self.workdir / "cluster-initial.toml"
        self.initial_config_path.write_text(self._config_text(settings, self.initial))
        self.procs: dict[str, subprocess.Popen] = {}
        self.gateways: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Any] = {}
        # a command to run a node under, by name (``["faketime", "-f", "+1h"]``); taken at each start
        self.wrappers: dict[str, list[str]] = {}

    def _config_text(self, settings: dict[str, Any], names: list[str]) -> str:
        lines = ["[cluster]"] + [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
        if self.curve:
            lines += [
                "",
                "[security]",
                "curve = true",
                'client_keys = "keys/clients"',
                'admin_keys = "keys/admins"',
                'node_keys = "keys"',
            ]
            if self.tokens:
                lines += ['http_tokens = "http_tokens"', 'http_key = "keys/admins/admin.key_secret"']
        if self.http_tls:
            if not self.curve:
                lines += ["", "[security]"]
            lines += ['http_tls_cert = "http.crt"', 'http_tls_key = "http.key"']
        for n in names:
            lines += [
                "",
                "[[node]]",
                f'name = "{n}"',
                f'address = "{self.addresses[n]}"',
                f'gossip = "{self.gossip[n]}"',
                f'data_dir = "data/{n}"',
            ]
            if n in self.http:
                lines.append(f'http = "{self.http[n]}"')
            if self.curve:
                lines += [f'public_key = "keys/{n}.key"', f'secret_key = "keys/{n}.key_secret"']
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------------------------------ processes

    def start(self, *names: str, wait: bool = True) -> LocalCluster:
        """Start nodes (default: the initial ones); a node beyond the initial ones joins with --join."""
        for name in names or self.initial:
            if name in self.procs and self.procs[name].poll() is None:
                raise RuntimeError(f"{name} is already running")
            log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
            self._logs[name] = log
            if name in self.initial:
                cmd = [
                    sys.executable,
                    "-m",
                    "zkv.cli",
                    "--config",
                    str(self.initial_config_path),
                    "--node",
                    name,
                ]
            else:
                cmd = [sys.executable, "-m", "zkv.cli", "--config", str(self.config_path), "--node", name]
                cmd += ["--join", self.addresses[self.initial[0]]]
            cmd = self.wrappers.get(name, []) + cmd
            self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        if wait:
            self.wait_ready(*(names or self.initial))
        if self.http:
            self.start_http(*(names or self.initial), wait=wait)
        return self

    def start_http(self, *names: str, wait: bool = True, args: tuple[str, ...] = ()) -> None:
        """Start the named nodes' gateways (``zkv-http --node NAME``) if not running; wait for /health."""
        for name in names or self.names:
            proc = self.gateways.get(name)
            if proc is not None and proc.poll() is None:
                continue
            log = open(self.workdir / f"{name}-http.log", "ab")  # noqa: SIM115 - closed in close()
            self._logs[f"{name}-http"] = log
            cmd = [sys.executable, "-m", "zkv.http.server", "--config", str(self.config_path), "--node", name]
            if self.curve:
                cmd += ["--key", str(self.keys / "admins" / "admin.key_secret")]
            self.gateways[name] = subprocess.Popen(
                [*cmd, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        if wait:
            for name in names or self.names:
                wait_until(
                    functools.partial(self._gateway_answers, name), START_TIMEOUT_S, f"{name}'s gateway"
                )

    def _gateway_answers(self, name: str) -> bool:
        proc = self.gateways[name]
        if proc.poll() is not None:
            log = (self.workdir / f"{name}-http.log").read_text(errors="replace")
            raise RuntimeError(f"{name}'s gateway exited with status {proc.returncode}; log:\n{log[-3000:]}")
        try:
            with socket.create_connection(split_listen(self.http[name]), timeout=0.5):
                return True
        except OSError:
            return False

    def url(self, name: str = "n1") -> str:
        """The base URL of ``name``'s gateway (``http=True``), like ``http://127.0.0.1:PORT``."""
        return f"{'https' if self.http_tls else 'http'}://{self.http[name]}"

    def wait_ready(self, *names: str, timeout: float = START_TIMEOUT_S) -> None:
        """The named nodes are running, and every running node serves and sees every running node up."""
        for name in names:
            self._check_alive(name)
        running = {n for n, p in self.procs.items() if p.poll() is None}
        with self.client(timeout=1.0) as client:
            for name in sorted(running):

                def sees_all_up(name: str = name) -> bool:
                    self._check_alive(name)
                    up = {n.name for n in client.nodes(self.addresses[name]) if n.status == "up"}
                    return running <= up and self._ready(client, name, running)

                wait_until(sees_all_up, timeout, f"{name} to serve, see {sorted(running)} up and be ready")

    def _ready(self, client: Client, name: str, running: set[str]) -> bool:
        """``name`` says it is ready (quorum heard from for every range), or only waits for nodes that
        are not running (a test that keeps some down gets its cluster without waiting for them)."""
        status = client.status(self.addresses[name])
        wire = status if isinstance(status, dict) else status.to_wire()  # a NodeStatus has to_wire()
        readiness = wire.get("readiness")
        if not isinstance(readiness, dict):
            return True  # a node without readiness (an older build): seeing its peers up is all there is
        return bool(readiness["ready"]) or not set(readiness["waiting_for"]) & running

    def _check_alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode}; log:\n{self.log(name)[-3000:]}")

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def kill(self, name: str) -> None:
        """SIGKILL: the node dies mid-whatever, as in a crash."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self, name: str) -> int:
        """SIGTERM and wait: a clean stop; returns the exit status."""
        proc = self.procs[name]
        proc.terminate()
        return proc.wait(timeout=10)

    def pause(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGCONT)

    def restart(self, name: str) -> None:
        if self.procs[name].poll() is None:
            self.kill(name)
        self.start(name)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> list[str]:
        """End every process this cluster started; the names of those that had to be killed."""
        killed = []
        for name, proc in self.gateways.items():
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(f"{name}-http")
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(name)
        for log in self._logs.values():
            log.close()
        return killed

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ clients

    def client(self, *names: str, key: str | None = "admin", **kwargs: Any) -> Client:
        """A client seeded with the named nodes (default: all); with CURVE it uses ``key``'s key pair
        (``"admin"``, ``"alice"`` or a path; None: no key, plaintext)."""
        if self.curve and key is not None:
            known = {"admin": self.keys / "admins", "alice": self.keys / "clients"}
            path = known[key] / f"{key}.key_secret" if key in known else Path(key)
            kwargs.update(curve_options(load_config(self.config_path), path))
        return Client([self.addresses[n] for n in names or self.names], **kwargs)
