"""``zkv-node init`` and ``zkv-node --dev``: a ready cluster.toml for people who installed zkv with pip.

The wheel ships no config file, and writing one by hand (addresses, gossip ports, data folders) is the
first thing a new user would get wrong, so zkv writes it: ``node_count`` nodes on loopback, node *i*
at ``port + 100 * (i - 1)`` with its gossip socket one port above (the layout of the repository's own
cluster.toml: 7101/7102, 7201/7202, ...), data under ``data/`` next to the file.
"""

from __future__ import annotations

import socket
from pathlib import Path

from zkv.config import ClusterConfig

DEFAULT_PORT = 7101
PORT_STEP = 100
MAX_NODES = 64


def node_ports(node_count: int, port: int) -> list[tuple[int, int]]:
    """The (ROUTER, PUB) ports of each node."""
    return [(port + PORT_STEP * i, port + PORT_STEP * i + 1) for i in range(node_count)]


def check_layout(node_count: int, port: int) -> None:
    """ValueError with a readable reason when the layout cannot work."""
    if not 1 <= node_count <= MAX_NODES:
        raise ValueError(f"--nodes must be 1 to {MAX_NODES}, not {node_count}")
    last = node_ports(node_count, port)[-1][1]
    if port < 1024 or last > 65535:
        raise ValueError(f"ports {port}..{last} do not fit in 1024-65535; pick another --port")


def cluster_toml(node_count: int = 3, port: int = DEFAULT_PORT, name: str = "local") -> str:
    """The text of a cluster.toml for ``node_count`` nodes on this machine."""
    check_layout(node_count, port)
    replication = min(3, node_count)
    level = "quorum" if replication > 1 else "one"
    lines = [
        f"# A {node_count}-node zkv cluster on this machine, written by zkv-node init.",
        "# Start it: zkv-node --config cluster.toml ; then open the shell: zkv-shell --config cluster.toml",
        "# Every key is described in docs/configuration.md.",
        "",
        "[cluster]",
        f'name = "{name}"',
        f"replication_factor = {replication}        # N: copies of every key",
        "vnodes = 64                   # tokens per node on the hash ring",
        f'read_consistency = "{level}"   # default when a request names none: one, quorum or all',
        f'write_consistency = "{level}"',
        "request_timeout_ms = 2000     # how long a coordinator waits for replicas",
        'engine = "log"                # log (files in data_dir) or memory (lost on restart)',
        'fsync = "always"              # always: fsync before acknowledging; interval; never',
    ]
    for i, (address, gossip) in enumerate(node_ports(node_count, port), 1):
        lines += [
            "",
            "[[node]]",
            f'name = "n{i}"',
            f'address = "tcp://127.0.0.1:{address}"',
            f'gossip = "tcp://127.0.0.1:{gossip}"',
            f'data_dir = "data/n{i}"',
        ]
    return "\n".join(lines) + "\n"


def write_cluster(directory: Path, node_count: int, port: int, force: bool = False) -> Path:
    """Write ``directory/cluster.toml``; FileExistsError when one is there and ``force`` is not set."""
    text = cluster_toml(node_count, port)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cluster.toml"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    path.write_text(text)
    return path


def ports_in_use(ports: list[int], host: str = "127.0.0.1") -> list[int]:
    """Which of ``ports`` something on this machine listens on already (a bind test, released at once)."""
    busy = []
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def busy_ports(config: ClusterConfig) -> str:
    """A sentence naming the configured ports something else listens on already ('' when all are free).

    A node that cannot bind dies with "Address already in use" in its own log while the ports answer
    for someone else's cluster; saying so before starting anything is the only clear way."""
    taken = []
    for spec in config.nodes:
        for address in (spec.address, spec.gossip):
            host, _, port = address.removeprefix("tcp://").rpartition(":")
            bind_host = {"*": "0.0.0.0", "": "127.0.0.1"}.get(host, host.strip("[]"))
            if address.startswith("tcp://") and port.isdigit() and ports_in_use([int(port)], bind_host):
                taken.append(f"{spec.name} {address}")
    if not taken:
        return ""
    return (
        f"port in use: {', '.join(taken)} — another zkv cluster (or another program) is running on "
        "them; stop it, or give this cluster other ports in its cluster.toml"
    )
