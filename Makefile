# leadstream: the two quickstart commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup system-deps demo test chaos lint typecheck bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

## setup: create .venv and install leadstream with its test dependencies
setup: $(BIN)/.installed

## system-deps: Debian packages the browser test needs (chromium), installed once
system-deps:
	bash deploy/system-deps.sh

## demo: start the local stack and stream the synthetic demo dataset through it
demo: setup
	$(BIN)/leadstream demo

## test: lint, type check, then every test against the real broker and engine
test: setup system-deps lint typecheck
	$(BIN)/python -m pytest

## chaos: the failure-injection suite at full scale (kill -9, crash points, broker and cluster failures,
## engine outage, worker churn; 5 seeds x 200,000 events), ending with its table. `make test` runs it small.
chaos: setup
	LEADSTREAM_CHAOS_SCALE=full $(BIN)/python -m pytest tests/chaos -m chaos -p no:cacheprovider --timeout 3600

## lint: ruff, and the layer contract (import-linter: no upward import, no cycle)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

## bench: run the benchmarks (not tests): collector, stream, worker failover, query, adversarial inputs, the lead score backtest
bench: setup
	$(BIN)/python bench/collector.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/adversarial.py
	$(BIN)/python bench/lead_score_backtest.py

clean:
	rm -rf $(VENV) .leadstream .pytest_cache .mypy_cache .ruff_cache
