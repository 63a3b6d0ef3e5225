"""The core is sans-I/O (DESIGN §1): importing it pulls in no sockets or threads, and its source reads no
clock, opens no file and touches no socket."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import zkv.core

CORE_DIR = Path(zkv.core.__file__).resolve().parent
CORE_FILES = sorted(CORE_DIR.glob("*.py"))
CORE_MODULES = [f"zkv.core.{p.stem}" for p in CORE_FILES if p.stem != "__init__"]
# what the core imports from outside zkv/core, held to the same rules
DEPENDENCIES = [CORE_DIR.parent / "protocol.py", CORE_DIR.parent / "errors.py"]

IO_MODULES = ("zmq", "socket", "selectors", "asyncio", "threading")
FORBIDDEN_IMPORTS = {
    "time",
    "zmq",
    "socket",
    "os",
    "selectors",
    "asyncio",
    "threading",
    "subprocess",
    "pathlib",
    "shutil",
    "io",
    "tempfile",
}
FORBIDDEN_CALLS = {"open", "print", "input"}
FORBIDDEN_ATTRIBUTE_BASES = {"time", "os", "socket", "zmq", "datetime"}


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_core_is_all_listed():
    assert {"versions", "ring", "quorum", "membership", "nodecore", "stats", "effects"} <= {
        m.rsplit(".", 1)[1] for m in CORE_MODULES
    }


def test_importing_the_core_pulls_in_no_io_modules():
    """The core's own imports, apart from the ``zkv`` package's ``__init__`` (the next test).

    ``logging`` is imported first: the core logs (STYLE.md: no ``print``), and ``logging`` itself imports
    ``threading``; a direct ``import threading`` in the core is caught by the source check instead.
    """
    code = f"""
import importlib, importlib.util, json, sys, types
import logging, msgpack
spec = importlib.util.find_spec("zkv")
package = types.ModuleType("zkv")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["zkv"] = package  # import zkv.core.* without running zkv/__init__.py
before = set(sys.modules)
for name in {CORE_MODULES!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {IO_MODULES!r})))
"""
    assert _run(code) == []


def test_importing_zkv_core_through_the_package_pulls_in_no_zmq():
    code = (
        "import sys, json; "
        "import zkv.core.versions, zkv.core.ring, zkv.core.quorum, zkv.core.membership, "
        "zkv.core.nodecore, zkv.core.stats, zkv.core.effects; "
        "print(json.dumps(sorted(m for m in sys.modules if m in ('zmq', 'socket', 'selectors', 'asyncio'))))"
    )
    assert _run(code) == []


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_IMPORTS:
                    found.append(f"{where} import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.level == 0 and node.module.split(".")[0] in FORBIDDEN_IMPORTS:
                found.append(f"{where} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{where} {func.id}(...)")
            if isinstance(func, ast.Attribute) and func.attr in ("open", "read_text", "write_text", "sleep"):
                found.append(f"{where} .{func.attr}(...)")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in FORBIDDEN_ATTRIBUTE_BASES
        ):
            found.append(f"{where} {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", CORE_FILES + DEPENDENCIES, ids=lambda p: p.name)
def test_source_reads_no_clock_and_does_no_io(path):
    assert _violations(path) == []


def test_the_source_check_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time\nimport os.path\nfrom zmq import Context\nimport socket as s\n"
        "def f():\n    open('x')\n    return time.monotonic()\n"
    )
    found = _violations(bad)
    assert len(found) == 6, found
