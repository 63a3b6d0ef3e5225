# The two Quickstart commands: `make run` (install, start the local cluster, open the shell) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: run test lint cluster clean

# the runtime dependencies only: what `make run` needs
$(RUNTIME_STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

# plus the test extra: what `make test` and `make lint` need
$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## install, start the 3-node cluster of cluster.toml in the background, open zkv-shell; quitting the shell stops the cluster
run: $(RUNTIME_STAMP)
	$(BIN)/python scripts/run_local.py --config cluster.toml

## install and run the whole test suite (what CI runs): lint, type check, the wheel in a fresh venv, pytest
test: $(STAMP)
	$(BIN)/ruff check zkv shell tests scripts tools setup.py
	$(BIN)/mypy
	$(BIN)/python scripts/check_wheel.py
	$(BIN)/python -m pytest -q

## only start the cluster, in the foreground (Ctrl-C stops it)
cluster: $(RUNTIME_STAMP)
	$(BIN)/zkv-node --config cluster.toml

lint: $(STAMP)
	$(BIN)/ruff check zkv shell tests scripts tools setup.py
	$(BIN)/ruff format --check zkv shell tests scripts tools setup.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data build *.egg-info
