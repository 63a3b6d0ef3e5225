"""What pyproject.toml cannot say: which packages ship, and the compiled hot path.

Every package under zkv/ is found (a new one needs no list to be kept), and the folder shell/ is
installed as the package zkv_shell. tests/test_packaging.py proves the built wheel holds every package
directory.

The modules of ``zkv.compiled.COMPILED_MODULES`` are compiled with mypyc (a build requirement, see
pyproject.toml) into C extensions beside their sources. When that is not possible (``ZKV_PURE=1``, mypyc
missing, no C compiler, a compile error) the build says why and installs pure Python, which the same
sources are. The build writes zkv/_compiled.json (each compiled source's hash), by which zkv uses the
extensions only while they match the sources (zkv/compiled.py).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
_compiled = runpy.run_path(str(HERE / "zkv" / "compiled.py"))
MODULES: tuple[str, ...] = _compiled["COMPILED_MODULES"]


def _say(message: str) -> None:
    print(f"zkv build: {message}", file=sys.stderr)


def compiled_extensions() -> list:
    """mypyc's extensions for the hot path, or none (pure Python) with the reason printed."""
    if os.environ.get(_compiled["PURE_ENV"], "") not in ("", "0"):
        _say(f"{_compiled['PURE_ENV']} is set: pure Python")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _say(f"mypyc is not available ({exc}): pure Python")
        return []
    paths = [str(_compiled["source_path"](m, Path("zkv"))) for m in MODULES]
    try:
        extensions = mypycify(paths, opt_level="3", group_name=_compiled["GROUP"])
    except BaseException as exc:  # mypyc reports type errors with SystemExit
        _say(f"mypyc could not compile the hot path ({exc!r}): pure Python")
        return []
    for ext in extensions:
        ext.optional = True  # a failing C compiler warns and leaves pure Python
    return extensions


class BuildHotPath(build_ext):
    """build_ext that records which compiled modules were built, and from which source."""

    def run(self) -> None:
        super().run()
        root = HERE / "zkv" if self.inplace else Path(self.build_lib) / "zkv"
        built = {ext.name for ext in self.extensions if Path(self.get_ext_fullpath(ext.name)).exists()}
        shared = _compiled["GROUP"] + "__mypyc"
        complete = shared in built or shared not in {ext.name for ext in self.extensions}
        source = HERE / "zkv"
        record = {
            m: _compiled["source_hash"](_compiled["source_path"](m, source))
            for m in MODULES
            if complete and m in built
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / _compiled["RECORD"]).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        missing = sorted(set(MODULES) - set(record))
        _say("compiled (mypyc)" if not missing else f"not compiled: {', '.join(missing)}: pure Python")


setup(
    packages=[*find_packages(include=["zkv", "zkv.*"]), "zkv_shell"],
    package_dir={"zkv_shell": "shell"},
    ext_modules=compiled_extensions(),
    cmdclass={"build_ext": BuildHotPath},
)
