# The two Quickstart commands: `make run` (install, start the local cluster, open the shell) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint cluster clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## install, start the 3-node cluster of cluster.toml in the background, open zkv-shell; quitting the shell stops the cluster
run: $(STAMP)
	$(BIN)/python scripts/run_local.py --config cluster.toml

## install and run the whole test suite (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check zkv shell tests scripts tools
	$(BIN)/python -m pytest -q

## only start the cluster, in the foreground (Ctrl-C stops it)
cluster: $(STAMP)
	$(BIN)/zkv-node --config cluster.toml

lint: $(STAMP)
	$(BIN)/ruff check zkv shell tests scripts tools
	$(BIN)/ruff format --check zkv shell tests scripts tools

clean:
	rm -rf $(VENV) data build *.egg-info
