"""Build the wheel from the tracked files and prove it ships every package (what a plain ``pip install .``
gives a user, where an editable install would hide a missing package).

Checks that every folder under ``zkv/`` holding Python files, and the shell (``shell/`` as ``zkv_shell``),
is a package in the wheel. Unless ``--no-install``, installs the wheel into a fresh venv and there imports
every package and module of ``zkv.sim``, and runs ``zkv-node --help`` and ``zkv-shell --help``.
Exit status 0 when all of that holds; a line per failure otherwise. Run by ``make test`` (CI).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RENAMED = {"shell": "zkv_shell"}  # source folder -> installed package name (setup.py's package_dir)


def expected_packages(root: Path) -> set[str]:
    """Every folder of ``zkv/`` (and ``shell/``) that holds Python files, as a dotted package name."""
    found = set()
    for top in ("zkv", "shell"):
        for py in (root / top).rglob("*.py"):
            parts = py.parent.relative_to(root).parts
            if "__pycache__" not in parts:
                found.add(".".join((RENAMED.get(parts[0], parts[0]), *parts[1:])))
    return found


def wheel_packages(wheel: Path) -> set[str]:
    """The packages of a wheel: the folders in it with an ``__init__.py``."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    return {name.rsplit("/", 1)[0].replace("/", ".") for name in names if name.endswith("/__init__.py")}


def tracked_copy(root: Path, dest: Path) -> Path:
    """The files git tracks or would (outside a checkout: the tree less venvs and caches), copied to
    ``dest``: the wheel is built from what a clone has, and the build leaves nothing in the work tree."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [Path(f) for f in listing.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".git", "build", "__pycache__", "data"}
        files = [p.relative_to(root) for p in root.rglob("*") if p.is_file() and not skip & set(p.parts)]
    for rel in files:
        if (root / rel).is_file():  # a tracked file deleted in the work tree is not shipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest / rel)
    return dest


def build_wheel(root: Path, work: Path) -> Path:
    source = tracked_copy(root, work / "src")
    out = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            ".",
        ],
        cwd=source,
        check=True,
    )
    (wheel,) = out.glob("zkv-*.whl")
    return wheel


def smoke_install(wheel: Path, work: Path, packages: set[str]) -> list[str]:
    """Install ``wheel`` into a fresh venv; the failures of importing and of the two ``--help``s."""
    env = work / "venv"
    venv.create(env, with_pip=True)
    python, bindir = env / "bin" / "python", env / "bin"
    subprocess.run([python, "-m", "pip", "install", "--quiet", wheel], check=True)
    failures = []
    imports = sorted(packages | {"zkv.sim.run"})
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run([python, "-c", code, *imports], capture_output=True, text=True, cwd=work)
    if done.returncode != 0:
        failures.append(f"importing from the installed wheel failed:\n{done.stderr}")
    for command in ("zkv-node", "zkv-shell"):
        done = subprocess.run([bindir / command, "--help"], capture_output=True, text=True, cwd=work)
        if done.returncode != 0 or "usage" not in done.stdout.lower():
            failures.append(f"{command} --help failed (exit {done.returncode}):\n{done.stderr}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true", help="only check the wheel's package list")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zkv-wheel-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(ROOT, work)
        expected, shipped = expected_packages(ROOT), wheel_packages(wheel)
        failures = [f"package {name} is not in {wheel.name}" for name in sorted(expected - shipped)]
        if not failures and not args.no_install:
            failures += smoke_install(wheel, work, shipped)
        for failure in failures:
            print(f"check_wheel: {failure}", file=sys.stderr)
        if not failures:
            print(
                f"check_wheel: {wheel.name} ships {len(shipped)} packages"
                + ("" if args.no_install else "; installed, imported, --help ok")
            )
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
