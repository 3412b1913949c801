# The two commands: `make serve` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= local,dev,postgres,redis,ray
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),_,$(EXTRAS))

.PHONY: serve test install lock lint typecheck unit bench services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

LOCK   := requirements.lock
PORT   ?=

# Installs the versions pinned in requirements.lock (the ones CI passed with), then lmdeck itself.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	@echo "==> installing the pinned dependencies from $(LOCK) into $(VENV) (first time: a few minutes)"
	$(BIN)/pip install --progress-bar on -r $(LOCK)
	@echo "==> installing lmdeck (editable, extras: $(EXTRAS))"
	$(BIN)/pip install -q --no-deps -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

# Refresh requirements.lock from pyproject.toml's ranges (commit the result once `make test` passes).
lock: | $(BIN)/python
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --all-extras --no-emit-find-links --no-emit-index-url --no-emit-trusted-host \
		--strip-extras --no-header --annotation-style line -o $(LOCK) pyproject.toml

# `make serve PORT=4100` (or LMDECK_PORT=4100) listens elsewhere; the CLI follows with LMDECK_BASE_URL.
serve: install
	@echo "==> starting lmdeck on port $(or $(PORT),$(LMDECK_PORT),4000); the CLI: export LMDECK_BASE_URL=http://127.0.0.1:$(or $(PORT),$(LMDECK_PORT),4000)"
	$(BIN)/lmdeck serve $(if $(PORT),--port $(PORT))

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

services:
	bash scripts/test-services.sh

unit: install
	$(BIN)/pytest -q

# Lint and type checks first: services are only started for a run that gets to pytest, and always stopped.
test: install lint typecheck
	bash scripts/test-services.sh && . ./.test-services.env && $(BIN)/pytest -q -ra; \
	rc=$$?; bash scripts/stop-test-services.sh; exit $$rc

bench: install
	$(BIN)/python bench/gateway_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
