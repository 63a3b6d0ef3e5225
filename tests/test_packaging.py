"""The wheel a plain ``pip install .`` builds holds every package (scripts/check_wheel.py; CI also installs
it into a fresh venv). An editable install finds any folder, so only a built wheel shows a missing one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_wheel.py"


def load_script():
    spec = importlib.util.spec_from_file_location("check_wheel", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_built_wheel_has_every_package_directory():
    done = subprocess.run([sys.executable, SCRIPT, "--no-install"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ships" in done.stdout


def test_every_folder_with_python_files_is_expected_even_without_an_init(tmp_path):
    check = load_script()
    (tmp_path / "zkv" / "sim").mkdir(parents=True)
    (tmp_path / "zkv" / "__init__.py").write_text("")
    (tmp_path / "zkv" / "sim" / "run.py").write_text("")  # no __init__.py: find_packages would skip it
    (tmp_path / "shell").mkdir()
    (tmp_path / "shell" / "main.py").write_text("")
    assert check.expected_packages(tmp_path) == {"zkv", "zkv.sim", "zkv_shell"}


def test_a_wheel_without_a_package_is_caught(tmp_path):
    check = load_script()
    wheel = tmp_path / "zkv-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("zkv/__init__.py", "")
        zf.writestr("zkv/core/__init__.py", "")
        zf.writestr("zkv/core/ring.py", "")
    assert check.wheel_packages(wheel) == {"zkv", "zkv.core"}  # so zkv.sim would be reported missing
