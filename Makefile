# The two Quickstart commands: `make run` (install, start the local cluster, open the shell) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
BUILD_STAMP := $(VENV)/.built-hotpath
# the sources mypyc compiles (zkv/compiled.py's COMPILED_MODULES), as paths
HOT := $(shell sed -n 's/^    "\(zkv\.[a-z_.]*\)",$$/\1/p' zkv/compiled.py | tr . / | sed 's/$$/.py/')

.PHONY: run test lint cluster clean build

# the runtime dependencies only: what `make run` needs (pip builds the compiled hot path, setup.py)
$(RUNTIME_STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP) $(BUILD_STAMP)

# plus the test extra: what `make test` and `make lint` need (one install, so one compile)
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(RUNTIME_STAMP) $(BUILD_STAMP)

# a source of the compiled hot path changed since its .so files were built: rebuild them (zkv would
# otherwise run pure Python and say so, see zkv/compiled.py)
$(BUILD_STAMP): $(HOT) | $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(BUILD_STAMP)

## rebuild the compiled hot path after editing one of its sources (make run and make test do it too)
build: $(BUILD_STAMP)

## install, start the 3-node cluster of cluster.toml in the background, open zkv-shell; quitting the shell stops the cluster
run: $(RUNTIME_STAMP) $(BUILD_STAMP)
	$(BIN)/python scripts/run_local.py --config cluster.toml

## install and run the whole test suite (what CI runs): lint, type check, the wheel in a fresh venv, pytest
test: $(STAMP) $(BUILD_STAMP)
	$(BIN)/ruff check zkv shell tests scripts tools setup.py
	$(BIN)/mypy
	$(BIN)/python scripts/check_wheel.py
	$(BIN)/python -m pytest -q

## only start the cluster, in the foreground (Ctrl-C stops it)
cluster: $(RUNTIME_STAMP) $(BUILD_STAMP)
	$(BIN)/zkv-node --config cluster.toml

lint: $(STAMP)
	$(BIN)/ruff check zkv shell tests scripts tools setup.py
	$(BIN)/ruff format --check zkv shell tests scripts tools setup.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data build *.egg-info zkv/_compiled.json
	find zkv -name "*.so" -delete
