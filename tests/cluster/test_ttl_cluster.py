"""TTL on a real cluster: an expired key is not found at any level, through any node, after a replica that
was down during the expiry returns, after anti-entropy and after restarts; a put without TTL clears it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from zkv.errors import InvalidRequest
from zkv.testing.localcluster import LocalCluster, wait_until

SHELL = Path(sys.executable).with_name("zkv-shell")
LEVELS = ("one", "quorum", "all")


def not_found_everywhere(cluster: LocalCluster, key: str) -> bool:
    for name in cluster.names:
        with cluster.client(name, pinned=True, timeout=3.0) as client:
            for level in LEVELS:
                if client.get(key, consistency=level).values:
                    return False
    return True


def test_ttl_expires_everywhere_and_never_comes_back(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, engine="log", anti_entropy_interval_ms=300) as cluster:
        cluster.start()
        with cluster.client(timeout=3.0) as client:
            client.put("plain", "stays")
            client.put("short", "v", ttl=3)
            assert client.get("short", consistency="all").value == b"v"
            client.put("k", "old", consistency="all")
            context = client.get("k", consistency="all").context
            cluster.kill("n3")  # n3 keeps "old" (no TTL) on disk and misses the expiring write
            client.put("k", "new", context=context, ttl=3)
            assert client.get("k").value == b"new"
            time.sleep(3.2)  # the TTL itself: wall-clock time has to pass
            for level in ("one", "quorum"):  # n3 is down: "all" would be unavailable
                assert client.get("k", consistency=level).values == []
                assert client.get("short", consistency=level).values == []
        cluster.start("n3")
        assert not_found_everywhere(cluster, "short")
        with cluster.client(timeout=3.0) as client:
            for level in ("quorum", "all"):
                assert client.get("k", consistency=level).values == []

            def n3_repaired() -> bool:  # anti-entropy (or read repair) brought n3 the expiring version
                versions = client.replicas("k")["n3"].versions
                return [v.value for v in versions] == [b"new"]

            wait_until(n3_repaired, 30, "n3 to hold the expiring version")
        assert not_found_everywhere(cluster, "k")
        for name in cluster.names:
            cluster.restart(name)
        cluster.wait_ready()
        assert not_found_everywhere(cluster, "k") and not_found_everywhere(cluster, "short")
        with cluster.client(timeout=3.0) as client:
            assert client.get("plain", consistency="all").value == b"stays"
            # a put without TTL on an expiring key makes it permanent
            client.put("again", "short", ttl=2)
            client.put("again", "forever", context=client.get("again", consistency="all").context)
            time.sleep(2.2)
            assert client.get("again", consistency="all").values == [b"forever"]


@pytest.mark.parametrize("ttl", [-1, 0, "soon", 10**12])
def test_bad_ttl_is_refused(cluster3: LocalCluster, ttl: object) -> None:
    with cluster3.client() as client:
        with pytest.raises(InvalidRequest, match="ttl"):
            client.put("bad-ttl", "v", ttl=ttl)  # type: ignore[arg-type]
        assert client.get("bad-ttl").values == []


def test_shell_put_with_ttl(cluster3: LocalCluster, tmp_path: Path) -> None:
    def shell(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SHELL), "--config", str(cluster3.config_path), "-c", line],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            env={"ZKV_HISTORY": str(tmp_path / "history"), "PATH": "/usr/bin:/bin"},
        )

    assert shell("put shell-ttl v --ttl 1s").returncode == 0
    with cluster3.client() as client:
        assert client.get("shell-ttl").value == b"v"
        wait_until(lambda: client.get("shell-ttl", consistency="all").values == [], 10, "the shell's TTL")
    for bad in ("--ttl -5", "--ttl 0s", "--ttl soon"):
        result = shell(f"put shell-bad v {bad}")
        assert result.returncode != 0
        assert "ttl" in (result.stdout + result.stderr).lower()
        assert len((result.stdout + result.stderr).strip().splitlines()) <= 2
