# TenantAtlas pipelines. `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo dev nightly-on nightly-off test test-fast lint typecheck bench lock check-config clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## the main job: migrate, sync the simulated demo tenants through Dagster, print the outcome
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m tenantatlas_pipelines.demo

## the Dagster UI (webserver + daemon) on the same instance, at http://127.0.0.1:3000
## (`dagster dev` runs from $(DAGSTER_HOME), so it does not warn about the root's dagster.yaml)
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/tenantatlas dev

## the nightly sweep starts STOPPED: turn it on (or off) on the instance of `make dev`
nightly-on: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster sensor start inventory_nightly_sweep -w workspace.yaml

nightly-off: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster sensor stop inventory_nightly_sweep -w workspace.yaml

## lint, type-check, then the whole suite (SQLite always; PostgreSQL when reachable) on
## TEST_WORKERS processes: the webserver, daemon and backfill tests mostly wait
TEST_WORKERS ?= 2
test: $(STAMP) lint typecheck
	$(PY) -m pytest -n $(TEST_WORKERS)

test-fast: $(STAMP)
	$(PY) -m pytest -x -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tenantatlas_pipelines tenantatlas_pipelines_tests $(wildcard benchmarks)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## validate the registry ($$TENANTATLAS_REGISTRY, else the demo's, checked with its fake secrets)
check-config: $(STAMP)
	$(VENV)/bin/tenantatlas check-config

bench: $(STAMP)
	$(PY) -m benchmarks.run

## refresh constraints.txt from a clean resolve of pyproject.toml
lock:
	rm -rf /tmp/tenantatlas-lock && $(PYTHON) -m venv /tmp/tenantatlas-lock
	/tmp/tenantatlas-lock/bin/pip install --quiet --upgrade "pip>=24"
	/tmp/tenantatlas-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/tenantatlas-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) .tenantatlas .dagster_home .pytest_cache .mypy_cache .ruff_cache
