"""`make run`: start the cluster of a cluster.toml, wait until *its own* nodes serve, open zkv-shell, stop
it all after.

The nodes' logs go to data/cluster.log so they do not draw over the shell. Waiting for addresses to
answer is not enough: in a second clone, with the first clone's cluster running, the ports answer while
this clone's nodes died with "Address already in use". So the wait ends only when every node answering
is a child of the ``zkv-node`` this script started (its status names its pid), and stops with the reason
when that ``zkv-node`` exits (it refuses to start on ports in use).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from zkv import Client
from zkv.config import load_config
from zkv.errors import ConfigError, ZkvError
from zkv.scaffold import busy_ports
from zkv.testing.localcluster import wait_until


class ClusterFailed(Exception):
    """The cluster this script started stopped, or someone else's answers on its ports."""


def parent_pid(pid: int) -> int | None:
    """The parent of process ``pid`` (Linux /proc); None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def log_since(path: Path, offset: int, lines: int = 5) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def own_nodes_up(
    client: Client, cluster: subprocess.Popen, names: list[str], log_path: Path, start: int
) -> bool:
    """True once every node serves from a process of ``cluster``; ClusterFailed when it cannot be."""
    code = cluster.poll()
    if code is not None:
        raise ClusterFailed(f"zkv-node exited with status {code}:\n{log_since(log_path, start)}")
    if not all(n.status == "up" for n in client.nodes()):
        return False
    for name in names:
        try:
            status = client.status(name)
        except ZkvError:
            return False
        pid = status.pid
        if isinstance(pid, int) and parent_pid(pid) not in (cluster.pid, None):
            raise ClusterFailed(
                f"{name} answers from pid {pid}, which this 'make run' did not start: another cluster "
                f"uses these ports. Stop it, or change the ports in the config.\n{log_since(log_path, start)}"
            )
        if not status.readiness.get("ready", True):
            return False  # up, but not yet heard from a quorum of replicas for every range it holds
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="cluster.toml")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"run_local: {exc}", file=sys.stderr)
        return 2
    busy = busy_ports(config)
    if busy:
        print(f"run_local: {busy}", file=sys.stderr)
        return 1
    bin_dir = Path(sys.executable).parent
    log_path = Path(args.config).resolve().parent / "data" / "cluster.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        start = log.tell()
        cluster = subprocess.Popen(
            [str(bin_dir / "zkv-node"), "--config", args.config],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        with Client.from_config(args.config, timeout=1.0) as client:
            wait_until(
                lambda: own_nodes_up(client, cluster, config.node_names, log_path, start),
                20,
                f"the cluster to start (see {log_path})",
            )
        print(f"zkv: {len(config.nodes)} nodes ready (logs: {log_path}); quitting the shell stops them.")
        for spec in config.nodes:
            if spec.http is not None:
                print(f"zkv: {spec.name} HTTP API and dashboard at http://{spec.http}/ (docs/http.md)")
        return subprocess.call([str(bin_dir / "zkv-shell"), "--config", args.config])
    except (AssertionError, ClusterFailed) as exc:
        print(f"run_local: {exc}", file=sys.stderr)
        return 1
    finally:
        stop(cluster)


def stop(cluster: subprocess.Popen) -> None:
    """End the process group this script started (the supervisor and its nodes), by its id."""
    try:
        os.killpg(cluster.pid, signal.SIGTERM)
    except ProcessLookupError:
        return  # already gone, children and all
    try:
        cluster.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()


if __name__ == "__main__":
    sys.exit(main())
