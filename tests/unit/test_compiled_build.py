"""The compiled hot path is used only when it matches its sources, and ZKV_PURE=1 forces pure Python."""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zkv import compiled

PROBE = (
    "from zkv import compiled; import zkv.core.versions as v; print(compiled.describe()); print(v.__file__)"
)


def fake_build(root: Path, record_ok: bool = True) -> None:
    """A package folder with every compiled module's source, an extension file beside it, and a record."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    record = {}
    for module in compiled.COMPILED_MODULES:
        source = compiled.source_path(module, root)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
        source.with_name(source.stem + suffix).write_bytes(b"not really a library")
        record[module] = compiled.source_hash(source)
    if not record_ok:
        record[compiled.COMPILED_MODULES[0]] = "0" * 64
    (root / compiled.RECORD).write_text(json.dumps(record))


def test_a_build_that_matches_its_sources_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    fake_build(tmp_path)
    assert compiled.build_state(tmp_path) == (True, "compiled (mypyc)")


def test_an_edited_source_makes_the_build_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    fake_build(tmp_path)
    edited = compiled.source_path("zkv.core.quorum", tmp_path)
    edited.write_text(edited.read_text() + "x = 1\n")
    use, why = compiled.build_state(tmp_path)
    assert not use and why.startswith("stale compiled build (zkv.core.quorum)") and "make build" in why


def test_a_wrong_record_or_a_missing_extension_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    fake_build(tmp_path, record_ok=False)
    assert compiled.build_state(tmp_path)[1].startswith(
        f"stale compiled build ({compiled.COMPILED_MODULES[0]})"
    )
    fake_build(tmp_path)
    for so in tmp_path.rglob("protocol.*"):
        if so.suffix == ".so":
            so.unlink()
    assert compiled.build_state(tmp_path)[1] == "stale compiled build (zkv.protocol): rebuild with " + (
        compiled.REBUILD_HINT
    )


def test_no_extensions_is_pure_and_the_env_forces_pure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(compiled.PURE_ENV, raising=False)
    assert compiled.build_state(tmp_path) == (False, "not compiled")
    fake_build(tmp_path)
    monkeypatch.setenv(compiled.PURE_ENV, "1")
    assert compiled.build_state(tmp_path) == (False, "ZKV_PURE=1")


def test_zkv_pure_loads_the_sources_even_beside_a_compiled_build() -> None:
    env = {**os.environ, compiled.PURE_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    build, path = out.stdout.splitlines()
    assert build == "pure Python (ZKV_PURE=1)" and path.endswith("versions.py")


def test_the_default_build_says_what_it_loaded() -> None:
    env = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    build, path = out.stdout.splitlines()
    assert (build == "compiled (mypyc)") == path.endswith(".so"), (build, path)
    assert build == "compiled (mypyc)" or build.startswith("pure Python (")


def test_a_so_left_for_a_module_no_longer_compiled_does_not_shadow_its_source(tmp_path: Path) -> None:
    """zkv.core.effects is not in the list: a stray extension beside it is ignored, compiled or pure."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    stray = compiled.source_path("zkv.core.effects").with_name("effects" + suffix)
    assert "zkv.core.effects" not in compiled.COMPILED_MODULES and not stray.exists()
    stray.write_bytes(b"not a library: importing it would fail")
    try:
        for pure in ("0", "1"):
            env = {**os.environ, compiled.PURE_ENV: pure}
            probe = "import zkv.core.effects as e; print(e.__file__)"
            out = subprocess.run(
                [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip().endswith("effects.py")
    finally:
        stray.unlink()
