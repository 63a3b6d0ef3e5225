"""Which build of the hot path runs: the modules mypyc compiles, and the pure-Python fallback.

``setup.py`` compiles :data:`COMPILED_MODULES` with mypyc when it can (one Python source: the same
files run pure when it cannot) and records each source's SHA-256 in ``zkv/_compiled.json``. At import
of ``zkv`` (:func:`select`, called by ``zkv/__init__.py`` before any of these modules loads) the
compiled modules are used only when every one of them is there and was built from the source beside
it. Otherwise, or with ``ZKV_PURE=1`` in the environment, an import hook loads them from their ``.py``
files, so a ``.so`` left from an earlier build never shadows an edited source in a checkout (rebuild
with ``make build``). :func:`describe` says which build runs, for ``--version`` and ``status``.

Modules stay out of this list when the simulator's broken variants (zkv/sim/variants.py) patch their
globals or classes: compiled callers bind those at compile time and would not see the patch.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED_MODULES = (
    "zkv.core.versions",
    "zkv.core.quorum",
    "zkv.core.merkle",
    "zkv.core.ring",
    "zkv.storage.records",
    "zkv.storage.cache",
    "zkv.protocol",
)
GROUP = "zkv._hotpath"  # mypyc's shared library: zkv/_hotpath__mypyc.*.so
RECORD = "_compiled.json"  # in the zkv package: {module: sha256 of the source it was compiled from}
PURE_ENV = "ZKV_PURE"
REBUILD_HINT = "make build (or: pip install -e .)"

_ROOT = Path(__file__).resolve().parent  # the zkv package folder


def source_path(module: str, root: Path = _ROOT) -> Path:
    """The ``.py`` file of one of the compiled modules, under the package folder ``root``."""
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extension(module: str, root: Path) -> Path | None:
    stem = root.joinpath(*module.split(".")[1:])
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.exists():
            return candidate
    return None


def build_state(root: Path = _ROOT) -> tuple[bool, str]:
    """(use the compiled modules, why): compiled only when every module's extension is there and its
    recorded source hash is the source's now."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return False, f"{PURE_ENV}={os.environ[PURE_ENV]}"
    present = [m for m in COMPILED_MODULES if _extension(m, root) is not None]
    if not present:
        return False, "not compiled"
    try:
        recorded = json.loads((root / RECORD).read_text())
    except (OSError, ValueError):
        recorded = {}
    stale = [
        m
        for m in COMPILED_MODULES
        if m not in present or recorded.get(m) != source_hash(source_path(m, root))
    ]
    if stale:
        return False, f"stale compiled build ({', '.join(stale)}): rebuild with {REBUILD_HINT}"
    return True, "compiled (mypyc)"


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads a zkv module's ``.py`` file even where a ``.so`` sits beside it: every such module when the
    build is pure, else those the list no longer names (a ``.so`` left from a build that compiled it)."""

    def __init__(self, compiled: bool) -> None:
        self.compiled = compiled

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("zkv.") or (self.compiled and fullname in COMPILED_MODULES):
            return None
        source = source_path(fullname)
        if not source.is_file() or _extension(fullname, _ROOT) is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, source, loader=importlib.machinery.SourceFileLoader(fullname, str(source))
        )


_state: tuple[bool, str] | None = None


def select() -> None:
    """Decide the build once, at ``import zkv``; install the source-first hook when it is pure."""
    global _state
    if _state is not None:
        return
    _state = build_state()
    compiled, why = _state
    if not compiled and why.startswith("stale"):
        print(f"zkv: running pure Python: {why}", file=sys.stderr)
    if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst(compiled))


def describe() -> str:
    """``compiled (mypyc)`` or ``pure Python (why)``, from the modules actually loaded."""
    select()
    assert _state is not None
    loaded = [importlib.import_module(m) for m in COMPILED_MODULES]
    if all(str(getattr(m, "__file__", "")).endswith(".so") for m in loaded):
        return "compiled (mypyc)"
    return f"pure Python ({_state[1]})"
