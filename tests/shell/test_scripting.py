"""Scripts can read-modify-write across two zkv-shell runs: -o json carries the context, --context takes it
back; and the Python client's batch calls take contexts."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from shell_driver import SHELL, drive
from zkv_shell.commands import UsageError, parse
from zkv_shell.session import Session

from zkv.testing.localcluster import LocalCluster


def _shell(cluster: LocalCluster, tmp_path: Path, *commands: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "ZKV_CONFIG"}
    env["ZKV_HISTORY"] = str(tmp_path / "history")
    args = [str(SHELL), "--config", str(cluster.config_path), "-o", "json"]
    for command in commands:
        args += ["-c", command]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30, input="")
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_json_get_carries_the_context_and_put_context_resolves_siblings(
    cluster3: LocalCluster, tmp_path: Path
) -> None:
    _shell(cluster3, tmp_path, "put s one --sibling", "put s two --sibling")
    (read,) = _shell(cluster3, tmp_path, "get s")
    assert read["siblings"] == 2 and isinstance(read["context"], str)
    base64.b64decode(read["context"], validate=True)
    (written,) = _shell(cluster3, tmp_path, f"put s merged --context {read['context']}")
    assert written["ok"] and written["context"] is True
    (after,) = _shell(cluster3, tmp_path, "get s")
    assert after["values"] == ["merged"]

    (read,) = _shell(cluster3, tmp_path, "get s")
    (deleted,) = _shell(cluster3, tmp_path, f"delete s --context={read['context']}")
    assert deleted["ok"]
    (gone,) = _shell(cluster3, tmp_path, "get s")
    assert gone["found"] is False


def test_a_stale_context_keeps_the_newer_value_as_a_sibling(cluster3: LocalCluster, tmp_path: Path) -> None:
    (first,) = _shell(cluster3, tmp_path, "get k")
    _shell(cluster3, tmp_path, "put k newer --sibling")
    _shell(
        cluster3,
        tmp_path,
        f"put k mine --context {first['context']}" if first["context"] else "put k mine --sibling",
    )
    (read,) = _shell(cluster3, tmp_path, "get k")
    assert sorted(read["values"]) == ["mine", "newer"]


def test_bad_flags_are_usage_errors(shell: Session) -> None:
    for line in ("put a b --context", "put a b --context not-base64! ", "put a b --sibling --context eA=="):
        result = shell.run(line)
        assert result is not None and not result.ok, line
    run = drive(shell, "put a --sibling\n")
    assert run.lines[0].startswith("usage: put takes 2 to 3 arguments")
    inv = parse("put k -- --sibling")
    assert inv is not None and inv.args == ["k", "--sibling"] and inv.options == {}
    try:
        parse("get k --context x")
    except UsageError as exc:
        assert exc.code == "usage"
    else:
        raise AssertionError("get takes no --context")


def test_put_many_and_delete_many_take_contexts(cluster3: LocalCluster) -> None:
    with cluster3.client() as client:
        assert client.put_many([("m1", "a"), ("m2", "a")]) == [None, None]
        assert client.put_many([("m1", "b")]) == [None]
        client.put("m1", "c", concurrent=True)
        reads = client.get_many(["m1", "m2"])
        assert len(reads[0].values) >= 2  # type: ignore[union-attr]
        assert client.put_many([("m1", "merged", reads[0]), ("m2", "z", reads[1].context)]) == [None, None]  # type: ignore[union-attr]
        assert client.get("m1").values == [b"merged"] and client.get("m2").values == [b"z"]
        reads = client.get_many(["m1", "m2"])
        assert client.delete_many([("m1", reads[0]), "m2"]) == [None, None]
        assert not client.get("m1").found
