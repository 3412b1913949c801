# The two commands: `make serve` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= local,dev,postgres,redis
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),_,$(EXTRAS))

.PHONY: serve test install lint typecheck unit bench services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

serve: install
	$(BIN)/lmdeck serve

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install
	$(BIN)/mypy

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
