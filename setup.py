"""The one thing pyproject.toml cannot say: which packages ship. Every package under zkv/ is found (a new
one needs no list to be kept), and the folder shell/ is installed as the package zkv_shell.
tests/test_packaging.py proves the built wheel holds every package directory."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["zkv", "zkv.*"]), "zkv_shell"],
    package_dir={"zkv_shell": "shell"},
)
