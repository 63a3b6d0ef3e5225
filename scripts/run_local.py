"""`make run`: start the cluster of a cluster.toml, wait until it serves, open zkv-shell, stop it all after.

The nodes' logs go to data/cluster.log so they do not draw over the shell.
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
from zkv.errors import ConfigError
from zkv.localcluster import wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="cluster.toml")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"run_local: {exc}", file=sys.stderr)
        return 2
    bin_dir = Path(sys.executable).parent
    log_path = Path(args.config).resolve().parent / "data" / "cluster.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        cluster = subprocess.Popen(
            [str(bin_dir / "zkv-node"), "--config", args.config],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        with Client.from_config(args.config, timeout=1.0) as client:
            wait_until(
                lambda: all(n.status == "up" for n in client.nodes()),
                20,
                f"the cluster to start (see {log_path})",
            )
        print(f"zkv: {len(config.nodes)} nodes up (logs: {log_path}); quitting the shell stops them.")
        for spec in config.nodes:
            if spec.http is not None:
                print(f"zkv: {spec.name} HTTP API and dashboard at http://{spec.http}/ (docs/http.md)")
        return subprocess.call([str(bin_dir / "zkv-shell"), "--config", args.config])
    except AssertionError as exc:
        print(f"run_local: {exc}", file=sys.stderr)
        return 1
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()


if __name__ == "__main__":
    sys.exit(main())
